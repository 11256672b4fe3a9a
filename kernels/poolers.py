"""Multi-scale (FPN) RoIAlign: a drop-in for torchvision.ops.MultiScaleRoIAlign over one fused kernel launch,
and `swap_poolers`, which puts it into a torchvision Mask R-CNN in place of both poolers."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import torch
import torchvision
from torch import nn
from torch.autograd.function import once_differentiable

from kernels.cupy_backend import cupy_available, cupy_launcher
from kernels.launch import LevelMapping, PoolGeometry, plan_multilevel_backward, plan_multilevel_forward
from kernels.ops import (
    BACKENDS,
    Backend,
    RoIAlignFunction,
    check_features,
    check_int32,
    check_output_size,
    launcher_for,
    resolve_backend,
    rois_from_boxes,
)
from kernels.source import MAX_LEVELS


@lru_cache(maxsize=256)
def _power_of_two_scale(feature_size: int, image_size: int) -> float:
    # Cached: shapes repeat call after call, and these small CPU tensor ops cost tens of microseconds.
    approx_scale = float(feature_size) / float(image_size)
    return 2 ** float(torch.tensor(approx_scale).log2().round())


def infer_scale(feature: torch.Tensor, original_size: tuple[int, int]) -> float:
    """A level's scale, the power of two nearest to feature height / image height (torchvision's rule,
    including its fp32 rounding)."""
    return _power_of_two_scale(int(feature.shape[-2]), int(original_size[0]))


def level_mapping(
    features: Sequence[torch.Tensor],
    image_shapes: Sequence[tuple[int, int]],
    canonical_scale: float,
    canonical_level: int,
) -> LevelMapping:
    """Scales and level range inferred from shapes only (no device work), as torchvision's _setup_scales."""
    if not image_shapes:
        raise ValueError("MultiScaleRoIAlign: image_shapes is empty")
    original_size = (max(s[0] for s in image_shapes), max(s[1] for s in image_shapes))
    scales = tuple(infer_scale(f, original_size) for f in features)
    k_min = int(-math.log2(scales[0]))
    k_max = int(-math.log2(scales[-1]))
    return LevelMapping(scales, k_min, k_max, float(canonical_scale), int(canonical_level))


def map_levels(rois: torch.Tensor, mapping: LevelMapping) -> torch.Tensor:
    """Level index (0 = k_min) of each RoI, torchvision's LevelMapper on the fp32 RoI rows."""
    boxes = rois[:, 1:]
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    level = torch.floor(
        mapping.canonical_level
        + torch.log2(torch.sqrt(area) / mapping.canonical_scale)
        + torch.tensor(1e-6, dtype=area.dtype)
    )
    level = torch.clamp(level, min=mapping.k_min, max=mapping.k_max)
    return level.to(torch.int64) - mapping.k_min


def torchvision_multiscale(
    features: Sequence[torch.Tensor], rois: torch.Tensor, mapping: LevelMapping, geometry: PoolGeometry
) -> torch.Tensor:
    """torchvision's algorithm (zero fill, per-level where/gather/roi_align/index_put) with `aligned` support;
    the reference and the CPU path."""
    output_size = (geometry.pooled_height, geometry.pooled_width)
    common = {"output_size": output_size, "sampling_ratio": geometry.sampling_ratio, "aligned": geometry.aligned}
    if len(features) == 1:
        return torchvision.ops.roi_align(features[0], rois, spatial_scale=mapping.scales[0], **common)
    levels = map_levels(rois, mapping)
    first = features[0]
    result = first.new_zeros((rois.shape[0], first.shape[1], *output_size))
    for level, (feature, scale) in enumerate(zip(features, mapping.scales, strict=True)):
        index = torch.where(levels == level)[0]
        pooled = torchvision.ops.roi_align(feature, rois[index], spatial_scale=scale, **common)
        result[index] = pooled.to(result.dtype)
    return result


