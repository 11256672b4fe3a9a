"""`roi_align` with torchvision's signature, and the autograd Functions over both kernel backends.

Backends: "cupy" (CUDA tensors, NVRTC-compiled kernel), "host" (CPU tensors, the same source built with g++;
for verification), "torchvision" (torchvision's own op), "auto" (cupy for CUDA tensors when CuPy works,
torchvision otherwise).

Documented conversions on the kernel backends: non-contiguous inputs are made contiguous (a copy, as
torchvision's op does internally); boxes of any floating dtype are converted to fp32 (RoI coordinates are always
fp32 in the kernel, as under torchvision's autocast). Everything else that the kernel cannot take safely raises.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, Protocol

import torch
import torchvision
from torch.autograd.function import once_differentiable

from kernels.cupy_backend import cupy_available, cupy_launcher
from kernels.host import HostLauncher
from kernels.launch import LaunchPlan, PoolGeometry, plan_backward, plan_forward
from kernels.source import SUPPORTED_DTYPES

Backend = Literal["auto", "torchvision", "cupy", "host"]
BACKENDS: tuple[str, ...] = ("auto", "torchvision", "cupy", "host")
INT32_LIMIT = 2**31 - 1


class Launcher(Protocol):
    def __call__(self, plan: LaunchPlan | None) -> None: ...


def resolve_backend(requested: str, device: torch.device) -> str:
    """The backend that will run for tensors on `device`; raises when the request cannot be honoured."""
    if requested not in BACKENDS:
        raise ValueError(f"RoIAlign: unknown backend {requested!r} (choose from {', '.join(BACKENDS)})")
    if requested == "auto":
        return "cupy" if device.type == "cuda" and cupy_available() else "torchvision"
    if requested == "cupy":
        if device.type != "cuda":
            raise ValueError(f"RoIAlign: backend 'cupy' needs CUDA tensors, got tensors on {device}")
        cupy_launcher()  # raises a clear error when CuPy is missing
    if requested == "host" and device.type != "cpu":
        raise ValueError(f"RoIAlign: backend 'host' runs on the CPU, got tensors on {device}")
    return requested


def launcher_for(backend: str, device: torch.device) -> Launcher:
    if backend == "cupy":
        cupy = cupy_launcher()

        def launch_cupy(plan: LaunchPlan | None) -> None:
            if plan is not None:
                cupy.launch(plan, device)

        return launch_cupy
    if backend == "host":
        host = HostLauncher()

        def launch_host(plan: LaunchPlan | None) -> None:
            if plan is not None:
                host.launch(plan)

        return launch_host
    raise ValueError(f"RoIAlign: backend {backend!r} does not launch our kernel")


def check_features(name: str, tensor: object) -> torch.Tensor:
    """A 4-D (N, C, H, W) floating tensor the kernel supports, made contiguous; raises otherwise."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"RoIAlign: {name} must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.dim() != 4:
        raise ValueError(f"RoIAlign: {name} must have shape (N, C, H, W), got {tuple(tensor.shape)}")
    if tensor.dtype not in SUPPORTED_DTYPES:
        supported = ", ".join(str(d).removeprefix("torch.") for d in SUPPORTED_DTYPES)
        raise TypeError(f"RoIAlign: {name} has dtype {tensor.dtype}; the kernel supports {supported}")
    if min(tensor.shape) == 0:
        raise ValueError(f"RoIAlign: {name} is empty, shape {tuple(tensor.shape)}")
    check_int32(name, tensor.numel())
    return tensor.contiguous()


def check_int32(name: str, numel: int) -> None:
    if numel > INT32_LIMIT:
        raise ValueError(
            f"RoIAlign: {name} has {numel} elements; the kernel indexes with 32-bit ints (at most {INT32_LIMIT}). "
            "Split the batch or the RoIs."
        )


def check_output_size(output_size: int | Sequence[int]) -> tuple[int, int]:
    size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
        raise ValueError(f"RoIAlign: output_size must be a positive int or (height, width), got {output_size!r}")
    return size  # type: ignore[return-value]


