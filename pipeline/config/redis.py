"""Config of the Redis Streams publisher."""

from __future__ import annotations

import logging
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from pipeline.config.base import BackoffConfig
from pipeline.events import DEFAULT_STREAM_KEY, SCHEMA_VERSION

log = logging.getLogger(__name__)
_VERSION = str(SCHEMA_VERSION)


class RedisConfig(BackoffConfig):
    """Where and how events are published. Credentials go in the URL (use `${ENV}` interpolation for secrets)."""

    url: str = Field(
        "redis://localhost:6379/0",
        description=(
            "redis-py URL: redis://[[user]:password@]host:port/db for plain TCP, rediss://... for TLS; "
            "an ACL user goes before the colon, AUTH password after it. Redacted in logs and errors."
        ),
    )
    cluster: bool = Field(
        False,
        description=(
            "The URL names one node of a Redis Cluster: use redis-py's cluster client (it finds the other nodes "
            "and follows failovers). A source's keys share one hash slot through the {source_id} hash tag."
        ),
    )
    stream_key: str = Field(
        DEFAULT_STREAM_KEY,
        description=(
            "Stream key template, str.format with {source_id}; doubled braces are literal braces. The default "
            "maskstream:{cam1}:events is hash-tagged so a camera's keys share one Redis Cluster slot."
        ),
    )
    maxlen: int | None = Field(
        100_000,
        ge=1,
        description="Trim each stream to about this many entries on write (XADD MAXLEN ~ N); null = no length cap.",
    )
    minid_window_s: float | None = Field(
        None,
        gt=0,
        description="Also drop entries older than this many seconds (XTRIM MINID ~ now-window, same round trip).",
    )
    spool_max_events: int = Field(
        100_000,
        ge=1,
        description="Events kept while Redis is unreachable; beyond this the OLDEST are dropped and counted.",
    )
    spool_path: Path | None = Field(
        None,
        description=(
            "Optional on-disk spool (an SQLite file): spooled events survive a restart of maskstream and are "
            "delivered first next time. null = memory only."
        ),
    )
    connect_timeout_s: float = Field(2.0, gt=0, description="TCP/TLS connect timeout, in seconds.")
    socket_timeout_s: float = Field(5.0, gt=0, description="A Redis reply slower than this counts as an outage.")
    initial_backoff_s: float = Field(0.1, gt=0, description="Wait before the first retry after a failure, in seconds.")
    max_backoff_s: float = Field(5.0, gt=0, description="Cap of the exponential reconnect backoff, in seconds.")
    jitter: float = Field(0.2, ge=0, le=1, description="Random spread of each wait (0.2 = ±20%).")
    max_events_per_round_trip: int = Field(
        2_000, ge=1, description="When draining a backlog, at most this many XADDs go in one pipeline."
    )
    tls_ca_cert_file: Path | None = Field(
        None, description="rediss://: CA bundle that signed the server certificate (default: system CAs)."
    )
    tls_cert_file: Path | None = Field(
        None, description="rediss://: client certificate, for servers that verify clients."
    )
    tls_key_file: Path | None = Field(None, description="rediss://: private key of tls_cert_file.")
    tls_check_hostname: bool = Field(
        True, description="rediss://: check the server certificate's name against the URL host."
    )

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// (TLS) or unix://")
        return url

    @field_validator("stream_key")
    @classmethod
    def _template_has_source(cls, template: str) -> str:
        try:
            key = template.format(source_id="x")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"not a valid template with only {{source_id}}: {exc}") from None
        if key == template.format(source_id="y"):
            raise ValueError("must contain {source_id}, or every source would share one stream")
        return template

    @model_validator(mode="after")
    def _consistent(self) -> RedisConfig:
        if self.tls_key_file is not None and self.tls_cert_file is None:
            raise ValueError("tls_key_file needs tls_cert_file")
        return self

    def key_for(self, source_id: str) -> str:
        """The stream key of one source."""
        return self.stream_key.format(source_id=source_id)
