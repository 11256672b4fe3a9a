"""Launch configurations and argument lists, computed once and consumed by both backends.

The CuPy backend and the host (g++) backend launch exactly the plans built here: same entry point, same grid and
block, same arguments in the same order and widths (np.int32 / np.float32; CuPy would pass Python ints and floats
as 64-bit). The argument lists mirror the extern "C" signatures in roi_align.cu.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from kernels.source import MAX_LEVELS, kernel_name

THREADS_PER_BLOCK = 256
# Grid-stride loops cover larger problems; this many blocks already fill any current GPU several times over.
MAX_BLOCKS = 65_535


@dataclass(frozen=True)
class DevicePointer:
    """A tensor's data pointer as a kernel argument; None is a null pointer (an unused level)."""

    tensor: torch.Tensor | None


KernelArg = DevicePointer | np.int32 | np.float32


@dataclass(frozen=True)
class LaunchPlan:
    kernel: str
    grid: tuple[int, int, int]
    block: tuple[int, int, int]
    args: tuple[KernelArg, ...]


@dataclass(frozen=True)
class PoolGeometry:
    """What every RoIAlign launch needs besides tensors."""

    pooled_height: int
    pooled_width: int
    sampling_ratio: int
    aligned: bool


@dataclass(frozen=True)
class LevelMapping:
    """torchvision's LevelMapper parameters for the fused multi-level kernels."""

    scales: tuple[float, ...]
    k_min: int
    k_max: int
    canonical_scale: float
    canonical_level: int


def _grid_for(total: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    blocks = min(-(-total // THREADS_PER_BLOCK), MAX_BLOCKS)
    return (blocks, 1, 1), (THREADS_PER_BLOCK, 1, 1)


def _geometry_args(geometry: PoolGeometry) -> tuple[np.int32, np.int32]:
    return np.int32(geometry.pooled_height), np.int32(geometry.pooled_width)


def _single_level_args(
    source: torch.Tensor,
    rois: torch.Tensor,
    destination: torch.Tensor,
    features_shape: torch.Size,
    spatial_scale: float,
    geometry: PoolGeometry,
) -> tuple[KernelArg, ...]:
    """The argument list forward and backward share: (in, rois, out, sizes..., geometry)."""
    batch, channels, height, width = features_shape
    return (
        DevicePointer(source),
        DevicePointer(rois),
        DevicePointer(destination),
        np.int32(rois.shape[0]),
        np.int32(channels),
        np.int32(height),
        np.int32(width),
        np.int32(batch),
        *_geometry_args(geometry),
        np.float32(spatial_scale),
        np.int32(geometry.sampling_ratio),
        np.int32(geometry.aligned),
    )


def plan_forward(
    features: torch.Tensor, rois: torch.Tensor, output: torch.Tensor, spatial_scale: float, geometry: PoolGeometry
) -> LaunchPlan | None:
    """Single-level forward; None when there is nothing to compute (no RoIs)."""
    if output.numel() == 0:
        return None
    grid, block = _grid_for(output.numel())
    args = _single_level_args(features, rois, output, features.shape, spatial_scale, geometry)
    return LaunchPlan(kernel_name("forward", features.dtype), grid, block, args)


def plan_backward(
    grad_output: torch.Tensor,
    rois: torch.Tensor,
    grad_features: torch.Tensor,
    spatial_scale: float,
    geometry: PoolGeometry,
) -> LaunchPlan | None:
    """Single-level backward into an fp32, zero-initialised `grad_features` of the features' shape."""
    if grad_output.numel() == 0:
        return None
    grid, block = _grid_for(grad_output.numel())
    args = _single_level_args(grad_output, rois, grad_features, grad_features.shape, spatial_scale, geometry)
    return LaunchPlan(kernel_name("backward", grad_output.dtype), grid, block, args)


def _level_args(tensors: Sequence[torch.Tensor], scales: Sequence[float]) -> list[KernelArg]:
    if len(tensors) > MAX_LEVELS:
        raise ValueError(f"RoIAlign kernel: at most {MAX_LEVELS} feature levels per launch, got {len(tensors)}")
    args: list[KernelArg] = []
    for level in range(MAX_LEVELS):
        if level < len(tensors):
            height, width = tensors[level].shape[-2:]
            args += [DevicePointer(tensors[level]), np.int32(height), np.int32(width), np.float32(scales[level])]
        else:
            args += [DevicePointer(None), np.int32(0), np.int32(0), np.float32(0.0)]
    return args


def _mapping_args(num_levels: int, mapping: LevelMapping) -> tuple[KernelArg, ...]:
    return (
        np.int32(num_levels),
        np.int32(mapping.k_min),
        np.int32(mapping.k_max),
        np.float32(mapping.canonical_scale),
        np.int32(mapping.canonical_level),
    )


def plan_multilevel_forward(
    features: Sequence[torch.Tensor],
    rois: torch.Tensor,
    output: torch.Tensor,
    mapping: LevelMapping,
    geometry: PoolGeometry,
) -> LaunchPlan | None:
    """Fused forward over every level: one launch writes each output element once."""
    if output.numel() == 0:
        return None
    batch, channels = features[0].shape[:2]
    grid, block = _grid_for(output.numel())
    args = (
        DevicePointer(rois),
        DevicePointer(output),
        np.int32(rois.shape[0]),
        np.int32(channels),
        np.int32(batch),
        *_geometry_args(geometry),
        np.int32(geometry.sampling_ratio),
        np.int32(geometry.aligned),
        *_mapping_args(len(features), mapping),
        *_level_args(features, mapping.scales),
    )
    return LaunchPlan(kernel_name("multilevel_forward", features[0].dtype), grid, block, args)


def plan_multilevel_backward(
    grad_output: torch.Tensor,
    rois: torch.Tensor,
    grad_features: Sequence[torch.Tensor],
    mapping: LevelMapping,
    geometry: PoolGeometry,
) -> LaunchPlan | None:
    """Fused backward into fp32, zero-initialised gradient buffers, one per level."""
    if grad_output.numel() == 0:
        return None
    batch, channels = grad_features[0].shape[:2]
    grid, block = _grid_for(grad_output.numel())
    args = (
        DevicePointer(grad_output),
        DevicePointer(rois),
        np.int32(rois.shape[0]),
        np.int32(channels),
        np.int32(batch),
        *_geometry_args(geometry),
        np.int32(geometry.sampling_ratio),
        np.int32(geometry.aligned),
        *_mapping_args(len(grad_features), mapping),
        *_level_args(grad_features, mapping.scales),
    )
    return LaunchPlan(kernel_name("multilevel_backward", grad_output.dtype), grid, block, args)
