"""Section 4 of the GPU check: the whole pipeline at 720p, with the zero-cost stand-in model and with R50-FPN.

The real `Pipeline` runs (batcher → inference → masks → tracker → publish) with its real stages and threads.
What is left out, and why: decoding (frames are pre-rendered in memory, so the figure is what the stages after the
decoder can take; benchmarks/pipeline_ceiling.py measures decode) and Redis (the GPU machine has no redis-server:
events are JSON-encoded as the publisher does, counted and dropped).

Per run: pipeline fps (first to last frame out, so the model's warm-up is not counted), realised batch size,
inference ms per batch and masks-stage ms per frame (each stage's `process` timed in its own thread).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from benchmarks.standin_model import StandinDetector
from pipeline.config import BatcherConfig, ModelConfig, PipelineConfig, SourceConfig
from pipeline.events import encode_event
from pipeline.items import Frame, FrameResult
from pipeline.runner import Pipeline
from sinks.base import EventSink, FrameSink
from sources.base import SourceItem, VideoSource
from stages.inference import Detector, InferenceStage
from stages.masks import MasksStage

if TYPE_CHECKING:
    from benchmarks.gpu_check import CheckRun


class MemorySource(VideoSource):
    """A file-like source (every frame, in order) that hands out pre-rendered frames: no decoding cost."""

    def __init__(self, cfg: SourceConfig, images: list[np.ndarray], frames: int, fps: float = 30.0) -> None:
        super().__init__(cfg)
        self.images = images
        self.frames = frames
        self.fps = fps
        self._index = -1

    def _items(self) -> Iterator[SourceItem]:
        height, width = self.images[0].shape[:2]
        yield self._status("started", width=width, height=height, fps=self.fps, codec="memory")
        for index in range(self.frames):
            if self.stopped:
                break
            self._index = index
            self.frames_delivered += 1
            yield Frame(self.source_id, index, index / self.fps, time.time(), self.images[index % len(self.images)])
        yield self._status("ended", "end of file", frames=self.frames_delivered, decode_errors=0)

    def _last_index(self) -> int | None:
        return self._index if self._index >= 0 else None


class EncodingSink(EventSink):
    """Encodes each event to JSON as the Redis publisher and the JSONL sink do, then drops it (no I/O)."""

    def __init__(self) -> None:
        self.events = 0
        self.bytes = 0

    def publish(self, source_id: str, events: list[dict[str, Any]]) -> None:
        for event in events:
            self.bytes += len(encode_event(event))
        self.events += len(events)


class FrameClock(FrameSink):
    """When each frame came out of the pipeline (fps from the first to the last, warm-up excluded)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def write(self, result: FrameResult) -> None:
        self.times.append(time.perf_counter())

    def fps(self) -> float:
        span = self.times[-1] - self.times[0] if len(self.times) > 1 else 0.0
        return (len(self.times) - 1) / span if span > 0 else 0.0


@dataclass
class StageTime:
    seconds: float = 0.0
    calls: int = 0
    frames: int = 0


@contextmanager
def timed_stages(*stage_classes: type) -> Iterator[dict[str, StageTime]]:
    """Time `process` of these stage classes (each runs in its own thread: wall time there is its cost)."""
    timings: dict[str, StageTime] = {cls.name: StageTime() for cls in stage_classes}
    lock = threading.Lock()
    originals = {cls: cls.process for cls in stage_classes}

    def timed(cls: type) -> Any:
        original = originals[cls]

        def process(self: Any, item: Any) -> Any:
            started = time.perf_counter()
            out = original(self, item)
            elapsed = time.perf_counter() - started
            with lock:
                timing = timings[cls.name]
                timing.seconds += elapsed
                timing.calls += 1
                timing.frames += len(item.frames)
            return out

        return process

    for cls in stage_classes:
        cls.process = timed(cls)
    try:
        yield timings
    finally:
        for cls, original in originals.items():
            cls.process = original


