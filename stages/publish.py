"""The last stage: results become events and go to every sink.

`PublishStage` builds events (`pipeline.events.EventBuilder`) and hands them to the event sinks (Redis, JSON
Lines: they never block on I/O) and results to the frame sinks (annotated MP4, MOT files). It is also where a
frame's end-to-end latency is measured: capture (decoder output) → events handed to the publisher.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from pipeline.events import EventBuilder
from pipeline.items import FrameResult, StreamStatus, TracksEnded
from pipeline.metrics import END_TO_END_SECONDS, SOURCE_FPS
from pipeline.stage import Stage
from pipeline.stats import RunStats
from sinks.base import EventSink, FrameSink

log = logging.getLogger(__name__)


class PublishStage(Stage):
    name = "publish"

    def __init__(
        self,
        builder: EventBuilder,
        event_sinks: list[EventSink],
        frame_sinks: list[FrameSink] | None = None,
        stats: RunStats | None = None,
        close_timeout_s: float = 30.0,
    ) -> None:
        self.builder = builder
        self.event_sinks = event_sinks
        self.frame_sinks = frame_sinks or []
        self.stats = stats
        self.close_timeout_s = close_timeout_s

    def process(self, item: FrameResult) -> Iterable[Any]:
        frame = item.frame
        events = self.builder.for_frame(item)
        if events:
            self._publish(frame.source_id, events)
        for sink in self.frame_sinks:
            sink.write(item)
        latency = max(0.0, time.time() - frame.capture_time)
        END_TO_END_SECONDS.labels(source=frame.source_id).observe(latency)
        if self.stats is not None:
            self.stats.frame_done(frame.source_id, latency)
            SOURCE_FPS.labels(source=frame.source_id).set(self.stats.sources[frame.source_id].fps())
        return []

    def on_status(self, status: StreamStatus) -> Iterable[Any]:
        self._publish(status.source_id, [self.builder.for_status(status)])
        if self.stats is not None:
            if status.kind == "error":
                self.stats.error(status.source_id, status.reason or "error")
            elif status.kind == "started":
                self.stats.update(status.source_id, state="running", info=dict(status.info))
            elif status.kind == "disconnected":
                self.stats.update(status.source_id, state="reconnecting", state_reason=status.reason)
            elif status.kind == "connected":
                self.stats.update(status.source_id, state="running", state_reason=None)
            elif status.kind == "ended":
                state = "failed" if self.stats.sources[status.source_id].failed else "ended"
                self.stats.update(status.source_id, state=state, end_reason=status.reason, state_reason=status.reason)
        for sink in self.frame_sinks:
            if status.kind == "ended":
                sink.end_source(status.source_id)
            elif status.kind == "started":
                sink.start_source(status.source_id, dict(status.info))
        return []

    def on_control(self, item: Any) -> Iterable[Any]:
        if isinstance(item, TracksEnded):
            events = self.builder.for_ended_tracks(item.source_id, item.transitions)
            events += self.builder.for_zone_events(item.source_id, item.zone_events)
            if events:
                self._publish(item.source_id, events)
        return []

    def _publish(self, source_id: str, events: list[dict[str, Any]]) -> None:
        for sink in self.event_sinks:
            sink.publish(source_id, events)
        if self.stats is not None:
            self.stats.events_published(source_id, events)

    def close(self) -> None:
        for sink in self.frame_sinks:
            try:
                sink.close()
            except Exception:
                log.exception("closing %s failed", type(sink).__name__)
        for event_sink in self.event_sinks:
            try:
                event_sink.close(self.close_timeout_s)
            except Exception:
                log.exception("closing %s failed", type(event_sink).__name__)
