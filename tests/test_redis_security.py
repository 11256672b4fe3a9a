"""Redis with TLS, a password and an ACL user: publisher and consumer connect through URLs; secrets stay secret."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from consumer import EventConsumer
from pipeline.config.redis import RedisConfig
from pipeline.errors import MaskstreamError
from sinks.redis_publisher import RedisPublisher
from tests.servers import RedisServer, make_tls_files, redis_tls_args
from tests.test_publisher import event

pytestmark = pytest.mark.timeout(60)

SECRET = "s3cr3t-Pa55"


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_redis(tls_files: dict[str, Path]) -> Iterator[RedisServer]:
    server = RedisServer(args=[*redis_tls_args(tls_files), "--requirepass", SECRET], tls_port=True).start()
    try:
        yield server
    finally:
        server.close()


def round_trip(url: str, **tls: Path) -> list[str]:
    """Publish three events and read them back through a consumer group; returns the event ids read."""
    publisher = RedisPublisher(RedisConfig(url=url, **tls))
    publisher.check()
    consumer = EventConsumer.from_url(url, "g", "c1", ["cam1"], start_id="0", block_s=0.2, **tls)
    publisher.publish("cam1", [event("cam1", n) for n in range(3)])
    assert publisher.flush(10)
    publisher.close(5)
    events = consumer.read()
    consumer.ack(*events)
    consumer.close()
    return [e.event_id for e in events]


def test_tls_with_password_publishes_and_consumes(tls_redis: RedisServer, tls_files: dict[str, Path]) -> None:
    url = f"rediss://:{SECRET}@127.0.0.1:{tls_redis.port}/0"
    assert round_trip(url, tls_ca_cert_file=tls_files["ca"]) == ["e0", "e1", "e2"]


def test_tls_with_an_unknown_ca_is_a_one_line_error(tls_redis: RedisServer) -> None:
    url = f"rediss://:{SECRET}@127.0.0.1:{tls_redis.port}/0"
    with pytest.raises(MaskstreamError) as info:
        RedisPublisher(RedisConfig(url=url)).check()  # system CAs do not know our test CA
    message = str(info.value)
    assert "\n" not in message and SECRET not in message
    assert message.startswith(f"Redis unreachable at rediss://:***@127.0.0.1:{tls_redis.port}/0")
    assert "certificate" in message.lower()


def test_plain_client_on_a_tls_port_fails_clearly(tls_redis: RedisServer) -> None:
    with pytest.raises(MaskstreamError, match="Redis unreachable at redis://"):
        RedisPublisher(RedisConfig(url=f"redis://127.0.0.1:{tls_redis.port}/0", socket_timeout_s=1)).check()


def test_acl_user_publishes_and_consumes() -> None:
    acl = ["--user", "camera", "on", f">{SECRET}", "~maskstream:*", "+@all", "--user", "default", "off"]
    server = RedisServer(args=acl).start()
    try:
        url = f"redis://camera:{SECRET}@127.0.0.1:{server.port}/0"
        assert round_trip(url) == ["e0", "e1", "e2"]
    finally:
        server.close()


def test_wrong_password_is_reported_without_leaking_it(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server = RedisServer(args=["--requirepass", SECRET]).start()
    try:
        wrong = "not-the-Pa55"
        url = f"redis://:{wrong}@127.0.0.1:{server.port}/0"
        publisher = RedisPublisher(RedisConfig(url=url, initial_backoff_s=0.05, max_backoff_s=0.1))
        with pytest.raises(MaskstreamError) as info:
            publisher.check()
        assert str(info.value).startswith(f"Redis at redis://:***@127.0.0.1:{server.port}/0 refused the credentials")
        publisher.publish("cam1", [event("cam1", 0)])  # the writer logs its failures: they must be redacted too
        publisher.close(0.3)
        with pytest.raises(MaskstreamError) as consumer_error:
            EventConsumer.from_url(url, "g", "c", ["cam1"])
        texts = [str(info.value), str(consumer_error.value), *(r.getMessage() for r in caplog.records)]
        assert any("refused the credentials" in t for t in texts[2:])
        assert all(wrong not in t and SECRET not in t for t in texts)
    finally:
        server.close()


def test_missing_password_says_what_to_do() -> None:
    server = RedisServer(args=["--requirepass", SECRET]).start()
    try:
        with pytest.raises(MaskstreamError, match=r"^Redis at redis://127\.0\.0\.1:\d+/0 requires a password: give it"):
            RedisPublisher(RedisConfig(url=server.url)).check()
    finally:
        server.close()
