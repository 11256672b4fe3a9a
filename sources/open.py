"""Opening a configured source: URL checks, file resolution (paths, globs, lists), the right `VideoSource`."""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from pipeline.config.sources import LIVE_SCHEMES, SourceConfig, url_scheme
from pipeline.errors import SourceError
from pipeline.items import Frame
from pipeline.redact import redact_url
from sources.base import VideoSource
from sources.file import FileSource
from sources.live import LiveSource

log = logging.getLogger("maskstream.source")


_GLOB_CHARS = frozenset("*?[")


def open_source(
    cfg: SourceConfig, live_queue_size: int = 2, on_drop: Callable[[Frame], None] | None = None
) -> VideoSource:
    """A ready-to-iterate source; raises `SourceError` (one line, credentials redacted) when it cannot be used.

    Files are checked now (exist, readable, have a video stream: the first file is probed). A live source with
    reconnects enabled connects in its reader thread (a camera that is down at start is retried, not fatal);
    with reconnects disabled the first connection is made here so a bad URL fails fast. A live source hands its
    frames over through a drop-oldest queue of `live_queue_size` frames; `on_drop` gets each frame it drops.
    """
    if cfg.live:
        if not isinstance(cfg.url, str):
            raise SourceError(f"source {cfg.id!r}: a live source takes one URL, not a list")
        scheme = url_scheme(cfg.url)
        if scheme not in LIVE_SCHEMES:
            raise SourceError(
                f"source {cfg.id!r}: unsupported URL scheme {scheme or 'none'!r} in {redact_url(cfg.url)} "
                f"(live sources: {', '.join(sorted(LIVE_SCHEMES))})"
            )
        if not urlsplit(cfg.url).hostname:
            raise SourceError(f"source {cfg.id!r}: no host in {redact_url(cfg.url)}")
        source = LiveSource(cfg, live_queue_size, on_drop)
        if not cfg.reconnect.enabled:
            source.connect_now()
        return source
    return FileSource(cfg, resolve_files(cfg))


def resolve_files(cfg: SourceConfig) -> list[str]:
    """The files of a file source, in play order: a path, a glob (sorted) or a list; http(s) when live=false."""
    entries = [cfg.url] if isinstance(cfg.url, str) else list(cfg.url)
    files: list[str] = []
    for entry in entries:
        scheme = url_scheme(entry)
        if scheme in {"http", "https"}:
            files.append(entry)  # a video file served over HTTP, read front to back
            continue
        if scheme == "file":
            entry = urlsplit(entry).path
        elif scheme:
            raise SourceError(
                f"source {cfg.id!r}: unsupported URL scheme {scheme!r} in {redact_url(entry)} "
                "(supported: a file path or glob, rtsp://, rtsps://, http://, https://)"
            )
        path = Path(entry).expanduser()
        if path.is_file():
            files.append(str(path))
        elif _GLOB_CHARS & set(entry) and not path.exists():
            matches = sorted(p for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
            if not matches:
                raise SourceError(f"source {cfg.id!r}: no file matches {entry}")
            files.extend(matches)
        elif path.is_dir():
            raise SourceError(f"source {cfg.id!r}: {entry} is a directory (use a glob such as {entry}/*.mp4)")
        else:
            raise SourceError(f"source {cfg.id!r}: file not found: {entry}")
    for file in files:
        if not url_scheme(file) and not os.access(file, os.R_OK):
            raise SourceError(f"source {cfg.id!r}: file not readable (permission denied): {file}")
    return files
