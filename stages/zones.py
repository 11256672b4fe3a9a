"""Zones stage (after the tracker, before publish): tracks + masks → zone and line events (`analytics.rules`).

One `RegionRules` per source that has zones or lines, placed in the frame on the source's first frame (when its
size is known: fractions resolve then) and again if its size changes. A zone or line with a point outside the
frame is left out with one `stream.error` naming the field; the stream and the other regions keep going. Events
ride on the frame's `FrameResult.analytics`; exits of tracks that end with their source ride on `TracksEnded`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from analytics.rules import Moment, ObjectView, RegionRules
from pipeline.config.sources import SourceConfig
from pipeline.errors import ConfigError
from pipeline.items import AnalyticsFrame, Detections, FrameResult, StreamStatus, TracksEnded, ZoneEvent
from pipeline.metrics import LINE_CROSSINGS, ZONE_EVENTS, ZONE_OCCUPANCY
from pipeline.stage import Stage


def detection_mask(detections: Detections, index: int) -> tuple[np.ndarray, int, int]:
    """Mask of detection `index` as (crop of its box window, x0, y0): the one place that knows the mask layout."""
    x0, y0 = int(detections.windows[index, 0]), int(detections.windows[index, 1])
    return detections.mask(index), x0, y0


def has_regions(sources: Sequence[SourceConfig]) -> bool:
    return any(source.zones or source.lines for source in sources)


class ZonesStage(Stage):
    name = "zones"

    def __init__(self, sources: Sequence[SourceConfig], class_names: Sequence[str]) -> None:
        self._rules: dict[str, RegionRules] = {}
        for position, source in enumerate(sources):
            if source.zones or source.lines:
                try:
                    self._rules[source.id] = RegionRules(
                        source.zones, source.lines, class_names, f"sources[{position}]."
                    )
                except ValueError as exc:
                    raise ConfigError(f"config error: {exc}") from None
        self._last_seen: dict[str, dict[int, Moment]] = {}

    def process(self, item: FrameResult) -> Iterable[Any]:
        rules = self._rules.get(item.frame.source_id)
        if rules is None:
            return [item]
        out: list[Any] = []
        frame = item.frame
        height, width = frame.size
        for problem in rules.resolve(width, height):
            out.append(StreamStatus(frame.source_id, "error", time.time(), reason=problem, frame_index=frame.index))
        now = Moment(frame.index, frame.pts, frame.capture_time)
        last_seen = self._last_seen.setdefault(frame.source_id, {})
        objects = []
        for track in item.tracks:
            if track.detection_index is None:
                continue
            crop, x0, y0 = detection_mask(item.detections, track.detection_index)
            box = item.detections.boxes[track.detection_index]
            objects.append(ObjectView(int(track.track_id), int(track.label), box, crop, x0, y0))
            last_seen[int(track.track_id)] = now
        events = rules.step(now, objects)
        ended = [int(t.track.track_id) for t in item.transitions if t.kind == "ended"]
        if ended:
            events += rules.end_tracks([(tid, last_seen.pop(tid, now)) for tid in ended], now)
        self._count(frame.source_id, events)
        item.analytics = AnalyticsFrame(events, rules.overlay())
        out.append(item)
        return out

    def on_control(self, item: Any) -> Iterable[Any]:
        if isinstance(item, TracksEnded) and (rules := self._rules.get(item.source_id)) is not None:
            last_seen = self._last_seen.pop(item.source_id, {})
            ended = []
            for transition in item.transitions:
                track = transition.track
                fallback = Moment(int(track.last_frame), None, float(track.last_time))
                ended.append((int(track.track_id), last_seen.get(int(track.track_id), fallback)))
            item.zone_events.extend(rules.end_tracks(ended))
            self._count(item.source_id, item.zone_events)
        return [item]

    def on_status(self, status: StreamStatus) -> Iterable[Any]:
        if status.kind == "ended":
            self._last_seen.pop(status.source_id, None)
        return [status]

    @staticmethod
    def _count(source_id: str, events: list[ZoneEvent]) -> None:
        for event in events:
            if event.kind == "line.crossed":
                LINE_CROSSINGS.labels(source=source_id, line=event.region, direction=event.direction).inc()
            elif event.kind == "zone.occupancy":
                ZONE_OCCUPANCY.labels(source=source_id, zone=event.region).set(sum((event.counts or {}).values()))
            else:
                ZONE_EVENTS.labels(source=source_id, zone=event.region, event=event.kind.split(".", 1)[1]).inc()
