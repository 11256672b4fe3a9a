"""Tracking evaluation, step 2: detections per clip, computed once and cached (see evaluation/tracking.py)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.clips import Clip, iter_video, rle_str
from pipeline.items import Detections, Frame
from tracking.mot_io import FrameObjects

log = logging.getLogger(__name__)


@dataclass(slots=True)
class FrameDetections:
    boxes: np.ndarray  # (N, 4) xyxy float32
    scores: np.ndarray  # (N,) float32
    classes: np.ndarray  # (N,) int64, the ground truth's category ids
    rles: list[dict]  # COCO RLE, counts str

    def to_detections(self, height: int, width: int) -> Detections:
        from pycocotools import mask as mask_utils

        if len(self.rles):
            encoded = [{"size": r["size"], "counts": r["counts"].encode("ascii")} for r in self.rles]
            masks = np.ascontiguousarray(mask_utils.decode(encoded).transpose(2, 0, 1).astype(bool))
        else:
            masks = np.zeros((0, height, width), bool)
        return Detections.from_full_masks(self.boxes, self.scores, self.classes, masks, self.rles)

    def valid(self, height: int, width: int) -> FrameDetections:
        """Boxes clipped to the frame and at least one pixel wide and high (some trackers reject others)."""
        boxes = self.boxes.copy()
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
        keep = np.flatnonzero((boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1))
        return FrameDetections(boxes[keep], self.scores[keep], self.classes[keep], [self.rles[i] for i in keep])


@dataclass(slots=True)
class DetectionSet:
    source: str  # "model" or "noisy-gt"
    frames: list[FrameDetections]

    def save(self, path: Path) -> None:
        counts = np.array([len(f.scores) for f in self.frames], np.int64)
        flat_rles = [r for f in self.frames for r in f.rles]
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(
            tmp,
            source=np.array(self.source),
            counts=counts,
            boxes=np.concatenate([f.boxes for f in self.frames]).astype(np.float32).reshape(-1, 4),
            scores=np.concatenate([f.scores for f in self.frames]).astype(np.float32),
            classes=np.concatenate([f.classes for f in self.frames]).astype(np.int64),
            rle_counts=np.array([r["counts"] for r in flat_rles], dtype=str),
            rle_sizes=np.array([r["size"] for r in flat_rles], np.int64).reshape(-1, 2),
        )
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> DetectionSet:
        with np.load(path, allow_pickle=False) as data:  # never unpickle: cached files are plain arrays
            counts = data["counts"]
            offsets = np.concatenate([[0], np.cumsum(counts)])
            frames = []
            for k in range(len(counts)):
                a, b = offsets[k], offsets[k + 1]
                rles = [
                    {"size": [int(h), int(w)], "counts": str(c)}
                    for (h, w), c in zip(data["rle_sizes"][a:b], data["rle_counts"][a:b], strict=True)
                ]
                frames.append(FrameDetections(data["boxes"][a:b], data["scores"][a:b], data["classes"][a:b], rles))
            return cls(str(data["source"]), frames)


def noisy_gt_detections(clip: Clip, seed: int = 0) -> DetectionSet:
    """DEVELOPMENT STAND-IN for a detector: ground truth with box jitter, misses that grow with occlusion,
    scores that fall with occlusion (so some land in the low-score band), rare class flips and false positives."""
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(1_000_003 * seed + 17)
    height, width = clip.size
    classes = sorted(clip.category_names) or [1]
    frames = []
    for f in range(clip.num_frames):
        objs = clip.gt.get(f, FrameObjects())
        boxes, scores, labels, rles = [], [], [], []
        for k in range(len(objs)):
            box = objs.boxes[k]
            area_box = max(1.0, (box[2] - box[0]) * (box[3] - box[1]))
            fill = float(mask_utils.area({"size": objs.rles[k]["size"], "counts": objs.rles[k]["counts"].encode()}))
            visible = min(1.0, fill / (0.7 * area_box))  # rough visibility: masks fill ~70% of their box
            if rng.random() < 0.05 + 0.4 * (1 - visible):
                continue
            size = np.array([box[2] - box[0], box[3] - box[1]] * 2)
            boxes.append(box + rng.normal(0, 0.04, 4) * size)
            scores.append(float(np.clip(rng.normal(0.55 + 0.4 * visible, 0.12), 0.05, 0.99)))
            labels.append(int(objs.classes[k]) if rng.random() > 0.02 else int(rng.choice(classes)))
            rles.append(objs.rles[k])
        for _ in range(rng.poisson(0.5)):
            w, h = rng.uniform(10, 60, 2)
            x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
            boxes.append(np.array([x, y, x + w, y + h]))
            scores.append(float(rng.uniform(0.1, 0.65)))
            labels.append(int(rng.choice(classes)))
            mask = np.zeros((height, width), np.uint8, order="F")
            mask[int(y) : int(y + h), int(x) : int(x + w)] = 1
            rle = mask_utils.encode(mask)
            rles.append({"size": [height, width], "counts": rle["counts"].decode("ascii")})
        frames.append(
            FrameDetections(
                np.array(boxes, np.float32).reshape(-1, 4),
                np.array(scores, np.float32),
                np.array(labels, np.int64),
                rles,
            )
        )
    return DetectionSet("noisy-gt", frames)


def model_detections(clip: Clip, detector: Any, mask_threshold: float = 0.5) -> DetectionSet:
    """The bundled model's detections on every frame of a clip, labels mapped to the clip's category ids by name."""
    import torch

    from stages.masks import frame_detections

    by_name = {name: cid for cid, name in clip.category_names.items()}
    label_to_class = np.array([by_name.get(name, -1) for name in detector.class_names], np.int64)
    frames = []
    started = time.monotonic()
    for index, pts, image in iter_video(clip.video):
        tensor = torch.from_numpy(image).to(detector.device).permute(2, 0, 1).float().div_(255)
        raw = detector.detect([tensor])[0]
        frame = Frame(clip.name, index, pts, 0.0, image)
        dets = frame_detections(frame, raw, mask_threshold)
        frames.append(
            FrameDetections(dets.boxes, dets.scores, label_to_class[dets.labels], [rle_str(r) for r in dets.rles])
        )
        if index % 25 == 0:
            log.info("%s: frame %d, %.1f s per frame", clip.name, index, (time.monotonic() - started) / (index + 1))
    return DetectionSet("model", frames)
