"""What mask AP would perfect masks score if they could only be as sharp as a feature map of stride N?

    .venv/bin/python benchmarks/mask_resolution_ceiling.py data/eval/surveillance-9001 data/eval/drone-9002

An oracle, no model: every ground-truth object is "detected" with its true box, class and score 1, and its mask
is the true mask area-averaged onto a grid of stride N, bilinearly upsampled back and thresholded at 0.5 — the mask
a perfect probability map at that resolution would give. Mask R-CNN's mask head reads RoIAlign samples of an FPN
level (stride 4 at finest in our light model and in torchvision's); its channels can carry some detail below one
cell, so this is an indication of how much of COCO's AP@[.5:.95] is out of reach at a given feature stride for
objects of the held-out clips' sizes, not a strict bound. Stride 1 is the identity and must score 1.0.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.dataset import read_coco
from training.evaluate import AREA_RANGES, evaluate


def coarsened(mask: np.ndarray, stride: int) -> np.ndarray:
    """The mask as a stride-`stride` probability map would draw it: area-averaged down, bilinear up, >= 0.5."""
    if stride == 1:
        return mask
    height, width = mask.shape
    grid = cv2.resize(mask.astype(np.float32), (width // stride, height // stride), interpolation=cv2.INTER_AREA)
    return (cv2.resize(grid, (width, height), interpolation=cv2.INTER_LINEAR) >= 0.5).astype(np.uint8)


def oracle_predictions(data: Path, stride: int) -> list[dict]:
    predictions = []
    for ann in read_coco(data).data["annotations"]:
        if ann.get("iscrowd"):
            continue
        rle = mask_utils.encode(np.asfortranarray(coarsened(mask_utils.decode(ann["segmentation"]), stride)))
        predictions.append(
            {
                "image_id": ann["image_id"],
                "category_id": ann["category_id"],
                "bbox": ann["bbox"],
                "score": 1.0,
                "segmentation": {"size": rle["size"], "counts": rle["counts"].decode("ascii")},
            }
        )
    return predictions


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="+", type=Path, help="synth clip dirs or COCO datasets")
    parser.add_argument("--strides", default="1,2,4,8", help="comma-separated feature strides (default 1,2,4,8)")
    parser.add_argument("--json", action="store_true", help="print the scores as JSON")
    args = parser.parse_args()
    rows = []
    for data in args.data:
        for stride in (int(s) for s in args.strides.split(",")):
            result = evaluate(data, oracle_predictions(data, stride))
            rows.append(
                {
                    "data": str(data),
                    "stride": stride,
                    "segm_AP": result.overall["segm_AP"],
                    **{f"segm_AP_{size}": result.overall[f"segm_AP_{size}"] for size in AREA_RANGES},
                    "per_class": {name: scores["segm_AP"] for name, scores in result.per_class.items()},
                }
            )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    classes = sorted({name for row in rows for name in row["per_class"]})
    print(f"{'data':<32}{'stride':>7}{'mask AP':>9}{'small':>8}{'medium':>8}" + "".join(f"{c:>9}" for c in classes))
    for row in rows:
        print(
            f"{Path(row['data']).name:<32}{row['stride']:>7}{row['segm_AP']:>9.3f}{row['segm_AP_small']:>8.3f}"
            f"{row['segm_AP_medium']:>8.3f}"
            + "".join(f"{row['per_class'].get(c, float('nan')):>9.3f}" for c in classes)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
