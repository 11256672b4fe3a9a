"""Mask post-processing: the model's small per-box mask probabilities → full-frame masks → COCO RLE.

torchvision pastes masks one detection at a time in a Python loop (`paste_masks_in_image`). Here all N masks of a
frame are pasted at once. Bilinear resampling is separable, so pasting mask n into the frame is
`Wy[n] @ P[n] @ Wx[n]^T`, with `Wy` (H x M) and `Wx` (W x M) the interpolation weights of its box: two batched
matrix products, on whatever device the model ran on. The weights reproduce torchvision's geometry exactly (box
expanded by one mask cell of padding, integer box corners, `align_corners=False` bilinear with edge clamping), so
the masks match torchvision's to within float rounding.

The product is computed transposed, as N x W x H, so the thresholded masks are already the Fortran-ordered
H x W x N array pycocotools encodes in one call — no copy.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from pycocotools import mask as mask_utils

from pipeline.items import Detections, Frame, FrameResult, InferenceBatch, RawDetections
from pipeline.metrics import FRAMES_PROCESSED
from pipeline.stage import Stage

# Pasting works in chunks of detections so the float intermediate (N x W x H) stays below this many elements.
_MAX_CHUNK_ELEMENTS = 24_000_000


def _interpolation_weights(
    origin: torch.Tensor,
    span: int,
    start: torch.Tensor,
    length: torch.Tensor,
    frame_size: int,
    mask_size: int,
    clip_lo: torch.Tensor,
    clip_hi: torch.Tensor,
) -> torch.Tensor:
    """(N, span, mask_size) weights that resample each mask onto frame pixels origin .. origin+span-1.

    The mask covers pixels [start, start+length) of the frame. Matches `F.interpolate(mode="bilinear",
    align_corners=False)`: source = (j + 0.5) * M / length - 0.5 for pixel j of the box, clamped at 0; the two
    neighbouring cells share the weight. Pixels outside the box, the frame or [clip_lo, clip_hi) get no weight.
    """
    n = start.shape[0]
    device = start.device
    pixels = origin[:, None].float() + torch.arange(span, device=device, dtype=torch.float32)[None, :]  # (N, span)
    j = pixels - start[:, None].float()  # position inside the pasted box
    valid = (j >= 0) & (j < length[:, None]) & (pixels < frame_size)
    valid &= (pixels >= clip_lo[:, None]) & (pixels < clip_hi[:, None])
    scale = mask_size / length[:, None].float()
    src = ((j + 0.5) * scale - 0.5).clamp(min=0.0)
    i0 = src.floor().clamp(max=mask_size - 1)
    lam1 = src - i0
    i0 = i0.long().clamp(min=0)
    i1 = (i0 + 1).clamp(max=mask_size - 1)
    weights = torch.zeros(n, span, mask_size, device=device, dtype=torch.float32)
    zero = torch.zeros_like(lam1)
    weights.scatter_add_(2, i0[..., None], torch.where(valid, 1.0 - lam1, zero)[..., None])
    weights.scatter_add_(2, i1[..., None], torch.where(valid, lam1, zero)[..., None])
    return weights


def paste_masks(
    mask_probs: torch.Tensor,
    boxes: torch.Tensor,
    height: int,
    width: int,
    threshold: float = 0.5,
    clip_to_box: bool = True,
) -> torch.Tensor:
    """Paste N mask probability maps (N x M x M, or N x 1 x M x M) into an H x W frame; returns bool (N, W, H).

    The result is transposed (N, W, H) so `.numpy().transpose(2, 1, 0)` is a Fortran-ordered (H, W, N) array.
    `clip_to_box=True` keeps every mask inside its detection box (rounded outwards), as consumers expect;
    torchvision lets the one-cell padding spill up to 1/M of the box size outside.

    The products are computed in a window the size of the largest box (not the whole frame), each mask at its own
    box's position, and the set pixels are then scattered into the frame in one indexed write.
    """
    if mask_probs.dim() == 4:
        mask_probs = mask_probs[:, 0]
    n = mask_probs.shape[0]
    device = mask_probs.device
    out = torch.zeros((n, width, height), dtype=torch.bool, device=device)
    if n == 0:
        return out
    m = mask_probs.shape[-1]
    # torchvision's expand_masks: pad one empty cell on each side and grow the box by the same ratio
    padded = torch.nn.functional.pad(mask_probs.float(), (1, 1, 1, 1))
    mp = m + 2
    boxes = boxes.float()
    scale = mp / m
    half_w = (boxes[:, 2] - boxes[:, 0]) * 0.5 * scale
    half_h = (boxes[:, 3] - boxes[:, 1]) * 0.5 * scale
    cx = (boxes[:, 2] + boxes[:, 0]) * 0.5
    cy = (boxes[:, 3] + boxes[:, 1]) * 0.5
    x0 = (cx - half_w).to(torch.int64)  # truncation, as torchvision's .to(int64)
    y0 = (cy - half_h).to(torch.int64)
    w = ((cx + half_w).to(torch.int64) - x0 + 1).clamp(min=1)
    h = ((cy + half_h).to(torch.int64) - y0 + 1).clamp(min=1)
    if clip_to_box:
        clip_x = (boxes[:, 0].floor(), boxes[:, 2].ceil())
        clip_y = (boxes[:, 1].floor(), boxes[:, 3].ceil())
    else:
        inf = torch.full((n,), float("inf"), device=device)
        clip_x = clip_y = (-inf, inf)
    # each mask's window starts at its box, inside the frame; the window is as large as the largest box
    ox, oy = x0.clamp(0, width - 1), y0.clamp(0, height - 1)
    spans = torch.stack([((x0 + w).clamp(max=width) - ox).max(), ((y0 + h).clamp(max=height) - oy).max()])
    span_w, span_h = (max(1, int(v)) for v in spans.tolist())

    chunk = max(1, _MAX_CHUNK_ELEMENTS // (span_w * span_h))
    for lo in range(0, n, chunk):
        sl = slice(lo, lo + chunk)
        wx = _interpolation_weights(ox[sl], span_w, x0[sl], w[sl], width, mp, clip_x[0][sl], clip_x[1][sl])
        wy = _interpolation_weights(oy[sl], span_h, y0[sl], h[sl], height, mp, clip_y[0][sl], clip_y[1][sl])
        # (W x M) @ (M x M)^T @ (M x H) = the pasted mask, transposed
        window = torch.bmm(wx, torch.bmm(padded[sl].transpose(1, 2), wy.transpose(1, 2))) > threshold
        index, col, row = window.nonzero(as_tuple=True)
        index = index + lo
        out[index, ox[index] + col, oy[index] + row] = True
    return out


def encode_rles(masks_nwh: np.ndarray) -> list[dict[str, Any]]:
    """COCO RLEs of bool masks laid out (N, W, H) C-contiguous, in ONE pycocotools call; counts as str (JSON-safe)."""
    if masks_nwh.shape[0] == 0:
        return []
    fortran_hwn = masks_nwh.view(np.uint8).transpose(2, 1, 0)  # a view, already Fortran-ordered
    rles = mask_utils.encode(fortran_hwn)
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
        rle["size"] = [int(s) for s in rle["size"]]
    return rles


def frame_detections(frame: Frame, raw: RawDetections, mask_threshold: float, clip_to_box: bool = True) -> Detections:
    """Raw model output of one frame → `Detections` (full-frame bool masks + RLEs, numpy on the CPU)."""
    height, width = frame.size
    masks_nwh = paste_masks(raw.mask_probs, raw.boxes, height, width, mask_threshold, clip_to_box).cpu().numpy()
    return Detections(
        boxes=raw.boxes.float().cpu().numpy().astype(np.float32, copy=False),
        scores=raw.scores.float().cpu().numpy().astype(np.float32, copy=False),
        labels=raw.labels.cpu().numpy().astype(np.int64, copy=False),
        masks=masks_nwh.transpose(0, 2, 1),  # (N, H, W) view of the same memory
        rles=encode_rles(masks_nwh),
    )


class MasksStage(Stage):
    """`InferenceBatch` → one `FrameResult` per frame, in order."""

    name = "masks"

    def __init__(self, mask_threshold: float = 0.5, clip_to_box: bool = True) -> None:
        self.mask_threshold = mask_threshold
        self.clip_to_box = clip_to_box

    def process(self, item: InferenceBatch) -> Iterable[FrameResult]:
        results = []
        for frame, raw in zip(item.frames, item.detections, strict=True):
            results.append(FrameResult(frame, frame_detections(frame, raw, self.mask_threshold, self.clip_to_box)))
            FRAMES_PROCESSED.labels(source=frame.source_id).inc()
        return results
