"""Ground truth writers: COCO instances (RLE masks), MOTChallenge boxes (gt.txt) and MOTS masks (gt_masks.txt).

One `Instance` list per frame goes in; the three formats always agree because they are built from the
same records. Barely visible objects are `iscrowd: 1` in COCO (ignored by COCOeval), `conf 0` in MOT
(ignored by the MOTChallenge evaluators) and part of the per-frame ignore region (id 10000, class 10)
in MOTS, as in KITTI-MOTS.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from synth.categories import coco_categories
from synth.frames import Instance

GENERATOR_VERSION = "1.1"
MOTS_IGNORE_ID = 10000
MOTS_IGNORE_CLASS = 10


def encode_mask(mask: np.ndarray) -> dict[str, Any]:
    """COCO RLE of a boolean mask with `counts` as str (JSON-ready)."""
    as_bytes = mask.view(np.uint8) if mask.dtype == bool else mask.astype(np.uint8)
    rle = mask_utils.encode(np.asfortranarray(as_bytes))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def mots_id(category_id: int, track_id: int) -> int:
    return category_id * 1000 + track_id


class GroundTruth:
    """Accumulates frames and writes annotations.json (+ MOT/MOTS files for clips)."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.info = info
        self.images: list[dict[str, Any]] = []
        self.annotations: list[dict[str, Any]] = []
        self.mot_lines: list[str] = []
        self.mots_lines: list[str] = []

    def add_frame(self, image: dict[str, Any], instances: list[Instance], *, tracks: bool = True) -> None:
        """`image` carries id, file_name, width, height, frame_index (and anything else worth keeping)."""
        self.images.append(image)
        frame_number = image["frame_index"] + 1  # MOT counts frames from 1
        height, width = image["height"], image["width"]
        ignore_region = np.zeros((height, width), bool)
        for inst in instances:
            rle = encode_mask(inst.mask)
            annotation = {
                "id": len(self.annotations) + 1,
                "image_id": image["id"],
                "category_id": inst.category_id,
                "segmentation": rle,
                "bbox": [float(v) for v in inst.bbox],
                "area": float(inst.area),
                "iscrowd": int(inst.ignore),
                "track_id": inst.track_id,
                "visibility": inst.visibility,
            }
            self.annotations.append(annotation)
            if not tracks:
                continue
            x, y, w, h = inst.bbox
            conf = 0 if inst.ignore else 1
            self.mot_lines.append(
                f"{frame_number},{inst.track_id},{x},{y},{w},{h},{conf},{inst.category_id},{inst.visibility:.4f}"
            )
            if inst.ignore:
                ignore_region |= inst.mask
            else:
                ident = mots_id(inst.category_id, inst.track_id)
                self.mots_lines.append(f"{frame_number} {ident} {inst.category_id} {height} {width} {rle['counts']}")
        if tracks and ignore_region.any():
            counts = encode_mask(ignore_region)["counts"]
            self.mots_lines.append(f"{frame_number} {MOTS_IGNORE_ID} {MOTS_IGNORE_CLASS} {height} {width} {counts}")

    def coco(self) -> dict[str, Any]:
        return {
            "info": self.info,
            "licenses": [],
            "images": self.images,
            "annotations": self.annotations,
            "categories": coco_categories(),
        }

    def write(self, out_dir: Path, *, tracks: bool = True) -> None:
        if tracks:
            gt_dir = out_dir / "gt"
            gt_dir.mkdir(exist_ok=True)
            _write_text(gt_dir / "gt.txt", "".join(line + "\n" for line in self.mot_lines))
            _write_text(gt_dir / "gt_masks.txt", "".join(line + "\n" for line in self.mots_lines))
        # annotations.json last: its presence marks a complete output
        _write_text(out_dir / "annotations.json", json.dumps(self.coco(), separators=(",", ":")))


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
