"""Compile roi_align.cu with NVRTC without a GPU (cuda.bindings, which torch's CUDA wheels bring).

CuPy's RawKernel.compile() needs a device; NVRTC itself does not, so CI compiles, for each target architecture,
the very cubin the CuPy backend loads (kernels/cupy_backend.py compiles through this module, because CuPy's own
compile path appends -ftz=true). Run `python -m kernels.nvrtc [sm_80 sm_90 ...]` for a report.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from kernels.source import CUDA_SOURCE, NVRTC_OPTIONS, cuda_source

DEFAULT_ARCHS = ("sm_80", "sm_90")


@dataclass(frozen=True)
class NvrtcResult:
    arch: str
    ok: bool
    log: str
    cubin: bytes


def _check(result: tuple, what: str) -> tuple:
    from cuda.bindings import nvrtc

    status, *values = result
    if status != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        raise RuntimeError(f"NVRTC {what} failed: {status}")
    return tuple(values)


def compile_for(arch: str, extra_options: tuple[str, ...] = ()) -> NvrtcResult:
    """Compile to a cubin for `arch` (e.g. "sm_90") with the CuPy backend's options; never raises on a
    compile error (ok=False and the log say what failed)."""
    from cuda.bindings import nvrtc

    (program,) = _check(
        nvrtc.nvrtcCreateProgram(cuda_source().encode(), CUDA_SOURCE.name.encode(), 0, [], []), "create"
    )
    try:
        options = [f"--gpu-architecture={arch}", *NVRTC_OPTIONS, *extra_options]
        (status,) = nvrtc.nvrtcCompileProgram(program, len(options), [o.encode() for o in options])
        (log_size,) = _check(nvrtc.nvrtcGetProgramLogSize(program), "log size")
        # NVRTC writes into the buffer: it must be a fresh mutable one. Writing into `b" " * n` would mutate
        # an immutable object (for n == 1, CPython's cached one-byte b" ", which corrupts e.g. torch.load).
        log = bytearray(log_size)
        _check(nvrtc.nvrtcGetProgramLog(program, log), "log")
        ok = status == nvrtc.nvrtcResult.NVRTC_SUCCESS
        cubin = b""
        if ok:
            (size,) = _check(nvrtc.nvrtcGetCUBINSize(program), "cubin size")
            buffer = bytearray(size)
            _check(nvrtc.nvrtcGetCUBIN(program, buffer), "cubin")
            cubin = bytes(buffer)
        return NvrtcResult(arch, ok, bytes(log).rstrip(b"\x00").decode(errors="replace").strip(), cubin)
    finally:
        nvrtc.nvrtcDestroyProgram(program)


def main(argv: list[str] | None = None) -> int:
    archs = argv or list(DEFAULT_ARCHS)
    failed = False
    for arch in archs:
        result = compile_for(arch)
        status = "ok" if result.ok and not result.log else ("warnings" if result.ok else "FAILED")
        print(f"{arch}: {status}, cubin {len(result.cubin)} bytes")
        if result.log:
            print(result.log)
        failed |= status != "ok"
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
