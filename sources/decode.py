"""PyAV plumbing shared by file and live sources: opening, error wording, packet decoding, frame timing.

Kept apart from the sources (`sources/file.py`, `sources/live.py`: the source life cycle, files in order, reconnects,
statuses) so each
piece stays small. Nothing here ever puts a URL with credentials into a message: `describe_av_error` drops the
file name FFmpeg appends and redacts whatever is left.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import av
import av.error
import numpy as np

from pipeline.redact import redact_text

log = logging.getLogger("maskstream.source")

# After this many undecodable packets in a row the input is garbage, not a glitch: stop that stream.
MAX_CONSECUTIVE_DECODE_ERRORS = 100


class UndecodableStreamError(RuntimeError):
    """Packet after packet fails to decode: the input is not a video we can read."""


def describe_av_error(exc: BaseException, *, timeout_hint: float | None = None) -> str:
    """One short, credential-free line for an FFmpeg/PyAV error (no 'Errno 1094995529', no URL)."""
    if isinstance(exc, av.error.ExitError):
        # PyAV's interrupt callback (our open/read timeouts) surfaces as 'Immediate exit requested'.
        return f"timed out after {timeout_hint:g} s" if timeout_hint else "timed out"
    if isinstance(exc, av.error.FFmpegError):
        text = exc.strerror or type(exc).__name__
    elif isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
    else:
        text = str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError | av.error.FFmpegError) and "timed out" in text.lower():
        text = f"timed out after {timeout_hint:g} s" if timeout_hint else text
    return redact_text(text.strip().rstrip(".").replace("\n", " "))


@dataclass(slots=True)
class StreamInfo:
    """What a source says about itself in `started`/`connected` statuses."""

    width: int
    height: int
    fps: float | None
    codec: str
    duration_s: float | None = None
    frame_count: int | None = None

    def as_dict(self) -> dict[str, Any]:
        info: dict[str, Any] = {"width": self.width, "height": self.height, "fps": self.fps, "codec": self.codec}
        if self.duration_s is not None:
            info["duration_s"] = round(self.duration_s, 3)
        if self.frame_count:
            info["frame_count"] = self.frame_count
        return info


def open_input(
    target: str, *, options: dict[str, str] | None = None, timeout: tuple[float, float] | float | None = None
) -> av.container.InputContainer:
    """`av.open` for reading; raises PyAV's errors unchanged (callers word them for their context)."""
    return av.open(target, mode="r", options=options or {}, timeout=timeout)


def video_stream(container: av.container.InputContainer, decode_threads: int = 0) -> av.video.stream.VideoStream:
    """The first video stream, set up for threaded decoding; ValueError when the input has none."""
    if not container.streams.video:
        raise ValueError("no video stream")
    stream = container.streams.video[0]
    # PyAV's default threading (measured faster than AUTO here) with FFmpeg's own thread count unless set.
    if decode_threads:
        stream.codec_context.thread_count = decode_threads
    return stream


def stream_info(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> StreamInfo:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else None
    duration_s: float | None = None
    if stream.duration is not None and stream.time_base is not None:
        duration_s = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration_s = container.duration / av.time_base
    return StreamInfo(
        width=stream.codec_context.width,
        height=stream.codec_context.height,
        fps=round(fps, 3) if fps else None,
        codec=stream.codec_context.name,
        duration_s=duration_s,
        frame_count=stream.frames or None,
    )


def decode_frames(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    *,
    should_stop: Callable[[], bool],
    on_decode_error: Callable[[BaseException], None],
) -> Iterator[av.VideoFrame]:
    """Decoded frames of `stream`; a packet that fails to decode is reported and skipped.

    Demuxing errors (I/O, timeouts) propagate: they end the stream or the connection. A run of
    `MAX_CONSECUTIVE_DECODE_ERRORS` undecodable packets raises `UndecodableStreamError`.
    `should_stop` is checked between packets, the only safe place to leave a blocking read loop.
    """
    consecutive_errors = 0
    # Demux every stream and filter here: `demux(stream)` skips other streams' packets inside PyAV without coming
    # back to Python, so a camera whose video died while its audio goes on would never reach `should_stop` (and
    # the stall watchdog) again, and PyAV's read timeout restarts with every packet read.
    for packet in container.demux():
        if should_stop():
            return
        if packet.stream_index != stream.index:
            continue
        try:
            frames = packet.decode()
        except av.error.FFmpegError as exc:  # decoding does no I/O: any error here is a bad packet
            on_decode_error(exc)
            consecutive_errors += 1
            if consecutive_errors >= MAX_CONSECUTIVE_DECODE_ERRORS:
                raise UndecodableStreamError(
                    f"{consecutive_errors} packets in a row failed to decode ({describe_av_error(exc)})"
                ) from exc
            continue
        consecutive_errors = 0
        yield from (frame for frame in frames if isinstance(frame, av.VideoFrame))  # a video packet: always


def frame_seconds(frame: av.VideoFrame) -> float | None:
    """Presentation time in seconds; None when the stream gives none (often the first frame of RTSP)."""
    if frame.pts is None or frame.time_base is None:
        return None
    return float(frame.pts * frame.time_base)


def to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """H x W x 3 uint8 RGB, C-contiguous (what `pipeline.items.Frame.image` promises)."""
    image = frame.to_ndarray(format="rgb24")
    return image if image.flags.c_contiguous else np.ascontiguousarray(image)


class RateLimiter:
    """Keeps at most `fps` items per second of a clock (pts for files, wall clock for live).

    Slots advance by exactly 1/fps so the kept rate is exact on average (30 → 7 fps keeps 7 per second, not 7.5);
    a clock that jumps back (a new connection, broken timestamps) restarts the slots.
    """

    def __init__(self, fps: float) -> None:
        self.interval = 1.0 / fps
        self._next: float | None = None

    def keep(self, t: float) -> bool:
        tolerance = self.interval * 1e-3
        if self._next is None or self._next - t > self.interval + tolerance:
            self._next = t + self.interval
            return True
        if t + tolerance >= self._next:
            self._next += self.interval
            if self._next <= t:  # a gap in the clock: restart the slots rather than burst to catch up
                self._next = t + self.interval
            return True
        return False
