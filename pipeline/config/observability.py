"""Config of metrics, health endpoints, logging and progress output."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pipeline.config.base import StrictModel


class MetricsConfig(StrictModel):
    """The HTTP endpoint for Prometheus and orchestrators: /metrics, /healthz, /readyz."""

    port: int | None = Field(None, ge=0, le=65535, description="TCP port of the endpoint; null or 0 = off.")
    host: str = Field("0.0.0.0", description="Address to listen on (127.0.0.1 keeps it local).")


class LogConfig(StrictModel):
    """What the process says while it runs."""

    level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level.")
    progress: bool = Field(True, description="Show a progress bar (frames, fps, ETA) when every source is a file.")
    status_interval_s: float = Field(
        10.0, gt=0.0, description="With live sources, print a status line (fps, drops, latency, events) this often."
    )
