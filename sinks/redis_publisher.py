"""Redis Streams publisher: one stream per source, pipelined XADD, a spool that rides out Redis outages.

`RedisPublisher(cfg)` is an `EventSink`. Entry layout, trimming and delivery guarantees are described in docs/EVENTS.md.
"""

from __future__ import annotations

import itertools
import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from pipeline.config.redis import RedisConfig
from pipeline.events import SCHEMA_VERSION, dropped_event, encode_event, to_stream_fields
from pipeline.metrics import (
    EVENTS_DROPPED,
    EVENTS_DUPLICATE,
    EVENTS_FENCED,
    EVENTS_PUBLISHED,
    EVENTS_SPOOLED,
    REDIS_UP,
)
from pipeline.redact import redact_url
from pipeline.redis_client import check_redis, describe_redis_error, redis_from_url
from sinks.base import EventSink
from sinks.fence import DUPLICATE_MARK, FENCE_SCRIPT, Fence, StaleEpoch, track_id_of, write_fenced
from sinks.spool import DiskSpool, SpooledEvent

log = logging.getLogger(__name__)
_VERSION = str(SCHEMA_VERSION)


@dataclass(slots=True)
class _DropRecord:
    """Events of one source the spool had to drop, not yet reported by a `publisher.dropped` event."""

    count: int
    first: dict[str, Any]
    last: dict[str, Any]


