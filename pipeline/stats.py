"""Live counters of a run, per source: what the progress bar, the status line, /healthz and the summary read.

Prometheus metrics (pipeline/metrics.py) are for scraping over time; these are the same facts in a form the process
itself can print. Written by the source threads and the publish stage, read by the main thread.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

SourceState = str  # "opening" | "running" | "reconnecting" | "ended" | "failed"


@dataclass
class SourceStats:
    source_id: str
    live: bool
    state: SourceState = "opening"
    frames_decoded: int = 0  # delivered by the source into its queue
    frames_dropped: int = 0  # live: stale frames discarded by the drop-oldest queue
    frames_done: int = 0  # went through the whole pipeline
    expected_frames: int | None = None  # files: from the container, when it says
    events: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    end_reason: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=512))  # capture → published, seconds
    done_times: deque[float] = field(default_factory=lambda: deque(maxlen=64))  # monotonic, for fps
    state_reason: str | None = None  # why the source is in its state (e.g. the disconnect while reconnecting)

    @property
    def failed(self) -> bool:
        return bool(self.errors)

    def fps(self) -> float:
        if len(self.done_times) < 2:
            return 0.0
        span = self.done_times[-1] - self.done_times[0]
        return (len(self.done_times) - 1) / span if span > 0 else 0.0

    def latency_percentile(self, q: float) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class RunStats:
    """Thread-safe per-source counters plus run-wide totals."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sources: dict[str, SourceStats] = {}
        self.started = time.monotonic()
        self.finished: float | None = None
        self.batch_sizes: deque[int] = deque(maxlen=64)  # frames per model batch, the latest batches
        self.model = ""  # the model in use, as the status line names it (set once it is loaded)
        self._stage_busy: dict[str, float] = {}  # stage name -> seconds its thread spent working
        self._stage_cpu: dict[str, float] = {}  # stage name -> CPU seconds of its thread while working

    def add_source(self, source_id: str, live: bool) -> None:
        with self._lock:
            self.sources[source_id] = SourceStats(source_id, live)

    def update(self, source_id: str, **changes: Any) -> None:
        with self._lock:
            stats = self.sources[source_id]
            for name, value in changes.items():
                setattr(stats, name, value)

    def frame_decoded(self, source_id: str) -> None:
        with self._lock:
            self.sources[source_id].frames_decoded += 1

    def frame_dropped(self, source_id: str) -> None:
        with self._lock:
            self.sources[source_id].frames_dropped += 1

    def frame_done(self, source_id: str, latency_s: float) -> None:
        with self._lock:
            stats = self.sources[source_id]
            stats.frames_done += 1
            stats.latencies.append(latency_s)
            stats.done_times.append(time.monotonic())

    def batch_done(self, frames: int) -> None:
        with self._lock:
            self.batch_sizes.append(frames)

    def events_published(self, source_id: str, events: list[dict[str, Any]]) -> None:
        with self._lock:
            stats = self.sources.get(source_id)
            if stats is not None:
                stats.events.update(event["type"] for event in events)

    def error(self, source_id: str, reason: str) -> None:
        with self._lock:
            stats = self.sources.get(source_id)
            if stats is not None:
                stats.errors.append(reason)

    def stage_busy(self, stage: str, seconds: float, cpu_seconds: float = 0.0) -> None:
        with self._lock:
            self._stage_busy[stage] = self._stage_busy.get(stage, 0.0) + seconds
            self._stage_cpu[stage] = self._stage_cpu.get(stage, 0.0) + cpu_seconds

    # --- read side -------------------------------------------------------------------------------------------
    def stage_busy_seconds(self) -> dict[str, float]:
        """Seconds each stage thread spent working so far, in pipeline order."""
        with self._lock:
            return dict(self._stage_busy)

    def stage_cpu_seconds(self) -> dict[str, float]:
        """CPU seconds each stage thread used while working (wall busy time minus waiting for a core)."""
        with self._lock:
            return dict(self._stage_cpu)

    def snapshot(self) -> dict[str, SourceStats]:
        with self._lock:
            return {sid: _copy(s) for sid, s in self.sources.items()}

    def mean_batch_size(self) -> float | None:
        """Realised frames per model batch over the latest batches (below batcher.batch_size when the model
        outruns the sources, or max_wait_ms sends partial batches); None before the first batch."""
        with self._lock:
            return sum(self.batch_sizes) / len(self.batch_sizes) if self.batch_sizes else None

    def elapsed(self) -> float:
        return (self.finished or time.monotonic()) - self.started


def _copy(s: SourceStats) -> SourceStats:
    return SourceStats(
        s.source_id, s.live, s.state, s.frames_decoded, s.frames_dropped, s.frames_done, s.expected_frames,
        Counter(s.events), list(s.errors), s.end_reason, dict(s.info),
        deque(s.latencies, maxlen=512), deque(s.done_times, maxlen=64), s.state_reason,
    )  # fmt: skip
