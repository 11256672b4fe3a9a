"""CuPy backend: roi_align.cu compiled by NVRTC, loaded as a cupy.RawModule, launched on torch's current stream.

The cubin is compiled through kernels.nvrtc with exactly NVRTC_OPTIONS (the build CI checks) and cached next to
the host build; CuPy's own compile path is only the fallback when cuda.bindings is missing or NVRTC does not know
the device, because it appends -ftz=true (denormal intermediates would flush to zero, still within 1e-30 of exact).
Tensors cross to CuPy zero-copy through DLPack; outputs are allocated by torch. bf16 tensors cross as int16
views (CuPy has no bfloat16 dtype; the kernel only needs the pointer).
"""

from __future__ import annotations

import logging
import threading
from functools import cache
from typing import Any

import numpy as np
import torch

from kernels.launch import DevicePointer, LaunchPlan
from kernels.source import NVRTC_OPTIONS, build_dir, cuda_source, sources_digest, write_atomically

log = logging.getLogger(__name__)


@cache
def cupy_available() -> bool:
    """True when CuPy imports and sees a CUDA device."""
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # ImportError, or CUDA driver/runtime errors on machines without a GPU
        return False


class CupyLauncher:
    """Runs LaunchPlans on CUDA devices; one compiled module per device, compiled on first use."""

    def __init__(self) -> None:
        try:
            import cupy
        except ImportError as exc:
            raise RuntimeError(
                "RoIAlign CuPy backend: CuPy is not installed (pip install 'maskstream[cuda13]' or [cuda12])"
            ) from exc
        self._cupy = cupy
        self._modules: dict[int, Any] = {}
        self._functions: dict[tuple[int, str], Any] = {}
        self._streams: dict[tuple[int, int], Any] = {}
        self.compiled_by: dict[int, str] = {}  # device index -> how its module was built (reported by benchmarks)
        self._lock = threading.Lock()

    def _load_module(self, device_index: int) -> Any:
        major, minor = torch.cuda.get_device_capability(device_index)
        arch = f"sm_{major}{minor}"
        try:
            from kernels.nvrtc import compile_for
        except ImportError:  # cuda.bindings missing
            compile_for = None
        if compile_for is not None:
            cubin_path = build_dir() / f"roi_align_{arch}_{sources_digest(*NVRTC_OPTIONS)}.cubin"
            if not cubin_path.exists():
                try:
                    result = compile_for(arch)
                except Exception as exc:  # an NVRTC that cannot be loaded or does not know this arch
                    result = None
                    log.warning("RoIAlign: NVRTC compile for %s unavailable (%s); using CuPy's compiler", arch, exc)
                if result is not None and result.ok:
                    write_atomically(cubin_path, result.cubin)
                elif result is not None:
                    log.warning("RoIAlign: NVRTC failed for %s; using CuPy's compiler:\n%s", arch, result.log)
            if cubin_path.exists():
                self.compiled_by[device_index] = f"nvrtc ({arch}, {' '.join(NVRTC_OPTIONS)})"
                return self._cupy.RawModule(path=str(cubin_path))
        self.compiled_by[device_index] = f"cupy ({' '.join(NVRTC_OPTIONS)} + CuPy's -ftz=true)"
        return self._cupy.RawModule(code=cuda_source(), options=NVRTC_OPTIONS)

    def _function(self, device_index: int, name: str) -> Any:
        key = (device_index, name)
        function = self._functions.get(key)
        if function is None:
            with self._lock:
                module = self._modules.get(device_index)
                if module is None:
                    module = self._load_module(device_index)
                    self._modules[device_index] = module
                function = module.get_function(name)
                self._functions[key] = function
        return function

    def _argument(self, arg: object) -> object:
        if isinstance(arg, DevicePointer):
            if arg.tensor is None:
                return np.uint64(0)  # null pointer: same width as a device pointer
            # detach: DLPack refuses tensors that require grad (the kernel never records autograd history).
            tensor = arg.tensor.detach()
            if tensor.dtype == torch.bfloat16:
                tensor = tensor.view(torch.int16)
            return self._cupy.from_dlpack(tensor)
        return arg  # np.int32 / np.float32 already have the kernel's widths

    def _stream(self, index: int) -> Any:
        """CuPy's view of torch's current stream on device `index` (cached: wrapping costs per call)."""
        torch_stream = torch.cuda.current_stream(index)
        key = (index, torch_stream.cuda_stream)
        stream = self._streams.get(key)
        if stream is None:
            if hasattr(self._cupy.cuda.Stream, "from_external"):  # CuPy >= 14 (ExternalStream is deprecated)
                stream = self._cupy.cuda.Stream.from_external(torch_stream)
            else:
                stream = self._cupy.cuda.ExternalStream(torch_stream.cuda_stream, index)
            self._streams[key] = stream
        return stream

    def launch(self, plan: LaunchPlan, device: torch.device) -> None:
        index = device.index if device.index is not None else torch.cuda.current_device()
        # torch refuses to export tensors of a device that is not current, so make it current for both.
        with torch.cuda.device(index), self._cupy.cuda.Device(index), self._stream(index):
            function = self._function(index, plan.kernel)
            args = tuple(self._argument(arg) for arg in plan.args)
            function(plan.grid, plan.block, args)


_launcher: CupyLauncher | None = None


def cupy_launcher() -> CupyLauncher:
    global _launcher
    if _launcher is None:
        _launcher = CupyLauncher()
    return _launcher
