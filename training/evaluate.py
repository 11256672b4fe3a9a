"""COCO bbox and mask AP (pycocotools) of a model or of a results file, overall and per class."""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from tqdm import tqdm

from pipeline.errors import DatasetError
from pipeline.items import Frame
from stages.inference import Detector
from stages.masks import frame_detections
from training.dataset import CocoFile, InstanceDataset, iter_clip_frames, read_coco

AREA_RANGES = ("small", "medium", "large")


@dataclass
class EvalResult:
    overall: dict[str, float]  # bbox_AP, bbox_AP50, segm_AP, segm_AP50, and {bbox,segm}_AP_{small,medium,large}
    per_class: dict[str, dict[str, float]]  # class name -> same keys
    images: int

    def as_dict(self) -> dict[str, Any]:
        return {"images": self.images, "overall": self.overall, "per_class": self.per_class}


def predict(detector: Detector, data: str | Path, mask_threshold: float = 0.5) -> list[dict[str, Any]]:
    """Run the model over a dataset as `maskstream run` runs it; COCO results (the dataset's category ids, RLE masks).

    The detector carries the run's model options (score threshold, detection cap, class filter, tiling), and masks
    are pasted by the pipeline's own paste at `mask_threshold`, so the scores are what a user of `run` gets.
    """
    coco = read_coco(data)
    names = coco.category_names
    class_names = detector.class_names
    to_category = {class_names.index(name): cat for cat, name in names.items() if name in class_names}
    results: list[dict[str, Any]] = []
    frames = iter_clip_frames(coco.video) if coco.video is not None else None
    dataset = InstanceDataset(data, class_names) if frames is None else None
    images = sorted(coco.images, key=lambda im: im.get("frame_index", 0)) if frames is not None else coco.images
    clip_frames: dict[int, np.ndarray] = {}
    if frames is not None:  # decode once, in order
        clip_frames = dict(enumerate(frames))
    for position, image in enumerate(tqdm(images, desc="eval", unit="img", leave=False)):
        rgb = clip_frames[image["frame_index"]] if frames is not None else dataset.image(position)
        frame = Frame("eval", position, None, 0.0, np.require(rgb, np.uint8, ["C", "W"]))
        tensor = torch.from_numpy(frame.image).permute(2, 0, 1).to(detector.device)  # uint8: the detector converts
        (raw,) = detector.detect([tensor])
        dets = frame_detections(frame, raw, mask_threshold)  # the pipeline's own masks and RLEs
        for box, score, label, rle in zip(dets.boxes, dets.scores, dets.labels, dets.rles, strict=True):
            if int(label) not in to_category:
                continue
            x1, y1, x2, y2 = (float(v) for v in box)
            results.append(
                {
                    "image_id": image["id"],
                    "category_id": to_category[int(label)],
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": float(score),
                    "segmentation": rle,
                }
            )
    return results


def evaluate(data: str | Path, results: list[dict[str, Any]]) -> EvalResult:
    """Score COCO results against the dataset's ground truth (iscrowd annotations are ignore regions)."""
    coco_file = read_coco(data)
    ground_truth = _load_ground_truth(coco_file)
    overall: dict[str, float] = {}
    per_class: dict[str, dict[str, float]] = {name: {} for name in coco_file.category_names.values()}
    for iou_type in ("bbox", "segm"):
        if not results:
            overall[f"{iou_type}_AP"] = overall[f"{iou_type}_AP50"] = 0.0
            overall.update({f"{iou_type}_AP_{size}": 0.0 for size in AREA_RANGES})
            for name in per_class:
                per_class[name][f"{iou_type}_AP"] = per_class[name][f"{iou_type}_AP50"] = 0.0
            continue
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
            detections = ground_truth.loadRes(results)
            evaluator = COCOeval(ground_truth, detections, iou_type)
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
        overall[f"{iou_type}_AP"] = float(evaluator.stats[0])
        overall[f"{iou_type}_AP50"] = float(evaluator.stats[1])
        # COCO's area ranges (< 32², 32²-96², > 96² px); -1 (no ground truth in the range) becomes NaN
        for offset, size in enumerate(AREA_RANGES):
            value = float(evaluator.stats[3 + offset])
            overall[f"{iou_type}_AP_{size}"] = value if value > -1 else float("nan")
        precision = evaluator.eval["precision"]  # [iou, recall, class, area, max_dets]
        for k, cat_id in enumerate(evaluator.params.catIds):
            name = coco_file.category_names[cat_id]
            per_class[name][f"{iou_type}_AP"] = _mean_valid(precision[:, :, k, 0, -1])
            per_class[name][f"{iou_type}_AP50"] = _mean_valid(precision[0, :, k, 0, -1])
    return EvalResult(overall, per_class, len(coco_file.images))


def _mean_valid(values: np.ndarray) -> float:
    valid = values[values > -1]
    return float(valid.mean()) if valid.size else float("nan")


def _load_ground_truth(coco_file: CocoFile) -> COCO:
    data = dict(coco_file.data)
    for ann in data["annotations"]:
        ann.setdefault("iscrowd", 0)
        if "area" not in ann:
            ann["area"] = float(ann["bbox"][2] * ann["bbox"][3])
    ground_truth = COCO()
    ground_truth.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        ground_truth.createIndex()
    return ground_truth


def load_results(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"predictions file not found: {path}")
    try:
        results = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(results, list):
        raise DatasetError(f"{path}: a COCO results file is a JSON list of detections")
    return results


def format_table(result: EvalResult) -> str:
    keys = ("bbox_AP", "bbox_AP50", "segm_AP", "segm_AP50")
    lines = [f"{'class':<12}" + "".join(f"{k:>11}" for k in keys)]
    for name, values in [*result.per_class.items(), ("all", result.overall)]:
        lines.append(f"{name:<12}" + "".join(f"{values.get(k, float('nan')):>11.3f}" for k in keys))
    lines.append("")
    lines.append(f"{'AP by area':<12}" + "".join(f"{size:>11}" for size in AREA_RANGES))
    for iou_type in ("bbox", "segm"):
        values = [result.overall.get(f"{iou_type}_AP_{size}", float("nan")) for size in AREA_RANGES]
        lines.append(f"{iou_type:<12}" + "".join(f"{value:>11.3f}" for value in values))
    return "\n".join(lines)