class MultiLevelRoIAlignFunction(torch.autograd.Function):
    """Fused multi-level RoIAlign through one of our kernel backends; gradients flow to the features."""

    @staticmethod
    def forward(ctx, rois, mapping: LevelMapping, geometry: PoolGeometry, backend: str, *features):
        first = features[0]
        shape = (rois.shape[0], first.shape[1], geometry.pooled_height, geometry.pooled_width)
        check_int32("the output", math.prod(shape))  # before allocating it
        output = first.new_empty(shape)
        launcher_for(backend, first.device)(plan_multilevel_forward(features, rois, output, mapping, geometry))
        ctx.save_for_backward(rois)
        ctx.meta = ([f.shape for f in features], first.dtype, mapping, geometry, backend)
        return output

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        (rois,) = ctx.saved_tensors
        shapes, dtype, mapping, geometry, backend = ctx.meta
        grads = [torch.zeros(s, dtype=torch.float32, device=grad_output.device) for s in shapes]
        grad_output = grad_output.to(dtype).contiguous()
        plan = plan_multilevel_backward(grad_output, rois, grads, mapping, geometry)
        launcher_for(backend, grad_output.device)(plan)
        return (None, None, None, None, *(g.to(dtype) for g in grads))


class MultiScaleRoIAlign(nn.Module):
    """Drop-in for torchvision.ops.MultiScaleRoIAlign (same arguments, same forward), plus `aligned` and a
    `backend` ("auto", "cupy", "host", "torchvision"; see kernels.ops).

    Differences from torchvision's module, all deliberate: scales are inferred on every call (torchvision caches
    the first call's), RoI coordinates are fp32 (boxes of another floating dtype are converted), levels of another dtype
    are converted to the first level's (the result dtype, as in torchvision), at most MAX_LEVELS (5) feature maps,
    and features must share N, C and device.
    """

    def __init__(
        self,
        featmap_names: list[str],
        output_size: int | Sequence[int],
        sampling_ratio: int,
        *,
        canonical_scale: int = 224,
        canonical_level: int = 4,
        aligned: bool = False,
        backend: Backend = "auto",
    ) -> None:
        super().__init__()
        if backend not in BACKENDS:
            raise ValueError(f"MultiScaleRoIAlign: unknown backend {backend!r} (choose from {', '.join(BACKENDS)})")
        self.featmap_names = list(featmap_names)
        self.output_size = check_output_size(output_size)
        self.sampling_ratio = sampling_ratio
        self.canonical_scale = canonical_scale
        self.canonical_level = canonical_level
        self.aligned = aligned
        self.backend = backend

    def _features(self, x: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        features = [v for k, v in x.items() if k in self.featmap_names]  # dict order, as torchvision filters
        if not features:
            raise ValueError(f"MultiScaleRoIAlign: none of the feature maps {self.featmap_names} is in {list(x)}")
        first = features[0]
        for name, f in zip([k for k in x if k in self.featmap_names], features, strict=True):
            if not isinstance(f, torch.Tensor) or f.dim() != 4:
                raise ValueError(f"MultiScaleRoIAlign: feature map {name!r} must be a (N, C, H, W) tensor")
            if f.shape[:2] != first.shape[:2] or f.device != first.device:
                raise ValueError(
                    f"MultiScaleRoIAlign: feature map {name!r} is {tuple(f.shape)} on {f.device}, but the first is "
                    f"{tuple(first.shape)} on {first.device}; N, C and device must match"
                )
        return features

    def forward(
        self, x: dict[str, torch.Tensor], boxes: list[torch.Tensor], image_shapes: list[tuple[int, int]]
    ) -> torch.Tensor:
        features = self._features(x)
        device = features[0].device
        mapping = level_mapping(features, image_shapes, self.canonical_scale, self.canonical_level)
        geometry = PoolGeometry(*self.output_size, int(self.sampling_ratio), bool(self.aligned))
        backend = resolve_backend(self.backend, device)
        if backend == "torchvision":
            rois = torchvision.ops._utils.convert_boxes_to_roi_format(list(boxes))
            return torchvision_multiscale(features, rois, mapping, geometry)
        if len(boxes) > features[0].shape[0]:
            raise ValueError(f"MultiScaleRoIAlign: {len(boxes)} box lists for a batch of {features[0].shape[0]}")
        if len(features) > MAX_LEVELS:
            raise ValueError(f"MultiScaleRoIAlign: at most {MAX_LEVELS} feature maps, got {len(features)}")
        # One launch reads every level with one dtype: the first level's, which is also torchvision's result dtype.
        dtype = features[0].dtype
        features = [check_features(f"feature map {i}", f.to(dtype)) for i, f in enumerate(features)]
        rois = rois_from_boxes(list(boxes), device)
        if len(features) == 1:
            return RoIAlignFunction.apply(features[0], rois, mapping.scales[0], geometry, backend)
        return MultiLevelRoIAlignFunction.apply(rois, mapping, geometry, backend, *features)

    def extra_repr(self) -> str:
        return (
            f"featmap_names={self.featmap_names}, output_size={self.output_size}, "
            f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned}, backend={self.backend!r}"
        )


