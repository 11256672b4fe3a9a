"""EventConsumer and `maskstream tail` against a real redis-server."""

from __future__ import annotations

import argparse
import io
import json
import threading
import time

import numpy as np
import pytest

from consumer import EventConsumer
from pipeline.config.redis import RedisConfig
from pipeline.events import EventBuilder, to_stream_fields
from pipeline.tail_command import register
from pipeline.tail_command import run as tail_run
from sinks.redis_publisher import RedisPublisher
from tests.servers import RedisServer
from tests.test_events import CLASSES, make_result
from tests.test_publisher import event

pytestmark = pytest.mark.timeout(60)
KEY = "maskstream:{cam1}:events"


def publish(server: RedisServer, source_id: str, events: list[dict]) -> None:
    publisher = RedisPublisher(RedisConfig(url=server.url))
    publisher.publish(source_id, events)
    assert publisher.flush(10)
    publisher.close(5)


def consumer(server: RedisServer, name: str, **kwargs) -> EventConsumer:
    kwargs.setdefault("start_id", "0")
    kwargs.setdefault("block_s", 0.1)
    return EventConsumer.from_url(server.url, "workers", name, kwargs.pop("streams", ["cam1"]), **kwargs)


def read_until(c: EventConsumer, want: int, timeout_s: float = 10.0, ack: bool = True) -> list:
    got: list = []
    deadline = time.monotonic() + timeout_s
    while len(got) < want and time.monotonic() < deadline:
        events = c.read()
        if ack and events:
            c.ack(*events)
        got += events
    return got


def test_two_consumers_share_the_work_without_overlap(redis_server: RedisServer) -> None:
    a, b = consumer(redis_server, "a", count=10), consumer(redis_server, "b", count=10)
    publish(redis_server, "cam1", [event("cam1", n) for n in range(100)])
    seen_a, seen_b = [], []
    deadline = time.monotonic() + 10
    while len(seen_a) + len(seen_b) < 100 and time.monotonic() < deadline:
        for c, seen in ((a, seen_a), (b, seen_b)):
            events = c.read(block_s=0.05)
            c.ack(*events) if events else None
            seen += [e.event_id for e in events]
    assert seen_a and seen_b and not set(seen_a) & set(seen_b)
    assert sorted(seen_a + seen_b, key=lambda i: int(i[1:])) == [f"e{n}" for n in range(100)]
    assert a.lag()["cam1"].pending == 0 and a.lag()["cam1"].lag == 0


def test_a_dead_consumers_pending_events_are_claimed(redis_server: RedisServer) -> None:
    publish(redis_server, "cam1", [event("cam1", n) for n in range(10)])
    doomed = consumer(redis_server, "doomed")
    taken = doomed.read()
    assert len(taken) == 10
    doomed.close()  # dies without acking
    survivor = consumer(redis_server, "survivor", claim_min_idle_s=0.3)
    assert survivor.lag()["cam1"].pending == 10
    claimed = read_until(survivor, 10)
    assert [e.event_id for e in claimed] == [f"e{n}" for n in range(10)]
    assert survivor.lag()["cam1"].pending == 0


def test_a_restarted_consumer_gets_its_own_pending_events_first(redis_server: RedisServer) -> None:
    publish(redis_server, "cam1", [event("cam1", n) for n in range(5)])
    first = consumer(redis_server, "worker-1")
    assert len(first.read()) == 5
    first.close()
    publish(redis_server, "cam1", [event("cam1", 5)])
    again = consumer(redis_server, "worker-1", claim_min_idle_s=60)
    got = read_until(again, 6)
    assert [e.event_id for e in got] == [f"e{n}" for n in range(6)]


