"""Inference: Mask R-CNN on batches of frames, on the CPU or a CUDA device.

The model is run part by part (transform → backbone → RPN → RoI heads) instead of through its `forward`, so that
its last step — torchvision's per-detection mask paste — is replaced by our batched paste (`stages.masks`), which
runs in the next stage's thread while the model works on the next batch. Score threshold and detection cap are
applied inside the RoI heads (fewer masks are computed); the class filter right after.

Before its first real frame the stage can run one dummy batch (`model.warmup`, on by default on CUDA) so the
first frames do not pay for kernel compilation and cuDNN's start-up, and it sets `cudnn.benchmark` where frame
sizes are fixed (docs/PIPELINE.md, "GPU", has the trade-off).
With `model.tiling` (sliced inference, `maskrcnn.tiling`), every frame of a batch is cut into its windows (tiles +
the whole frame) and all windows of the batch go through the model as one batch; each frame's detections are then
merged across its windows, still as raw detections, so the masks stage pastes each object's mask once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torchvision.models.detection.transform import resize_boxes

from pipeline.config import ModelConfig, SourceConfig
from pipeline.config.model import TilingConfig
from pipeline.errors import WeightsError, config_error
from pipeline.items import Batch, InferenceBatch, RawDetections
from pipeline.metrics import BATCH_SIZE, INFERENCE_SECONDS
from pipeline.stage import Stage
from pipeline.stats import RunStats

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    """`auto` → cuda when available, else cpu; asking for cuda without one is a config error (not a silent CPU run)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise config_error("model.device", f"CUDA is not available on this machine (got {name!r})")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise config_error("model.device", f"there are {torch.cuda.device_count()} CUDA devices (got {name!r})")
    return device


@dataclass
class Detector:
    """A Mask R-CNN ready for batched inference: model in eval mode on its device, plus what its labels mean."""

    # a torchvision-style Mask R-CNN (transform, backbone, rpn, roi_heads: checked in from_model); Any because
    # nn.Module types its attributes as `Tensor | Module`, which every use here would have to narrow
    model: Any
    class_names: list[str]
    device: torch.device
    precision: str = "fp32"
    keep_labels: torch.Tensor | None = None  # label indices to keep (class filter); None = all
    arch: str = "unknown"
    metadata: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)  # names the model in `stream.started` and the status line
    tiling: TilingConfig | None = None  # sliced inference; None = whole frames
    max_detections: int = 100  # per frame, after merging tiles

    @classmethod
    def from_model(
        cls,
        model: Any,
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
        precision = supported_precision(cfg.precision, device)
        keep = None
        if cfg.classes is not None:
            unknown = [name for name in cfg.classes if name not in class_names]
            if unknown:
                raise config_error(
                    "model.classes",
                    f"{', '.join(map(repr, unknown))} not among the model's classes ({', '.join(class_names)})",
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
            tiling=cfg.tiling,
            max_detections=cfg.max_detections,
        )

    def detect(self, images: list[torch.Tensor]) -> list[RawDetections]:
        """CHW images on the device (uint8, or float in [0, 1]) → raw detections per image, in the images' pixels."""
        images = [to_unit_float(img) for img in images]
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
        dtype = _AUTOCAST_DTYPES.get(self.precision)
        with torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None):
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

    def warm_up(self, batch_size: int, size: tuple[int, int]) -> float:
        """One dummy batch through every part of the model, masks included; returns its seconds.

        The first call compiles our RoIAlign kernel, initialises cuDNN (and, with cudnn.benchmark, times its
        algorithms for this shape) and grows the allocator's pool; done here, the first real batch is not late.
        The score threshold is lifted for the call so detections exist and the mask head runs too.
        """
        started = time.perf_counter()
        heads = self.model.roi_heads
        threshold = heads.score_thresh
        images = [torch.full((3, *size), 0.5, device=self.device) for _ in range(batch_size)]
        heads.score_thresh = 0.0
        try:
            self.detect(images)
        finally:
            heads.score_thresh = threshold
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - started


_AUTOCAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def supported_precision(precision: str, device: torch.device) -> str:
    """The configured precision, or fp32 (with a warning) where the device cannot run it."""
    if precision == "fp16" and device.type != "cuda":
        log.warning("model.precision fp16 needs CUDA; running fp32 on %s", device)
        return "fp32"
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        log.warning("model.precision bf16: %s does not support bf16; running fp32", torch.cuda.get_device_name(device))
        return "fp32"
    return precision