POOLER_ATTRIBUTES = ("box_roi_pool", "mask_roi_pool", "keypoint_roi_pool")


def _model_device(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def swap_poolers(model: nn.Module, backend: Backend = "cupy") -> None:
    """Set the RoI poolers of a torchvision R-CNN (box, mask, keypoint when present) in place.

    "cupy"/"host": our MultiScaleRoIAlign on that backend, keeping each pooler's feature names, output size,
    sampling ratio and canonical scale/level. "torchvision": torchvision's own modules (ours are swapped back).
    "auto": "cupy" when the model is on CUDA and CuPy works, else "torchvision". Idempotent.
    """
    if backend not in BACKENDS:
        raise ValueError(f"swap_poolers: unknown backend {backend!r} (choose from {', '.join(BACKENDS)})")
    if backend == "auto":
        backend = "cupy" if _model_device(model).type == "cuda" and cupy_available() else "torchvision"
    if backend == "cupy" and not cupy_available():  # fail now, not on the first frame
        cupy_launcher()  # raises the "not installed" error when that is the reason
        raise RuntimeError("swap_poolers: backend 'cupy' needs a CUDA device visible to CuPy; none found")
    roi_heads = getattr(model, "roi_heads", None)
    if roi_heads is None:
        raise TypeError(f"swap_poolers: {type(model).__name__} has no roi_heads (expected a torchvision R-CNN)")
    for attribute in POOLER_ATTRIBUTES:
        pooler = getattr(roi_heads, attribute, None)
        if pooler is None:
            continue
        if not isinstance(pooler, (MultiScaleRoIAlign, torchvision.ops.MultiScaleRoIAlign)):
            raise TypeError(
                f"swap_poolers: roi_heads.{attribute} is a {type(pooler).__name__}, not a MultiScaleRoIAlign"
            )
        settings = {
            "featmap_names": list(pooler.featmap_names),
            "output_size": pooler.output_size,
            "sampling_ratio": pooler.sampling_ratio,
            "canonical_scale": pooler.canonical_scale,
            "canonical_level": pooler.canonical_level,
        }
        aligned = getattr(pooler, "aligned", False)
        if backend == "torchvision" and not aligned:  # torchvision's module has no `aligned`
            if not isinstance(pooler, torchvision.ops.MultiScaleRoIAlign):
                setattr(roi_heads, attribute, torchvision.ops.MultiScaleRoIAlign(**settings))
        elif isinstance(pooler, MultiScaleRoIAlign):
            pooler.backend = backend
        else:
            setattr(roi_heads, attribute, MultiScaleRoIAlign(**settings, aligned=aligned, backend=backend))
