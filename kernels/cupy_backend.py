"""CuPy backend: roi_align.cu compiled by NVRTC (cupy.RawModule), launched on torch's current CUDA stream.

Tensors cross to CuPy zero-copy through DLPack; outputs are allocated by torch. bf16 tensors cross as int16
views (CuPy has no bfloat16 dtype; the kernel only needs the pointer).
"""

from __future__ import annotations

import threading
from functools import cache
from typing import Any

import numpy as np
import torch

from kernels.launch import DevicePointer, LaunchPlan
from kernels.source import NVRTC_OPTIONS, cuda_source


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
        self._lock = threading.Lock()

    def _function(self, device_index: int, name: str) -> Any:
        key = (device_index, name)
        function = self._functions.get(key)
        if function is None:
            with self._lock:
                module = self._modules.get(device_index)
                if module is None:
                    module = self._cupy.RawModule(code=cuda_source(), options=NVRTC_OPTIONS)
                    self._modules[device_index] = module
                function = module.get_function(name)
                self._functions[key] = function
        return function

    def _argument(self, arg: object) -> object:
        if isinstance(arg, DevicePointer):
            if arg.tensor is None:
                return np.uint64(0)  # null pointer: same width as a device pointer
            tensor = arg.tensor.view(torch.int16) if arg.tensor.dtype == torch.bfloat16 else arg.tensor
            return self._cupy.from_dlpack(tensor)
        return arg  # np.int32 / np.float32 already have the kernel's widths

    def launch(self, plan: LaunchPlan, device: torch.device) -> None:
        cupy = self._cupy
        index = device.index if device.index is not None else torch.cuda.current_device()
        torch_stream = torch.cuda.current_stream(index)
        with cupy.cuda.Device(index):
            stream = cupy.cuda.ExternalStream(torch_stream.cuda_stream, index)
            with stream:
                function = self._function(index, plan.kernel)
                args = tuple(self._argument(arg) for arg in plan.args)
                function(plan.grid, plan.block, args)


_launcher: CupyLauncher | None = None


def cupy_launcher() -> CupyLauncher:
    global _launcher
    if _launcher is None:
        _launcher = CupyLauncher()
    return _launcher
