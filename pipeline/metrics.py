"""Prometheus metrics of the whole pipeline, declared in one place so names and labels stay consistent.

Stages import the metric they update (`from pipeline.metrics import FRAMES_DROPPED`); the HTTP endpoint
(`/metrics`, `/healthz`, `/readyz`) is served by the runtime. Label `source` is always the source id, never a URL
(URLs may carry credentials).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

FRAMES_DECODED = Counter("maskstream_frames_decoded_total", "Frames delivered by the decoder", ["source"])
FRAMES_PROCESSED = Counter("maskstream_frames_processed_total", "Frames that went through the model", ["source"])
FRAMES_DROPPED = Counter(
    "maskstream_frames_dropped_total",
    "Frames not processed: reason=fps_cap (rate limit), stale (live queue full, oldest dropped)",
    ["source", "reason"],
)
DECODE_ERRORS = Counter("maskstream_decode_errors_total", "Packets or frames that failed to decode", ["source"])
RECONNECTS = Counter("maskstream_source_reconnects_total", "Reconnection attempts of live sources", ["source"])
SOURCE_UP = Gauge("maskstream_source_up", "1 while the source delivers frames, else 0", ["source"])
SOURCE_FPS = Gauge("maskstream_source_fps", "Frames per second processed, moving average", ["source"])
QUEUE_DEPTH = Gauge("maskstream_queue_depth", "Items waiting in a stage's input queue", ["queue"])
INFERENCE_SECONDS = Histogram(
    "maskstream_inference_seconds", "Model time per batch (pre/post-processing included)", buckets=_LATENCY_BUCKETS
)
BATCH_SIZE = Histogram("maskstream_batch_size", "Frames per model batch", buckets=(1, 2, 4, 8, 16, 32))
END_TO_END_SECONDS = Histogram(
    "maskstream_end_to_end_seconds",
    "From capture (decoder output) to the frame's events being handed to the publisher",
    ["source"],
    buckets=_LATENCY_BUCKETS,
)
EVENTS_PUBLISHED = Counter("maskstream_events_published_total", "Events written to Redis", ["source"])
EVENTS_SPOOLED = Gauge("maskstream_events_spooled", "Events waiting in the publisher's spool (Redis unavailable)")
EVENTS_DROPPED = Counter(
    "maskstream_events_dropped_total", "Events dropped because the spool was full during a Redis outage", ["source"]
)
REDIS_UP = Gauge("maskstream_redis_up", "1 while the publisher is connected to Redis, else 0")
DETECTIONS_DROPPED = Counter(
    "maskstream_detections_dropped_total",
    "Detections the masks stage dropped: reason=non_finite_box (a NaN/inf box has no place in the frame)",
    ["source", "reason"],
)
STAGE_BUSY_SECONDS = Counter(
    "maskstream_stage_busy_seconds_total", "Seconds a stage thread spent working (not waiting on its queues)", ["stage"]
)
ZONE_EVENTS = Counter(
    "maskstream_zone_events_total", "Zone events: event=entered, exited, dwell", ["source", "zone", "event"]
)
LINE_CROSSINGS = Counter(
    "maskstream_line_crossings_total", "Line crossings by direction", ["source", "line", "direction"]
)
ZONE_OCCUPANCY = Gauge("maskstream_zone_occupancy", "Tracks inside a zone now (every class)", ["source", "zone"])
EVENTS_FENCED = Counter(
    "maskstream_events_fenced_total",
    "Events refused by the fence script: this worker no longer owns the source (--ray)",
    ["source"],
)
EVENTS_DUPLICATE = Counter(
    "maskstream_events_duplicate_total", "Events not written because their id was already in Redis (--ray)", ["source"]
)
