"""RoIAlign as a CUDA kernel: CUDA source, CuPy launcher, host (CPU) build of the same source."""
