"""Sliced inference: AP (small / medium) and frames/s of whole frames vs our tiling vs SAHI's slicing and merging.

    nice -n 10 .venv/bin/python benchmarks/sliced_inference.py data/eval/drone-9002-1080p [CLIP ...]
        [--config configs/drone.yaml] [--set model.X=Y ...] [--tiling '{grid: [2, 2], overlap: 0.2}'] [--threads 1]

Four arms on the same model, the same clip frames and the same model options (`--config`'s `model` section, as
`maskstream run` would use them):
- `whole`: each frame once, resized to the model's input (no tiling);
- `ours`:  `model.tiling` (tiles + the whole frame in one model batch, detections cut by a tile's inner edge
  dropped, greedy NMM on raw detections, each mask pasted once);
- `ours, merge only`: the same with `drop_cut: false` — SAHI's merge rule on our raw detections;
- `sahi`:  SAHI 0.12.8's own `get_sliced_prediction` (its slicing, its standard full-frame prediction, its
  GREEDYNMM / IOS merge on polygon masks; same tile size, overlap and full-frame choice), with our model wrapped as a SAHI `DetectionModel` whose slices
  run as one batch, like ours. SAHI is a benchmark-only dependency: `pip install --no-deps sahi==0.12.8`.
Scores: COCO AP with pycocotools (`training.evaluate.evaluate`), overall and by area. SAHI replaces every box by its
mask's bounding box; the `maskbox_` scores give every arm's bbox AP that way too, so box AP compares like with like. Time: wall seconds per
frame for the whole per-frame work (model, merge, full-frame masks, RLE), after one warm-up frame; the arms take
turns frame by frame so that the shared machine's changing load hits them alike.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pycocotools import mask as mask_utils

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from maskrcnn.tiling import plan_windows
from pipeline.config import load_model_config
from stages.inference import Detector, load_detector
from stages.masks import encode_rles, paste_masks
from training.dataset import iter_clip_frames, read_coco
from training.evaluate import evaluate


def _results(image_id: int, boxes, scores, labels, rles, to_category: dict[int, int]) -> list[dict[str, Any]]:
    out = []
    for box, score, label, rle in zip(boxes, scores, labels, rles, strict=True):
        if int(label) in to_category:
            x1, y1, x2, y2 = (float(v) for v in box)
            out.append(
                {
                    "image_id": image_id,
                    "category_id": to_category[int(label)],
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": float(score),
                    "segmentation": rle,
                }
            )
    return out


def run_ours(detector: Detector, rgb: np.ndarray, mask_threshold: float):
    height, width = rgb.shape[:2]
    tensor = torch.from_numpy(rgb).permute(2, 0, 1).float().div_(255)
    (raw,) = detector.detect([tensor])
    masks = paste_masks(raw.mask_probs, raw.boxes, height, width, mask_threshold).numpy()
    return raw.boxes.numpy(), raw.scores.numpy(), raw.labels.numpy(), encode_rles(masks)


def sahi_model(detector: Detector, mask_threshold: float, score_threshold: float):
    """Our detector as a SAHI DetectionModel: slices of one call run as one model batch."""
    from sahi.models.base import DetectionModel
    from sahi.prediction import ObjectPrediction
    from sahi.utils.compatibility import fix_full_shape_list, fix_shift_amount_list
    from sahi.utils.cv import get_coco_segmentation_from_bool_mask

    class OurModel(DetectionModel):
        def load_model(self) -> None:
            self.model = detector

        def perform_inference(self, image: np.ndarray) -> None:
            self.perform_batch_inference([image])

        def perform_batch_inference(self, images: list[np.ndarray]) -> None:
            tensors = [torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div_(255) for img in images]
            self._original_predictions = list(zip(detector.detect_whole(tensors), images, strict=True))

        def _create_object_prediction_list_from_original_predictions(
            self, shift_amount_list=None, full_shape_list=None
        ) -> None:
            shift_amount_list = fix_shift_amount_list(shift_amount_list or [[0, 0]])  # SAHI passes [x, y] or lists
            full_shape_list = fix_full_shape_list(full_shape_list)
            per_image = []
            for index, (raw, image) in enumerate(self._original_predictions):
                height, width = image.shape[:2]
                masks = paste_masks(raw.mask_probs, raw.boxes, height, width, mask_threshold).numpy()
                predictions = []
                for n in range(len(raw.scores)):
                    segmentation = get_coco_segmentation_from_bool_mask(masks[n].T)
                    if not segmentation:
                        continue
                    label = int(raw.labels[n])
                    predictions.append(
                        ObjectPrediction(
                            bbox=raw.boxes[n].tolist(),
                            category_id=label,
                            category_name=detector.class_names[label],
                            segmentation=segmentation,
                            score=float(raw.scores[n]),
                            shift_amount=shift_amount_list[index],
                            full_shape=None if full_shape_list is None else full_shape_list[index],
                        )
                    )
                per_image.append(predictions)
            self._object_prediction_list_per_image = per_image

    return OurModel(confidence_threshold=score_threshold, mask_threshold=mask_threshold, load_at_init=True)


def run_sahi(model, rgb: np.ndarray, tile: tuple[int, int], overlap: float, match_threshold: float, full: bool):
    from sahi.predict import get_sliced_prediction

    result = get_sliced_prediction(
        rgb,
        model,
        slice_height=tile[1],
        slice_width=tile[0],
        overlap_height_ratio=overlap,
        overlap_width_ratio=overlap,
        perform_standard_pred=full,
        postprocess_type="GREEDYNMM",
        postprocess_match_metric="IOS",
        postprocess_match_threshold=match_threshold,
        auto_slice_resolution=False,
        batch_size=64,
        verbose=0,
    )
    boxes, scores, labels, masks = [], [], [], []
    for pred in result.object_prediction_list:
        boxes.append(pred.bbox.to_xyxy())
        scores.append(pred.score.value)
        labels.append(pred.category.id)
        masks.append(pred.mask.bool_mask.T)
    stacked = np.ascontiguousarray(np.stack(masks)) if masks else np.zeros((0, rgb.shape[1], rgb.shape[0]), bool)
    return np.array(boxes), np.array(scores), np.array(labels), encode_rles(stacked)


def bench_clip(clip: Path, args: argparse.Namespace) -> dict[str, Any]:
    coco = read_coco(clip)
    frames = list(iter_clip_frames(coco.video))
    images = sorted(coco.images, key=lambda im: im["frame_index"])
    height, width = frames[0].shape[:2]
    overrides = list(args.set)
    base = load_model_config(args.config, overrides=overrides)
    whole = load_detector(base.model_copy(update={"tiling": None}))
    tiled_cfg = load_model_config(args.config, overrides=[*overrides, f"model.tiling={args.tiling}"])
    tiling = tiled_cfg.tiling
    tiled = load_detector(tiled_cfg)
    merge_only = load_detector(tiled_cfg.model_copy(update={"tiling": tiling.model_copy(update={"drop_cut": False})}))
    first = plan_windows(width, height, tiling)[0]
    tile = (first.x1 - first.x0, first.y1 - first.y0)
    names = coco.category_names
    to_category = {whole.class_names.index(n): cat for cat, n in names.items() if n in whole.class_names}
    arms = {
        "whole": lambda rgb: run_ours(whole, rgb, base.mask_threshold),
        "ours": lambda rgb: run_ours(tiled, rgb, base.mask_threshold),
        "ours, merge only": lambda rgb: run_ours(merge_only, rgb, base.mask_threshold),
    }
    if not args.no_sahi:
        model = sahi_model(whole, base.mask_threshold, base.score_threshold)
        arms["sahi"] = lambda rgb: run_sahi(model, rgb, tile, tiling.overlap, tiling.match_threshold, tiling.full_frame)
    row: dict[str, Any] = {"clip": str(clip), "size": f"{width}x{height}", "frames": len(images), "arms": {}}
    for arm in arms.values():
        arm(frames[images[0]["frame_index"]])  # warm-up
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in arms}
    seconds = dict.fromkeys(arms, 0.0)
    # arms take turns on each frame, so a change in the shared machine's load hits them alike
    for image in images:
        rgb = np.ascontiguousarray(frames[image["frame_index"]])
        for name, arm in arms.items():
            start = time.perf_counter()
            found = arm(rgb)
            seconds[name] += time.perf_counter() - start
            results[name] += _results(image["id"], *found, to_category)
    for name in arms:
        scores = evaluate(clip, results[name]).overall
        # SAHI replaces each box by its mask's bounding box (sahi/annotation.py, issue #235); score ours that way too
        boxed = [r | {"bbox": [float(v) for v in mask_utils.toBbox(r["segmentation"])]} for r in results[name]]
        scores |= {f"maskbox_{k}": v for k, v in evaluate(clip, boxed).overall.items() if k.startswith("bbox")}
        per_frame = seconds[name] / len(images)
        row["arms"][name] = {"s_per_frame": per_frame, "detections": len(results[name]), **scores}
        print(f"{clip.name} {name}: {per_frame:.3f} s/frame, {json.dumps(scores)}", flush=True)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="+", type=Path, help="synth clip dirs (video.mp4 + annotations.json)")
    parser.add_argument("--config", type=Path, default=Path("configs/drone.yaml"), help="model options from here")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a model option")
    parser.add_argument(
        "--tiling", default="{grid: [2, 2], overlap: 0.2}", help="model.tiling for the tiled arms (YAML flow mapping)"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-sahi", action="store_true")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [bench_clip(clip, args) for clip in args.clips]
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch thread(s)",
        "command": " ".join(sys.argv),
        "rows": rows,
    }
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2))
    for row in rows:
        whole = row["arms"]["whole"]["s_per_frame"]
        for name, arm in row["arms"].items():
            print(
                f"| {row['size']} | {name} | {arm['bbox_AP']:.3f} | {arm['segm_AP']:.3f} | "
                f"{arm['bbox_AP_small']:.3f} | {arm['bbox_AP_medium']:.3f} | {arm['segm_AP_small']:.3f} | "
                f"{arm['segm_AP_medium']:.3f} | {arm['maskbox_bbox_AP']:.3f} | {arm['maskbox_bbox_AP_small']:.3f} | "
                f"{1 / arm['s_per_frame']:.2f} | {whole / arm['s_per_frame']:.2f} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