def rois_from_boxes(boxes: torch.Tensor | Sequence[torch.Tensor], device: torch.device) -> torch.Tensor:
    """(K, 5) fp32 contiguous RoIs [batch_index, x1, y1, x2, y2] on `device`, from either torchvision form:
    a (K, 5) tensor, or a list of per-image (Ki, 4) boxes."""
    if isinstance(boxes, torch.Tensor):
        if boxes.dim() != 2 or boxes.shape[1] != 5:
            raise ValueError(
                "RoIAlign: a boxes tensor must have shape (K, 5) [batch_index, x1, y1, x2, y2], "
                f"got {tuple(boxes.shape)}; pass per-image (Ki, 4) boxes as a list"
            )
        rois = boxes
    elif isinstance(boxes, (list, tuple)):
        for i, b in enumerate(boxes):
            if not isinstance(b, torch.Tensor) or b.dim() != 2 or b.shape[1] != 4:
                shape = tuple(b.shape) if isinstance(b, torch.Tensor) else type(b).__name__
                raise ValueError(f"RoIAlign: boxes[{i}] must be a (Ki, 4) tensor [x1, y1, x2, y2], got {shape}")
        if not boxes:
            return torch.zeros((0, 5), dtype=torch.float32, device=device)
        rois = torchvision.ops._utils.convert_boxes_to_roi_format(list(boxes))
    else:
        raise TypeError(f"RoIAlign: boxes must be a (K, 5) tensor or a list of (Ki, 4) tensors, got {type(boxes)}")
    if not rois.is_floating_point():
        raise TypeError(f"RoIAlign: boxes must be floating point, got {rois.dtype}")
    if rois.device != device:
        raise ValueError(f"RoIAlign: boxes are on {rois.device} but the features are on {device}")
    return rois.to(torch.float32).contiguous()


class RoIAlignFunction(torch.autograd.Function):
    """Single-level RoIAlign through one of our kernel backends; gradients flow to `features` only."""

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        features: torch.Tensor,
        rois: torch.Tensor,
        spatial_scale: float,
        geometry: PoolGeometry,
        backend: str,
    ) -> torch.Tensor:
        shape = (rois.shape[0], features.shape[1], geometry.pooled_height, geometry.pooled_width)
        check_int32("the output", math.prod(shape))  # before allocating it
        output = features.new_empty(shape)
        launcher_for(backend, features.device)(plan_forward(features, rois, output, spatial_scale, geometry))
        ctx.save_for_backward(rois)
        ctx.meta = (features.shape, features.dtype, spatial_scale, geometry, backend)
        return output

    @staticmethod
    @once_differentiable
    def backward(ctx: torch.autograd.function.FunctionCtx, grad_output: torch.Tensor):
        (rois,) = ctx.saved_tensors
        shape, dtype, spatial_scale, geometry, backend = ctx.meta
        grad_features = torch.zeros(shape, dtype=torch.float32, device=grad_output.device)
        grad_output = grad_output.to(dtype).contiguous()
        plan = plan_backward(grad_output, rois, grad_features, spatial_scale, geometry)
        launcher_for(backend, grad_output.device)(plan)
        return grad_features.to(dtype), None, None, None, None


def roi_align(
    input: torch.Tensor,
    boxes: torch.Tensor | Sequence[torch.Tensor],
    output_size: int | Sequence[int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
    *,
    backend: Backend = "auto",
) -> torch.Tensor:
    """torchvision.ops.roi_align, run by our kernel on CUDA (CuPy) or on the host build when asked for.

    `boxes`: a (K, 5) tensor [batch_index, x1, y1, x2, y2] or a list of per-image (Ki, 4) tensors.
    CPU tensors use torchvision's op unless backend="host". A RoI whose batch index is outside [0, N) pools NaN
    on our backends (checking on the host would cost a device sync); torchvision's op would read out of bounds.
    """
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"RoIAlign: input must be a torch.Tensor, got {type(input).__name__}")
    chosen = resolve_backend(backend, input.device)
    if chosen == "torchvision":
        return torchvision.ops.roi_align(input, boxes, output_size, spatial_scale, sampling_ratio, aligned)
    features = check_features("input", input)
    rois = rois_from_boxes(boxes, features.device)
    height, width = check_output_size(output_size)
    geometry = PoolGeometry(height, width, int(sampling_ratio), bool(aligned))
    return RoIAlignFunction.apply(features, rois, float(spatial_scale), geometry, chosen)