def test_an_event_never_acked_goes_to_the_dead_letter_stream_after_n_deliveries(redis_server: RedisServer) -> None:
    publish(redis_server, "cam1", [event("cam1", 0)])
    c = consumer(redis_server, "fragile", claim_min_idle_s=0.1, max_deliveries=3)
    deliveries = read_until(c, 3, timeout_s=5, ack=False)  # the handler keeps failing: never acks
    time.sleep(0.3)
    assert c.read() == []  # the 4th time it is dead-lettered instead of delivered
    assert [e.event_id for e in deliveries] == ["e0"] * 3
    dead = redis_server.client().xrange("maskstream:{cam1}:dead-letter")
    assert len(dead) == 1
    fields = dead[0][1]
    assert fields[b"event_id"] == b"e0" and fields[b"deliveries"] == b"3" and fields[b"group"] == b"workers"
    assert fields[b"original_id"].decode() == deliveries[0].entry_id
    assert c.lag()["cam1"].pending == 0 and c.dead_lettered == 1


def test_an_entry_that_is_not_an_event_is_dead_lettered_at_once(redis_server: RedisServer) -> None:
    c = consumer(redis_server, "w")
    redis_server.client().xadd(KEY, {"garbage": "1"})
    publish(redis_server, "cam1", [event("cam1", 0)])
    assert [e.event_id for e in read_until(c, 1)] == ["e0"]
    dead = redis_server.client().xrange("maskstream:{cam1}:dead-letter")
    assert len(dead) == 1 and b"not a maskstream event" in dead[0][1][b"reason"]


def test_duplicates_written_by_a_publisher_retry_are_dropped(redis_server: RedisServer) -> None:
    client = redis_server.client()
    c = consumer(redis_server, "w")
    for n in (0, 1, 1, 2, 0):  # e1 and e0 written twice, as after a lost EXEC reply
        client.xadd(KEY, to_stream_fields(event("cam1", n)))
    got = read_until(c, 3)
    time.sleep(0.1)
    got += c.read()
    assert [e.event_id for e in got] == ["e0", "e1", "e2"]
    assert c.duplicates == 2 and c.lag()["cam1"].pending == 0  # duplicates are acked, not left pending


def test_patterns_find_every_matching_source_and_masks_decode(redis_server: RedisServer) -> None:
    builder = EventBuilder(CLASSES)
    frames = {s: make_result(0, [("started", 1, True)], source_id=s) for s in ("cam1", "cam2", "drone1")}
    for source_id, result in frames.items():
        publish(redis_server, source_id, builder.for_frame(result))
    c = consumer(redis_server, "w", streams="cam*")
    got = read_until(c, 2)
    assert sorted(e.source_id for e in got) == ["cam1", "cam2"]
    for e in got:
        mask = e.mask()
        assert mask.dtype == bool and mask.shape == (48, 64)
        np.testing.assert_array_equal(mask, frames[e.source_id].detections.full_mask(0))
        assert e.mask_area() == int(mask.sum())


def test_lag_counts_undelivered_and_pending(redis_server: RedisServer) -> None:
    c = consumer(redis_server, "w", count=3)
    publish(redis_server, "cam1", [event("cam1", n) for n in range(5)])
    assert (c.lag()["cam1"].pending, c.lag()["cam1"].lag) == (0, 5)
    assert len(c.read()) == 3
    assert (c.lag()["cam1"].pending, c.lag()["cam1"].lag) == (3, 2)


def test_group_survives_a_redis_restart_without_persistence(redis_server: RedisServer) -> None:
    c = consumer(redis_server, "w")
    publish(redis_server, "cam1", [event("cam1", 0)])
    assert [e.event_id for e in read_until(c, 1)] == ["e0"]
    redis_server.restart()  # data and groups are gone
    publish(redis_server, "cam1", [event("cam1", 1)])
    got = []
    for e in c:  # iterating rides out the reconnect and re-creates the group
        got.append(e.event_id)
        e.ack()
        break
    assert got == ["e1"]


def tail_output(server: RedisServer, *args: str) -> list[str]:
    parser = argparse.ArgumentParser()  # only our sub-command: the full CLI would import the model stack
    register(parser.add_subparsers())
    parsed = parser.parse_args(["tail", "--redis", server.url, *args])
    out = io.StringIO()
    assert tail_run(parsed, out) == 0
    return out.getvalue().splitlines()


