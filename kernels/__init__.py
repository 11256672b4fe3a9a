"""RoIAlign as a CUDA kernel: CUDA source, CuPy launcher, host (CPU) build of the same source.

    from kernels import roi_align, MultiScaleRoIAlign, swap_poolers

See docs/KERNELS.md for the design and how it is verified without a GPU.
"""

from kernels.cupy_backend import cupy_available
from kernels.ops import BACKENDS, roi_align
from kernels.poolers import MultiScaleRoIAlign, swap_poolers

__all__ = ["BACKENDS", "MultiScaleRoIAlign", "cupy_available", "roi_align", "swap_poolers"]
