"""The CUDA source of the RoIAlign kernels and what every build of it shares (names, options, hash)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from functools import cache
from pathlib import Path

import torch

KERNEL_DIR = Path(__file__).resolve().parent
CUDA_SOURCE = KERNEL_DIR / "roi_align.cu"
HOST_SHIM = KERNEL_DIR / "host_shim.h"
HOST_LAUNCHER = KERNEL_DIR / "host_launch.cpp"

# Feature maps one fused launch can take (P2-P6); must match MS_MAX_LEVELS in roi_align.cu.
MAX_LEVELS = 5

# IEEE fp32 as on the host: --fmad=false (no multiply-add contraction, like g++ -ffp-contract=off), no
# flush-to-zero, correctly rounded division and square root. Device results then equal the host build's and
# torchvision's CPU op bit for bit. The kernels are memory-bound; the lost FMAs cost next to nothing.
NVRTC_OPTIONS: tuple[str, ...] = ("-std=c++17", "--fmad=false", "--ftz=false", "--prec-div=true", "--prec-sqrt=true")

_DTYPE_SUFFIX = {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16"}
SUPPORTED_DTYPES = tuple(_DTYPE_SUFFIX)


def kernel_name(kind: str, dtype: torch.dtype) -> str:
    """Entry point for `kind` (forward, backward, multilevel_forward, multilevel_backward) and an input dtype."""
    try:
        return f"roi_align_{kind}_{_DTYPE_SUFFIX[dtype]}"
    except KeyError:
        supported = ", ".join(str(d).removeprefix("torch.") for d in SUPPORTED_DTYPES)
        raise TypeError(f"RoIAlign kernel: dtype {dtype} is not supported (supported: {supported})") from None


@cache
def cuda_source() -> str:
    return CUDA_SOURCE.read_text()


def sources_digest(*extra: str) -> str:
    """Hash of every file a build reads plus `extra` (flags, compiler), so any edit triggers a rebuild."""
    digest = hashlib.sha256()
    for path in (CUDA_SOURCE, HOST_SHIM, HOST_LAUNCHER):
        digest.update(path.read_bytes())
    for item in extra:
        digest.update(item.encode())
    return digest.hexdigest()[:16]


def build_dir() -> Path:
    """Where compiled kernels are cached: $MASKSTREAM_KERNEL_BUILD_DIR, else kernels/_build (git-ignored), else
    ~/.cache/maskstream/kernels when the package directory is read-only."""
    override = os.environ.get("MASKSTREAM_KERNEL_BUILD_DIR")
    if override:
        return Path(override)
    if os.access(KERNEL_DIR, os.W_OK):
        return KERNEL_DIR / "_build"
    return Path.home() / ".cache" / "maskstream" / "kernels"


def write_atomically(target: Path, data: bytes) -> None:
    """Write then rename, so a concurrent process never loads a half-written build."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp:
        tmp.write(data)
    os.replace(tmp.name, target)
