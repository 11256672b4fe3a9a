"""Tracker stage: turns each source's per-frame detections into tracks and track lifecycle transitions.

One `MultiObjectTracker` per source id, created on the source's first frame and dropped at the source's end of
stream, so sources never share identities and a finished source leaves nothing behind. At a source's end of stream
the stage closes its open tracks (`TracksEnded`) *before* passing the `ended` status on, so `track.ended` always
precedes `stream.ended`.

Sources are tracked in parallel: each source is pinned to one of `workers` lanes (a thread each), so one source's
frames are tracked in order by one thread while other sources' frames are tracked beside them, and results leave
the stage in the order they arrived. With one source there is nothing to run beside, so frames are tracked in the
stage's own thread — unless camera-motion compensation is on: then each lane has a motion lane beside it that
estimates the camera motion of the next frames (image work that releases the GIL, and depends on frames and
detections only) while the lane associates the current one, so even one source's tracking uses two cores.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from pipeline.config.tracker import TrackerConfig
from pipeline.items import FrameResult, StreamStatus, TracksEnded, TrackTransition
from pipeline.metrics import STAGE_BUSY_SECONDS
from pipeline.stage import Stage, StageError
from tracking.camera_motion import MotionEstimate
from tracking.tracker import MultiObjectTracker

log = logging.getLogger(__name__)

# how long the stage thread waits for more input before handing on results its lanes finished meanwhile
_FLUSH_S = 0.002
# frames in the lanes at most, per lane: beyond it the stage thread waits, so its inbox's bound holds back the input
_AHEAD_PER_LANE = 4


class TrackerStage(Stage):
    """`track` fills `FrameResult.transitions` and `.tracks`; `end_source` ends a source's live tracks.

    Frames of one source must arrive in order (the runtime keeps per-source order); different sources may be
    processed from different threads.
    """

    name = "tracker"

    def __init__(
        self,
        cfg: TrackerConfig | None = None,
        workers: int | None = None,
        on_busy: Callable[[str, float, float], None] | None = None,
    ) -> None:
        self.cfg = cfg or TrackerConfig()
        self._trackers: dict[str, MultiObjectTracker] = {}
        self._lock = threading.Lock()
        self.workers = workers if workers is not None else min(4, os.cpu_count() or 1)
        self._lanes: list[ThreadPoolExecutor] = []
        self._motion_lanes: list[ThreadPoolExecutor] = []  # beside each lane while camera motion is estimated
        self._motion_ahead = self.cfg.enabled and self.cfg.camera_motion != "off" and self.workers >= 1
        self._lane_of: dict[str, int] = {}
        self._pending: deque[tuple[Future[FrameResult], str, int]] = deque()
        self.on_busy = on_busy  # the lanes' working time, reported like a stage thread's (RunStats.stage_busy)

    def _tracker(self, source_id: str) -> MultiObjectTracker:
        with self._lock:
            tracker = self._trackers.get(source_id)
            if tracker is None:
                tracker = self._trackers[source_id] = MultiObjectTracker(self.cfg)
            return tracker

    def process(self, item: FrameResult) -> Iterable[Any]:
        source_id = item.frame.source_id
        lane = self._lane(source_id)
        if lane is None:  # one source (or one worker): track here, after whatever the lanes still hold
            done = self._ready(wait=True)
            try:
                return [*done, self.track(item)]
            except Exception as exc:
                return [*done, self._error(source_id, item.frame.index, exc)]
        motion: Future[MotionEstimate] | None = None
        if self._motion_ahead:
            motion = self._motion_lanes[self._lanes.index(lane)].submit(self._timed_motion, item)
        self._pending.append((lane.submit(self._timed_track, item, motion), source_id, item.frame.index))
        return self._ready()

    def on_status(self, status: StreamStatus) -> Iterable[Any]:
        done = self._ready(wait=True)  # a status follows every frame of its source that came before it
        if status.kind == "ended":
            with self._lock:
                self._lane_of.pop(status.source_id, None)
            return [*done, TracksEnded(status.source_id, self.end_source(status.source_id)), status]
        return [*done, status]

    def on_control(self, item: Any) -> Iterable[Any]:
        return [*self._ready(wait=True), item]

    def finish(self) -> Iterable[Any]:
        return self._ready(wait=True)

    def wait_timeout(self) -> float | None:
        return _FLUSH_S if self._pending else None

    def on_idle(self) -> Iterable[Any]:
        return self._ready()

    def close(self) -> None:
        for lane in self._lanes:
            lane.shutdown(wait=True, cancel_futures=True)
        for lane in self._motion_lanes:
            lane.shutdown(wait=True, cancel_futures=True)

    def track(self, result: FrameResult, motion: MotionEstimate | None = None) -> FrameResult:
        """Track one frame; `motion`: its camera motion, when estimated ahead (`MultiObjectTracker.estimate_motion`)."""
        if not self.cfg.enabled:
            return result
        step = self._tracker(result.frame.source_id).step(result.frame, result.detections, motion)
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

    # --- lanes -----------------------------------------------------------------------------------------------
    def _lane(self, source_id: str) -> ThreadPoolExecutor | None:
        """The lane of a source's frames; None while it is the only source (or there is one worker)."""
        with self._lock:
            index = self._lane_of.get(source_id)
            if index is None:  # the least used lane: sources spread evenly
                used = [list(self._lane_of.values()).count(i) for i in range(max(1, self.workers))]
                index = self._lane_of[source_id] = used.index(min(used))
            if not self._motion_ahead and (self.workers <= 1 or len(self._lane_of) <= 1):
                return None
        if not self._lanes:
            lanes = max(1, self.workers)
            self._lanes = [ThreadPoolExecutor(1, thread_name_prefix=f"tracker-lane{i}") for i in range(lanes)]
            if self._motion_ahead:
                self._motion_lanes = [
                    ThreadPoolExecutor(1, thread_name_prefix=f"tracker-motion{i}") for i in range(lanes)
                ]
        return self._lanes[index]

    def _error(self, source_id: str, index: int, exc: Exception) -> StreamStatus:
        error = StageError(self.name, [(source_id, index)], exc)
        log.error("%s", error)
        return StreamStatus(source_id=source_id, kind="error", time=time.time(), reason=str(error))

    def _timed_track(self, result: FrameResult, motion: Future[MotionEstimate] | None = None) -> FrameResult:
        estimate = motion.result() if motion is not None else None  # waiting for it is not work
        with self._timed(self.name):
            return self.track(result, estimate)

    def _timed_motion(self, result: FrameResult) -> MotionEstimate:
        with self._timed(f"{self.name}-motion"):
            return self._tracker(result.frame.source_id).estimate_motion(result.frame, result.detections)

    @contextmanager
    def _timed(self, name: str) -> Iterator[None]:
        """A lane's working time, reported like a stage thread's."""
        started, cpu_started = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            spent, cpu = time.perf_counter() - started, time.thread_time() - cpu_started
            STAGE_BUSY_SECONDS.labels(stage=name).inc(spent)
            if self.on_busy is not None:
                self.on_busy(name, spent, cpu)

    def _ready(self, wait: bool = False) -> list[Any]:
        """Results of the lanes, in arrival order: those done (all of them when `wait`); a failure becomes the
        error status of its source, as a failure in the stage's own thread would."""
        out: list[Any] = []
        most = _AHEAD_PER_LANE * max(1, len(self._lanes))
        while self._pending and (wait or len(self._pending) > most or self._pending[0][0].done()):
            future, source_id, index = self._pending.popleft()
            try:
                out.append(future.result())
            except Exception as exc:
                out.append(self._error(source_id, index, exc))
        return out