def test_tail_prints_one_line_per_event_or_json(redis_server: RedisServer) -> None:
    builder = EventBuilder(CLASSES)
    events = builder.for_frame(make_result(4, [("started", 7, True)]))
    publish(redis_server, "cam1", events)
    (line,) = tail_output(redis_server, "--from-start", "-n", "1")
    assert line.split() == ["track.started", "cam1", "frame=4", "track=7", "car", "score=0.90",
                            "bbox=[8,6,16,18]", "mask_area=96"]  # fmt: skip
    (raw,) = tail_output(redis_server, "--from-start", "-n", "1", "--json", "--source", "cam*")
    assert json.loads(raw) == json.loads(json.dumps(events[0]))
    assert redis_server.client().xinfo_groups(KEY) == []  # plain tail reads without creating a group
    grouped = tail_output(redis_server, "--from-start", "-n", "1", "--group", "ops")
    assert grouped == [line]
    assert redis_server.client().xinfo_groups(KEY)[0]["pending"] == 0


def test_tail_keeps_going_when_redis_restarts(redis_server: RedisServer) -> None:
    publish(redis_server, "cam1", [event("cam1", 0)])
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["tail", "--redis", redis_server.url, "--from-start", "-n", "2"])
    out = io.StringIO()
    tailer = threading.Thread(target=tail_run, args=(args, out))
    tailer.start()
    deadline = time.monotonic() + 10
    while not out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.02)  # tail has printed e0 and is waiting for more
    redis_server.restart()
    publish(redis_server, "cam1", [event("cam1", 1)])
    tailer.join(20)
    assert not tailer.is_alive()
    lines = out.getvalue().splitlines()
    assert [line.split()[0:3] for line in lines] == [["stream.connected", "cam1", "frame=0"],
                                                     ["stream.connected", "cam1", "frame=1"]]  # fmt: skip


def test_shared_dedupe_drops_a_copy_that_reaches_another_consumer(redis_server: RedisServer) -> None:
    client = redis_server.client()
    a = consumer(redis_server, "a", shared_dedupe_ttl_s=60)
    b = consumer(redis_server, "b", shared_dedupe_ttl_s=60)
    client.xadd(KEY, to_stream_fields(event("cam1", 0)))
    (first,) = read_until(a, 1)  # a handles e0 and acks it
    client.xadd(KEY, to_stream_fields(event("cam1", 0)))  # the publisher's retry copy, read by b
    client.xadd(KEY, to_stream_fields(event("cam1", 1)))
    got = read_until(b, 1)
    assert first.event_id == "e0" and [e.event_id for e in got] == ["e1"]
    assert b.duplicates == 1 and b.lag()["cam1"].pending == 0
    assert 0 < client.pttl(f"{KEY}:done:workers:e0") <= 60_000


def test_zone_and_line_events_are_read_and_tailed(redis_server: RedisServer) -> None:
    from pipeline.items import ZoneEvent

    events = EventBuilder(CLASSES).for_zone_events("cam1", [
        ZoneEvent("zone.entered", "door", 3, 0.1, 7.0, track_id=4, label=1),
        ZoneEvent("zone.exited", "door", 9, 0.3, 7.2, track_id=4, label=1, dwell_s=2.25),
        ZoneEvent("zone.occupancy", "door", 9, 0.3, 7.2, counts={1: 2}),
        ZoneEvent("line.crossed", "gate", 5, 0.2, 7.1, track_id=4, label=1, direction="in"),
    ])  # fmt: skip
    publish(redis_server, "cam1", events)
    got = read_until(consumer(redis_server, "c1"), 4)
    assert [(e.type, e.region) for e in got] == [
        ("zone.entered", "door"), ("zone.exited", "door"), ("zone.occupancy", "door"), ("line.crossed", "gate")
    ]  # fmt: skip
    assert got[1]["dwell_s"] == 2.25 and got[3]["direction"] == "in" and got[2]["counts"] == {CLASSES[1]: 2}
    lines = tail_output(redis_server, "--from-start", "-n", "4")
    assert lines[1].split()[3:] == ["zone=door", "track=4", CLASSES[1], "dwell=2.2s"]
    assert lines[3].split()[3:] == ["line=gate", "track=4", CLASSES[1], "direction=in"]
