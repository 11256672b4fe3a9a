"""Live event feed: the events the pipeline publishes (the same dicts Redis gets), in a bounded ring for the web page.

`publish` appends references (no copy, no serialisation) and wakes waiting viewers; viewers read with a cursor
(`since`), so a slow viewer never holds events back or makes the ring grow: if it falls behind by more than the
ring, it skips ahead and is told how many it missed.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from sinks.base import EventSink

_RATE_WINDOW_S = 5.0  # events per second are averaged over this window


class EventFeed(EventSink):
    """An `EventSink` keeping the last `capacity` events, each numbered by a run-wide sequence (from 1)."""

    def __init__(self, capacity: int = 1000) -> None:
        self.capacity = capacity
        self._changed = threading.Condition()
        self._ring: deque[tuple[int, dict[str, Any]]] = deque(maxlen=capacity)
        self._last = 0
        self._recent: dict[str, deque[tuple[float, int]]] = {}  # per source: (monotonic, events) per publish

    def publish(self, source_id: str, events: list[dict[str, Any]]) -> None:
        now = time.monotonic()
        with self._changed:
            for event in events:
                self._last += 1
                self._ring.append((self._last, event))
            recent = self._recent.get(source_id)
            if recent is None:
                recent = self._recent[source_id] = deque(maxlen=256)
            recent.append((now, len(events)))
            self._changed.notify_all()

    @property
    def last_seq(self) -> int:
        with self._changed:
            return self._last

    def since(self, seq: int, limit: int = 200) -> tuple[list[tuple[int, dict[str, Any]]], int]:
        """Up to `limit` events after `seq` (oldest first) and how many were missed (gone from the ring)."""
        with self._changed:
            first = self._ring[0][0] if self._ring else self._last + 1
            missed = max(0, first - seq - 1) if seq < self._last else 0
            start = max(0, seq + 1 - first)
            items = [self._ring[i] for i in range(start, min(len(self._ring), start + limit))]
        return items, missed

    def recent(self, limit: int) -> list[tuple[int, dict[str, Any]]]:
        with self._changed:
            return list(self._ring)[-limit:] if limit > 0 else []

    def wait(self, seq: int, timeout: float) -> bool:
        """Block until an event after `seq` exists (True) or `timeout` passes (False)."""
        with self._changed:
            return self._changed.wait_for(lambda: self._last > seq, timeout)

    def rate(self, source_id: str) -> float:
        """Events per second of the source over the last few seconds."""
        horizon = time.monotonic() - _RATE_WINDOW_S
        with self._changed:
            recent = self._recent.get(source_id, ())
            return sum(count for when, count in recent if when >= horizon) / _RATE_WINDOW_S
