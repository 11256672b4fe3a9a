"""Video sources: files, globs/lists of files and live streams (RTSP, RTSPS, HTTP), decoded with PyAV.

`open_source(cfg)` returns a `VideoSource`; iterating it yields `Frame` and `StreamStatus` items (see
`pipeline.frames`): `started` first, `connected`/`disconnected` for live sources, `ended` last. File sources
decode in the caller's thread (the caller's queue gives backpressure); live sources decode in a reader thread of
their own that keeps pace with the camera and reconnects (see `LiveSource`). docs/SOURCES.md is the user guide.
"""

from __future__ import annotations

import glob
import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import av
import av.error
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipeline.errors import SourceError
from pipeline.frames import Frame, StreamStatus, StreamStatusKind
from pipeline.metrics import DECODE_ERRORS, FRAMES_DECODED, FRAMES_DROPPED, RECONNECTS, SOURCE_UP
from pipeline.redact import redact_text, redact_url
from stages.decode import (
    RateLimiter,
    StreamInfo,
    UndecodableStreamError,
    decode_frames,
    describe_av_error,
    frame_seconds,
    open_input,
    stream_info,
    to_rgb,
    video_stream,
)

log = logging.getLogger("maskstream.source")

LIVE_SCHEMES = frozenset({"rtsp", "rtsps", "http", "https"})


class ReconnectConfig(BaseModel):
    """How a live source gets its stream back after a disconnect, a read timeout or a stall."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Reconnect live sources after a disconnect; false ends the stream.")
    max_attempts: int | None = Field(
        None,
        ge=1,
        description="Consecutive failed attempts before giving up (the count resets once frames flow); null = forever.",
    )
    initial_backoff_s: float = Field(0.5, gt=0, description="Wait before the first retry, in seconds.")
    max_backoff_s: float = Field(30.0, gt=0, description="Cap of the exponential backoff, in seconds.")
    jitter: float = Field(
        0.2,
        ge=0,
        le=1,
        description="Random spread of each wait, as a fraction (0.2 = ±20%), so cameras don't retry in lockstep.",
    )

    @model_validator(mode="after")
    def _backoff_order(self) -> ReconnectConfig:
        if self.max_backoff_s < self.initial_backoff_s:
            raise ValueError(
                f"max_backoff_s ({self.max_backoff_s}) must be >= initial_backoff_s ({self.initial_backoff_s})"
            )
        return self


class SourceConfig(BaseModel):
    """One video source. Files are processed completely and in order; live sources drop frames to stay current."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(
        ...,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$",
        description="Short unique name of the source (letters, digits, _ . : -); used in events, stream keys and metric labels.",
    )
    url: str | list[str] = Field(
        ...,
        description=(
            "A video file path, a glob (`footage/*.mp4`, sorted), a list of files (played back to back as one "
            "stream), or a live URL: rtsp://, rtsps://, http(s)://. Credentials in URLs are redacted everywhere."
        ),
    )
    live: bool | None = Field(
        None,
        description="Live stream (drop-oldest, reconnects) or file (every frame, in order); null = from the URL scheme.",
    )
    fps_cap: float | None = Field(
        None, gt=0, description="Process at most this many frames per second (by pts for files, wall clock for live)."
    )
    start_s: float | None = Field(None, ge=0, description="Files only: start at this time, in seconds.")
    end_s: float | None = Field(None, gt=0, description="Files only: stop at this time, in seconds.")
    transport: Literal["tcp", "udp"] = Field("tcp", description="RTSP transport; TCP survives lossy networks and NAT.")
    open_timeout_s: float = Field(10.0, gt=0, description="Live: give up connecting after this many seconds.")
    read_timeout_s: float = Field(
        5.0, gt=0, description="Live: a read that gets no data for this long fails (a frozen server is seen in ~2x)."
    )
    tls_verify: bool = Field(
        False,
        description="rtsps/https: verify the server's certificate (cameras often ship self-signed ones; give "
        "`tls_ca_file` to trust yours). Off by default, as in FFmpeg.",
    )
    tls_ca_file: str | None = Field(
        None, description="rtsps/https: PEM file of the certificate authorities to trust when `tls_verify` is on."
    )
    stall_timeout_s: float = Field(
        10.0, gt=0, description="Live watchdog: no decoded frame for this many seconds means reconnect."
    )
    reconnect: ReconnectConfig = Field(default_factory=ReconnectConfig, description="Live reconnect policy.")
    probesize: int = Field(
        500_000, ge=32, description="Bytes FFmpeg reads to detect the stream format; small = fast start on live."
    )
    analyzeduration_s: float = Field(
        0.5, ge=0, description="Seconds of stream FFmpeg analyses before the first frame; small = fast start."
    )
    decode_threads: int = Field(0, ge=0, description="Decoder threads; 0 lets FFmpeg choose (one per core).")

    @model_validator(mode="after")
    def _resolve_live_and_times(self) -> SourceConfig:
        if self.live is None:
            self.live = isinstance(self.url, str) and url_scheme(self.url) in LIVE_SCHEMES
        if isinstance(self.url, list) and not self.url:
            raise ValueError("url: the list of files is empty")
        if self.tls_ca_file is not None and not Path(self.tls_ca_file).is_file():
            raise ValueError(f"tls_ca_file: no such file: {self.tls_ca_file}")
        if self.live and (self.start_s is not None or self.end_s is not None):
            raise ValueError("start_s/end_s apply to files only, not to live sources")
        if self.start_s is not None and self.end_s is not None and self.end_s <= self.start_s:
            raise ValueError(f"end_s ({self.end_s}) must be greater than start_s ({self.start_s})")
        return self

    def __repr_args__(self):  # repr/str of a config must not leak the camera password
        for name, value in super().__repr_args__():
            if name == "url":
                value = [redact_url(v) for v in value] if isinstance(value, list) else redact_url(value)
            yield name, value


