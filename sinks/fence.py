"""Fenced writes: the one Lua script through which a clustered publisher writes a source's events.

Under `maskstream run --ray` a source may change owner (worker lost, node joined). Every start of ownership takes
a new *epoch* for the source (`INCR` on its epoch key, see `take_ownership`); the owner's publisher sends that
epoch with every write, and the script

1. rejects the whole write when the epoch is not the source's current one (a zombie — a paused or partitioned
   old owner — publishes nothing, whatever it still has queued), and
2. drops an event whose `event_id` was already written (a file rerun from the start after its worker died
   replays the same ids: the replayed prefix is suppressed, consumers never see a duplicate).

The seen-ids set is a sorted set per stream, bounded in size (oldest ids go first) and in time (a TTL renewed on
every write). The script also keeps the source's *open tracks* (latest event of each track not yet ended), so
the next owner can end them (`track.ended`, reason `worker_lost`) when the old owner could not.

All keys derive from the stream key, so with the default `maskstream:{cam}:events` they share the `{cam}` hash
tag: one Redis Cluster slot, as a script needs. Without `--ray` none of this runs (plain XADD).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

FENCE_SCRIPT = """
-- KEYS: stream, epoch, seen ids (zset), open tracks (hash)
-- ARGV: epoch, maxlen ('' = none), max seen ids, seen ttl s, then per event: type, event_id, data, track_id
local current = tonumber(redis.call('GET', KEYS[2]) or '0')
if tonumber(ARGV[1]) ~= current then
  return {-1, current}
end
local reply = {1}
local written = false
for i = 5, #ARGV, 4 do
  local kind, id, data, track = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  if redis.call('ZSCORE', KEYS[3], id) then
    reply[#reply + 1] = 0
  else
    local entry
    if ARGV[2] ~= '' then
      entry = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'type', kind, 'event_id', id,
                         'v', '1', 'epoch', ARGV[1], 'data', data)
    else
      entry = redis.call('XADD', KEYS[1], '*', 'type', kind, 'event_id', id, 'v', '1', 'epoch', ARGV[1],
                         'data', data)
    end
    -- scored by the entry id (ms, then sequence), so the size bound trims the oldest ids first
    local ms, seq = string.match(entry, '^(%d+)-(%d+)$')
    redis.call('ZADD', KEYS[3], tonumber(ms) * 1000 + math.min(tonumber(seq), 999), id)
    if kind == 'track.ended' then
      redis.call('HDEL', KEYS[4], track)
    elseif track ~= '' then
      redis.call('HSET', KEYS[4], track, data)
    elseif kind == 'stream.ended' then
      redis.call('DEL', KEYS[4])
    end
    written = true
    reply[#reply + 1] = 1
  end
end
if written then
  local extra = redis.call('ZCARD', KEYS[3]) - tonumber(ARGV[3])
  if extra > 0 then
    redis.call('ZREMRANGEBYRANK', KEYS[3], 0, extra - 1)
  end
  redis.call('EXPIRE', KEYS[3], ARGV[4])
end
return reply
"""

WRITTEN, DUPLICATE = 1, 0


def fence_keys(stream_key: str) -> list[str]:
    """stream, epoch, seen ids, open tracks: suffixes of the stream key, so they share its hash tag."""
    return [stream_key, f"{stream_key}:epoch", f"{stream_key}:seen", f"{stream_key}:open"]


def take_ownership(client: redis.Redis, stream_key: str) -> int:
    """A new epoch for the source: from now on only a writer holding it is accepted."""
    return int(client.incr(fence_keys(stream_key)[1]))


def current_epoch(client: redis.Redis, stream_key: str) -> int:
    value = client.get(fence_keys(stream_key)[1])
    return int(value) if value is not None else 0


def open_tracks(client: redis.Redis, stream_key: str) -> list[dict[str, Any]]:
    """The latest event of every track the source's previous owners started and did not end, by track id."""
    stored = client.hgetall(fence_keys(stream_key)[3])
    events = [json.loads(value) for value in stored.values()]
    return sorted(events, key=lambda event: int(event.get("track_id", 0)))


class StaleEpoch(Exception):
    """The write carried an epoch that is no longer the source's: another worker owns it now."""

    def __init__(self, source_id: str, epoch: int, current: int) -> None:
        super().__init__(f"source {source_id}: epoch {epoch} is stale (current {current}); another worker owns it")
        self.source_id, self.epoch, self.current = source_id, epoch, current


@dataclass
class Fence:
    """What a publisher needs to write fenced: each owned source's epoch, and the seen-ids bounds."""

    epochs: dict[str, int] = field(default_factory=dict)
    max_seen_ids: int = 200_000
    seen_ttl_s: int = 7 * 24 * 3600

    def args(self, source_id: str, maxlen: int | None, events: list[tuple[str, str, str, str]]) -> list[Any]:
        """ARGV of one script call: (type, event_id, data, track_id or '') per event."""
        args: list[Any] = [self.epochs.get(source_id, 0), "" if maxlen is None else maxlen]
        args += [self.max_seen_ids, self.seen_ttl_s]
        for event in events:
            args.extend(event)
        return args


_TRACK_ID = re.compile(r'"track_id":(\d+)')


def track_id_of(type_: str, data: str) -> str:
    """The track id the open-tracks hash is keyed by ('' for other events): a regex on the compact JSON, not a
    parse, since track events carry masks of kilobytes."""
    if not type_.startswith("track."):
        return ""
    match = _TRACK_ID.search(data)
    return match.group(1) if match else ""


DUPLICATE_MARK = object()  # a write result: the event's id was already in the stream, nothing written


def write_fenced(
    client: Any,
    script: Any,
    fence: Fence,
    per_source: dict[str, list[tuple[str, str, str, str]]],
    key_for: Callable[[str], str],
    maxlen: int | None,
    cluster: bool,
) -> dict[str, list[Any]]:
    """One script call per source (atomic per source; sources are independent), pipelined. Per source, one
    result per event in order: True (written), DUPLICATE_MARK, or the StaleEpoch that refused the whole write."""
    pipe = client.pipeline(transaction=False)
    for source_id, events in per_source.items():
        keys = fence_keys(key_for(source_id))
        args = fence.args(source_id, maxlen, events)
        if cluster:  # redis-py's cluster pipeline cannot load scripts: send the text (1.5 KB)
            pipe.execute_command("EVAL", FENCE_SCRIPT, len(keys), *keys, *args)
        else:
            script(keys=keys, args=args, client=pipe)
    by_source: dict[str, list[Any]] = {}
    for source_id, reply in zip(per_source, pipe.execute(raise_on_error=False), strict=True):
        if isinstance(reply, Exception):
            raise reply  # e.g. the script's keys moved (cluster failover): the caller retries the batch later
        if int(reply[0]) == -1:
            stale = StaleEpoch(source_id, fence.epochs.get(source_id, 0), int(reply[1]))
            by_source[source_id] = [stale] * len(per_source[source_id])
        else:
            by_source[source_id] = [DUPLICATE_MARK if int(code) == DUPLICATE else True for code in reply[1:]]
    return by_source
