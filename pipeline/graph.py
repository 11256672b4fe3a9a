"""The stage graph as data, and the sinks it ends in: what runs after the sources, in which order, with which queue sizes.

    source queues ──▶ batcher ──▶ inference ──▶ masks ──▶ tracker ──▶ publish (events → Redis / JSONL; results → MP4 / MOT)

`pipeline.runner.Pipeline` builds these stages in this order and wires a bounded queue between each pair.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from pipeline.config import PipelineConfig
from pipeline.errors import MaskstreamError
from pipeline.events import EventBuilder
from pipeline.stage import Stage
from pipeline.stats import RunStats
from sinks.base import EventSink, FrameSink
from stages.batcher import BatcherStage
from stages.inference import Detector, InferenceStage, wants_cudnn_benchmark, wants_warmup
from stages.masks import MasksStage
from stages.publish import PublishStage
from stages.tracker import TrackerStage
from stages.zones import ZonesStage, has_regions


@dataclass(frozen=True)
class GraphContext:
    """What the stages are built from."""

    cfg: PipelineConfig
    detector: Detector
    builder: EventBuilder
    event_sinks: list[EventSink]
    frame_sinks: list[FrameSink]
    stats: RunStats
    model_ready: threading.Event | None = None  # set once the model can take frames (after its warm-up)


@dataclass(frozen=True)
class StageSpec:
    """One stage of the graph: how to build it, and the size of the queue it reads (None: the sources' queues)."""

    name: str
    inbox_size: int | None
    build: Callable[[GraphContext], Stage]
    enabled: Callable[[PipelineConfig], bool] = lambda cfg: True  # e.g. zones only when some source has them


# The stage graph, in the order items flow: each stage reads the queue in front of it and writes the next one's.
# Queues are small: each item holds frames (and, after inference, masks); a deeper pipeline adds latency on live
# feeds and gains nothing once every stage is busy. One batch waits in front of the model (the next one is
# prepared while the current one runs): more would only hold stale live frames. Cheap stages get a little slack.
STAGE_GRAPH: tuple[StageSpec, ...] = (
    StageSpec(
        "batcher",
        None,
        lambda ctx: BatcherStage(
            ctx.cfg.batcher.batch_size,
            ctx.cfg.batcher.max_wait_ms,
            ctx.detector.device,
            ctx.cfg.batcher.pin_memory,
            low_latency=any(source.live for source in ctx.cfg.sources),
        ),
    ),
    StageSpec(
        "inference",
        1,
        lambda ctx: InferenceStage(
            ctx.detector,
            warmup_batch=ctx.cfg.batcher.batch_size if wants_warmup(ctx.cfg.model, ctx.detector.device) else 0,
            warmup_size=ctx.cfg.model.warmup_size,
            cudnn_benchmark=wants_cudnn_benchmark(ctx.cfg.model, ctx.detector.device, ctx.cfg.sources),
            stats=ctx.stats,
            ready=ctx.model_ready,
        ),
    ),
    StageSpec("masks", 2, lambda ctx: MasksStage(ctx.cfg.model.mask_threshold)),
    StageSpec("tracker", 2, lambda ctx: TrackerStage(ctx.cfg.tracker, on_busy=ctx.stats.stage_busy)),
    StageSpec(
        "zones",  # zones and lines judge tracks: after the tracker, before publish
        2,
        lambda ctx: ZonesStage(ctx.cfg.sources, ctx.detector.class_names),
        enabled=lambda cfg: has_regions(cfg.sources),
    ),
    StageSpec(
        "publish",
        2,
        lambda ctx: PublishStage(
            ctx.builder, ctx.event_sinks, ctx.frame_sinks, ctx.stats, ctx.cfg.sinks.close_timeout_s
        ),
    ),
)


def build_event_sinks(cfg: PipelineConfig) -> list[EventSink]:
    """Redis publisher (checked now: an unreachable Redis at start is an error) and the JSON Lines file."""
    sinks: list[EventSink] = []
    if cfg.sinks.jsonl is not None:
        from sinks.jsonl import JsonlSink

        sinks.append(JsonlSink(cfg.sinks.jsonl))
    if cfg.redis is not None:
        from sinks.redis_publisher import RedisPublisher

        publisher = RedisPublisher(cfg.redis)
        try:
            publisher.check()
        except MaskstreamError:
            publisher.close(0.0)
            for sink in sinks:
                sink.close(1.0)
            raise
        sinks.append(publisher)
    return sinks


def build_frame_sinks(cfg: PipelineConfig, class_names: list[str]) -> list[FrameSink]:
    sinks: list[FrameSink] = []
    if cfg.sinks.annotate:
        from sinks.annotated_video import AnnotatedVideoSink

        sinks.append(AnnotatedVideoSink(cfg.sinks.annotate, class_names, several_sources=len(cfg.sources) > 1))
    if cfg.sinks.mot_out is not None:
        from sinks.mot import MotWriter

        sinks.append(MotWriter(cfg.sinks.mot_out))
    return sinks
