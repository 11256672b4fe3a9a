"""Files: every frame, in order, files back to back as one stream."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

import av
import av.error

from pipeline.config.sources import SourceConfig, url_scheme
from pipeline.errors import SourceError
from pipeline.items import Frame
from sources.base import SourceItem, VideoSource, display_url
from sources.decode import (
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
                f"source {self.source_id!r}: cannot read {display_url(file)}: {describe_av_error(exc)}{hint}"
            ) from None
        try:
            stream = video_stream(container, self.cfg.decode_threads)
        except ValueError:
            container.close()
            raise SourceError(f"source {self.source_id!r}: no video stream in {display_url(file)}") from None
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
                yield self._status("error", str(exc), file=display_url(file))
                continue
            info = stream_info(container, stream)
            if number:
                log.info("source %s: next file %s", self.source_id, display_url(file))
            outcome = _FileOutcome()
            try:
                yield from self._file_frames(container, stream, info, offset, capper, outcome)
            except (av.error.FFmpegError, OSError, UndecodableStreamError) as exc:
                message = f"source {self.source_id!r}: {display_url(file)} failed after {outcome.frames} frames: {describe_av_error(exc, timeout_hint=cfg.read_timeout_s)}"
                log.error("%s", message)
                yield self._status("error", message, file=display_url(file))
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
            assert stream.time_base is not None  # set on every demuxed stream
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
                f"{display_url(container.name)} ended early: only {decoded_in_file} of {info.frame_count} frames "
                "could be decoded (truncated or damaged file)"
            )
        elif info.duration_s and local_pts is not None and local_pts + 3 * step < info.duration_s - 0.5:
            outcome.truncated_note = (
                f"{display_url(container.name)} ended early at {local_pts:.2f} s of {info.duration_s:.2f} s "
                "(truncated or damaged file)"
            )


@dataclass(slots=True)
class _FileOutcome:
    frames: int = 0
    last_pts: float | None = None
    end_reached: bool = False
    skipped: bool = False
    truncated_note: str | None = None