def url_scheme(url: str) -> str:
    """Lower-case scheme of a URL, '' for plain paths (a Windows drive letter is not a scheme)."""
    if "://" not in url:
        return ""
    try:
        return urlsplit(url).scheme.lower()
    except ValueError:
        return ""


# ---------------------------------------------------------------------------------------------------------------
# Opening sources
# ---------------------------------------------------------------------------------------------------------------

_GLOB_CHARS = frozenset("*?[")


def open_source(cfg: SourceConfig) -> VideoSource:
    """A ready-to-iterate source; raises `SourceError` (one line, credentials redacted) when it cannot be used.

    Files are checked now (exist, readable, have a video stream: the first file is probed). A live source with
    reconnects enabled connects in its reader thread (a camera that is down at start is retried, not fatal);
    with reconnects disabled the first connection is made here so a bad URL fails fast.
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
        source = LiveSource(cfg)
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


# ---------------------------------------------------------------------------------------------------------------
# The source interface
# ---------------------------------------------------------------------------------------------------------------

SourceItem = Frame | StreamStatus


class VideoSource:
    """Iterate (blocking, in a thread of the caller's) for `Frame`s and `StreamStatus`es: `started` first,
    `ended` last. `stop()` may be called from any thread and makes the iteration end soon."""

    is_live: bool = False

    def __init__(self, cfg: SourceConfig) -> None:
        self.cfg = cfg
        self.source_id = cfg.id
        self.display_url = _display(cfg.url)
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


def _display(url: str | list[str]) -> str:
    if isinstance(url, str):
        return redact_url(url) if url_scheme(url) else url
    shown = ", ".join(_display(u) for u in url[:3])
    return f"[{shown}{', ...' if len(url) > 3 else ''}] ({len(url)} files)"


# ---------------------------------------------------------------------------------------------------------------
# Files: every frame, in order, files back to back as one stream
# ---------------------------------------------------------------------------------------------------------------


class FileSource(VideoSource):
    """Video files decoded front to back; the caller's queue applies backpressure (nothing is dropped here
    except by `fps_cap`). A list plays as one stream: frame indices and pts continue across files."""

    is_live = False

    def __init__(self, cfg: SourceConfig, files: list[str]) -> None:
        super().__init__(cfg)
        self.files = files
        self.first_info = self._probe(files[0])
        self._next_index = 0

    def _last_index(self) -> int | None:
        return self._next_index - 1 if self._next_index else None

    def _open(self, file: str) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
        timeout = (self.cfg.open_timeout_s, self.cfg.read_timeout_s) if url_scheme(file) else None
        try:
            container = open_input(file, timeout=timeout)
        except (av.error.FFmpegError, OSError) as exc:
            hint = " (not a video file, or corrupt)" if isinstance(exc, av.error.InvalidDataError) else ""
            raise SourceError(
                f"source {self.source_id!r}: cannot read {_display(file)}: {describe_av_error(exc)}{hint}"
            ) from None
        try:
            stream = video_stream(container, self.cfg.decode_threads)
        except ValueError:
            container.close()
            raise SourceError(f"source {self.source_id!r}: no video stream in {_display(file)}") from None
        return container, stream

    def _probe(self, file: str) -> StreamInfo:
        container, stream = self._open(file)
        try:
            return stream_info(container, stream)
        finally:
            container.close()

    def _items(self) -> Iterator[SourceItem]:
        cfg = self.cfg
        capper = RateLimiter(cfg.fps_cap) if cfg.fps_cap else None
        yield self._status("started", files=len(self.files), **self.first_info.as_dict())
        log.info("source %s: reading %s", self.source_id, self.display_url)
        self._up.set(1)
        offset = 0.0  # where the current file starts on the source's timeline (pts of a list continue)
        reason = "end of input"
        for number, file in enumerate(self.files):
            if self.stopped:
                reason = "stopped"
                break
            if cfg.end_s is not None and offset >= cfg.end_s:
                reason = f"reached end_s={cfg.end_s:g}"
                break
            try:
                container, stream = self._open(file)
            except SourceError as exc:
                log.error("%s", exc)
                yield self._status("error", str(exc), file=_display(file))
                continue
            info = stream_info(container, stream)
            if number:
                log.info("source %s: next file %s", self.source_id, _display(file))
            outcome = _FileOutcome()
            try:
                yield from self._file_frames(container, stream, info, offset, capper, outcome)
            except (av.error.FFmpegError, OSError, UndecodableStreamError) as exc:
                message = f"source {self.source_id!r}: {_display(file)} failed after {outcome.frames} frames: {describe_av_error(exc, timeout_hint=cfg.read_timeout_s)}"
                log.error("%s", message)
                yield self._status("error", message, file=_display(file))
            finally:
                container.close()
            if outcome.truncated_note:
                log.warning("source %s: %s", self.source_id, outcome.truncated_note)
                if len(self.files) == 1:
                    reason = outcome.truncated_note
            if outcome.end_reached:
                reason = f"reached end_s={cfg.end_s:g}"
                break
            if outcome.last_pts is not None:
                offset = outcome.last_pts + (1.0 / info.fps if info.fps else 0.0)
            elif info.duration_s:
                offset += info.duration_s
        if self.stopped:
            reason = "stopped"
        self._up.set(0)
        yield self._status("ended", reason, frames=self.frames_delivered, decode_errors=self.decode_error_count)

    def _file_frames(
        self,
        container: av.container.InputContainer,
        stream: av.video.stream.VideoStream,
        info: StreamInfo,
        offset: float,
        capper: RateLimiter | None,
        outcome: _FileOutcome,
    ) -> Iterator[Frame]:
        cfg = self.cfg
        local_start = max(0.0, cfg.start_s - offset) if cfg.start_s is not None else 0.0
        if local_start > 0:
            if info.duration_s is not None and local_start >= info.duration_s:
                outcome.skipped = True
                outcome.last_pts = offset + info.duration_s - (1.0 / info.fps if info.fps else 0.0)
                return
            # Seek to the key frame before start_s, then decode (and drop) up to start_s.
            container.seek(int(local_start / stream.time_base), stream=stream, backward=True)
        step = 1.0 / info.fps if info.fps else 1.0 / 30
        local_pts: float | None = None
        decoded_in_file = 0
        for av_frame in decode_frames(
            container, stream, should_stop=self._stop.is_set, on_decode_error=self._count_decode_error
        ):
            seconds = frame_seconds(av_frame)
            # No pts (rare in files): continue from the previous frame at the nominal rate.
            local_pts = seconds if seconds is not None else (local_pts + step if local_pts is not None else 0.0)
            decoded_in_file += 1
            if local_pts + 1e-6 < local_start:
                continue
            pts = offset + local_pts
            if cfg.end_s is not None and pts >= cfg.end_s - 1e-6:
                outcome.end_reached = True
                return
            outcome.last_pts = pts
            outcome.frames += 1
            index = self._next_index
            self._next_index += 1
            self._frames_decoded.inc()
            if capper is not None and not capper.keep(pts):
                self._frames_capped.inc()
                continue
            self.frames_delivered += 1
            yield Frame(self.source_id, index, pts, time.time(), to_rgb(av_frame))
        if self.stopped or cfg.start_s is not None:
            return
        # The container said how long it is: a file that stops well short of that was cut off.
        if info.frame_count and decoded_in_file < info.frame_count - 1:
            outcome.truncated_note = (
                f"{_display(container.name)} ended early: only {decoded_in_file} of {info.frame_count} frames "
                "could be decoded (truncated or damaged file)"
            )
        elif info.duration_s and local_pts is not None and local_pts + 3 * step < info.duration_s - 0.5:
            outcome.truncated_note = (
                f"{_display(container.name)} ended early at {local_pts:.2f} s of {info.duration_s:.2f} s "
                "(truncated or damaged file)"
            )


@dataclass(slots=True)
class _FileOutcome:
    frames: int = 0
    last_pts: float | None = None
    end_reached: bool = False
    skipped: bool = False
    truncated_note: str | None = None


# ---------------------------------------------------------------------------------------------------------------
# Live streams: a reader thread keeps pace with the camera, reconnects, and never waits for the consumer
# ---------------------------------------------------------------------------------------------------------------


class LiveSource(VideoSource):
    """An RTSP/RTSPS/HTTP stream read by a thread of its own.

    The reader decodes at the camera's pace whatever the consumer does: it hands items over through a tiny
    buffer that drops the oldest *frame* when full (statuses are never dropped), counted as
    FRAMES_DROPPED{reason="stale"}. A server that closes the connection (FFmpeg then just reports the end of
    the stream), a read that times out (a frozen server, seen after ~2x `read_timeout_s`) and a stall (no frame
    for `stall_timeout_s`) are all disconnects: the reader reconnects with capped exponential backoff and jitter.
    It never closes a container from another thread (unsafe in FFmpeg): `stop()` sets a flag the reader checks
    between reads, so stopping takes at most one read (bounded by the read timeout).
    """

    is_live = True

    def __init__(self, cfg: SourceConfig, max_buffered_frames: int = 2) -> None:
        super().__init__(cfg)
        self.max_buffered_frames = max_buffered_frames
        self._items_lock = threading.Condition()
        self._queue: deque[SourceItem] = deque()
        self._queued_frames = 0
        self._thread: threading.Thread | None = None
        self._pending: av.container.InputContainer | None = None  # first connection made by connect_now()
        self._next_index = 0
        self._stale = FRAMES_DROPPED.labels(source=cfg.id, reason="stale")
        self._reconnects = RECONNECTS.labels(source=cfg.id)
        self.reconnect_count = 0
        self.connect_count = 0
        self._started_sent = False
        self._announced_down = False
        self._finished = False

    def _last_index(self) -> int | None:
        return self._next_index - 1 if self._next_index else None

    # -- connection --------------------------------------------------------------------------------------------

    def _options(self) -> dict[str, str]:
        cfg = self.cfg
        options = {
            "probesize": str(cfg.probesize),
            "analyzeduration": str(int(cfg.analyzeduration_s * 1_000_000)),
            "fpsprobesize": "0",
            # Per socket operation, microseconds (FFmpeg ignores the older `stimeout`/`rw_timeout` names).
            "timeout": str(int(cfg.read_timeout_s * 1_000_000)),
        }
        if url_scheme(cfg.url) in {"rtsp", "rtsps"}:
            options["rtsp_transport"] = cfg.transport
        if url_scheme(cfg.url) in {"rtsps", "https"} and cfg.tls_verify:
            options["tls_verify"] = "1"
            if cfg.tls_ca_file:
                options["ca_file"] = cfg.tls_ca_file
        return options

    def _connect(self) -> av.container.InputContainer:
        """Open the stream; raises `_ConnectError` with a redacted one-line reason."""
        cfg = self.cfg
        began = time.monotonic()
        try:
            container = open_input(cfg.url, options=self._options(), timeout=(cfg.open_timeout_s, cfg.read_timeout_s))
        except (av.error.FFmpegError, OSError) as exc:
            waited = time.monotonic() - began
            reason = describe_av_error(exc, timeout_hint=cfg.open_timeout_s)
            silent = isinstance(exc, av.error.ExitError | av.error.InvalidDataError) or "timed out" in reason
            if silent and waited >= 0.9 * min(cfg.open_timeout_s, cfg.read_timeout_s):
                # FFmpeg words a server that accepts and then says nothing as 'invalid data': say what happened.
                reason = f"no answer from the server within {waited:.1f} s"
            elif cfg.tls_verify and url_scheme(cfg.url) in {"rtsps", "https"} and reason == "Input/output error":
                reason = "TLS handshake failed (is the server's certificate signed by tls_ca_file?)"
            raise _ConnectError(reason) from None
        if not container.streams.video:
            container.close()
            raise _ConnectError("no video stream")
        return container

    def connect_now(self) -> None:
        """Make the first connection in the calling thread (open_source does this when reconnects are off)."""
        try:
            self._pending = self._connect()
        except _ConnectError as exc:
            raise SourceError(f"source {self.source_id!r}: cannot connect to {self.display_url}: {exc}") from None

    # -- consumer side -----------------------------------------------------------------------------------------

    def _items(self) -> Iterator[SourceItem]:
        self._thread = threading.Thread(target=self._run, name=f"source-{self.source_id}", daemon=True)
        self._thread.start()
        try:
            while True:
                item = self._next_item()
                if item is None:
                    # Stopped while the reader sits in a blocking read (at most the read timeout): don't wait.
                    yield self._status("ended", "stopped", frames=self.frames_delivered)
                    return
                yield item
                if isinstance(item, StreamStatus) and item.kind == "ended":
                    return
        finally:
            self.stop()

    def _next_item(self) -> SourceItem | None:
        """The next item from the reader; None when stopped and the reader has not ended within 0.5 s."""
        with self._items_lock:
            give_up_at: float | None = None
            while not self._queue:
                if self.stopped:
                    give_up_at = give_up_at or time.monotonic() + 0.5
                    if time.monotonic() >= give_up_at:
                        return None
                self._items_lock.wait(0.1 if self.stopped else 0.5)
            item = self._queue.popleft()
            if isinstance(item, Frame):
                self._queued_frames -= 1
            return item

    def close(self, timeout: float = 5.0) -> None:
        self.stop()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        if self._pending is not None and (thread is None or not thread.is_alive()):
            self._pending.close()
            self._pending = None

    @property
    def reader_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the reader thread to exit; True when it has."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.reader_alive

    # -- reader thread -----------------------------------------------------------------------------------------

    def _push(self, item: SourceItem) -> None:
        with self._items_lock:
            if isinstance(item, Frame):
                if self._queued_frames >= self.max_buffered_frames:
                    for position, queued in enumerate(self._queue):
                        if isinstance(queued, Frame):
                            del self._queue[position]
                            self._queued_frames -= 1
                            self._stale.inc()
                            break
                self._queued_frames += 1
            self._queue.append(item)
            self._items_lock.notify()

    def _run(self) -> None:
        try:
            reason = self._read_forever()
        except Exception as exc:  # a bug, not a camera problem: say so and end the stream cleanly
            log.exception("source %s: reader crashed", self.source_id)
            reason = f"reader crashed: {redact_text(repr(exc))}"
            self._push(self._status("error", reason))
        finally:
            self._up.set(0)
        if not self._started_sent:
            self._push(self._status("started"))
        self._push(self._status("ended", reason, frames=self.frames_delivered, reconnects=self.reconnect_count))
        with self._items_lock:
            self._finished = True
            self._items_lock.notify_all()

    def _read_forever(self) -> str:
        """Connect, read, reconnect until stopped or out of attempts; returns why it ended."""
        policy = self.cfg.reconnect
        failures = 0  # consecutive attempts that produced no frame
        last_reason = ""
        first = True
        while not self.stopped:
            if not first:
                if not policy.enabled:
                    return f"disconnected ({last_reason}); reconnect disabled"
                if policy.max_attempts is not None and failures >= policy.max_attempts:
                    return f"gave up after {failures} failed attempts: {last_reason}"
                if self._stop.wait(self._backoff(failures)):
                    break
                self.reconnect_count += 1
                self._reconnects.inc()
            first = False
            container, self._pending = self._pending, None
            if container is None:
                try:
                    container = self._connect()
                except _ConnectError as exc:
                    last_reason = str(exc)
                    failures += 1
                    self._went_down(f"connect failed: {last_reason}", attempt=failures)
                    continue
            got_frames, last_reason = self._read_connection(container)
            failures = 0 if got_frames else failures + 1
            self._went_down(last_reason, attempt=failures)
        return "stopped"

    def _backoff(self, failures: int) -> float:
        policy = self.cfg.reconnect
        delay = min(policy.max_backoff_s, policy.initial_backoff_s * 2 ** min(failures, 30))
        return max(0.0, delay * (1 + policy.jitter * random.uniform(-1.0, 1.0)))

    def _went_down(self, reason: str, attempt: int) -> None:
        if self.stopped:
            return
        if not self._started_sent:
            self._started_sent = True
            self._push(self._status("started"))
        if not self._announced_down:  # one `disconnected` per outage; the retries are logged
            self._announced_down = True
            log.warning("source %s: disconnected: %s", self.source_id, reason)
            self._push(self._status("disconnected", reason, attempt=attempt))
        else:
            log.info("source %s: still down (attempt %d): %s", self.source_id, attempt, reason)
        self._up.set(0)

    def _read_connection(self, container: av.container.InputContainer) -> tuple[bool, str]:
        """Read one connection until it ends; returns (delivered a frame, why it ended). Closes the container."""
        cfg = self.cfg
        got_frames = False
        try:
            stream = video_stream(container, cfg.decode_threads)
            info = stream_info(container, stream)
            self.connect_count += 1
            if not self._started_sent:
                self._started_sent = True
                self._push(self._status("started", **info.as_dict()))
            self._announced_down = False
            self._push(self._status("connected", reconnects=self.reconnect_count, **info.as_dict()))
            log.info(
                "source %s: connected to %s (%dx%d %s, %s fps)",
                self.source_id, self.display_url, info.width, info.height, info.codec, info.fps,
            )  # fmt: skip
            capper = RateLimiter(cfg.fps_cap) if cfg.fps_cap else None
            watchdog = _StallWatchdog(cfg.stall_timeout_s)
            stalled = False

            def should_stop() -> bool:
                nonlocal stalled
                stalled = watchdog.expired()
                return self.stopped or stalled

            for av_frame in decode_frames(
                container, stream, should_stop=should_stop, on_decode_error=self._count_decode_error
            ):
                now = time.time()
                watchdog.feed()
                if not got_frames:
                    got_frames = True
                    self._up.set(1)
                index = self._next_index
                self._next_index += 1
                self._frames_decoded.inc()
                if capper is not None and not capper.keep(time.monotonic()):
                    self._frames_capped.inc()
                    continue
                self.frames_delivered += 1
                self._push(Frame(self.source_id, index, frame_seconds(av_frame), now, to_rgb(av_frame)))
            if self.stopped:
                return got_frames, "stopped"
            if stalled:
                return got_frames, f"stalled: no frame for {cfg.stall_timeout_s:g} s"
            # FFmpeg reports a server that went away as a plain end of stream: for a camera that is a disconnect.
            return got_frames, "stream ended by the server (connection closed)"
        except (av.error.FFmpegError, OSError, UndecodableStreamError) as exc:
            if isinstance(exc, av.error.ExitError | TimeoutError):
                return got_frames, f"read timed out: no data for {cfg.read_timeout_s:g} s"
            return got_frames, f"read failed: {describe_av_error(exc, timeout_hint=cfg.read_timeout_s)}"
        except ValueError:
            return got_frames, "no video stream"
        finally:
            container.close()


class _ConnectError(Exception):
    """A failed connection attempt; the message is the redacted reason."""


class _StallWatchdog:
    """No decoded frame for `timeout_s` (while packets, or nothing, keep coming) means the stream is stuck."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._last = time.monotonic()

    def feed(self) -> None:
        self._last = time.monotonic()

    def expired(self) -> bool:
        return time.monotonic() - self._last > self.timeout_s
