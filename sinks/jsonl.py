"""JSON Lines sink: the same event dicts as Redis gets, one compact JSON object per line.

A writer thread does the file I/O, so `publish` never waits on the disk; every published batch (one frame's
events) is flushed as a whole, so a reader tailing the file never sees half a frame.
"""

from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path
from typing import Any

from pipeline.errors import MaskstreamError
from pipeline.events import encode_event
from sinks.base import EventSink

log = logging.getLogger(__name__)

_CLOSE = object()


class JsonlSink(EventSink):
    """Appends events to `path` (created with its parent folders); implements `pipeline.events.EventSink`."""

    def __init__(self, path: str | Path, append: bool = False) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a" if append else "w", encoding="utf-8")
        except OSError as exc:
            raise MaskstreamError(f"cannot write events to {self.path}: {exc.strerror or exc}") from None
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._error: OSError | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="jsonl-sink", daemon=True)
        self._thread.start()

    def publish(self, source_id: str, events: list[dict[str, Any]]) -> None:
        if self._closed:
            raise RuntimeError("JsonlSink.publish after close()")
        if events:
            # encode here: the caller's dicts may be reused after we return
            self._queue.put("".join(encode_event(event) + "\n" for event in events))

    def close(self, timeout_s: float = 10.0) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(_CLOSE)
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.error("events file %s: writer did not finish within %.1f s", self.path, timeout_s)
        if self._error is not None:
            raise MaskstreamError(f"writing events to {self.path} failed: {self._error.strerror or self._error}")

    def _run(self) -> None:
        try:
            while (chunk := self._queue.get()) is not _CLOSE:
                if self._error is None:
                    self._file.write(chunk)
                    self._file.flush()
        except OSError as exc:  # disk full, I/O error: keep draining so callers never block, report at close
            self._error = exc
            log.error("writing events to %s failed: %s", self.path, exc)
            while self._queue.get() is not _CLOSE:
                pass
        finally:
            try:
                self._file.close()
            except OSError as exc:
                self._error = self._error or exc
