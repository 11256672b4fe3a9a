"""Config of a video source: where it is, how it is read, how it reconnects."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, model_validator

from pipeline.config.base import BackoffConfig, StrictModel
from pipeline.config.zones import LineConfig, ZoneConfig, check_unique_names
from pipeline.redact import redact_url

log = logging.getLogger("maskstream.source")


LIVE_SCHEMES = frozenset({"rtsp", "rtsps", "http", "https"})


class ReconnectConfig(BackoffConfig):
    """How a live source gets its stream back after a disconnect, a read timeout or a stall."""

    enabled: bool = Field(True, description="Reconnect live sources after a disconnect; false ends the stream.")
    max_attempts: int | None = Field(
        None,
        ge=1,
        description="Consecutive failed attempts before giving up (the count resets once frames flow); null = forever.",
    )


class SourceConfig(StrictModel):
    """One video source. Files are processed completely and in order; live sources drop frames to stay current."""

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
    zones: list[ZoneConfig] = Field(
        default_factory=list, description="Named polygons: entries, exits, dwell, occupancy."
    )
    lines: list[LineConfig] = Field(default_factory=list, description="Named counting lines: crossings with direction.")

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
        check_unique_names(self.zones, self.lines)
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
