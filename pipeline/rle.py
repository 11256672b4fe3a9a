"""Full-frame COCO RLE of box-local mask crops, without ever building the full-frame mask.

COCO RLE walks the frame column by column (column-major), counting alternating runs of 0s and 1s. A crop at
(x0, y0) of w x h pixels, stored column-major (its w columns of h pixels one after the other, as the masks stage
lays them out), occupies in that walk w stretches of h pixels: column c starts at (x0 + c) * H + y0. Everything
between the stretches is 0. So the RLE is fixed by the positions where the crop's value changes — inside a column,
at a column's first pixel (0 → 1 when it is set) and just after its last (1 → 0) — converted to full-frame
positions; the run lengths are their differences. When a crop spans the whole frame height (h == H) its columns
touch, and a column ending in 1 followed by one starting with 1 makes a 1 → 0 and a 0 → 1 at the same position,
which cancel.

All crops of a batch are done at once with a few numpy passes over their pixels (numpy releases the GIL in them),
and the run lengths become COCO's compressed strings in one pycocotools call. The work is proportional to the
crops' pixels and their columns, never to the frame.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pycocotools import mask as mask_utils


def crop_rles(
    pixels: np.ndarray,
    offsets: np.ndarray,
    windows: np.ndarray,
    frame_sizes: np.ndarray,
) -> list[dict[str, Any]]:
    """COCO RLEs ({"size": [H, W], "counts": str}) of N crops, identical to pycocotools' RLE of the full masks.

    pixels: flat bool/uint8; crop n is pixels[offsets[n]:offsets[n + 1]], its w columns of h pixels in turn.
    offsets: (N + 1,) int. windows: (N, 4) int x0, y0, w, h (inside the frame). frame_sizes: (N, 2) int H, W.
    """
    n = len(windows)
    if n == 0:
        return []
    flat = np.ascontiguousarray(pixels).reshape(-1).view(np.uint8)
    windows = np.asarray(windows, np.int64).reshape(n, 4)
    frame_sizes = np.asarray(frame_sizes, np.int64).reshape(n, 2)
    offsets = np.asarray(offsets, np.int64)
    x0, y0, w, h = windows.T
    frame_h = frame_sizes[:, 0]
    areas = frame_h * frame_sizes[:, 1]
    w = np.where(h > 0, w, 0)  # a crop without rows has no columns
    stride = int(areas.max()) + 1  # key = detection * stride + full-frame position; both come back out of it
    keys = _transition_keys(flat, offsets[:-1], x0, y0, w, h, frame_h, stride)
    det = keys // stride
    pos = keys - det * stride
    first = np.searchsorted(det, np.arange(n + 1))  # transitions of detection d: first[d] .. first[d + 1]
    previous = np.empty_like(pos)
    if len(pos):
        previous[1:] = pos[:-1]
        previous[first[:-1][first[:-1] < len(pos)]] = 0
    runs = pos - previous
    tail = areas.copy()  # the run after the last transition: to the end of the frame
    has = first[1:] > first[:-1]
    tail[has] = areas[has] - pos[first[1:][has] - 1]
    uncompressed = []
    for d in range(n):
        counts = runs[first[d] : first[d + 1]]
        if tail[d] > 0 or not len(counts):
            counts = np.append(counts, tail[d])
        uncompressed.append({"size": [int(frame_sizes[d, 0]), int(frame_sizes[d, 1])], "counts": counts})
    rles = mask_utils.frPyObjects(uncompressed, int(frame_sizes[0, 0]), int(frame_sizes[0, 1]))
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
        rle["size"] = [int(s) for s in rle["size"]]
    return rles


def _transition_keys(
    flat: np.ndarray,
    starts: np.ndarray,
    x0: np.ndarray,
    y0: np.ndarray,
    w: np.ndarray,
    h: np.ndarray,
    frame_h: np.ndarray,
    stride: int,
) -> np.ndarray:
    """Sorted detection * stride + full-frame position of every value change of every crop."""
    columns = int(w.sum())
    if columns == 0:
        return np.zeros(0, np.int64)
    # every column of every crop: its detection, its index inside the crop, where it starts in `flat`
    col_det = np.repeat(np.arange(len(w)), w)
    col_index = np.arange(columns) - np.repeat(np.cumsum(w) - w, w)
    col_start = starts[col_det] + col_index * h[col_det]
    col_end = col_start + h[col_det]
    # changes inside a column: flat[p] != flat[p - 1], p not the first pixel of a column
    inner = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    first_pixel = np.zeros(len(flat) + 1, bool)
    first_pixel[col_start] = True
    inner = inner[~first_pixel[inner]]
    inner_col = np.searchsorted(col_start, inner, side="right") - 1
    # a column that starts with 1 rises at its first pixel; one that ends with 1 falls just after its last
    rises = np.flatnonzero(flat[col_start] == 1)
    falls = np.flatnonzero(flat[col_end - 1] == 1)
    cols = np.concatenate([inner_col, rises, falls])
    rows = np.concatenate([inner - col_start[inner_col], np.zeros(len(rises), np.int64), h[col_det[falls]]])
    d = col_det[cols]
    position = (x0[d] + col_index[cols]) * frame_h[d] + y0[d] + rows
    keys, counts = np.unique(d * stride + position, return_counts=True)
    return keys[counts == 1]  # a fall and a rise at the same place (touching full-height columns) cancel
