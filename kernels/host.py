"""Host backend: roi_align.cu built with g++ through host_shim.h, loaded with ctypes, for verification on CPUs.

The shared library is cached in kernels.source.build_dir() (kernels/_build/ by default), named by a hash of the
sources, flags and compiler, so edits rebuild.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy as np

from kernels.launch import DevicePointer, LaunchPlan
from kernels.source import HOST_LAUNCHER, KERNEL_DIR, sources_digest
from kernels.source import build_dir as kernel_build_dir

# -ffp-contract=off: no fused multiply-add, so fp32 results are bit-identical to torchvision's CPU op.
HOST_CXXFLAGS: tuple[str, ...] = ("-O2", "-ffp-contract=off", "-std=c++17", "-shared", "-fPIC", "-Wall", "-Wextra")

_lock = threading.Lock()
_library: ctypes.CDLL | None = None


def _compiler() -> str:
    compiler = os.environ.get("CXX", "g++")
    if shutil.which(compiler) is None:
        raise RuntimeError(f"RoIAlign host backend: C++ compiler {compiler!r} not found (install g++ or set CXX)")
    return compiler


def _compiler_version(compiler: str) -> str:
    return subprocess.run([compiler, "--version"], capture_output=True, text=True, check=False).stdout


def build_host_library() -> Path:
    """Compile the host library if this exact source/flags/compiler combination is not cached yet."""
    compiler = _compiler()
    digest = sources_digest(" ".join(HOST_CXXFLAGS), _compiler_version(compiler))
    build_dir = kernel_build_dir()
    target = build_dir / f"roi_align_host_{digest}.so"
    if target.exists():
        return target
    build_dir.mkdir(parents=True, exist_ok=True)
    # Build to a temporary name and rename: concurrent test processes never load a half-written library.
    with tempfile.TemporaryDirectory(dir=build_dir) as tmp:
        partial = Path(tmp) / target.name
        result = subprocess.run(
            [compiler, *HOST_CXXFLAGS, "-I", str(KERNEL_DIR), str(HOST_LAUNCHER), "-o", str(partial)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"RoIAlign host backend: {compiler} failed:\n{result.stderr.strip()}")
        os.replace(partial, target)
    # Older builds are stale once the sources change; unlinking one that a process has loaded is safe on Linux.
    for stale in build_dir.glob("roi_align_host_*.so"):
        if stale != target:
            stale.unlink(missing_ok=True)
    return target


def _load() -> ctypes.CDLL:
    global _library
    with _lock:
        if _library is None:
            library = ctypes.CDLL(str(build_host_library()))
            library.maskstream_host_launch.argtypes = [ctypes.c_char_p, *[ctypes.c_uint] * 6, ctypes.c_void_p]
            library.maskstream_host_launch.restype = ctypes.c_int
            _library = library
        return _library


def _ctype(arg: object) -> ctypes._SimpleCData:
    if isinstance(arg, DevicePointer):
        if arg.tensor is None:
            return ctypes.c_void_p(None)
        if arg.tensor.device.type != "cpu":
            raise ValueError(f"RoIAlign host backend: needs CPU tensors, got one on {arg.tensor.device}")
        return ctypes.c_void_p(arg.tensor.data_ptr())
    if isinstance(arg, np.int32):
        return ctypes.c_int32(int(arg))
    if isinstance(arg, np.float32):
        return ctypes.c_float(float(arg))
    raise TypeError(f"RoIAlign host backend: unsupported kernel argument {arg!r}")


class HostLauncher:
    """Runs a LaunchPlan on the CPU, walking the whole grid like the GPU would."""

    def launch(self, plan: LaunchPlan) -> None:
        library = _load()
        values = [_ctype(arg) for arg in plan.args]  # kept alive for the duration of the call
        argv = (ctypes.c_void_p * len(values))(*[ctypes.addressof(v) for v in values])
        status = library.maskstream_host_launch(plan.kernel.encode(), *plan.grid, *plan.block, argv)
        if status != 0:
            raise RuntimeError(f"RoIAlign host backend: no kernel named {plan.kernel!r} in the host library")
