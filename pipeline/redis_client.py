"""The one Redis connection module: URL → client, one-line errors, the check at start. Shared by the publisher, the consumer SDK and `maskstream tail`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import AuthenticationError, AuthorizationError, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from pipeline.errors import MaskstreamError
from pipeline.events import SCHEMA_VERSION
from pipeline.redact import redact_text, redact_url

log = logging.getLogger(__name__)
_VERSION = str(SCHEMA_VERSION)


def redis_from_url(
    url: str,
    *,
    connect_timeout_s: float = 2.0,
    socket_timeout_s: float | None = 5.0,
    tls_ca_cert_file: Path | str | None = None,
    tls_cert_file: Path | str | None = None,
    tls_key_file: Path | str | None = None,
    tls_check_hostname: bool = True,
    cluster: bool = False,
) -> redis.Redis:
    """A redis-py client for a URL (redis://, rediss://, unix://) that fails fast instead of retrying on its own.

    Our callers own retrying (the publisher's backoff, the consumer's loop), so redis-py's built-in retries are
    off: a dead server shows up as one ConnectionError, not as a silent multi-second stall.

    `cluster=True`: a `redis.cluster.RedisCluster` (same commands; it maps keys to slots and follows failovers).
    It keeps a few retries of its own, since a failover shows up as MOVED / a refused connection for a moment.
    """
    kwargs: dict[str, Any] = {
        "socket_connect_timeout": connect_timeout_s,
        "socket_timeout": socket_timeout_s,
        "retry": Retry(NoBackoff(), 0),
    }
    if url.startswith("rediss://"):
        kwargs["ssl_check_hostname"] = tls_check_hostname
        if tls_ca_cert_file is not None:
            kwargs["ssl_ca_certs"] = str(tls_ca_cert_file)
        if tls_cert_file is not None:
            kwargs["ssl_certfile"] = str(tls_cert_file)
        if tls_key_file is not None:
            kwargs["ssl_keyfile"] = str(tls_key_file)
    elif tls_ca_cert_file or tls_cert_file:
        raise MaskstreamError(f"TLS files are set but the Redis URL {redact_url(url)} is not rediss://")
    try:
        if cluster:
            from redis.cluster import RedisCluster

            kwargs["retry"] = Retry(ExponentialBackoff(cap=1.0, base=0.05), 3)
            return RedisCluster.from_url(url, **kwargs)
        return redis.Redis.from_url(url, **kwargs)
    except ValueError as exc:
        raise MaskstreamError(f"bad Redis URL {redact_url(url)}: {redact_text(str(exc))}") from None


def describe_redis_error(url: str, exc: BaseException) -> str:
    """One line saying why Redis at `url` did not work, credentials redacted."""
    where = redact_url(url)
    text = str(exc)
    if "NOAUTH" in text or "already authenticated" in text:
        return f"Redis at {where} requires a password: give it in the URL, redis://[user]:password@host:port/db"
    if isinstance(exc, AuthenticationError | AuthorizationError) or "WRONGPASS" in str(exc) or "NOAUTH" in str(exc):
        return f"Redis at {where} refused the credentials ({redact_text(str(exc))})"
    if isinstance(exc, RedisConnectionError | RedisTimeoutError | OSError):
        return f"Redis unreachable at {where}: {redact_text(str(exc)) or type(exc).__name__}"
    return f"Redis at {where} failed: {redact_text(str(exc)) or type(exc).__name__}"


def check_redis(client: redis.Redis, url: str) -> None:
    """PING; raise a one-line MaskstreamError naming the redacted URL when Redis is unreachable or refuses us."""
    try:
        client.ping()
    except (RedisError, OSError) as exc:
        raise MaskstreamError(describe_redis_error(url, exc)) from None
