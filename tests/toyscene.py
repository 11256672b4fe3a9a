"""A tiny, exactly known scene for tracker tests and speed benchmarks (not for accuracy claims: see the
evaluation harness, which uses `synth` clips and the real model).

A textured background, optionally panning, with elliptical objects moving in straight lines. Detections are
derived from the ground truth: boxes, full-frame masks and COCO RLEs, optional box jitter and dropped detections.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from pipeline.items import Detections, Frame


@dataclass(slots=True)
class ToyObject:
    start: tuple[float, float]  # centre at frame 0, scene coordinates
    velocity: tuple[float, float]  # pixels per frame
    size: tuple[float, float]  # width, height
    label: int = 1


def textured_background(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth random texture with corners everywhere, so camera motion is measurable."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1), dtype=np.uint8)
    base = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
    fine = rng.integers(0, 60, (height, width), dtype=np.uint8)
    grey = cv2.add(base // 2, fine)
    return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))


def _ellipse(box: np.ndarray) -> tuple[tuple[int, int], tuple[int, int]]:
    """Integer centre and half-axes of the ellipse inscribed in a box, as OpenCV wants them."""
    centre = (int(np.round((box[0] + box[2]) / 2)), int(np.round((box[1] + box[3]) / 2)))
    axes = (max(1, int((box[2] - box[0]) / 2)), max(1, int((box[3] - box[1]) / 2)))
    return centre, axes


class ToyScene:
    def __init__(
        self,
        objects: list[ToyObject],
        size: tuple[int, int] = (360, 640),  # height, width
        pan: tuple[float, float] = (0.0, 0.0),  # camera motion, pixels per frame (scene moves by -pan)
        shake: float = 0.0,  # amplitude (pixels) of an added side-to-side camera swing, 0.4 rad per frame
        fps: float = 30.0,
        seed: int = 0,
        with_rles: bool = True,
    ) -> None:
        self.objects = objects
        self.height, self.width = size
        self.pan = pan
        self.shake = shake
        self.fps = fps
        self.with_rles = with_rles
        self.rng = np.random.default_rng(seed)
        margin = min(2000, int(64 + shake + 200 * max(abs(pan[0]), abs(pan[1])))) if any(pan) or shake else 0
        self._margin = margin
        self.world = textured_background(self.height + 2 * margin, self.width + 2 * margin, seed)

    def camera_offset(self, index: int) -> tuple[float, float]:
        swing = self.shake * np.sin(0.4 * index)
        return self.pan[0] * index + swing, self.pan[1] * index + 0.5 * swing

    def gt_boxes(self, index: int) -> np.ndarray:
        ox, oy = self.camera_offset(index)
        rows = []
        for obj in self.objects:
            cx = obj.start[0] + obj.velocity[0] * index - ox
            cy = obj.start[1] + obj.velocity[1] * index - oy
            rows.append([cx - obj.size[0] / 2, cy - obj.size[1] / 2, cx + obj.size[0] / 2, cy + obj.size[1] / 2])
        return np.asarray(rows, np.float64).reshape(-1, 4)

    def image(self, index: int) -> np.ndarray:
        ox, oy = self.camera_offset(index)
        m = self._margin
        shift = np.float32([[1, 0, -(m + ox)], [0, 1, -(m + oy)]])
        img = cv2.warpAffine(self.world, shift, (self.width, self.height), flags=cv2.INTER_LINEAR)
        for k, box in enumerate(self.gt_boxes(index)):
            centre, axes = _ellipse(box)
            colour = tuple(int(c) for c in ((40 * k + 80) % 256, (90 * k + 30) % 256, 200))
            cv2.ellipse(img, centre, axes, 0, 0, 360, colour, -1)
        return img

    def frame(self, index: int, source_id: str = "toy") -> Frame:
        return Frame(source_id, index, index / self.fps, 1_700_000_000.0 + index / self.fps, self.image(index))

    def detections(
        self,
        index: int,
        jitter_px: float = 0.0,
        drop: float = 0.0,
        score: float = 0.9,
        keep: list[int] | None = None,
    ) -> Detections:
        boxes = self.gt_boxes(index)
        chosen = [
            k for k in range(len(boxes)) if (keep is None or k in keep) and (drop == 0 or self.rng.random() >= drop)
        ]
        boxes = boxes[chosen]
        if jitter_px > 0 and len(boxes):
            boxes = boxes + self.rng.normal(0, jitter_px, boxes.shape)
        masks = np.zeros((len(boxes), self.height, self.width), bool)
        for i, box in enumerate(boxes):
            canvas = np.zeros((self.height, self.width), np.uint8)
            centre, axes = _ellipse(box)
            cv2.ellipse(canvas, centre, axes, 0, 0, 360, 1, -1)
            masks[i] = canvas.astype(bool)
        clipped = boxes.copy()
        clipped[:, [0, 2]] = clipped[:, [0, 2]].clip(0, self.width)
        clipped[:, [1, 3]] = clipped[:, [1, 3]].clip(0, self.height)
        rles: list[dict] = []
        if self.with_rles:
            for m in masks:
                rle = mask_utils.encode(np.asfortranarray(m))
                rles.append({"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")})
        labels = np.array([self.objects[k].label for k in chosen], np.int64)
        return Detections.from_full_masks(
            boxes=clipped.astype(np.float32),
            scores=np.full(len(boxes), score, np.float32),
            labels=labels,
            masks=masks,
            rles=rles,
        )


def write_toy_clip(
    out_dir, scene: ToyScene, frames: int, mode: str = "toy", seed: int = 0, names: dict[int, str] | None = None
) -> None:
    """Write a toy scene as a clip in the layout `synth.render_clip` uses (video.mp4 + COCO annotations.json with
    track ids), so the evaluation harness can be tested without the simulator."""
    import json
    from pathlib import Path

    import av

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    with av.open(str(out / "video.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=int(scene.fps))
        stream.width, stream.height, stream.pix_fmt = scene.width, scene.height, "yuv420p"
        stream.options = {"crf": "18", "preset": "ultrafast"}
        for index in range(frames):
            image = scene.image(index)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
            images.append(
                {"id": index + 1, "file_name": f"video.mp4#{index:06d}", "width": scene.width,
                 "height": scene.height, "frame_index": index}
            )  # fmt: skip
            dets = scene.detections(index)
            for k, box in enumerate(dets.boxes):
                if dets.full_mask(k).sum() < 16 or min(box[2] - box[0], box[3] - box[1]) < 2:
                    continue  # (almost) out of frame: nothing to see, not annotated
                rle = mask_utils.encode(np.asfortranarray(dets.full_mask(k).astype(np.uint8)))
                annotations.append(
                    {"id": len(annotations) + 1, "image_id": index + 1, "category_id": int(dets.labels[k]),
                     "segmentation": {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")},
                     "bbox": [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])],
                     "area": float(mask_utils.area(rle)), "iscrowd": 0, "track_id": k + 1}
                )  # fmt: skip
        for packet in stream.encode():
            container.mux(packet)
    info = {"mode": mode, "seed": seed, "fps": scene.fps, "frames": frames, "size": [scene.width, scene.height]}
    names = names or {}
    categories = [{"id": c, "name": names.get(c, f"class{c}")} for c in sorted({o.label for o in scene.objects})]
    (out / "annotations.json").write_text(
        json.dumps({"info": info, "images": images, "annotations": annotations, "categories": categories})
    )
