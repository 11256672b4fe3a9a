"""Reading MOTChallenge (boxes) and MOTS (masks) text files: ground truth of synthetic clips and written tracks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.errors import DatasetError


@dataclass(slots=True)
class FrameObjects:
    """Objects of one frame: ids, boxes (x1 y1 x2 y2), classes, scores and optional COCO RLEs."""

    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    classes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    rles: list[dict] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)


def read_mot(path: str | Path, class_column: int | None = 7) -> dict[int, FrameObjects]:
    """MOTChallenge rows `frame,id,x,y,w,h,conf[,class,visibility,...]` -> {frame: FrameObjects}.

    `class_column` (0-based) names the column holding the class in ground-truth files; rows whose value there is
    -1, or files without that column, get class -1."""
    path = Path(path)
    try:
        text = path.read_text(encoding="ascii")
    except OSError as exc:
        raise DatasetError(f"cannot read MOT file {path}: {exc.strerror or exc}") from exc
    rows: dict[int, list[list[float]]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.replace(" ", "").split(",")
        try:
            values = [float(p) for p in parts]
        except ValueError as exc:
            raise DatasetError(f"{path}:{number}: not a MOTChallenge row: {line[:80]!r}") from exc
        if len(values) < 6:
            raise DatasetError(f"{path}:{number}: expected at least 6 comma-separated values, got {len(values)}")
        rows.setdefault(int(values[0]), []).append(values)
    frames: dict[int, FrameObjects] = {}
    for frame, items in rows.items():
        ids = np.array([int(r[1]) for r in items], np.int64)
        boxes = np.array([[r[2], r[3], r[2] + r[4], r[3] + r[5]] for r in items], np.float64)
        scores = np.array([r[6] if len(r) > 6 else 1.0 for r in items])
        if class_column is not None:
            classes = np.array([int(r[class_column]) if len(r) > class_column else -1 for r in items], np.int64)
        else:
            classes = np.full(len(items), -1, np.int64)
        frames[frame] = FrameObjects(ids, boxes, classes, scores)
    return frames


def read_mots(path: str | Path) -> dict[int, FrameObjects]:
    """MOTS rows `frame id class_id height width rle` -> {frame: FrameObjects} with RLEs (boxes from the RLEs)."""
    from pycocotools import mask as mask_utils

    path = Path(path)
    try:
        text = path.read_text(encoding="ascii")
    except OSError as exc:
        raise DatasetError(f"cannot read MOTS file {path}: {exc.strerror or exc}") from exc
    rows: dict[int, list[tuple[int, int, dict]]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(" ")
        if len(parts) != 6:
            raise DatasetError(f"{path}:{number}: expected 6 space-separated MOTS fields, got {len(parts)}")
        try:
            frame, obj, cls, h, w = (int(p) for p in parts[:5])
        except ValueError as exc:
            raise DatasetError(f"{path}:{number}: not a MOTS row: {line[:80]!r}") from exc
        rows.setdefault(frame, []).append((obj, cls, {"size": [h, w], "counts": parts[5].strip()}))
    frames: dict[int, FrameObjects] = {}
    for frame, items in rows.items():
        rles = [r for _, _, r in items]
        encoded = [{"size": r["size"], "counts": r["counts"].encode("ascii")} for r in rles]
        xywh = mask_utils.toBbox(encoded).reshape(-1, 4)
        boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        frames[frame] = FrameObjects(
            np.array([o for o, _, _ in items], np.int64),
            boxes,
            np.array([c for _, c, _ in items], np.int64),
            np.ones(len(items)),
            rles,
        )
    return frames
