"""Reading events without a consumer group (XREAD), for `maskstream tail`."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence

import redis

from consumer.event import Event, KeyNames, as_text, read_streams, resolve_streams
from pipeline.events import DEFAULT_STREAM_KEY, from_stream_fields

log = logging.getLogger(__name__)

DEFAULT_DEAD_LETTER_KEY = "maskstream:{{{source_id}}}:dead-letter"
_PATTERN_CHARS = frozenset("*?[")


class EventTail:
    """Read events without a consumer group (XREAD): nothing is created, acknowledged or claimed (`maskstream tail`)."""

    def __init__(
        self,
        client: redis.Redis,
        streams: str | Sequence[str] | None = None,
        *,
        from_start: bool = False,
        key_template: str = DEFAULT_STREAM_KEY,
        block_s: float = 1.0,
        count: int = 100,
    ) -> None:
        self.client = client
        self._names = KeyNames(key_template)
        self._spec = streams
        self._from_start = from_start
        self.block_ms = max(1, int(block_s * 1000))
        self.count = count
        self._ids: dict[str, str] = {}
        self._next_refresh = 0.0
        self._refresh(first=True)

    def _refresh(self, first: bool = False) -> None:
        self._next_refresh = time.monotonic() + 5.0
        for key in resolve_streams(self.client, self._names, self._spec):
            if key not in self._ids:
                # streams that appear after we started are new: read them from their start
                self._ids[key] = "0" if (self._from_start or not first) else self._last_id(key)

    def _last_id(self, key: str) -> str:
        last = self.client.xrevrange(key, count=1)
        return as_text(last[0][0]) if last else "0"

    def read(self) -> list[Event]:
        if time.monotonic() >= self._next_refresh:
            self._refresh()
        if not self._ids:
            time.sleep(self.block_ms / 1000)
            return []
        reply = read_streams(self.client, dict(self._ids), self.count, self.block_ms)
        events = []
        for raw_key, entries in reply or []:
            key = as_text(raw_key)
            for raw_id, fields in entries:
                self._ids[key] = as_text(raw_id)
                try:
                    events.append(Event(key, as_text(raw_id), from_stream_fields(fields)))
                except (ValueError, json.JSONDecodeError):
                    log.warning("skipping entry %s of %s: not a maskstream event", as_text(raw_id), key)
        return events
