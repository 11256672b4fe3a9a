"""The source interface: iterate for `Frame`s and `StreamStatus`es, `started` first and `ended` last."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from pipeline.config.sources import SourceConfig, url_scheme
from pipeline.items import Frame, StreamStatus, StreamStatusKind
from pipeline.metrics import DECODE_ERRORS, FRAMES_DECODED, FRAMES_DROPPED, SOURCE_UP
from pipeline.redact import redact_url
from sources.decode import (
    describe_av_error,
)

log = logging.getLogger("maskstream.source")


SourceItem = Frame | StreamStatus


class VideoSource:
    """Iterate (blocking, in a thread of the caller's) for `Frame`s and `StreamStatus`es: `started` first,
    `ended` last. `stop()` may be called from any thread and makes the iteration end soon."""

    is_live: bool = False

    def __init__(self, cfg: SourceConfig) -> None:
        self.cfg = cfg
        self.source_id = cfg.id
        self.display_url = display_url(cfg.url)
        self._stop = threading.Event()
        self._iterated = False
        self._frames_decoded = FRAMES_DECODED.labels(source=cfg.id)
        self._frames_capped = FRAMES_DROPPED.labels(source=cfg.id, reason="fps_cap")
        self._decode_errors = DECODE_ERRORS.labels(source=cfg.id)
        self._up = SOURCE_UP.labels(source=cfg.id)
        self.decode_error_count = 0
        self.frames_delivered = 0

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def __iter__(self) -> Iterator[SourceItem]:
        if self._iterated:
            raise RuntimeError(f"source {self.source_id!r} can be iterated only once")
        self._iterated = True
        return self._items()

    def _items(self) -> Iterator[SourceItem]:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self, timeout: float = 5.0) -> None:
        """Stop and release everything (threads, connections); safe to call more than once."""
        self.stop()

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _status(self, kind: StreamStatusKind, reason: str | None = None, **info: Any) -> StreamStatus:
        return StreamStatus(
            source_id=self.source_id,
            kind=kind,
            time=time.time(),
            reason=reason,
            frame_index=self._last_index(),
            info={"url": self.display_url, "live": self.is_live, **info},
        )

    def _last_index(self) -> int | None:
        return None

    def _count_decode_error(self, exc: BaseException) -> None:
        self.decode_error_count += 1
        self._decode_errors.inc()
        if self.decode_error_count <= 3 or self.decode_error_count % 100 == 0:
            log.warning(
                "source %s: skipped a packet that failed to decode (%s); %d so far",
                self.source_id,
                describe_av_error(exc),
                self.decode_error_count,
            )


def display_url(url: str | list[str]) -> str:
    if isinstance(url, str):
        return redact_url(url) if url_scheme(url) else url
    shown = ", ".join(display_url(u) for u in url[:3])
    return f"[{shown}{', ...' if len(url) > 3 else ''}] ({len(url)} files)"
