"""Mask paste: the model's small per-box mask probabilities → thresholded masks in frame pixels.

Bilinear resampling is separable, so pasting mask n is `Wy[n] @ P[n] @ Wx[n]^T` with `Wy` / `Wx` the
interpolation weights of its box: two batched matrix products on whatever device the model ran on. The weights
reproduce torchvision's geometry exactly (box expanded by one mask cell of padding, integer box corners,
`align_corners=False` bilinear with edge clamping), so the masks match torchvision's to within float rounding.

`paste_crops` (the pipeline's path) computes each mask only inside its crop window — the integer box clipped to
the frame — for all detections of a whole batch, and brings every crop to the host in ONE copy of one flat
buffer (plus one small copy of the metadata before it, which sizes that buffer). `paste_masks` is the full-frame version (one W x H mask per detection), kept as the reference the crop
path is tested against: both compute every pixel with the same weights and products, so their bits agree.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

# Pasting works in chunks of detections so the float intermediate (N x W x H) stays below this many elements.
_MAX_CHUNK_ELEMENTS = 24_000_000
# A chunk of crops is computed in one window as large as its largest crop: a crop joins a chunk only while the
# window wastes at most this factor of the chunk's real pixels (crops are taken largest first).
_MAX_CHUNK_WASTE = 1.6
# Box coordinates are clamped to this magnitude before integer conversion (absurd boxes must not overflow).
_MAX_COORDINATE = 1e6


def _interpolation_weights(
    origin: torch.Tensor,
    span: int,
    start: torch.Tensor,
    length: torch.Tensor,
    frame_size: int | torch.Tensor,
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
    if isinstance(frame_size, torch.Tensor):
        frame_size = frame_size[:, None]
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


@dataclass(slots=True)
class _Geometry:
    """Where each mask lands: the padded paste box (x0, y0, w, h) and the pixels it may set [lo, hi)."""

    padded: torch.Tensor  # (N, mp, mp) float mask probabilities with one empty cell around
    x0: torch.Tensor
    y0: torch.Tensor
    w: torch.Tensor
    h: torch.Tensor
    clip_x: tuple[torch.Tensor, torch.Tensor]
    clip_y: tuple[torch.Tensor, torch.Tensor]


def _geometry(mask_probs: torch.Tensor, boxes: torch.Tensor, clip_to_box: bool) -> _Geometry:
    """torchvision's `expand_masks` + `expand_boxes` + integer corners, for N masks (N x M x M) at once."""
    n, m = mask_probs.shape[0], mask_probs.shape[-1]
    padded = torch.nn.functional.pad(mask_probs.float(), (1, 1, 1, 1))
    scale = (m + 2) / m
    boxes = boxes.float()
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
        inf = torch.full((n,), float("inf"), device=boxes.device)
        clip_x = clip_y = (-inf, inf)
    return _Geometry(padded, x0, y0, w, h, clip_x, clip_y)


