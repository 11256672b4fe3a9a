"""The publisher and the fence script against a real 3-master Redis Cluster, including a master failover."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator

import pytest

from pipeline.config.redis import RedisConfig
from pipeline.events import SCHEMA_VERSION
from sinks.fence import Fence, take_ownership
from sinks.redis_publisher import RedisPublisher
from tests.redis_cluster import RedisClusterServers

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(shutil.which("redis-cli") is None, reason="redis-cli is not installed (see .ci/run)"),
]
SOURCES = [f"cam{i}" for i in range(6)]  # spread over the three masters' slots


@pytest.fixture(scope="module")
def redis_cluster() -> Iterator[RedisClusterServers]:
    servers = RedisClusterServers().start()
    try:
        yield servers
    finally:
        servers.close()


def event(source_id: str, n: int) -> dict:
    return {"v": SCHEMA_VERSION, "event_id": f"e{n}", "type": "stream.connected", "source_id": source_id,
            "frame_index": n, "pts": None, "capture_time": 1000.0 + n, "reason": None, "info": {}}  # fmt: skip


def ids(client, key: str) -> list[str]:
    return [fields[b"event_id"].decode() for _, fields in client.xrange(key)]


def cluster_config(url: str, prefix: str) -> RedisConfig:
    return RedisConfig(url=url, cluster=True, stream_key=prefix + ":{{{source_id}}}:events", initial_backoff_s=0.05,
                       max_backoff_s=0.5)  # fmt: skip


def test_the_sources_keys_spread_over_the_masters(redis_cluster: RedisClusterServers) -> None:
    client = redis_cluster.client()
    nodes = {client.nodes_manager.get_node_from_slot(client.keyslot(f"m:{{{s}}}:events")).name for s in SOURCES}
    assert len(nodes) >= 2  # otherwise the test below would not exercise several masters


def test_fenced_writes_lose_nothing_and_double_nothing_across_a_master_failover(
    redis_cluster: RedisClusterServers,
) -> None:
    cfg = cluster_config(redis_cluster.url, "failover")
    client = redis_cluster.client()
    fence = Fence({s: take_ownership(client, cfg.key_for(s)) for s in SOURCES})
    publisher = RedisPublisher(cfg, fence)
    publisher.check()
    total = 1000

    def publish_all() -> None:
        for n in range(total):
            for source_id in SOURCES:
                publisher.publish(source_id, [event(source_id, n)])
                if n % 50 == 0:  # a retried batch: the script must drop the repeats
                    publisher.publish(source_id, [event(source_id, n)])
            time.sleep(0.005)

    writer = threading.Thread(target=publish_all)
    writer.start()
    time.sleep(0.5)
    redis_cluster.failover(redis_cluster.replica_of_key(cfg.key_for(SOURCES[0])))
    promoted_ms = int(time.time() * 1000)
    writer.join(60)
    assert publisher.flush(30)
    stats = publisher.stats()
    publisher.close(5)
    for source_id in SOURCES:
        assert ids(client, cfg.key_for(source_id)) == [f"e{n}" for n in range(total)], source_id
    assert stats["duplicates"] == len(SOURCES) * len(range(0, total, 50))
    assert stats["dropped"] == 0 and stats["fenced"] == 0
    after = [e for e, _ in client.xrange(cfg.key_for(SOURCES[0])) if int(e.split(b"-")[0]) > promoted_ms]
    assert after, "the writes ended before the failover: it was not exercised"


def test_a_stale_epoch_is_refused_on_the_cluster(redis_cluster: RedisClusterServers) -> None:
    cfg = cluster_config(redis_cluster.url, "stale")
    client = redis_cluster.client()
    old = take_ownership(client, cfg.key_for("cam1"))
    take_ownership(client, cfg.key_for("cam1"))
    publisher = RedisPublisher(cfg, Fence({"cam1": old}))
    publisher.publish("cam1", [event("cam1", 0)])
    assert publisher.flush(10)
    assert publisher.stats()["fenced"] == 1
    publisher.close(5)
    assert ids(client, cfg.key_for("cam1")) == []


def test_the_plain_publisher_works_on_the_cluster(redis_cluster: RedisClusterServers) -> None:
    cfg = cluster_config(redis_cluster.url, "plain")
    publisher = RedisPublisher(cfg)
    for source_id in SOURCES:
        publisher.publish(source_id, [event(source_id, 0), event(source_id, 1)])
    assert publisher.flush(10)
    publisher.close(5)
    client = redis_cluster.client()
    assert all(ids(client, cfg.key_for(s)) == ["e0", "e1"] for s in SOURCES)


def test_consumer_group_and_tail_read_every_source_across_the_masters(redis_cluster: RedisClusterServers) -> None:
    import io

    from consumer.group import EventConsumer
    from pipeline.cli import build_parser
    from pipeline.tail_command import run as tail

    cfg = cluster_config(redis_cluster.url, "maskstream")  # the default key layout, which tail reads
    publisher = RedisPublisher(cfg)
    for source_id in SOURCES:
        publisher.publish(source_id, [event(source_id, 0), event(source_id, 1)])
    assert publisher.flush(10)
    publisher.close(5)

    consumer = EventConsumer.from_url(redis_cluster.url, "g1", "c1", "cam*", start_id="0", cluster=True, block_s=0.2)
    got: list[tuple[str, str]] = []
    deadline = time.monotonic() + 20
    while len(got) < 2 * len(SOURCES) and time.monotonic() < deadline:
        events = consumer.read()
        got += [(e.source_id, e.event_id) for e in events]
        consumer.ack(*events)
    consumer.close()
    assert sorted(got) == sorted((s, f"e{n}") for s in SOURCES for n in (0, 1))

    out = io.StringIO()
    argv = ["tail", "--redis", redis_cluster.url, "--cluster", "--from-start", "--json", "-n", str(2 * len(SOURCES))]
    args = build_parser(argv).parse_args(argv)
    assert tail(args, out) == 0
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 * len(SOURCES) and {json.loads(line)["source_id"] for line in lines} == set(SOURCES)
