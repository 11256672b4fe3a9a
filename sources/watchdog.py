"""The stall watchdog of live sources."""

from __future__ import annotations

import logging
import time

log = logging.getLogger("maskstream.source")


class StallWatchdog:
    """No decoded frame for `timeout_s` (while packets, or nothing, keep coming) means the stream is stuck."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._last = time.monotonic()

    def feed(self) -> None:
        self._last = time.monotonic()

    def expired(self) -> bool:
        return time.monotonic() - self._last > self.timeout_s
