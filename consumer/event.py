"""An event read from Redis, and the stream keys a consumer reads."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import redis
from redis.cluster import RedisCluster

if TYPE_CHECKING:
    from consumer.group import EventConsumer

log = logging.getLogger(__name__)

DEFAULT_DEAD_LETTER_KEY = "maskstream:{{{source_id}}}:dead-letter"
_PATTERN_CHARS = frozenset("*?[")


@dataclass(slots=True)
class Event:
    """One event read from a stream: `data` is the schema-v1 dict (docs/EVENTS.md)."""

    stream: str  # the Redis key it came from
    entry_id: str  # the stream entry id (what XACK takes), not the event id
    data: dict[str, Any]
    consumer: EventConsumer | None = field(default=None, repr=False)

    @property
    def type(self) -> str:
        return self.data["type"]

    @property
    def event_id(self) -> str:
        return self.data["event_id"]

    @property
    def source_id(self) -> str:
        return self.data["source_id"]

    @property
    def region(self) -> str | None:
        """The zone (`zone.*` events) or line (`line.crossed`) an analytics event is about; None for others."""
        return self.data.get("zone", self.data.get("line"))

    def __getitem__(self, name: str) -> Any:
        return self.data[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.data.get(name, default)

    def mask(self) -> np.ndarray | None:
        """The instance mask as an H x W bool array (full frame), or None when the event carries none."""
        rle = self.data.get("mask")
        if rle is None:
            return None
        from pycocotools import mask as mask_utils  # imported on demand: consumers that never decode skip it

        return mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")}).astype(bool)

    def mask_area(self) -> int | None:
        """Mask pixels, computed from the RLE without decoding."""
        rle = self.data.get("mask")
        if rle is None:
            return None
        from pycocotools import mask as mask_utils

        return int(mask_utils.area({"size": rle["size"], "counts": rle["counts"].encode("ascii")}))

    def ack(self) -> None:
        """Acknowledge this event in its consumer group (no-op for events read without a group)."""
        if self.consumer is not None:
            self.consumer.ack(self)


@dataclass(slots=True)
class StreamLag:
    """How far a group is behind on one stream."""

    pending: int  # delivered to a consumer, not acked yet
    lag: int | None  # entries not delivered to the group yet (None when Redis cannot tell, e.g. after trimming)
    last_delivered_id: str


class KeyNames:
    """Stream keys ↔ source ids through the key template (str.format with {source_id})."""

    def __init__(self, template: str) -> None:
        self.template = template
        self.prefix, _, self.suffix = template.format(source_id="\0").partition("\0")

    def key(self, source_id: str) -> str:
        return self.template.format(source_id=source_id)

    def source_id(self, key: str) -> str:
        if key.startswith(self.prefix) and key.endswith(self.suffix):
            return key[len(self.prefix) : len(key) - len(self.suffix)]
        return key


def resolve_streams(client: redis.Redis, names: KeyNames, streams: str | Sequence[str] | None) -> list[str]:
    """Stream keys for a list of source ids and/or glob patterns (`cam*`); None means every source."""
    if streams is None:
        streams = ["*"]
    elif isinstance(streams, str):
        streams = [streams]
    keys: list[str] = []
    for name in streams:
        if _PATTERN_CHARS & set(name):
            found = sorted(k.decode() for k in client.scan_iter(match=names.key(name), _type="STREAM", count=1000))
            keys.extend(k for k in found if k not in keys)
        elif (key := names.key(name)) not in keys:
            keys.append(key)
    return keys


def read_streams(
    client: redis.Redis,
    ids: dict[str, str],
    count: int,
    block_ms: int | None,
    group: tuple[str, str] | None = None,
) -> list[Any]:
    """XREAD (or XREADGROUP as `group` = (group, consumer)) over several streams, in RESP2 list form.

    On a Redis Cluster one command may not span hash slots, so there it is one non-blocking call per slot
    (a source's keys share one) and a short sleep when nothing came, instead of one blocking call.
    """
    if not isinstance(client, RedisCluster):
        if group is not None:
            return client.xreadgroup(*group, ids, count=count, block=block_ms) or []
        return client.xread(ids, count=count, block=block_ms) or []
    by_slot: dict[int, dict[str, str]] = {}
    for key, entry_id in ids.items():
        by_slot.setdefault(client.keyslot(key), {})[key] = entry_id
    reply: list[Any] = []
    for streams in by_slot.values():
        part = client.xreadgroup(*group, streams, count=count) if group else client.xread(streams, count=count)
        reply.extend(part or [])
    if not reply and block_ms:
        time.sleep(min(block_ms, 100) / 1000)
    return reply


def as_text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
