"""RedisPublisher against a real redis-server: layout, trimming, round trips, outages, the spool."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from pipeline.config.redis import RedisConfig
from pipeline.errors import MaskstreamError
from pipeline.events import SCHEMA_VERSION, validate_event
from pipeline.metrics import EVENTS_DROPPED
from sinks.redis_publisher import RedisPublisher
from tests.servers import RedisServer, free_port

pytestmark = pytest.mark.timeout(60)


def event(source_id: str, n: int) -> dict:
    """A schema-valid stream event whose id encodes its publish order."""
    return {"v": SCHEMA_VERSION, "event_id": f"e{n}", "type": "stream.connected", "source_id": source_id,
            "frame_index": n, "pts": None, "capture_time": 1000.0 + n, "reason": None, "info": {}}  # fmt: skip


def stream_ids(server: RedisServer, source_id: str = "cam1") -> list[str]:
    entries = server.client().xrange(f"maskstream:{{{source_id}}}:events")
    return [fields[b"event_id"].decode() for _, fields in entries]


def fast_config(server_url: str, **overrides) -> RedisConfig:
    return RedisConfig(url=server_url, initial_backoff_s=0.05, max_backoff_s=0.2, **overrides)


@pytest.fixture
def durable_redis() -> Iterator[RedisServer]:
    """A redis-server that keeps its data when SIGKILLed (AOF, fsync always), so a kill loses only what we lose."""
    server = RedisServer(args=["--appendonly", "yes", "--appendfsync", "always"]).start()
    try:
        yield server
    finally:
        server.close()


def test_events_land_in_one_hash_tagged_stream_per_source(redis_server: RedisServer) -> None:
    publisher = RedisPublisher(fast_config(redis_server.url))
    publisher.check()
    publisher.publish("cam1", [event("cam1", 0), event("cam1", 1)])
    publisher.publish("cam2", [event("cam2", 0)])
    assert publisher.flush(10)
    publisher.close(5)
    client = redis_server.client()
    assert sorted(k.decode() for k in client.keys("*")) == ["maskstream:{cam1}:events", "maskstream:{cam2}:events"]
    (_entry_id, fields), _ = client.xrange("maskstream:{cam1}:events")
    assert set(fields) == {b"type", b"event_id", b"v", b"data"}
    assert fields[b"type"] == b"stream.connected" and fields[b"v"] == b"1" and fields[b"event_id"] == b"e0"
    data = json.loads(fields[b"data"])
    validate_event(data)
    assert data == event("cam1", 0)


def test_xadd_trims_each_stream_to_about_maxlen() -> None:
    server = RedisServer(args=["--stream-node-max-entries", "10"]).start()  # small nodes: `~` trims finely
    try:
        publisher = RedisPublisher(fast_config(server.url, maxlen=50))
        for n in range(300):
            publisher.publish("cam1", [event("cam1", n)])
        assert publisher.flush(10)
        publisher.close(5)
        ids = stream_ids(server)
        assert 50 <= len(ids) <= 60 and ids[-1] == "e299"
    finally:
        server.close()


def test_minid_window_drops_entries_older_than_the_window() -> None:
    server = RedisServer(args=["--stream-node-max-entries", "5"]).start()  # `~` trims whole nodes
    try:
        client = server.client()
        for n in range(50):
            client.xadd("maskstream:{cam1}:events", {"event_id": "ancient"}, id=f"{1000 + n}-0")
        publisher = RedisPublisher(fast_config(server.url, minid_window_s=60.0))
        publisher.publish("cam1", [event("cam1", 0)])
        assert publisher.flush(10)
        publisher.close(5)
        ids = stream_ids(server)
        assert ids[-1] == "e0" and ids.count("ancient") < 5
    finally:
        server.close()


def test_one_round_trip_per_frame_measured_by_server_command_stats(redis_server: RedisServer) -> None:
    client = redis_server.client()
    publisher = RedisPublisher(fast_config(redis_server.url))
    publisher.check()
    client.config_resetstat()
    for frame in range(20):  # one frame at a time: each frame's 3 events go in exactly one MULTI/EXEC
        publisher.publish("cam1", [event("cam1", 3 * frame + k) for k in range(3)])
        assert publisher.flush(10)
    stats = client.info("commandstats")
    assert stats["cmdstat_xadd"]["calls"] == 60
    assert stats["cmdstat_exec"]["calls"] == 20
    client.config_resetstat()
    for frame in range(200):  # a burst: frames may share a round trip, never need more than one each
        publisher.publish("cam1", [event("cam1", 60 + 3 * frame + k) for k in range(3)])
    assert publisher.flush(10)
    stats = client.info("commandstats")
    assert stats["cmdstat_xadd"]["calls"] == 600
    assert 1 <= stats["cmdstat_exec"]["calls"] <= 200
    publisher.close(5)
    assert stream_ids(redis_server) == [f"e{n}" for n in range(660)]


def test_redis_killed_and_restarted_loses_nothing_and_keeps_order(durable_redis: RedisServer) -> None:
    publisher = RedisPublisher(fast_config(durable_redis.url, spool_max_events=10_000))
    publisher.check()
    total = 600
    done = threading.Event()

    def produce() -> None:  # two cameras, ~300 events/s each in frames of 3, as a pipeline would
        for frame in range(total // 3):
            for source_id in ("cam1", "cam2"):
                publisher.publish(source_id, [event(source_id, 3 * frame + k) for k in range(3)])
            time.sleep(0.01)
        done.set()

    producer = threading.Thread(target=produce)
    producer.start()
    time.sleep(0.4)
    durable_redis.kill()
    time.sleep(1.0)
    assert publisher.stats()["spooled"] > 0  # the outage was real: events waited
    durable_redis.start()
    producer.join(30)
    assert done.is_set()
    assert publisher.flush(20)
    publisher.close(5)
    for source_id in ("cam1", "cam2"):
        ids = stream_ids(durable_redis, source_id)
        # at-least-once: a batch whose reply died with the server may be written twice; event ids drop the copy
        first_copies = list(dict.fromkeys(ids))
        assert first_copies == [f"e{n}" for n in range(total)]
    assert publisher.stats()["dropped"] == 0


def test_outage_longer_than_the_spool_drops_the_oldest_and_reports_the_exact_count(
    durable_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sinks.redis_publisher")
    # slow retries: the writer stays out of the way while the test overfills the spool
    publisher = RedisPublisher(RedisConfig(url=durable_redis.url, spool_max_events=100, initial_backoff_s=1.0,
                                           max_backoff_s=1.0))  # fmt: skip
    for n in range(10):
        publisher.publish("cam1", [event("cam1", n)])
    assert publisher.flush(10)
    dropped_before = EVENTS_DROPPED.labels("cam1")._value.get()
    durable_redis.kill()
    publisher.publish("cam1", [event("cam1", 10)])
    deadline = time.monotonic() + 10
    while publisher.stats()["connected"] and time.monotonic() < deadline:
        time.sleep(0.01)  # the writer's attempt failed: it now sleeps in backoff, nothing is in flight
    for n in range(11, 260):
        publisher.publish("cam1", [event("cam1", n)])
    assert publisher.stats()["spooled"] == 100
    durable_redis.start()
    assert publisher.flush(20)
    publisher.close(5)

    assert EVENTS_DROPPED.labels("cam1")._value.get() - dropped_before == 150
    assert publisher.stats()["dropped"] == 150
    entries = durable_redis.client().xrange("maskstream:{cam1}:events")
    ids = [fields[b"event_id"].decode() for _, fields in entries]
    assert ids == [f"e{n}" for n in range(10)] + ["d:e10..e159"] + [f"e{n}" for n in range(160, 260)]
    report = json.loads(entries[10][1][b"data"])
    validate_event(report)
    assert report["type"] == "publisher.dropped" and report["count"] == 150
    assert (report["first_event_id"], report["last_event_id"]) == ("e10", "e159")
    assert (report["first_frame_index"], report["last_frame_index"]) == (10, 159)
    assert any("dropping the oldest events" in r.getMessage() for r in caplog.records)
    assert any("150 events of source cam1 were dropped" in r.getMessage() for r in caplog.records)


def test_publish_never_blocks_on_a_server_that_does_not_answer() -> None:
    with socket.socket() as silent:  # accepts TCP connections (kernel backlog) and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        publisher = RedisPublisher(RedisConfig(url=url, socket_timeout_s=1.0, connect_timeout_s=1.0))
        with pytest.raises(MaskstreamError, match=r"^Redis unreachable at redis://127\.0\.0\.1:\d+/0: "):
            publisher.check()
        start = time.perf_counter()
        for n in range(2000):
            publisher.publish("cam1", [event("cam1", n)])
        assert time.perf_counter() - start < 1.0
        assert publisher.stats()["spooled"] == 2000
        publisher.close(0.5)
        assert publisher.stats()["dropped"] == 2000  # memory spool: undelivered at shutdown is counted as lost


def test_check_names_the_redacted_url_when_redis_is_down(caplog: pytest.LogCaptureFixture) -> None:
    url = f"redis://app:hunter2@127.0.0.1:{free_port()}/0"
    publisher = RedisPublisher(RedisConfig(url=url))
    with pytest.raises(MaskstreamError) as info:
        publisher.check()
    message = str(info.value)
    assert "\n" not in message and "hunter2" not in message
    assert message.startswith(f"Redis unreachable at redis://app:***@127.0.0.1:{publisher.cfg.url.split(':')[-1]}")
    publisher.publish("cam1", [event("cam1", 0)])
    publisher.close(0.3)
    assert caplog.records and all("hunter2" not in r.getMessage() for r in caplog.records)


def test_disk_spool_keeps_undelivered_events_for_the_next_run(tmp_path) -> None:
    server = RedisServer()  # not started yet: Redis is down for the whole first run
    spool = tmp_path / "spool" / "events.sqlite"
    try:
        first = RedisPublisher(fast_config(server.url, spool_path=spool))
        for n in range(30):
            first.publish("cam1", [event("cam1", n)])
        first.close(0.3)
        assert first.stats()["dropped"] == 0 and first.stats()["spooled"] == 30

        server.start()
        second = RedisPublisher(fast_config(server.url, spool_path=spool))
        second.publish("cam1", [event("cam1", 30)])
        assert second.flush(10)
        second.close(5)
        assert stream_ids(server) == [f"e{n}" for n in range(31)]
        third = RedisPublisher(fast_config(server.url, spool_path=spool))
        assert third.stats()["spooled"] == 0  # delivered events left the file
        third.close(1)
    finally:
        server.close()


def test_config_rejects_a_template_without_source_id_and_unknown_schemes() -> None:
    with pytest.raises(ValueError, match="must contain"):
        RedisConfig(stream_key="maskstream:events")
    with pytest.raises(ValueError, match="must start with redis://"):
        RedisConfig(url="http://localhost:6379")
    with pytest.raises(ValueError, match="Extra inputs"):
        RedisConfig(maxlenn=5)


def test_disk_spool_drops_the_oldest_too_and_keeps_the_newest(tmp_path) -> None:
    server = RedisServer()  # down during the first run
    spool = tmp_path / "events.sqlite"
    try:
        first = RedisPublisher(fast_config(server.url, spool_path=spool, spool_max_events=10))
        for n in range(25):
            first.publish("cam1", [event("cam1", n)])
        first.close(0.2)
        assert first.stats()["dropped"] == 15
        server.start()
        second = RedisPublisher(fast_config(server.url, spool_path=spool))
        assert second.flush(10)
        second.close(5)
        assert stream_ids(server) == [f"e{n}" for n in range(15, 25)]
    finally:
        server.close()


def test_redis_up_metric_follows_the_server(redis_server: RedisServer) -> None:
    from pipeline.metrics import REDIS_UP

    publisher = RedisPublisher(fast_config(redis_server.url))
    publisher.publish("cam1", [event("cam1", 0)])
    assert publisher.flush(10) and REDIS_UP._value.get() == 1
    redis_server.kill()
    publisher.publish("cam1", [event("cam1", 1)])
    deadline = time.monotonic() + 5
    while REDIS_UP._value.get() != 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert REDIS_UP._value.get() == 0 and publisher.stats()["connected"] is False
    redis_server.start()
    assert publisher.flush(10) and REDIS_UP._value.get() == 1
    publisher.close(5)


def test_a_failing_spool_file_degrades_to_memory_without_hurting_the_caller(
    redis_server: RedisServer, tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    publisher = RedisPublisher(fast_config(redis_server.url, spool_path=tmp_path / "events.sqlite"))
    publisher._disk._db.close()  # the file becomes unusable, as on an I/O error
    for n in range(5):
        publisher.publish("cam1", [event("cam1", n)])
    assert publisher.flush(10)
    publisher.close(5)
    assert stream_ids(redis_server) == [f"e{n}" for n in range(5)]
    assert any("spooling in memory only" in r.getMessage() for r in caplog.records)
