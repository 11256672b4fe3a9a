"""The two kinds of sink, as base classes: what a sink takes, and the no-op defaults it may keep.

An `EventSink` receives the events of a frame or a status (Redis, JSON Lines); a `FrameSink` receives whole
results, pixels included (annotated video, MOT files). The publish stage talks to both through these methods
only; a sink never knows its neighbours.
"""

from __future__ import annotations

from typing import Any

from pipeline.items import FrameResult


class EventSink:
    """Where events go. `publish` must never block the caller on I/O; `close` flushes what it can."""

    def check(self) -> None:
        """Called once before the first frame: raise `MaskstreamError` (one line) if the sink cannot work."""

    def publish(self, source_id: str, events: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def connected(self) -> bool:
        """False while the sink's backend is unreachable (readiness probe); events then wait in its buffer."""
        return True

    def close(self, timeout_s: float) -> None:
        """Flush within `timeout_s` and release everything."""


class FrameSink:
    """Consumes whole results (not events): annotated video, MOT files."""

    def start_source(self, source_id: str, info: dict[str, Any]) -> None:
        """A source started (its `stream.started` info: size, fps, codec)."""

    def write(self, result: FrameResult) -> None:
        raise NotImplementedError

    def end_source(self, source_id: str) -> None:
        """A source's end of stream: close its file."""

    def close(self) -> None:
        """End of the run: close everything still open."""
