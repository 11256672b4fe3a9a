"""Consumer groups: XREADGROUP, acks, claiming what dead consumers left, dead letters, duplicate drops."""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from consumer.event import Event, KeyNames, StreamLag, as_text, read_streams, resolve_streams
from pipeline.backoff import Backoff
from pipeline.errors import MaskstreamError
from pipeline.events import DEFAULT_STREAM_KEY, from_stream_fields
from pipeline.redact import redact_url
from pipeline.redis_client import check_redis, describe_redis_error, redis_from_url

log = logging.getLogger(__name__)

# reconnects after a Redis outage: 0.2 s doubling up to 10 s, ±20% (shared by `maskstream tail`)
RECONNECT_BACKOFF = Backoff(initial_s=0.2, max_s=10.0, jitter=0.2)

DEFAULT_DEAD_LETTER_KEY = "maskstream:{{{source_id}}}:dead-letter"
_PATTERN_CHARS = frozenset("*?[")


class EventConsumer:
    """A member of a consumer group reading maskstream events from one or more source streams."""

    def __init__(
        self,
        client: redis.Redis,
        group: str,
        consumer: str,
        streams: str | Sequence[str] | None = None,
        *,
        start_id: str = "$",
        key_template: str = DEFAULT_STREAM_KEY,
        dead_letter_key: str = DEFAULT_DEAD_LETTER_KEY,
        count: int = 100,
        block_s: float = 2.0,
        claim_min_idle_s: float = 60.0,
        max_deliveries: int = 5,
        dedupe_size: int = 100_000,
        shared_dedupe_ttl_s: float | None = None,
        refresh_streams_s: float = 10.0,
        url_for_errors: str = "redis",
    ) -> None:
        """`streams`: source ids and/or patterns (`cam*`, re-scanned every `refresh_streams_s` for new cameras);
        `start_id`: where a group this consumer creates starts: `$` = new events only, `0` = the whole stream
        (streams that appear later start at `0`, they are new). `max_deliveries`: deliveries before an unacked
        event goes to `dead_letter_key` (a template like the stream key). `shared_dedupe_ttl_s`: also remember
        acked event ids in Redis for this long, so a duplicate is dropped whichever consumer of the group gets it
        (one more round trip per read batch, one SET per ack)."""
        if max_deliveries < 1:
            raise ValueError("max_deliveries must be >= 1")
        self.client = client
        self.group = group
        self.consumer = consumer
        self.start_id = start_id
        self.count = count
        self.block_ms = max(1, int(block_s * 1000))
        self.claim_min_idle_ms = max(1, int(claim_min_idle_s * 1000))
        self.max_deliveries = max_deliveries
        self.dedupe_size = dedupe_size
        self.shared_dedupe_ttl_ms = None if shared_dedupe_ttl_s is None else max(1, int(shared_dedupe_ttl_s * 1000))
        self.refresh_streams_s = refresh_streams_s
        self.duplicates = 0  # events skipped because their event_id was already delivered from another entry
        self.dead_lettered = 0
        self._names = KeyNames(key_template)
        self._dead_letter = KeyNames(dead_letter_key)
        self._streams_spec = streams
        self._patterned = streams is None or any(
            _PATTERN_CHARS & set(s) for s in ([streams] if isinstance(streams, str) else streams)
        )
        self._url = url_for_errors
        self._keys: list[str] = []
        self._backlog: dict[str, str] = {}  # our own pending entries, re-read first after a restart
        self._seen: OrderedDict[tuple[str, str], str] = OrderedDict()  # (stream, event_id) -> entry id
        self._next_claim = 0.0
        self._next_refresh = 0.0
        self._buffer: list[Event] = []
        self._closed = False
        self._refresh_streams(first=True)

    @classmethod
    def from_url(
        cls,
        url: str,
        group: str,
        consumer: str,
        streams: str | Sequence[str] | None = None,
        *,
        tls_ca_cert_file: str | Path | None = None,
        tls_cert_file: str | Path | None = None,
        tls_key_file: str | Path | None = None,
        connect_timeout_s: float = 5.0,
        cluster: bool = False,
        **kwargs: Any,
    ) -> EventConsumer:
        """Connect (redis://, rediss:// TLS, user:password@ for ACL/AUTH) and join `group` as `consumer`.
        `cluster=True`: the URL names a node of a Redis Cluster."""
        block_s = kwargs.get("block_s", 2.0)
        client = redis_from_url(
            url,
            connect_timeout_s=connect_timeout_s,
            socket_timeout_s=block_s + 10.0,  # a blocking XREADGROUP must not look like a dead server
            tls_ca_cert_file=tls_ca_cert_file,
            tls_cert_file=tls_cert_file,
            tls_key_file=tls_key_file,
            cluster=cluster,
        )
        check_redis(client, url)
        return cls(client, group, consumer, streams, url_for_errors=redact_url(url), **kwargs)

    # -- reading -------------------------------------------------------------------------------------------------

    def read(self, block_s: float | None = None) -> list[Event]:
        """The next events (own pending first, then claimed stale ones, then new); [] when none came in time."""
        now = time.monotonic()
        if self._patterned and now >= self._next_refresh:
            self._refresh_streams()
        if not self._keys:
            time.sleep(self.block_ms / 1000 if block_s is None else block_s)
            return []
        try:
            if self._backlog and (events := self._read_backlog()):
                return events
            if now >= self._next_claim:
                self._next_claim = now + max(0.05, self.claim_min_idle_ms / 2000)
                claimed = self._claim_stale()
                if claimed:
                    return claimed
            block_ms = self.block_ms if block_s is None else max(1, int(block_s * 1000))
            streams = dict.fromkeys(self._keys, ">")
            reply = read_streams(self.client, streams, self.count, block_ms, (self.group, self.consumer))
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            # the stream or group vanished (Redis restarted without persistence, key deleted): join again
            log.warning("consumer group %s missing on a stream; creating it again", self.group)
            self._create_groups(self._keys, "0")
            return []
        return self._to_events(reply)

    def __iter__(self) -> Iterator[Event]:
        """Yield events forever (until `close`), riding out Redis outages with capped backoff."""
        failures = 0
        while not self._closed:
            try:
                events = self.read()
                failures = 0
            except (RedisConnectionError, RedisTimeoutError) as exc:
                failures += 1
                delay = RECONNECT_BACKOFF.delay(failures - 1)
                log.warning("%s; retrying in %.1f s", describe_redis_error(self._url, exc), delay)
                time.sleep(delay)
                continue
            yield from events

    def ack(self, *events: Event) -> int:
        """XACK the given events (one round trip); returns how many were still pending."""
        if not events:
            return 0
        by_stream: dict[str, list[str]] = {}
        for event in events:
            by_stream.setdefault(event.stream, []).append(event.entry_id)
        pipe = self.client.pipeline(transaction=False)
        for stream, ids in by_stream.items():
            pipe.xack(stream, self.group, *ids)
        if self.shared_dedupe_ttl_ms is not None:
            for event in events:  # done by this group: any later copy, on any consumer, is a duplicate
                pipe.set(self._done_key(event.stream, event.event_id), 1, px=self.shared_dedupe_ttl_ms)
        results = pipe.execute()
        return sum(int(n) for n in results[: len(by_stream)])

    def _done_key(self, stream: str, event_id: str) -> str:
        # starts with the stream key, so it shares the source's {hash tag} (same Redis Cluster slot)
        return f"{stream}:done:{self.group}:{event_id}"

    def lag(self) -> dict[str, StreamLag]:
        """Per source id: pending and not-yet-delivered counts of this group (XINFO GROUPS)."""
        result = {}
        for key in self._keys:
            try:
                groups = self.client.xinfo_groups(key)
            except ResponseError:
                continue
            for info in groups:
                name = info["name"].decode() if isinstance(info["name"], bytes) else info["name"]
                if name == self.group:
                    last = info["last-delivered-id"]
                    result[self._names.source_id(key)] = StreamLag(
                        pending=int(info["pending"]),
                        lag=None if info.get("lag") is None else int(info["lag"]),
                        last_delivered_id=last.decode() if isinstance(last, bytes) else str(last),
                    )
        return result

    @property
    def streams(self) -> list[str]:
        return list(self._keys)

    def close(self) -> None:
        """Leave (the group and our pending entries stay: others claim them) and close the connection."""
        self._closed = True
        self.client.close()

    # -- internals -----------------------------------------------------------------------------------------------

    def _refresh_streams(self, first: bool = False) -> None:
        self._next_refresh = time.monotonic() + self.refresh_streams_s
        keys = resolve_streams(self.client, self._names, self._streams_spec)
        new = [k for k in keys if k not in self._keys]
        if new:
            self._create_groups(new, self.start_id if first else "0")
            self._keys.extend(new)
            self._backlog.update(dict.fromkeys(new, "0"))

    def _create_groups(self, keys: list[str], start_id: str) -> None:
        for key in keys:
            try:
                self.client.xgroup_create(key, self.group, id=start_id, mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise MaskstreamError(f"cannot create consumer group {self.group!r} on {key}: {exc}") from None

    def _read_backlog(self) -> list[Event]:
        reply = read_streams(self.client, dict(self._backlog), self.count, None, (self.group, self.consumer))
        entries_by_key = {as_text(k): entries for k, entries in (reply or [])}
        for key in list(self._backlog):
            entries = entries_by_key.get(key, [])
            if entries:
                self._backlog[key] = as_text(entries[-1][0])
            else:
                del self._backlog[key]
        return self._to_events(reply)

    def _claim_stale(self) -> list[Event]:
        """Dead-letter entries delivered too often, then take over entries idle longer than the min idle time."""
        claimed: list[Any] = []
        for key in self._keys:
            pending = self.client.xpending_range(key, self.group, "-", "+", self.count, idle=self.claim_min_idle_ms)
            poison = [p for p in pending if p["times_delivered"] >= self.max_deliveries]
            for entry in poison:
                self._dead_letter_entry(key, as_text(entry["message_id"]), int(entry["times_delivered"]))
            reply = self.client.xautoclaim(
                key, self.group, self.consumer, self.claim_min_idle_ms, "0-0", count=self.count
            )
            entries = [e for e in reply[1] if e is not None]
            if entries:
                claimed.append((key, entries))
        return self._to_events(claimed)

    def _dead_letter_entry(self, key: str, entry_id: str, deliveries: int, reason: str | None = None) -> None:
        fields = self.client.xrange(key, entry_id, entry_id)
        original = fields[0][1] if fields else {}
        source_id = self._names.source_id(key)
        dead_key = self._dead_letter.key(source_id)
        record = {as_text(k): v for k, v in original.items()}
        record.update(
            original_stream=key,
            original_id=entry_id,
            group=self.group,
            deliveries=str(deliveries),
            reason=reason or f"not acknowledged after {deliveries} deliveries",
        )
        pipe = self.client.pipeline(transaction=True)  # both keys share the source's hash tag
        pipe.xadd(dead_key, record)
        pipe.xack(key, self.group, entry_id)
        pipe.execute()
        self.dead_lettered += 1
        log.warning(
            "event entry %s of %s moved to dead-letter stream %s: %s", entry_id, key, dead_key, record["reason"]
        )

    def _to_events(self, reply: Any) -> list[Event]:
        events = []
        duplicates: dict[str, list[str]] = {}
        for raw_key, entries in reply or []:
            key = as_text(raw_key)
            for raw_id, fields in entries:
                entry_id = as_text(raw_id)
                if not fields:  # pending entry whose data was trimmed away: nothing left to deliver
                    self.client.xack(key, self.group, entry_id)
                    continue
                try:
                    data = from_stream_fields(fields)
                    event_id = data["event_id"]
                except (ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
                    self._dead_letter_entry(key, entry_id, 1, reason=f"not a maskstream event: {exc}")
                    continue
                seen = self._seen.get((key, event_id))
                if seen is not None and seen != entry_id:
                    duplicates.setdefault(key, []).append(entry_id)
                    continue
                self._remember(key, event_id, entry_id)
                events.append(Event(key, entry_id, data, self))
        if events and self.shared_dedupe_ttl_ms is not None:
            pipe = self.client.pipeline(transaction=False)
            for e in events:
                pipe.exists(self._done_key(e.stream, e.event_id))
            done = pipe.execute()
            for e, already in zip(events, done, strict=True):
                if already:
                    duplicates.setdefault(e.stream, []).append(e.entry_id)
            events = [e for e, already in zip(events, done, strict=True) if not already]
        if duplicates:
            pipe = self.client.pipeline(transaction=False)
            for key, ids in duplicates.items():
                pipe.xack(key, self.group, *ids)
                self.duplicates += len(ids)
            pipe.execute()
        return events

    def _remember(self, key: str, event_id: str, entry_id: str) -> None:
        self._seen[(key, event_id)] = entry_id
        self._seen.move_to_end((key, event_id))
        while len(self._seen) > self.dedupe_size:
            self._seen.popitem(last=False)
