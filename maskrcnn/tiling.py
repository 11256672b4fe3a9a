"""Sliced inference: cut a frame into overlapping tiles, merge the tiles' detections back into one frame.

Small objects are a few pixels at the model's input size; a tile run at that input size shows them larger (a
640x360 tile of a 1920x1080 frame at native scale instead of the whole frame shrunk 3x). The whole frame, shrunk
to the input size, still runs alongside for objects larger than a tile (`full_frame`).

Merging works on raw detections (boxes in frame pixels, per-box M x M mask probabilities) before any mask is
pasted into the frame: greedy non-maximum *merging* as SAHI's GREEDYNMM — detections sorted by score; each one
not yet taken absorbs the lower-scored detections of its class whose boxes overlap it by at least
`match_threshold` of the smaller box (intersection over smaller: an object cut by a tile border is a small box
inside the whole one). With `drop_cut` (and the full frame on), a tile's detections that touch one of its inner
edges are dropped first: they are pieces of objects that a neighbouring tile (objects up to `overlap` of a tile)
or the full frame sees whole, and merging such a piece can only add a duplicate (SAHI's greedy merge compares each
detection with the group's leader only, so two halves of a large object need not meet) or stretch a box beyond
its mask. The merged box is the union of the group's boxes, its score the best one, and its mask
the pixel-wise maximum of the members' masks, each resampled onto the union box's M x M grid, so an object split
across tiles becomes one mask. Each kept mask is then pasted once, by the masks stage, as without tiling.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.config.model import TilingConfig
from pipeline.items import RawDetections

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Window:
    """A region of the frame given to the model as one image: pixels [x0, x1) x [y0, y1)."""

    x0: int
    y0: int
    x1: int
    y1: int


def _starts(length: int, tile: int, overlap: float) -> list[int]:
    """Tile origins along one axis: step tile*(1-overlap), the last tile flush with the far edge (as SAHI)."""
    if tile >= length:
        return [0]
    step = max(1, int(tile * (1.0 - overlap)))
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return starts


def _tile_side(length: int, count: int, overlap: float) -> int:
    """Side of `count` tiles that overlap by `overlap` and together span `length`."""
    return math.ceil(length / (count - (count - 1) * overlap))


def _even_starts(length: int, tile: int, count: int) -> list[int]:
    """`count` tile origins spread evenly from 0 to length - tile (a grid: exactly `count` tiles)."""
    if tile >= length or count == 1:
        return [0]
    return sorted({round(k * (length - tile) / (count - 1)) for k in range(count)})


def plan_windows(width: int, height: int, cfg: TilingConfig) -> list[Window]:
    """The windows the model sees for one frame: the tiles, then (if `full_frame`) the whole frame.

    A tile larger than the frame is shrunk to it; when a single tile covers the whole frame, the frame runs once.
    """
    if cfg.tile_size is not None:
        tile_w, tile_h = min(cfg.tile_size[0], width), min(cfg.tile_size[1], height)
        xs, ys = _starts(width, tile_w, cfg.overlap), _starts(height, tile_h, cfg.overlap)
    else:
        columns, rows = cfg.grid  # type: ignore[misc]  # the config guarantees one of the two
        tile_w = min(_tile_side(width, columns, cfg.overlap), width)
        tile_h = min(_tile_side(height, rows, cfg.overlap), height)
        xs, ys = _even_starts(width, tile_w, columns), _even_starts(height, tile_h, rows)
    windows = [Window(x, y, x + tile_w, y + tile_h) for y in ys for x in xs]
    whole = Window(0, 0, width, height)
    if windows == [whole]:
        return windows
    if cfg.full_frame:
        windows.append(whole)
    return windows


_warned_sizes: set[tuple[int, int]] = set()


def warn_if_smaller_than_tile(width: int, height: int, cfg: TilingConfig) -> None:
    """Say once per frame size that tiles were shrunk to the frame (the documented fallback, not an error)."""
    if cfg.tile_size is None or (width >= cfg.tile_size[0] and height >= cfg.tile_size[1]):
        return
    if (width, height) not in _warned_sizes:
        _warned_sizes.add((width, height))
        log.warning(
            "model.tiling.tile_size %s is larger than the %dx%d frame: tiles shrink to the frame",
            list(cfg.tile_size),
            width,
            height,
        )


def shift(raw: RawDetections, window: Window) -> RawDetections:
    """Detections of a window, boxes moved into frame coordinates (masks are box-local: unchanged)."""
    if window.x0 == 0 and window.y0 == 0:
        return raw
    offset = torch.tensor([window.x0, window.y0, window.x0, window.y0], dtype=raw.boxes.dtype, device=raw.boxes.device)
    return RawDetections(raw.boxes + offset, raw.scores, raw.labels, raw.mask_probs)


def drop_cut(raw: RawDetections, window: Window, width: int, height: int, margin: float = 2.0) -> RawDetections:
    """A tile's detections without those touching an edge of the tile that lies inside the frame (window coords).

    Such a detection is a piece of an object the tile cuts. An object up to `overlap` of a tile wide lies whole in
    a neighbouring tile, and a larger one is seen whole in the full frame, so the piece only adds a duplicate or a
    union box too large for its mask. Edges on the frame border cut nothing.
    """
    boxes = raw.boxes
    cut = torch.zeros(boxes.shape[0], dtype=torch.bool, device=boxes.device)
    if window.x0 > 0:
        cut |= boxes[:, 0] <= margin
    if window.y0 > 0:
        cut |= boxes[:, 1] <= margin
    if window.x1 < width:
        cut |= boxes[:, 2] >= (window.x1 - window.x0) - margin
    if window.y1 < height:
        cut |= boxes[:, 3] >= (window.y1 - window.y0) - margin
    if not bool(cut.any()):
        return raw
    keep = ~cut
    return RawDetections(raw.boxes[keep], raw.scores[keep], raw.labels[keep], raw.mask_probs[keep])


def concat(parts: list[RawDetections]) -> RawDetections:
    return RawDetections(
        torch.cat([p.boxes for p in parts]),
        torch.cat([p.scores for p in parts]),
        torch.cat([p.labels for p in parts]),
        torch.cat([p.mask_probs for p in parts]),
    )


def intersection_over_smaller(boxes: np.ndarray) -> np.ndarray:
    """(N, N) area of intersection / area of the smaller of the two boxes (x1 y1 x2 y2)."""
    x1 = np.maximum(boxes[:, None, 0], boxes[None, :, 0])
    y1 = np.maximum(boxes[:, None, 1], boxes[None, :, 1])
    x2 = np.minimum(boxes[:, None, 2], boxes[None, :, 2])
    y2 = np.minimum(boxes[:, None, 3], boxes[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    smaller = np.minimum(area[:, None], area[None, :])
    return np.where(smaller > 0, inter / np.maximum(smaller, 1e-9), 0.0)


def greedy_groups(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, threshold: float) -> list[list[int]]:
    """Greedy NMM: groups of detection indices, each led by its best-scored member (SAHI's greedy_nmm, IOS)."""
    order = np.argsort(-scores, kind="stable")
    ios = intersection_over_smaller(boxes)
    same_class = labels[:, None] == labels[None, :]
    matches = (ios >= threshold) & same_class
    taken = np.zeros(len(scores), bool)
    groups = []
    for index in order:
        if taken[index]:
            continue
        members = np.flatnonzero(matches[index] & ~taken)
        members = members[members != index]
        taken[index] = True
        taken[members] = True
        groups.append([int(index), *(int(m) for m in members)])
    return groups


def resample_masks(mask_probs: torch.Tensor, boxes: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(K, 1, M, M) masks over `boxes` → the same masks over `targets` (K, 4), M x M, zero outside their box."""
    k, _, m, _ = mask_probs.shape
    cells = (torch.arange(m, device=boxes.device, dtype=torch.float32) + 0.5) / m  # cell centres in [0, 1]
    tx = targets[:, 0:1] + cells[None] * (targets[:, 2:3] - targets[:, 0:1])  # (K, M) frame x of target cells
    ty = targets[:, 1:2] + cells[None] * (targets[:, 3:4] - targets[:, 1:2])
    gx = (tx - boxes[:, 0:1]) / (boxes[:, 2:3] - boxes[:, 0:1]).clamp(min=1e-6) * 2 - 1  # grid_sample's [-1, 1]
    gy = (ty - boxes[:, 1:2]) / (boxes[:, 3:4] - boxes[:, 1:2]).clamp(min=1e-6) * 2 - 1
    grid = torch.stack([gx[:, None, :].expand(k, m, m), gy[:, :, None].expand(k, m, m)], dim=-1)
    return F.grid_sample(mask_probs.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def merge(raw: RawDetections, threshold: float, max_detections: int) -> RawDetections:
    """One frame's detections from all its windows → one detection per object (see the module doc)."""
    n = int(raw.scores.shape[0])
    if n == 0:
        return raw
    boxes = raw.boxes.float().cpu().numpy()
    scores = raw.scores.float().cpu().numpy()
    groups = greedy_groups(boxes, scores, raw.labels.cpu().numpy(), threshold)[:max_detections]
    leaders = torch.tensor([g[0] for g in groups], device=raw.boxes.device)
    out_boxes = raw.boxes[leaders].clone()
    out_masks = raw.mask_probs[leaders].clone()
    multi = [(slot, g) for slot, g in enumerate(groups) if len(g) > 1]
    if multi:
        members = torch.tensor([m for _, g in multi for m in g], device=raw.boxes.device)
        owner = torch.tensor([slot for slot, g in multi for _ in g], device=raw.boxes.device)
        member_boxes = raw.boxes[members].float()
        union = torch.zeros((len(groups), 4), device=raw.boxes.device, dtype=torch.float32)
        union[:, :2] = float("inf")
        union[:, 2:] = float("-inf")
        union[:, 0].scatter_reduce_(0, owner, member_boxes[:, 0], "amin")
        union[:, 1].scatter_reduce_(0, owner, member_boxes[:, 1], "amin")
        union[:, 2].scatter_reduce_(0, owner, member_boxes[:, 2], "amax")
        union[:, 3].scatter_reduce_(0, owner, member_boxes[:, 3], "amax")
        resampled = resample_masks(raw.mask_probs[members], member_boxes, union[owner])
        flat = resampled.flatten(1)  # probabilities are >= 0, so a zero start is neutral for the maximum
        merged = torch.zeros((len(groups), flat.shape[1]), device=flat.device, dtype=flat.dtype)
        merged.scatter_reduce_(0, owner[:, None].expand_as(flat), flat, "amax")
        merged = merged.view(len(groups), *resampled.shape[1:])
        slots = torch.tensor([slot for slot, _ in multi], device=raw.boxes.device)
        out_boxes[slots] = union[slots].to(out_boxes.dtype)
        out_masks[slots] = merged[slots].to(out_masks.dtype)
    return RawDetections(out_boxes, raw.scores[leaders], raw.labels[leaders], out_masks)