def sample_images(height: int, width: int, count: int = 8) -> list[np.ndarray]:
    """A few distinct frames (smooth gradients plus noise), cycled: content does not change the stages' cost."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    images = []
    for i in range(count):
        noise = rng.integers(0, 40, (height, width, 3)).astype(np.float32)
        images.append(np.clip(ramp * 0.6 + noise + 20 * i, 0, 255).astype(np.uint8))
    return images


def run_pipeline(
    run: CheckRun, detector: Detector, sources: int, batch_size: int, frames: int, precision: str
) -> dict[str, Any]:
    height, width = run.frame
    images = sample_images(height, width)
    source_cfgs = [SourceConfig(id=f"cam{i}", url=f"memory-{i}.mp4", live=False) for i in range(sources)]
    cfg = PipelineConfig(
        sources=source_cfgs,
        model=ModelConfig(device=run.device.type, precision=precision, warmup=True, warmup_size=run.frame),
        batcher=BatcherConfig(batch_size=batch_size, max_wait_ms=20.0),
    )
    per_source = max(1, frames // sources)
    given = {c.id: MemorySource(c, images, per_source) for c in source_cfgs}
    sink, clock = EncodingSink(), FrameClock()
    pipeline = Pipeline(cfg, detector=detector, event_sinks=[sink], frame_sinks=[clock], sources=given)
    with timed_stages(InferenceStage, MasksStage) as timings:
        report = pipeline.run()
    inference, masks = timings[InferenceStage.name], timings[MasksStage.name]
    return {
        "model": detector.arch,
        "precision": detector.precision,
        "sources": sources,
        "batch_size": batch_size,
        "frames": report.frames,
        "expected_frames": per_source * sources,
        "fps": clock.fps(),
        "realised_batch": inference.frames / inference.calls if inference.calls else 0.0,
        "inference_ms_per_batch": 1000 * inference.seconds / max(1, inference.calls),
        "masks_ms_per_frame": 1000 * masks.seconds / max(1, masks.frames),
        "events": sink.events,
        "event_bytes": sink.bytes,
        "failed_sources": [s.source_id for s in report.failed],
    }


def bench_pipeline(run: CheckRun) -> None:
    from benchmarks.gpu_check import FORCED_SCORE_THRESHOLD, r50_model

    height, width = run.frame
    print(f"\n## Whole pipeline at {width}x{height} (frames in memory, events JSON-encoded, no Redis)")
    print(
        "| model | precision | sources | batch size / realised | frames | pipeline fps | inference ms/batch | "
        "masks ms/frame | events |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    batch = 2 if run.smoke else 8
    objects = 5 if run.smoke else 30
    r50_precision = "fp32" if run.smoke else "fp16"
    r50_detections = 2 if run.smoke else 30
    configs: list[tuple[str, int, str]] = [("standin", 1, "fp32"), ("standin", 4, "fp32"), ("r50", 4, r50_precision)]
    for kind, sources, precision in configs:
        if kind == "standin":
            detector: Detector = StandinDetector.create(objects, run.device)
        else:
            model = r50_model(run)
            cfg = ModelConfig(
                device=run.device.type,
                precision=precision,
                score_threshold=FORCED_SCORE_THRESHOLD,
                max_detections=r50_detections,
            )
            from kernels import swap_poolers

            swap_poolers(model, backend=run.backend)
            names = [
                "background",
                *(f"class{i}" for i in range(1, model.roi_heads.box_predictor.cls_score.out_features)),
            ]
            detector = Detector.from_model(
                model, names, cfg, device=run.device, arch=f"r50-fpn ({r50_detections} forced)"
            )
        frames = run.pipeline_frames // 2 if run.smoke and kind == "r50" else run.pipeline_frames  # CPU: R50 is slow
        row = run_pipeline(run, detector, sources, batch, frames, precision)
        print(
            f"| {row['model']} | {row['precision']} | {sources} | {batch} / {row['realised_batch']:.1f} | "
            f"{row['frames']} | {row['fps']:.1f} | {row['inference_ms_per_batch']:.1f} | "
            f"{row['masks_ms_per_frame']:.2f} | {row['events']} |"
        )
        complete = row["frames"] == row["expected_frames"] and not row["failed_sources"] and row["events"] > 0
        run.check(
            f"pipeline {kind} x{sources} sources: every frame through, events out",
            complete,
            f"{row['frames']} of {row['expected_frames']} frames, {row['events']} events, "
            f"failed sources {row['failed_sources'] or 'none'}",
        )
        run.results["pipeline"].append(row)
        if run.device.type == "cuda":
            torch.cuda.empty_cache()
