"""Inference: Mask R-CNN on batches of frames, on the CPU or a CUDA device.

The model is run part by part (transform → backbone → RPN → RoI heads) instead of through its `forward`, so that
its last step — torchvision's per-detection mask paste — is replaced by our batched paste (`stages.masks`), which
runs in the next stage's thread while the model works on the next batch. Score threshold and detection cap are
applied inside the RoI heads (fewer masks are computed); the class filter right after.

With `model.tiling` (sliced inference, `maskrcnn.tiling`), every frame of a batch is cut into its windows (tiles +
the whole frame) and all windows of the batch go through the model as one batch; each frame's detections are then
merged across its windows, still as raw detections, so the masks stage pastes each object's mask once.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torchvision.models.detection.transform import resize_boxes

from pipeline.config import ModelConfig
from pipeline.config.model import TilingConfig
from pipeline.errors import ConfigError, WeightsError
from pipeline.items import Batch, InferenceBatch, RawDetections
from pipeline.metrics import BATCH_SIZE, INFERENCE_SECONDS
from pipeline.stage import Stage

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    """`auto` → cuda when available, else cpu; asking for cuda without one is a config error (not a silent CPU run)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"config error: model.device: CUDA is not available on this machine (got {name!r})")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"config error: model.device: there are {torch.cuda.device_count()} CUDA devices (got {name!r})"
            )
    return device


