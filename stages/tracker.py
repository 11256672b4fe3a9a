"""Tracker stage: turns each source's per-frame detections into tracks and track lifecycle transitions.

One `MultiObjectTracker` per source id, created on the source's first frame and dropped at `finish`, so sources
never share identities and a finished source leaves nothing behind.
"""

from __future__ import annotations

import threading

from pipeline.frames import FrameResult, TrackTransition
from tracking.config import TrackerConfig
from tracking.tracker import MultiObjectTracker


class TrackerStage:
    """`process` fills `FrameResult.transitions` and `.tracks`; `finish` ends a source's live tracks.

    Frames of one source must arrive in order (the runtime keeps per-source order); different sources may be
    processed from different threads.
    """

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

    def process(self, result: FrameResult) -> FrameResult:
        if not self.cfg.enabled:
            return result
        step = self._tracker(result.frame.source_id).step(result.frame, result.detections)
        result.transitions.extend(step.transitions)
        result.tracks = step.tracks
        return result

    def finish(self, source_id: str) -> list[TrackTransition]:
        """End every live track of `source_id` (end of stream) and forget the source's tracker."""
        with self._lock:
            tracker = self._trackers.pop(source_id, None)
        return tracker.finish() if tracker is not None else []

    @property
    def source_ids(self) -> list[str]:
        with self._lock:
            return list(self._trackers)
