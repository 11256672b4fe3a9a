"""The fence script through RedisPublisher, against a real redis-server: stale epochs refused, ids written once."""

from __future__ import annotations

import json

import pytest

from pipeline.config.redis import RedisConfig
from pipeline.events import SCHEMA_VERSION
from sinks.fence import Fence, StaleEpoch, current_epoch, fence_keys, open_tracks, take_ownership
from sinks.redis_publisher import RedisPublisher
from tests.servers import RedisServer

pytestmark = pytest.mark.timeout(60)
KEY = "maskstream:{cam1}:events"


def stream_event(n: int) -> dict:
    return {"v": SCHEMA_VERSION, "event_id": f"e{n}", "type": "stream.connected", "source_id": "cam1",
            "frame_index": n, "pts": None, "capture_time": 1000.0 + n, "reason": None, "info": {}}  # fmt: skip


def track_event(kind: str, track_id: int, frame: int) -> dict:
    return {"v": SCHEMA_VERSION, "event_id": f"t{track_id}:{kind}:f{frame}", "type": f"track.{kind}",
            "source_id": "cam1", "frame_index": frame, "pts": None, "capture_time": 1000.0 + frame,
            "track_id": track_id, "bbox": [0, 0, frame, frame]}  # fmt: skip


def ids_in_stream(server: RedisServer) -> list[str]:
    return [fields[b"event_id"].decode() for _, fields in server.client().xrange(KEY)]


def fenced_publisher(server: RedisServer, epoch: int, stale: list | None = None, **fence) -> RedisPublisher:
    cfg = RedisConfig(url=server.url, initial_backoff_s=0.05, max_backoff_s=0.2)
    return RedisPublisher(cfg, Fence({"cam1": epoch}, **fence), on_stale=stale.append if stale is not None else None)


def test_owner_writes_and_a_stale_epoch_writes_nothing(redis_server: RedisServer) -> None:
    client = redis_server.client()
    old_epoch = take_ownership(client, KEY)
    stale: list[StaleEpoch] = []
    old_owner = fenced_publisher(redis_server, old_epoch, stale)
    old_owner.publish("cam1", [stream_event(0), stream_event(1)])
    assert old_owner.flush(10)
    assert ids_in_stream(redis_server) == ["e0", "e1"]

    new_epoch = take_ownership(client, KEY)  # the source moved: the old owner is now a zombie
    assert new_epoch == old_epoch + 1 == current_epoch(client, KEY)
    old_owner.publish("cam1", [stream_event(2), stream_event(3)])
    assert old_owner.flush(10)
    assert ids_in_stream(redis_server) == ["e0", "e1"]
    assert old_owner.stats()["fenced"] == 2 and old_owner.stats()["published"] == 2
    assert [(s.source_id, s.epoch, s.current) for s in stale] == [("cam1", old_epoch, new_epoch)]
    old_owner.close(5)

    new_owner = fenced_publisher(redis_server, new_epoch)
    new_owner.publish("cam1", [stream_event(2)])
    assert new_owner.flush(10)
    new_owner.close(5)
    entries = redis_server.client().xrange(KEY)
    assert [f[b"event_id"] for _, f in entries] == [b"e0", b"e1", b"e2"]
    assert [f[b"epoch"] for _, f in entries] == [str(old_epoch).encode()] * 2 + [str(new_epoch).encode()]


def test_a_replayed_prefix_is_suppressed_and_the_rest_written_once(redis_server: RedisServer) -> None:
    epoch = take_ownership(redis_server.client(), KEY)
    first = fenced_publisher(redis_server, epoch)
    first.publish("cam1", [stream_event(n) for n in range(5)])
    assert first.flush(10)
    first.close(5)
    epoch = take_ownership(redis_server.client(), KEY)  # e.g. the file restarts on another worker
    rerun = fenced_publisher(redis_server, epoch)
    for n in range(10):
        rerun.publish("cam1", [stream_event(n)])
    assert rerun.flush(10)
    assert rerun.stats()["duplicates"] == 5 and rerun.stats()["published"] == 5
    rerun.close(5)
    assert ids_in_stream(redis_server) == [f"e{n}" for n in range(10)]


def test_open_tracks_hold_the_latest_event_of_each_track_not_ended(redis_server: RedisServer) -> None:
    epoch = take_ownership(redis_server.client(), KEY)
    publisher = fenced_publisher(redis_server, epoch)
    publisher.publish("cam1", [track_event("started", 1, 0), track_event("started", 2, 0)])
    publisher.publish("cam1", [track_event("updated", 1, 5), track_event("ended", 2, 5)])
    assert publisher.flush(10)
    publisher.close(5)
    (track,) = open_tracks(redis_server.client(), KEY)
    assert track["track_id"] == 1 and track["event_id"] == "t1:updated:f5" and track["bbox"] == [0, 0, 5, 5]


def test_the_seen_ids_set_is_bounded_in_size_and_time(redis_server: RedisServer) -> None:
    epoch = take_ownership(redis_server.client(), KEY)
    publisher = fenced_publisher(redis_server, epoch, max_seen_ids=10, seen_ttl_s=600)
    for n in range(50):
        publisher.publish("cam1", [stream_event(n)])
    assert publisher.flush(10)
    publisher.close(5)
    client = redis_server.client()
    seen_key = fence_keys(KEY)[2]
    kept = [member.decode() for member in client.zrange(seen_key, 0, -1)]
    assert kept == [f"e{n}" for n in range(40, 50)]
    assert 0 < client.ttl(seen_key) <= 600
    assert json.loads(client.xrange(KEY)[-1][1][b"data"])["event_id"] == "e49"


FENCE_ACL = (
    "on >fence-pw resetkeys ~maskstream:* resetchannels -@all +@connection +ping +evalsha +eval +script|load "
    "+script|exists +get +incr +incrby +xadd +xrange +xtrim +zscore +zadd +zcard +zremrangebyrank +expire +hset "
    "+hget +hgetall +hdel +del"
)


def test_fenced_writes_work_as_an_acl_user_limited_to_maskstreams_keys() -> None:
    server = RedisServer().start()
    try:
        server.client().execute_command("ACL", "SETUSER", "fence", *FENCE_ACL.split())
        url = f"redis://fence:fence-pw@127.0.0.1:{server.port}/0"
        import redis

        limited = redis.Redis.from_url(url)
        epoch = take_ownership(limited, KEY)
        publisher = RedisPublisher(RedisConfig(url=url), Fence({"cam1": epoch}))
        publisher.check()
        publisher.publish("cam1", [stream_event(0), track_event("started", 1, 0)])
        assert publisher.flush(10)
        assert publisher.stats()["published"] == 2
        publisher.close(5)
        with pytest.raises(redis.exceptions.NoPermissionError):
            limited.set("elsewhere", 1)  # nothing outside maskstream:*
        with pytest.raises(redis.exceptions.NoPermissionError):
            limited.flushall()
    finally:
        server.close()