@dataclass
class Detector:
    """A Mask R-CNN ready for batched inference: model in eval mode on its device, plus what its labels mean."""

    model: torch.nn.Module
    class_names: list[str]
    device: torch.device
    precision: str = "fp32"
    keep_labels: torch.Tensor | None = None  # label indices to keep (class filter); None = all
    arch: str = "unknown"
    metadata: dict[str, Any] = field(default_factory=dict)
    tiling: TilingConfig | None = None  # sliced inference; None = whole frames
    max_detections: int = 100  # per frame, after merging tiles

    @classmethod
    def from_model(
        cls,
        model: torch.nn.Module,
        class_names: Sequence[str],
        cfg: ModelConfig,
        device: torch.device | None = None,
        arch: str = "unknown",
        metadata: dict[str, Any] | None = None,
    ) -> Detector:
        for part in ("transform", "backbone", "rpn", "roi_heads"):
            if not hasattr(model, part):
                raise WeightsError(f"model {arch}: not a torchvision-style Mask R-CNN (no {part!r} part)")
        if not getattr(model.roi_heads, "has_mask", lambda: False)():
            raise WeightsError(f"model {arch}: has no mask head")
        device = device or next(model.parameters()).device
        model.eval().to(device)
        model.roi_heads.score_thresh = cfg.score_threshold
        model.roi_heads.detections_per_img = cfg.max_detections
        if cfg.input_size is not None:  # the model's own resize (GeneralizedRCNNTransform) sets the working scale
            model.transform.min_size = (cfg.input_size[0],)
            model.transform.max_size = cfg.input_size[1]
        precision = cfg.precision
        if precision == "fp16" and device.type != "cuda":
            log.warning("model.precision fp16 needs CUDA; running fp32 on %s", device)
            precision = "fp32"
        keep = None
        if cfg.classes is not None:
            unknown = [name for name in cfg.classes if name not in class_names]
            if unknown:
                raise ConfigError(
                    f"config error: model.classes: {', '.join(map(repr, unknown))} not among the model's classes "
                    f"({', '.join(class_names)})"
                )
            keep = torch.tensor([class_names.index(name) for name in cfg.classes], device=device)
        return cls(
            model,
            list(class_names),
            device,
            precision,
            keep,
            arch,
            dict(metadata or {}),
            cfg.tiling,
            cfg.max_detections,
        )

    def detect(self, images: list[torch.Tensor]) -> list[RawDetections]:
        """Float CHW images in [0, 1] on the device → raw detections per image, boxes in the images' pixels."""
        if self.tiling is None:
            return self.detect_whole(images)
        return self.detect_tiled(images, self.tiling)

    @torch.inference_mode()
    def detect_tiled(self, images: list[torch.Tensor], tiling: TilingConfig) -> list[RawDetections]:
        """Sliced inference: every window of every image in one model batch, then a merge per image."""
        from maskrcnn import tiling as tiles

        crops, plans = [], []
        for image in images:
            height, width = int(image.shape[-2]), int(image.shape[-1])
            tiles.warn_if_smaller_than_tile(width, height, tiling)
            windows = tiles.plan_windows(width, height, tiling)
            plans.append((width, height, windows))
            crops += [image[:, w.y0 : w.y1, w.x0 : w.x1] for w in windows]
        found = iter(self.detect_whole(crops))
        results = []
        for width, height, windows in plans:
            whole = tiles.Window(0, 0, width, height)
            parts = []
            for window in windows:
                raw = next(found)
                if tiling.drop_cut and tiling.full_frame and window != whole:
                    raw = tiles.drop_cut(raw, window, width, height)
                parts.append(tiles.shift(raw, window))
            if len(parts) == 1:
                results.append(parts[0])
                continue
            results.append(tiles.merge(tiles.concat(parts), tiling.match_threshold, self.max_detections))
        return results

    @torch.inference_mode()
    def detect_whole(self, images: list[torch.Tensor]) -> list[RawDetections]:
        """Each image as one model input (resized to the model's input size by its transform)."""
        original_sizes = [(int(img.shape[-2]), int(img.shape[-1])) for img in images]
        autocast = torch.autocast("cuda", dtype=torch.float16, enabled=self.precision == "fp16")
        with autocast:
            image_list, _ = self.model.transform(images)
            features = self.model.backbone(image_list.tensors)
            if isinstance(features, torch.Tensor):
                features = OrderedDict([("0", features)])
            proposals, _ = self.model.rpn(image_list, features)
            outputs, _ = self.model.roi_heads(features, proposals, image_list.image_sizes)
        results = []
        for output, resized, original in zip(outputs, image_list.image_sizes, original_sizes, strict=True):
            boxes = resize_boxes(output["boxes"].float(), resized, original)
            scores, labels, masks = output["scores"].float(), output["labels"], output["masks"]
            if self.keep_labels is not None:
                keep = torch.isin(labels, self.keep_labels)
                boxes, scores, labels, masks = boxes[keep], scores[keep], labels[keep], masks[keep]
            results.append(RawDetections(boxes, scores, labels, masks))
        return results


def load_detector(cfg: ModelConfig) -> Detector:
    """Build the configured model with the model factory (`maskrcnn.load_model`) on the configured device."""
    import maskrcnn  # the factory imports heavy optional parts (CuPy); keep it off `maskstream --help`

    device = resolve_device(cfg.device)
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    loaded = maskrcnn.load_model(weights=cfg.weights, arch=cfg.arch, device=device, roi_align=cfg.roi_align)
    return Detector.from_model(
        loaded.model,
        loaded.class_names,
        cfg,
        device=device,
        arch=loaded.arch,
        metadata=getattr(loaded, "metadata", None),
    )


class InferenceStage(Stage):
    """`Batch` → `InferenceBatch` (raw detections stay on the device; masks are pasted by the next stage)."""

    name = "inference"

    def __init__(self, detector: Detector) -> None:
        self.detector = detector

    def process(self, item: Batch) -> Iterable[InferenceBatch]:
        started = time.perf_counter()
        detections = self.detector.detect(item.images)
        if self.detector.device.type == "cuda":
            torch.cuda.synchronize(self.detector.device)  # honest timing: the work is done, not just queued
        INFERENCE_SECONDS.observe(time.perf_counter() - started)
        BATCH_SIZE.observe(len(item.frames))
        return [InferenceBatch(item.frames, detections, item.created)]