def wants_warmup(cfg: ModelConfig, device: torch.device) -> bool:
    """`model.warmup`, where null means on CUDA only (on the CPU nothing is compiled or tuned: it costs seconds)."""
    return cfg.warmup if cfg.warmup is not None else device.type == "cuda"


def fixed_frame_size(source: SourceConfig) -> bool:
    """Frames of one size for the whole run: a single file. A camera may switch resolution mid-stream, and files
    played back to back (a list or a glob) may differ."""
    return not source.live and isinstance(source.url, str) and not (set("*?[") & set(source.url))


def wants_cudnn_benchmark(cfg: ModelConfig, device: torch.device, sources: Sequence[SourceConfig]) -> bool:
    """`model.cudnn_benchmark`, where null means on CUDA when every source has a fixed frame size."""
    if device.type != "cuda":
        return False
    return cfg.cudnn_benchmark if cfg.cudnn_benchmark is not None else all(map(fixed_frame_size, sources))


def to_unit_float(image: torch.Tensor) -> torch.Tensor:
    """uint8 CHW (as the batcher sends frames) → float in [0, 1], on the image's device; float images pass as is."""
    return image.float().div_(255.0) if image.dtype == torch.uint8 else image


def load_detector(cfg: ModelConfig) -> Detector:
    """Build the configured model with the model factory (`maskrcnn.load_model`) on the configured device."""
    import maskrcnn  # the factory imports heavy optional parts (CuPy); keep it off `maskstream --help`

    device = resolve_device(cfg.device)
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    loaded = maskrcnn.load_model(
        weights=cfg.weights, arch=cfg.arch, device=device, roi_align=cfg.roi_align, **cfg.builder_options()
    )
    detector = Detector.from_model(
        loaded.model,
        loaded.class_names,
        cfg,
        device=device,
        arch=loaded.arch,
        metadata=getattr(loaded, "metadata", None),
    )
    detector.info = loaded.describe()
    return detector


class InferenceStage(Stage):
    """`Batch` → `InferenceBatch` (raw detections stay on the device; masks are pasted by the next stage)."""

    name = "inference"

    def __init__(
        self,
        detector: Detector,
        *,
        warmup_batch: int = 0,
        warmup_size: tuple[int, int] = (720, 1280),
        cudnn_benchmark: bool = False,
        stats: RunStats | None = None,
        ready: threading.Event | None = None,
    ) -> None:
        self.detector = detector
        self.ready = ready  # set when the first real batch can run: /readyz waits for the warm-up
        self.warmup_batch = warmup_batch  # 0 = no warm-up
        self.warmup_size = warmup_size
        self.cudnn_benchmark = cudnn_benchmark
        self.stats = stats

    def start(self) -> None:
        if self.detector.device.type == "cuda":
            # process-wide flag: set from the one stage that runs the model, before its first batch
            torch.backends.cudnn.benchmark = self.cudnn_benchmark
            log.info("cudnn.benchmark %s", "on (input shapes are stable)" if self.cudnn_benchmark else "off")
        if self.warmup_batch > 0:
            height, width = self.warmup_size
            log.info(
                "warming up the model: one dummy batch of %d frames %dx%d on %s (%s)",
                self.warmup_batch,
                width,
                height,
                self.detector.device,
                self.detector.precision,
            )
            seconds = self.detector.warm_up(self.warmup_batch, self.warmup_size)
            log.info("warm-up done in %.2f s", seconds)
        if self.ready is not None:
            self.ready.set()

    def process(self, item: Batch) -> Iterable[InferenceBatch]:
        started = time.perf_counter()
        detections = self.detector.detect(item.images)
        if self.detector.device.type == "cuda":
            torch.cuda.synchronize(self.detector.device)  # honest timing: the work is done, not just queued
        INFERENCE_SECONDS.observe(time.perf_counter() - started)
        BATCH_SIZE.observe(len(item.frames))
        if self.stats is not None:
            self.stats.batch_done(len(item.frames))
        return [InferenceBatch(item.frames, detections, item.created)]
