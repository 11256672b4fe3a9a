"""Config of metrics, health endpoints, logging and progress output."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from pipeline.config.base import StrictModel


class WebConfig(StrictModel):
    """The live page and its JSON API (`/`, `/api/`) on the metrics port (docs/LIVE.md). `web: false` turns it off."""

    enabled: bool = Field(True, description="Serve the live page and /api/ beside /metrics (off when metrics are off).")
    max_fps: float = Field(
        5.0, gt=0.0, le=30.0, description="Live images per second at most, per source and per viewer."
    )
    jpeg_quality: int = Field(70, ge=10, le=95, description="JPEG quality of the live images.")
    max_viewers: int = Field(16, ge=1, le=256, description="Open live connections (pages) at most; more get 503.")
    path_prefix: str = Field(
        "",
        pattern=r"^(/[A-Za-z0-9._~-]+)*$",
        description="Path under which a reverse proxy serves the page (e.g. /maskstream) when it does not send "
        "X-Forwarded-Prefix.",
    )
    token_env: str = Field(
        "MASKSTREAM_WEB_TOKEN",
        description="Environment variable holding an access token; when it is set and not empty, the page and "
        "/api/ need `?token=` or `Authorization: Bearer`.",
    )


class MetricsConfig(StrictModel):
    """The HTTP endpoint for Prometheus and orchestrators: /metrics, /healthz, /readyz (and the live page)."""

    port: int | None = Field(None, ge=0, le=65535, description="TCP port of the endpoint; null or 0 = off.")
    host: str = Field("0.0.0.0", description="Address to listen on (127.0.0.1 keeps it local).")
    max_connections: int = Field(
        64, ge=4, le=1024, description="Connections served at once (one thread each); more get 503 at once."
    )
    web: WebConfig = Field(default_factory=WebConfig, description="The live page: `true`, `false` or its options.")

    @field_validator("web", mode="before")
    @classmethod
    def _web_shorthand(cls, value: object) -> object:
        return {"enabled": value} if isinstance(value, bool) else value

    @model_validator(mode="after")
    def _room_beside_viewers(self) -> MetricsConfig:
        if self.web.enabled and self.web.max_viewers > self.max_connections - 4:
            raise ValueError(
                f"metrics.web.max_viewers ({self.web.max_viewers}) must leave at least 4 of metrics.max_connections "
                f"({self.max_connections}) for /metrics, /healthz and the API"
            )
        return self


class LogConfig(StrictModel):
    """What the process says while it runs."""

    level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level.")
    progress: bool = Field(True, description="Show a progress bar (frames, fps, ETA) when every source is a file.")
    status_interval_s: float = Field(
        10.0, gt=0.0, description="With live sources, print a status line (fps, drops, latency, events) this often."
    )