def paste_masks(
    mask_probs: torch.Tensor,
    boxes: torch.Tensor,
    height: int,
    width: int,
    threshold: float = 0.5,
    clip_to_box: bool = True,
) -> torch.Tensor:
    """Full-frame reference: N masks (N x M x M or N x 1 x M x M) pasted into H x W; returns bool (N, W, H).

    The result is transposed (N, W, H) so `.numpy().transpose(2, 1, 0)` is a Fortran-ordered (H, W, N) array.
    `clip_to_box=True` keeps every mask inside its detection box (rounded outwards), as consumers expect;
    torchvision lets the one-cell padding spill up to 1/M of the box size outside.
    """
    if mask_probs.dim() == 4:
        mask_probs = mask_probs[:, 0]
    n = mask_probs.shape[0]
    device = mask_probs.device
    out = torch.zeros((n, width, height), dtype=torch.bool, device=device)
    if n == 0:
        return out
    g = _geometry(mask_probs, boxes, clip_to_box)
    mp = g.padded.shape[-1]
    # each mask's window starts at its box, inside the frame; the window is as large as the largest box
    ox, oy = g.x0.clamp(0, width - 1), g.y0.clamp(0, height - 1)
    spans = torch.stack([((g.x0 + g.w).clamp(max=width) - ox).max(), ((g.y0 + g.h).clamp(max=height) - oy).max()])
    span_w, span_h = (max(1, int(v)) for v in spans.tolist())
    chunk = max(1, _MAX_CHUNK_ELEMENTS // (span_w * span_h))
    for lo in range(0, n, chunk):
        sl = slice(lo, lo + chunk)
        wx = _interpolation_weights(ox[sl], span_w, g.x0[sl], g.w[sl], width, mp, g.clip_x[0][sl], g.clip_x[1][sl])
        wy = _interpolation_weights(oy[sl], span_h, g.y0[sl], g.h[sl], height, mp, g.clip_y[0][sl], g.clip_y[1][sl])
        # (W x M) @ (M x M)^T @ (M x H) = the pasted mask, transposed
        window = torch.bmm(wx, torch.bmm(g.padded[sl].transpose(1, 2), wy.transpose(1, 2))) > threshold
        index, col, row = window.nonzero(as_tuple=True)
        index = index + lo
        out[index, ox[index] + col, oy[index] + row] = True
    return out


@dataclass(slots=True)
class PastedCrops:
    """Every detection of a batch, on the host: metadata plus all mask crops in one flat buffer.

    Crop n covers frame pixels x0..x0+w-1, y0..y0+h-1 (`windows[n]`, inside the frame; w or h may be 0) and is
    `pixels[offsets[n]:offsets[n + 1]]`: its w columns of h pixels in turn (column-major, as COCO RLE walks).
    """

    boxes: np.ndarray  # (N, 4) float32
    scores: np.ndarray  # (N,) float32
    labels: np.ndarray  # (N,) int64
    finite: np.ndarray  # (N,) bool: False for a box with a NaN/inf coordinate (it gets no mask)
    windows: np.ndarray  # (N, 4) int64 x0, y0, w, h
    offsets: np.ndarray  # (N + 1,) int64
    pixels: np.ndarray  # flat bool


def paste_crops(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    labels: torch.Tensor,
    mask_probs: torch.Tensor,
    frame_sizes: np.ndarray,
    threshold: float = 0.5,
    clip_to_box: bool = True,
) -> PastedCrops:
    """Paste N detections (of any frames: `frame_sizes` (N, 2) H, W each) into their crop windows, on their device.

    On CUDA two device→host copies (and waits) in all, whatever N: the small metadata (boxes, scores, labels,
    windows, as one float64 tensor: exact for all of them), which tells the host every crop's size, then every
    crop at once, gathered on the device into one flat buffer (`to_host`: pinned, non-blocking, side stream). On
    the CPU the tensors are host memory already: each crop is copied once, straight into the flat buffer.
    Detections are grouped into chunks of similar crop size, each computed in one window as large as its largest
    crop, so the products cost about the crops' own pixels.
    """
    if mask_probs.dim() == 4:
        mask_probs = mask_probs[:, 0]
    device = mask_probs.device
    n = mask_probs.shape[0]
    sizes = to_device(np.asarray(frame_sizes, np.int64).reshape(n, 2), device)
    raw_boxes = boxes.float()
    finite = torch.isfinite(raw_boxes).all(dim=1)
    safe = torch.where(finite[:, None], raw_boxes, torch.zeros_like(raw_boxes))
    safe = safe.clamp(-_MAX_COORDINATE, _MAX_COORDINATE)
    g = _geometry(mask_probs, safe, clip_to_box)
    frame_h, frame_w = sizes[:, 0], sizes[:, 1]
    lo_x = torch.maximum(g.x0.clamp(min=0), g.clip_x[0].clamp(min=-1.0, max=_MAX_COORDINATE).to(torch.int64))
    lo_y = torch.maximum(g.y0.clamp(min=0), g.clip_y[0].clamp(min=-1.0, max=_MAX_COORDINATE).to(torch.int64))
    hi_x = torch.minimum(torch.minimum(g.x0 + g.w, frame_w), g.clip_x[1].clamp(max=_MAX_COORDINATE).to(torch.int64))
    hi_y = torch.minimum(torch.minimum(g.y0 + g.h, frame_h), g.clip_y[1].clamp(max=_MAX_COORDINATE).to(torch.int64))
    lo_x, lo_y = torch.minimum(lo_x, frame_w), torch.minimum(lo_y, frame_h)
    crop_w = torch.where(finite, (hi_x - lo_x).clamp(min=0), 0)
    crop_h = torch.where(finite, (hi_y - lo_y).clamp(min=0), 0)
    meta = torch.cat(
        [
            raw_boxes.double(),
            torch.stack([scores.double(), labels.double(), finite.double()], 1),
            torch.stack([lo_x, lo_y, crop_w, crop_h], 1).double(),
        ],
        1,
    )
    meta_host = to_host(meta)  # copy 1: small, tells the host every crop's size
    windows = meta_host[:, 7:11].astype(np.int64)
    areas = windows[:, 2] * windows[:, 3]
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(areas, out=offsets[1:])
    mp = g.padded.shape[-1]
    on_cpu = device.type == "cpu"
    crops: list[torch.Tensor | None] = [None] * n
    host_pixels = np.empty(int(offsets[-1]), bool) if on_cpu else None

    def paste_chunk(chunk: list[int]) -> None:
        idx = to_device(np.array(chunk, np.int64), device)  # pinned, non-blocking: no synchronisation
        span_w = max(1, int(windows[chunk, 2].max()))
        span_h = max(1, int(windows[chunk, 3].max()))
        cx, cy = lo_x[idx], lo_y[idx]
        wx = _interpolation_weights(
            cx, span_w, g.x0[idx], g.w[idx], frame_w[idx], mp, g.clip_x[0][idx], g.clip_x[1][idx]
        )
        wy = _interpolation_weights(
            cy, span_h, g.y0[idx], g.h[idx], frame_h[idx], mp, g.clip_y[0][idx], g.clip_y[1][idx]
        )
        # (w x M) @ (M x M)^T @ (M x h) = the crop, transposed: its columns one after the other
        window = torch.bmm(wx, torch.bmm(g.padded[idx].transpose(1, 2), wy.transpose(1, 2))) > threshold
        if host_pixels is not None:  # on the CPU the window is host memory already: copy each crop into place
            block = window.numpy()
            for k, det in enumerate(chunk):
                w, h = windows[det, 2], windows[det, 3]
                host_pixels[offsets[det] : offsets[det + 1]].reshape(w, h)[...] = block[k, :w, :h]
        else:
            for k, det in enumerate(chunk):
                crops[det] = window[k, : windows[det, 2], : windows[det, 3]].reshape(-1)

    chunks = _chunks(windows)
    if on_cpu and len(chunks) > 1 and _cpu_workers() > 1:
        # chunks are independent and their products release the GIL: spread them over the cores (each thread
        # writes its own crops' part of the buffer)
        list(_pool().map(paste_chunk, chunks))
    else:  # CUDA: the device runs the work; one Python thread queues it
        for chunk in chunks:
            paste_chunk(chunk)
    if host_pixels is not None:
        pixels = host_pixels
    else:  # copy 2: every crop of the batch, gathered on the device into one buffer
        parts = [c for c in crops if c is not None]
        pixels = to_host(torch.cat(parts) if parts else torch.zeros(0, dtype=torch.bool, device=device))
    return PastedCrops(
        boxes=meta_host[:, 0:4].astype(np.float32),
        scores=meta_host[:, 4].astype(np.float32),
        labels=meta_host[:, 5].astype(np.int64),
        finite=meta_host[:, 6] > 0,
        windows=windows,
        offsets=offsets,
        pixels=pixels,
    )


def _chunks(windows: np.ndarray) -> list[list[int]]:
    """Detections with a non-empty crop, grouped so each group's window (its largest w x largest h) wastes little."""
    areas = windows[:, 2] * windows[:, 3]
    order = [int(i) for i in np.argsort(-areas, kind="stable") if areas[i] > 0]
    chunks: list[list[int]] = []
    current: list[int] = []
    span_w = span_h = real = 0
    for det in order:
        w, h = int(windows[det, 2]), int(windows[det, 3])
        new_w, new_h = max(span_w, w), max(span_h, h)
        cost = (len(current) + 1) * new_w * new_h
        if current and (cost > _MAX_CHUNK_WASTE * (real + w * h) or cost > _MAX_CHUNK_ELEMENTS):
            chunks.append(current)
            current, span_w, span_h, real = [], w, h, 0
        else:
            span_w, span_h = new_w, new_h
        current.append(det)
        real += w * h
    if current:
        chunks.append(current)
    return chunks


_paste_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _cpu_workers() -> int:
    return min(4, os.cpu_count() or 1)


def _pool() -> ThreadPoolExecutor:
    """Threads for pasting on the CPU, shared by every masks stage of the process (created on first use)."""
    global _paste_pool
    with _pool_lock:
        if _paste_pool is None:
            _paste_pool = ThreadPoolExecutor(_cpu_workers(), thread_name_prefix="mask-paste")
        return _paste_pool


# --- host <-> device: one copy each way, pinned and on a side stream on CUDA -----------------------------------

_side_streams: dict[int, torch.cuda.Stream] = {}


def to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """A small host array on `device` (pinned, non-blocking on CUDA: no synchronisation)."""
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


def to_host(tensor: torch.Tensor) -> np.ndarray:
    """Device tensor → numpy. On CUDA: one non-blocking copy into pinned memory on a side stream, then one wait."""
    if tensor.device.type != "cuda":
        return tensor.detach().numpy()
    index = tensor.device.index if tensor.device.index is not None else torch.cuda.current_device()
    stream = _side_streams.get(index)
    if stream is None:
        stream = _side_streams[index] = torch.cuda.Stream(device=tensor.device)
    host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
    stream.wait_stream(torch.cuda.current_stream(tensor.device))  # the copy starts after the paste
    with torch.cuda.stream(stream):
        host.copy_(tensor, non_blocking=True)
        done = torch.cuda.Event()
        done.record(stream)
    tensor.record_stream(stream)  # the caching allocator must not reuse the memory before the copy ran
    done.synchronize()
    return host.numpy()
