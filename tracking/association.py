"""Similarity between predicted tracks and detections, and the optimal one-to-one assignment.

Box IoU is computed for every pair at once; mask IoU only for pairs whose boxes overlap, on cropped masks (the
track's last observed mask moved and scaled onto its predicted box), so the cost stays small per frame.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 4) x (M, 4) xyxy boxes -> (N, M) IoU."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_a = (a[:, 2] - a[:, 0]).clip(0) * (a[:, 3] - a[:, 1]).clip(0)
    area_b = (b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def integer_box(box, height: int, width: int) -> tuple[int, int, int, int]:
    """Pixel extent [x1, x2) x [y1, y2) covering a float box, clipped to the frame (plain Python: called per
    object per frame, where numpy's scalar overhead would dominate)."""
    bx1, by1, bx2, by2 = (float(v) for v in box)
    x1 = min(max(math.floor(bx1), 0), width)
    y1 = min(max(math.floor(by1), 0), height)
    x2 = min(max(math.ceil(bx2), 0), width)
    y2 = min(max(math.ceil(by2), 0), height)
    return x1, y1, max(x1, x2), max(y1, y2)


class CroppedMask:
    """A bool mask stored only inside its pixel box (x1, y1, x2, y2)."""

    __slots__ = ("area", "box", "pixels")

    def __init__(self, pixels: np.ndarray, box: tuple[int, int, int, int]) -> None:
        self.pixels = pixels
        self.box = box
        self.area = int(np.count_nonzero(pixels))

    @classmethod
    def from_full(cls, full: np.ndarray, box: tuple[int, int, int, int]) -> CroppedMask:
        x1, y1, x2, y2 = box
        return cls(np.ascontiguousarray(full[y1:y2, x1:x2]), box)

    def placed(self, box: tuple[int, int, int, int]) -> CroppedMask:
        """This mask's shape stretched onto another pixel box (nearest neighbour)."""
        x1, y1, x2, y2 = box
        w, h = x2 - x1, y2 - y1
        if w <= 0 or h <= 0 or self.pixels.size == 0:
            return CroppedMask(np.zeros((max(h, 0), max(w, 0)), bool), box)
        if (h, w) == self.pixels.shape:
            return CroppedMask(self.pixels, box)
        pixels = self.pixels.view(np.uint8)
        if not pixels.flags.c_contiguous and pixels.T.flags.c_contiguous:
            # a column-major crop (as the masks stage stores them): nearest-neighbour resizing is separable, so
            # resizing the transpose and transposing back gives the same pixels without a copy
            return CroppedMask(cv2.resize(pixels.T, (h, w), interpolation=cv2.INTER_NEAREST).T.view(bool), box)
        resized = cv2.resize(np.ascontiguousarray(pixels), (w, h), interpolation=cv2.INTER_NEAREST)
        return CroppedMask(resized.view(bool), box)


def cropped_mask_iou(a: CroppedMask, b: CroppedMask) -> float:
    union_area = a.area + b.area
    if union_area == 0:
        return 0.0
    ax1, ay1, ax2, ay2 = a.box
    bx1, by1, bx2, by2 = b.box
    x1, y1, x2, y2 = max(ax1, bx1), max(ay1, by1), min(ax2, bx2), min(ay2, by2)
    if x2 <= x1 or y2 <= y1:
        return 0.0
    pa = a.pixels[y1 - ay1 : y2 - ay1, x1 - ax1 : x2 - ax1]
    pb = b.pixels[y1 - by1 : y2 - by1, x1 - bx1 : x2 - bx1]
    inter = int(np.count_nonzero(pa & pb))
    return inter / (union_area - inter)


def similarity(
    box_ious: np.ndarray,
    track_masks: list[CroppedMask | None],
    det_masks: list[CroppedMask | None],
    track_labels: np.ndarray,
    det_labels: np.ndarray,
    mask_weight: float,
    class_penalty: float,
    mask_full_weight_area: float = 0.0,
    floor: float | None = None,
) -> np.ndarray:
    """Blend box and mask IoU where both masks exist and boxes overlap; penalise class disagreement.

    Masks smaller than `mask_full_weight_area` pixels get a proportionally smaller weight: the IoU of a few
    pixels' masks is mostly noise. With `floor` (the caller's match threshold), a pair that stays below it
    whatever its masks' pixels gets an upper bound of its similarity (also below `floor`) instead of its exact
    value, which a thresholded assignment cannot tell apart; the pixel work then goes to the pairs that count."""
    sim = box_ious.copy()
    if mask_weight > 0 and sim.size:
        rows, cols = np.nonzero(box_ious > 0)
        pairs = [
            (r, c, track_masks[r], det_masks[c])
            for r, c in zip(rows.tolist(), cols.tolist(), strict=True)
            if track_masks[r] is not None and det_masks[c] is not None
        ]
        if floor is not None and pairs:
            pairs = _pairs_that_may_reach(pairs, box_ious, sim, mask_weight, mask_full_weight_area, floor)
        for r, c, tm, dm in pairs:
            weight = mask_weight
            if mask_full_weight_area > 0:
                weight *= min(1.0, min(tm.area, dm.area) / mask_full_weight_area)
            sim[r, c] = (1.0 - weight) * box_ious[r, c] + weight * cropped_mask_iou(tm, dm)
    if class_penalty > 0 and sim.size:
        sim -= class_penalty * (track_labels[:, None] != det_labels[None, :])
    return sim


def _pairs_that_may_reach(
    pairs: list[tuple[int, int, CroppedMask, CroppedMask]],
    box_ious: np.ndarray,
    sim: np.ndarray,
    mask_weight: float,
    mask_full_weight_area: float,
    floor: float,
) -> list[tuple[int, int, CroppedMask, CroppedMask]]:
    """The pairs whose similarity may reach `floor`; the others get their upper bound written into `sim`.

    The intersection of two masks is at most the smaller area and at most the overlap of their windows, so mask
    IoU <= bound / (area_a + area_b - bound); rounding is monotonic, so the exact similarity (same expression,
    same operand order) never exceeds the bound's."""
    area_t = np.array([tm.area for _, _, tm, _ in pairs], np.float64)
    area_d = np.array([dm.area for _, _, _, dm in pairs], np.float64)
    box_t = np.array([tm.box for _, _, tm, _ in pairs], np.int64).reshape(-1, 4)
    box_d = np.array([dm.box for _, _, _, dm in pairs], np.int64).reshape(-1, 4)
    overlap_w = np.clip(np.minimum(box_t[:, 2], box_d[:, 2]) - np.maximum(box_t[:, 0], box_d[:, 0]), 0, None)
    overlap_h = np.clip(np.minimum(box_t[:, 3], box_d[:, 3]) - np.maximum(box_t[:, 1], box_d[:, 1]), 0, None)
    inter = np.minimum(np.minimum(area_t, area_d), (overlap_w * overlap_h).astype(np.float64))
    union = area_t + area_d - inter
    iou_bound = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    weight = np.full(len(pairs), mask_weight)
    if mask_full_weight_area > 0:
        weight = weight * np.minimum(1.0, np.minimum(area_t, area_d) / mask_full_weight_area)
    rows = np.array([p[0] for p in pairs], np.intp)
    cols = np.array([p[1] for p in pairs], np.intp)
    upper = (1.0 - weight) * box_ious[rows, cols] + weight * iou_bound
    low = upper < floor
    sim[rows[low], cols[low]] = upper[low]
    return [pair for pair, hopeless in zip(pairs, low.tolist(), strict=True) if not hopeless]


def assign(sim: np.ndarray, threshold: float) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Maximum-total-similarity matching keeping only pairs with similarity >= threshold.
    Returns (matches as (row, col), unmatched rows, unmatched cols)."""
    n_rows, n_cols = sim.shape
    if n_rows == 0 or n_cols == 0:
        return [], list(range(n_rows)), list(range(n_cols))
    # Pairs below threshold are made worthless so the solver never trades a good pair for a forbidden one.
    cost = np.where(sim >= threshold, 1.0 - sim, 1e6)
    rows, cols = linear_sum_assignment(cost)
    keep = cost[rows, cols] < 1e6
    matches = list(zip(rows[keep].tolist(), cols[keep].tolist(), strict=True))
    matched_rows = set(rows[keep].tolist())
    matched_cols = set(cols[keep].tolist())
    return (
        matches,
        [r for r in range(n_rows) if r not in matched_rows],
        [c for c in range(n_cols) if c not in matched_cols],
    )
