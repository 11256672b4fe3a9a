"""Live streams: a reader thread keeps pace with the camera, reconnects, and never waits for the consumer."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator

import av
import av.error

from pipeline.config.sources import SourceConfig, url_scheme
from pipeline.errors import SourceError
from pipeline.items import Frame, StreamStatus
from pipeline.metrics import FRAMES_DROPPED, RECONNECTS
from pipeline.queues import BoundedQueue, Empty, QueueClosed
from pipeline.redact import redact_text
from sources.base import SourceItem, VideoSource
from sources.decode import (
    RateLimiter,
    UndecodableStreamError,
    decode_frames,
    describe_av_error,
    frame_seconds,
    open_input,
    stream_info,
    to_rgb,
    video_stream,
)
from sources.watchdog import StallWatchdog

log = logging.getLogger("maskstream.source")


class LiveSource(VideoSource):
    """An RTSP/RTSPS/HTTP stream read by a thread of its own.

    The reader decodes at the camera's pace whatever the consumer does: it hands items over through the
    pipeline's drop-oldest queue (`pipeline.queues.BoundedQueue`, `batcher.live_queue_size` frames; statuses are
    never dropped). Each dropped frame goes to `on_drop` (the runner counts it in Prometheus'
    FRAMES_DROPPED{reason="stale"} and in the run's status line); by default Prometheus only. A server that closes the connection (FFmpeg then just reports the end of
    the stream), a read that times out (a frozen server, seen after ~2x `read_timeout_s`) and a stall (no frame
    for `stall_timeout_s`) are all disconnects: the reader reconnects with capped exponential backoff and jitter.
    It never closes a container from another thread (unsafe in FFmpeg): `stop()` sets a flag the reader checks
    between reads, so stopping takes at most one read (bounded by the read timeout).
    """

    is_live = True

    def __init__(self, cfg: SourceConfig, queue_size: int = 2, on_drop: Callable[[Frame], None] | None = None) -> None:
        super().__init__(cfg)
        if not isinstance(cfg.url, str):
            raise SourceError(f"source {cfg.id!r}: a live source takes one URL, not a list")
        self.url: str = cfg.url
        self._stale = FRAMES_DROPPED.labels(source=cfg.id, reason="stale")
        self._buffer = BoundedQueue(
            f"live:{cfg.id}",
            queue_size,
            "drop_oldest",
            is_droppable=lambda item: isinstance(item, Frame),
            on_drop=on_drop or (lambda _frame: self._stale.inc()),
        )
        self._thread: threading.Thread | None = None
        self._pending: av.container.InputContainer | None = None  # first connection made by connect_now()
        self._next_index = 0
        self._reconnects = RECONNECTS.labels(source=cfg.id)
        self.reconnect_count = 0
        self._started_sent = False
        self._announced_down = False

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
        if url_scheme(self.url) in {"rtsp", "rtsps"}:
            options["rtsp_transport"] = cfg.transport
        if url_scheme(self.url) in {"rtsps", "https"} and cfg.tls_verify:
            options["tls_verify"] = "1"
            if cfg.tls_ca_file:
                options["ca_file"] = cfg.tls_ca_file
        return options

    def _connect(self) -> av.container.InputContainer:
        """Open the stream; raises `_ConnectError` with a redacted one-line reason."""
        cfg = self.cfg
        began = time.monotonic()
        try:
            container = open_input(self.url, options=self._options(), timeout=(cfg.open_timeout_s, cfg.read_timeout_s))
        except (av.error.FFmpegError, OSError) as exc:
            waited = time.monotonic() - began
            reason = describe_av_error(exc, timeout_hint=cfg.open_timeout_s)
            silent = isinstance(exc, av.error.ExitError | av.error.InvalidDataError) or "timed out" in reason
            if silent and waited >= 0.9 * min(cfg.open_timeout_s, cfg.read_timeout_s):
                # FFmpeg words a server that accepts and then says nothing as 'invalid data': say what happened.
                reason = f"no answer from the server within {waited:.1f} s"
            elif cfg.tls_verify and url_scheme(self.url) in {"rtsps", "https"} and reason == "Input/output error":
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
        give_up_at: float | None = None
        while True:
            try:
                return self._buffer.get(timeout=0.1 if self.stopped else 0.5)
            except Empty:
                if self.stopped:
                    give_up_at = give_up_at or time.monotonic() + 0.5
                    if time.monotonic() >= give_up_at:
                        return None
            except QueueClosed:  # the reader ended; its `ended` status was the last item
                return None

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
        self._buffer.put(item)  # never waits: a full buffer drops its oldest frame

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
        self._buffer.close()

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
        return self.cfg.reconnect.backoff().delay(failures)

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
            watchdog = StallWatchdog(cfg.stall_timeout_s)
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
