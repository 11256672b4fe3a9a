"""Tracker stage: turns each source's per-frame detections into tracks and track lifecycle transitions.

One `MultiObjectTracker` per source id, created on the source's first frame and dropped at the source's end of
stream, so sources never share identities and a finished source leaves nothing behind. At a source's end of stream
the stage closes its open tracks (`TracksEnded`) *before* passing the `ended` status on, so `track.ended` always
precedes `stream.ended`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from pipeline.config.tracker import TrackerConfig
from pipeline.items import FrameResult, StreamStatus, TracksEnded, TrackTransition
from pipeline.stage import Stage
from tracking.tracker import MultiObjectTracker


class TrackerStage(Stage):
    """`track` fills `FrameResult.transitions` and `.tracks`; `end_source` ends a source's live tracks.

    Frames of one source must arrive in order (the runtime keeps per-source order); different sources may be
    processed from different threads.
    """

    name = "tracker"

    def __init__(self, cfg: TrackerConfig | None = None) -> None:
        self.cfg = cfg or TrackerConfig()
        self._trackers: dict[str, MultiObjectTracker] = {}
        self._lock = threading.Lock()

    def _tracker(self, source_id: str) -> MultiObjectTracker:
        with self._lock:
            tracker = self._trackers.get(source_id)
            if tracker is None:
                tracker = self._trackers[source_id] = MultiObjectTracker(self.cfg)
            return tracker

    def process(self, item: FrameResult) -> Iterable[FrameResult]:
        return [self.track(item)]

    def on_status(self, status: StreamStatus) -> Iterable[Any]:
        if status.kind == "ended":
            return [TracksEnded(status.source_id, self.end_source(status.source_id)), status]
        return [status]

    def track(self, result: FrameResult) -> FrameResult:
        if not self.cfg.enabled:
            return result
        step = self._tracker(result.frame.source_id).step(result.frame, result.detections)
        result.transitions.extend(step.transitions)
        result.tracks = step.tracks
        return result

    def end_source(self, source_id: str) -> list[TrackTransition]:
        """End every live track of `source_id` (end of stream) and forget the source's tracker."""
        with self._lock:
            tracker = self._trackers.pop(source_id, None)
        return tracker.finish() if tracker is not None else []

    @property
    def source_ids(self) -> list[str]:
        with self._lock:
            return list(self._trackers)
