"""COCO-format instance datasets: an image folder with annotations.json, or a synth clip (video.mp4 + annotations).

Dataset categories are mapped to model labels BY NAME, so a COCO file with COCO's ids (person=1, truck=8) trains
a model whose labels are contiguous. `iscrowd` annotations are ignore regions: never used as training targets.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
from PIL import Image
from pycocotools import mask as mask_utils

from pipeline.errors import DatasetError

log = logging.getLogger(__name__)

REQUIRED_IMAGE_FIELDS = ("id", "width", "height")
REQUIRED_ANNOTATION_FIELDS = ("id", "image_id", "category_id", "bbox", "segmentation")


@dataclass
class CocoFile:
    """A validated COCO instances file and where its pixels come from."""

    root: Path
    data: dict[str, Any]
    video: Path | None  # a synth clip: frames come from this video by `frame_index`

    @property
    def images(self) -> list[dict[str, Any]]:
        return self.data["images"]

    @property
    def category_names(self) -> dict[int, str]:
        return {c["id"]: c["name"] for c in self.data["categories"]}

    def annotations_by_image(self) -> dict[int, list[dict[str, Any]]]:
        grouped: dict[int, list[dict[str, Any]]] = {image["id"]: [] for image in self.images}
        for ann in self.data["annotations"]:
            grouped.setdefault(ann["image_id"], []).append(ann)
        return grouped


def read_coco(root: str | Path) -> CocoFile:
    """Read and validate `root/annotations.json` (a dataset dir or a synth clip dir); errors name the problem."""
    root = Path(root)
    path = root / "annotations.json" if root.is_dir() else root
    if not path.is_file():
        raise DatasetError(f"no COCO annotations at {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not valid JSON: {exc}") from None
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DatasetError(f"{path}: missing the '{key}' list of a COCO instances file")
    if not data["images"]:
        raise DatasetError(f"{path}: the dataset is empty (no images)")
    for kind, items, fields in (
        ("image", data["images"], REQUIRED_IMAGE_FIELDS),
        ("annotation", data["annotations"], REQUIRED_ANNOTATION_FIELDS),
    ):
        for item in items:
            missing = [f for f in fields if f not in item]
            if missing:
                raise DatasetError(f"{path}: {kind} {item.get('id', '?')} lacks field(s) {', '.join(missing)}")
    video = path.parent / "video.mp4"
    has_files = all(
        "file_name" in image and not str(image["file_name"]).startswith("video.mp4") for image in data["images"]
    )
    if not has_files:
        if not video.is_file():
            raise DatasetError(f"{path}: images have no file_name and there is no video.mp4 beside it")
        if any("frame_index" not in image for image in data["images"]):
            raise DatasetError(f"{path}: clip images must carry frame_index")
    return CocoFile(path.parent, data, None if has_files else video)


def label_map(coco: CocoFile, class_names: tuple[str, ...]) -> dict[int, int]:
    """Dataset category id -> model label, by name; categories the model lacks are skipped (logged once)."""
    index = {name: i for i, name in enumerate(class_names)}
    mapping = {}
    for cat_id, name in coco.category_names.items():
        if name in index:
            mapping[cat_id] = index[name]
        else:
            log.warning("dataset category %r is not one of the model's classes; its annotations are ignored", name)
    if not mapping:
        raise DatasetError(f"{coco.root}: none of the dataset's categories is a class of the model ({class_names[1:]})")
    return mapping


def decode_segmentation(segmentation: Any, height: int, width: int) -> np.ndarray:
    """An annotation's mask as HxW uint8, from RLE (compressed or not) or polygons."""
    if isinstance(segmentation, list):
        rles = mask_utils.frPyObjects(segmentation, height, width)
        rle = mask_utils.merge(rles)
    elif isinstance(segmentation.get("counts"), list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = segmentation
    return mask_utils.decode(rle)


def iter_clip_frames(video: Path) -> Iterator[np.ndarray]:
    with av.open(str(video)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="rgb24")


class InstanceDataset(torch.utils.data.Dataset):
    """(image float CxHxW in [0,1], target dict) pairs for torchvision's Mask R-CNN."""

    def __init__(self, root: str | Path, class_names: tuple[str, ...]) -> None:
        self.coco = read_coco(root)
        self.labels = label_map(self.coco, class_names)
        by_image = self.coco.annotations_by_image()
        self.items = [(image, by_image.get(image["id"], [])) for image in self.coco.images]
        self._frames: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.items)

    def image(self, index: int) -> np.ndarray:
        image, _ = self.items[index]
        if self.coco.video is not None:
            if self._frames is None:  # clips are short: decode once, in order
                self._frames = list(iter_clip_frames(self.coco.video))
            return self._frames[image["frame_index"]]
        path = self.coco.root / image["file_name"]
        if not path.is_file():
            raise DatasetError(f"image file missing: {path}")
        return np.asarray(Image.open(path).convert("RGB"))

    def target(self, index: int) -> dict[str, torch.Tensor]:
        image, annotations = self.items[index]
        height, width = image["height"], image["width"]
        boxes, labels, masks = [], [], []
        for ann in annotations:
            if ann.get("iscrowd", 0) or ann["category_id"] not in self.labels:
                continue
            x, y, w, h = ann["bbox"]
            if w < 1 or h < 1:
                continue
            boxes.append([x, y, x + w, y + h])
            labels.append(self.labels[ann["category_id"]])
            masks.append(decode_segmentation(ann["segmentation"], height, width))
        return {
            "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(labels, dtype=torch.int64),
            "masks": torch.from_numpy(np.stack(masks)) if masks else torch.zeros((0, height, width), dtype=torch.uint8),
        }

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        rgb = self.image(index)
        # writable: torch refuses to wrap read-only arrays without a warning (decoded images can be read-only)
        tensor = torch.from_numpy(np.require(rgb, requirements=["C", "W"])).permute(2, 0, 1).float().div_(255)
        return tensor, self.target(index)