class RedisPublisher(EventSink):
    """Publishes event dicts to one Redis stream per source without ever blocking the caller.

    `publish` appends to a bounded spool and returns; a background writer thread delivers the spool in order,
    one pipelined MULTI/EXEC round trip per batch (a frame's events, or more while it catches up), and rides out
    Redis outages with capped exponential backoff. When the spool is full the oldest waiting events are dropped,
    counted exactly (EVENTS_DROPPED, a log line, and a `publisher.dropped` event on the stream once Redis is
    back). Delivery is at-least-once: a batch whose EXEC reply is lost is sent again, and consumers drop the
    duplicate by `event_id`.

    With a `fence` (only under `--ray`, see `sinks.fence`) every write goes through the fence script instead:
    a stale epoch is refused (the events are counted as fenced and `on_stale` is told, once per source and
    epoch) and an id already in Redis is skipped, so delivery becomes exactly-once per event id.
    """

    def __init__(
        self, cfg: RedisConfig, fence: Fence | None = None, on_stale: Callable[[StaleEpoch], None] | None = None
    ) -> None:
        self.cfg = cfg
        self._backoff = cfg.backoff()
        self.fence = fence
        self._on_stale = on_stale
        self._stale_told: set[tuple[str, int]] = set()
        self.url = redact_url(cfg.url)
        self._client = redis_from_url(
            cfg.url,
            cluster=cfg.cluster,
            connect_timeout_s=cfg.connect_timeout_s,
            socket_timeout_s=cfg.socket_timeout_s,
            tls_ca_cert_file=cfg.tls_ca_cert_file,
            tls_cert_file=cfg.tls_cert_file,
            tls_key_file=cfg.tls_key_file,
            tls_check_hostname=cfg.tls_check_hostname,
        )
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._spool: deque[SpooledEvent] = deque()
        self._inflight = 0  # events at the head of the spool being sent right now; never dropped meanwhile
        self._reports_in_flight = False  # a publisher.dropped report is being sent
        self._disk_failed = False
        self._seq = 0
        self._drops: dict[str, _DropRecord] = {}
        self._dropping_logged = False
        self._stop = False
        self._flush_deadline: float | None = None
        self._connected = False
        self.published = 0  # totals, for stats() and tests
        self.dropped = 0
        self.fenced = 0  # refused: stale epoch (fenced mode only)
        self.duplicates = 0  # skipped: id already written (fenced mode only)
        self._script = self._client.register_script(FENCE_SCRIPT) if fence and not cfg.cluster else None
        self._disk = DiskSpool(cfg.spool_path) if cfg.spool_path is not None else None
        if self._disk is not None:
            self._spool.extend(self._disk.load())
            self._seq = self._spool[-1].seq if self._spool else 0
            if self._spool:
                log.info("%d events from a previous run wait in the spool %s", len(self._spool), cfg.spool_path)
        REDIS_UP.set(0)
        EVENTS_SPOOLED.set(len(self._spool))
        self._thread = threading.Thread(target=self._run, name="redis-publisher", daemon=True)
        self._thread.start()

    # -- caller side ---------------------------------------------------------------------------------------------

    def check(self) -> None:
        """Raise a one-line MaskstreamError (redacted URL) if Redis is unreachable or refuses our credentials."""
        check_redis(self._client, self.cfg.url)

    def publish(self, source_id: str, events: list[dict[str, Any]]) -> None:
        """Queue one frame's events for delivery, in order. Returns at once; never waits for Redis."""
        if not events:
            return
        items = [
            SpooledEvent(
                0, source_id, e["event_id"], e["type"], e.get("frame_index"), e.get("capture_time"), encode_event(e)
            )
            for e in events
        ]
        with self._lock:
            if self._stop:
                raise RuntimeError("RedisPublisher.publish after close()")
            for item in items:
                item.seq = self._next_seq()
            self._spool.extend(items)
            self._on_disk("append", items)
            overflow = len(self._spool) - self._inflight - self.cfg.spool_max_events
            if overflow > 0:
                self._drop_oldest(overflow)
            EVENTS_SPOOLED.set(len(self._spool))
            self._wake.notify()

    def flush(self, timeout_s: float) -> bool:
        """Wait until every queued event is in Redis (True) or `timeout_s` passed (False)."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._spool or self._drops or self._reports_in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._thread.is_alive():
                    return False
                self._wake.wait(min(remaining, 0.05))
            return True

    def close(self, timeout_s: float = 10.0) -> None:
        """Deliver what is queued (up to `timeout_s`), then stop the writer. Idempotent."""
        with self._lock:
            if self._stop:
                return
            self._flush_deadline = time.monotonic() + timeout_s
            self._wake.notify_all()
        self.flush(timeout_s)
        with self._lock:
            self._stop = True
            self._wake.notify_all()
        self._thread.join(timeout=max(1.0, self.cfg.socket_timeout_s + 1.0))
        with self._lock:
            left = len(self._spool)
            if left and self._disk is not None and not self._disk_failed:
                log.warning(
                    "%d events not delivered to %s; they stay in %s for the next run",
                    left,
                    self.url,
                    self.cfg.spool_path,
                )
            elif left:
                by_source: dict[str, int] = {}
                for item in self._spool:
                    by_source[item.source_id] = by_source.get(item.source_id, 0) + 1
                for source_id, count in by_source.items():
                    EVENTS_DROPPED.labels(source_id).inc(count)
                self.dropped += left
                log.error("%d events could not be delivered to %s before shutdown and are lost", left, self.url)
        if self._disk is not None:
            self._disk.close()
        self._client.close()

    def connected(self) -> bool:
        return self._connected

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "connected": self._connected,
                "published": self.published,
                "spooled": len(self._spool),
                "dropped": self.dropped,
                "fenced": self.fenced,
                "duplicates": self.duplicates,
            }

    # -- spool bookkeeping (lock held) ----------------------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _on_disk(self, method: str, *args: Any) -> None:
        """Mirror a spool change in the disk spool; a failing disk (full, removed) degrades to memory only."""
        if self._disk is None or self._disk_failed:
            return
        try:
            getattr(self._disk, method)(*args)
        except sqlite3.Error as exc:
            self._disk_failed = True
            log.error("event spool file %s failed (%s); spooling in memory only", self.cfg.spool_path, exc)

    def _drop_oldest(self, count: int) -> None:
        """Drop `count` of the oldest waiting events (never one in flight) and remember them for the report."""
        kept = [self._spool.popleft() for _ in range(self._inflight)]
        dropped = [self._spool.popleft() for _ in range(count)]
        self._spool.extendleft(reversed(kept))
        self._on_disk("remove", dropped[0].seq, dropped[-1].seq)
        for item in dropped:
            summary = {"event_id": item.event_id, "frame_index": item.frame_index, "capture_time": item.capture_time}
            record = self._drops.get(item.source_id)
            if record is None:
                self._drops[item.source_id] = _DropRecord(1, summary, summary)
            else:
                record.count += 1
                record.last = summary
            EVENTS_DROPPED.labels(item.source_id).inc()
        self.dropped += count
        if not self._dropping_logged:
            self._dropping_logged = True
            log.warning(
                "event spool full (%d events) while Redis at %s is unavailable: dropping the oldest events",
                self.cfg.spool_max_events,
                self.url,
            )

    def _restore_drop_report(self, unsent: dict[str, _DropRecord]) -> None:
        """A report did not get through: merge it with drops recorded meanwhile (which are all newer)."""
        for source_id, record in unsent.items():
            newer = self._drops.get(source_id)
            if newer is not None:
                record.count += newer.count
                record.last = newer.last
            self._drops[source_id] = record

    # -- writer thread --------------------------------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        while True:
            with self._lock:
                while not self._spool and not (self._drops and self._connected) and not self._stop:
                    self._wake.wait(0.5)
                if self._stop:
                    return
                batch = list(itertools.islice(self._spool, self.cfg.max_events_per_round_trip))
                drops, self._drops = self._drops, {}  # drops from now on go in a later report
                self._reports_in_flight = bool(drops)
                self._inflight = len(batch)
            try:
                results = self._send(batch, drops)
            except Exception as exc:
                with self._lock:
                    self._inflight = 0
                    self._reports_in_flight = False
                    self._restore_drop_report(drops)
                if isinstance(exc, RedisError | OSError):
                    self._mark_down(exc, failures)
                else:  # a bug must not silently end delivery: say so loudly and keep retrying
                    log.exception("publisher writer failed; retrying")
                failures += 1
                self._sleep_backoff(failures)
                continue
            failures = 0
            self._mark_up()
            self._settle(batch, drops, results)

    def _send(self, batch: list[SpooledEvent], drops: dict[str, _DropRecord]) -> list[Any]:
        """One round trip: drop notices first (they speak of older events), then the batch, then MINID trims."""
        if self.fence is not None:
            return self._send_fenced(batch, drops)
        # a Redis Cluster cannot run one MULTI over several slots; each XADD is atomic on its own there
        pipe = self._client.pipeline(transaction=not self.cfg.cluster)
        now = time.time()
        for source_id, record in drops.items():
            report = dropped_event(source_id, [record.first, record.last], record.count, now)
            fields = to_stream_fields(report)
            self._xadd(pipe, source_id, fields["type"], fields["event_id"], fields["data"])
        for item in batch:
            self._xadd(pipe, item.source_id, item.type, item.event_id, item.data)
        if self.cfg.minid_window_s is not None:
            min_id = f"{int((now - self.cfg.minid_window_s) * 1000)}-0"
            for key in {self.cfg.key_for(s) for s in [*drops, *(item.source_id for item in batch)]}:
                pipe.xtrim(key, minid=min_id, approximate=True)
        return pipe.execute(raise_on_error=False)

    def _send_fenced(self, batch: list[SpooledEvent], drops: dict[str, _DropRecord]) -> list[Any]:
        """Through the fence script (`sinks.fence.write_fenced`); one result per drop report and batch item."""
        assert self.fence is not None
        now = time.time()
        per_source: dict[str, list[tuple[str, str, str, str]]] = {}
        for source_id, record in drops.items():
            fields = to_stream_fields(dropped_event(source_id, [record.first, record.last], record.count, now))
            per_source.setdefault(source_id, []).append((fields["type"], fields["event_id"], fields["data"], ""))
        for item in batch:
            per_source.setdefault(item.source_id, []).append(
                (item.type, item.event_id, item.data, track_id_of(item.type, item.data))
            )
        by_source = write_fenced(
            self._client, self._script, self.fence, per_source, self.cfg.key_for, self.cfg.maxlen, self.cfg.cluster
        )
        for stale in {r for results in by_source.values() for r in results if isinstance(r, StaleEpoch)}:
            self._tell_stale(stale)
        return [by_source[s].pop(0) for s in drops] + [by_source[item.source_id].pop(0) for item in batch]

    def _tell_stale(self, stale: StaleEpoch) -> None:
        if (stale.source_id, stale.epoch) in self._stale_told:
            return
        self._stale_told.add((stale.source_id, stale.epoch))
        log.warning("%s: its events are refused", stale)
        if self._on_stale is not None:
            self._on_stale(stale)

    def _xadd(self, pipe: Any, source_id: str, type_: str, event_id: str, data: str) -> None:
        # the raw command: redis-py's xadd() argument handling costs more than the packing when catching up
        trim = ("MAXLEN", "~", self.cfg.maxlen) if self.cfg.maxlen is not None else ()
        key = self.cfg.key_for(source_id)
        pipe.execute_command("XADD", key, *trim, "*", "type", type_, "event_id", event_id, "v", _VERSION, "data", data)

    def _settle(self, batch: list[SpooledEvent], drops: dict[str, _DropRecord], results: list[Any]) -> None:
        """The batch is in Redis: take it off the spool, count it, report failed entries."""
        for source_id, record in drops.items():
            log.warning(
                "reported to Redis: %d events of source %s were dropped during the outage (ids %s .. %s)",
                record.count,
                source_id,
                record.first["event_id"],
                record.last["event_id"],
            )
        results = results[len(drops) :]
        per_source: dict[str, int] = {}
        rejected = fenced = duplicates = 0
        for item, result in zip(batch, results, strict=False):
            if isinstance(result, StaleEpoch):
                fenced += 1
                EVENTS_FENCED.labels(item.source_id).inc()
            elif result is DUPLICATE_MARK:
                duplicates += 1
                EVENTS_DUPLICATE.labels(item.source_id).inc()
            elif isinstance(result, Exception):
                # e.g. WRONGTYPE: the key holds something else; retrying cannot help, so count it as dropped
                rejected += 1
                EVENTS_DROPPED.labels(item.source_id).inc()
                log.error("Redis rejected event %s of source %s: %s", item.event_id, item.source_id, result)
            else:
                per_source[item.source_id] = per_source.get(item.source_id, 0) + 1
        for source_id, count in per_source.items():
            EVENTS_PUBLISHED.labels(source_id).inc(count)
        with self._lock:
            for _ in range(len(batch)):
                self._spool.popleft()
            if batch:
                self._on_disk("remove", batch[0].seq, batch[-1].seq)
            self._inflight = 0
            self._reports_in_flight = False
            self.published += len(batch) - rejected - fenced - duplicates
            self.dropped += rejected
            self.fenced += fenced
            self.duplicates += duplicates
            EVENTS_SPOOLED.set(len(self._spool))
            self._wake.notify_all()

    def _mark_up(self) -> None:
        if not self._connected:
            with self._lock:
                self._connected = True
                self._dropping_logged = False
                waiting = len(self._spool)
            REDIS_UP.set(1)
            log.info("connected to Redis at %s (%d events waiting)", self.url, waiting)

    def _mark_down(self, exc: BaseException, failures: int) -> None:
        with self._lock:
            was_connected, self._connected = self._connected, False
            waiting = len(self._spool)
        REDIS_UP.set(0)
        if was_connected or failures == 0:
            log.warning("%s; spooling events (%d waiting)", describe_redis_error(self.cfg.url, exc), waiting)
        self._client.connection_pool.disconnect()

    def _sleep_backoff(self, failures: int) -> None:
        delay = self._backoff.delay(failures - 1)
        with self._lock:
            if self._flush_deadline is not None:
                delay = min(delay, max(0.0, self._flush_deadline - time.monotonic()))
            end = time.monotonic() + delay
            while not self._stop and (remaining := end - time.monotonic()) > 0:
                self._wake.wait(remaining)
