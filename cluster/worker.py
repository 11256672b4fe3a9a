"""The worker actor: today's pipeline for the sources the controller gives it, writing fenced.

One `SourceWorker` per `maskstream_slot` (the controller wraps it with `ray.remote`; this module never imports
Ray). Each owned source runs in its own `pipeline.runner.Pipeline` with the worker's one model (loaded once) and
the worker's one fenced `RedisPublisher`: frames go from the source's decoder straight to the model in this
process, never through Ray's object store or Redis; only small control calls and status dicts cross Ray.

One pipeline per source (not one per worker) because a source comes and goes on its own (moved, lost, finished)
while today's `Pipeline` has a fixed set of sources; the cost is no cross-source batching inside a worker.

Hand-over events (live sources only; a file is replayed from its start instead, so its events stay those of a
single-process run):
- moved (graceful): the old owner stops the pipeline; its open tracks end with `reason: moved` and the end of
  the stream is published as `stream.disconnected` with `reason: moved`;
- worker_lost: the new owner first ends the tracks the lost owner left open (kept by the fence script) with
  `reason: worker_lost`, then publishes `stream.disconnected` with `reason: worker_lost`;
- either way the new owner's first `stream.connected` carries the reason.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipeline.config import PipelineConfig
from pipeline.config.sources import SourceConfig
from pipeline.events import SCHEMA_VERSION
from pipeline.redact import redact_text
from pipeline.redis_client import redis_from_url
from sinks.base import EventSink
from sinks.fence import Fence, StaleEpoch, open_tracks
from sinks.redis_publisher import RedisPublisher
from stages.inference import Detector, load_detector

log = logging.getLogger(__name__)


def load_factory(path: str) -> Callable[[PipelineConfig], Detector]:
    """`module:callable` → the callable (a stand-in model for tests and benchmarks; None = the configured model)."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


class _OwnedSink(EventSink):
    """One source's door to the shared publisher: adds the hand-over reasons, goes silent once fenced out."""

    def __init__(self, publisher: RedisPublisher, handover: str | None) -> None:
        self.publisher = publisher
        self.handover = handover  # reason for the first stream.connected (moved / worker_lost)
        self.ending: str | None = None  # set when the source is handed over: its last events carry the reason
        self.fenced = False

    def publish(self, source_id: str, events: list[dict[str, Any]]) -> None:
        if self.fenced:
            return
        for event in events:
            kind = event["type"]
            if kind == "stream.connected" and self.handover is not None:
                event["reason"], self.handover = self.handover, None
            elif self.ending is not None and kind == "track.ended":
                event["reason"] = self.ending
            elif self.ending is not None and kind == "stream.ended":
                # the stream goes on elsewhere: for consumers it is a disconnection here, not an end; an id of its
                # own, since a real disconnection of this ownership may already be `s:disconnected:0`
                event.update(type="stream.disconnected", reason=self.ending)
                event["event_id"] = event["event_id"].replace("s:ended:", "s:disconnected:handover:")
        self.publisher.publish(source_id, events)

    def close(self, timeout_s: float) -> None:
        """The publisher outlives the source; the worker flushes it when the source's run ends."""


@dataclass
class _SourceRun:
    cfg: SourceConfig
    epoch: int
    sink: _OwnedSink
    pipeline: Any = None  # pipeline.runner.Pipeline once started
    thread: threading.Thread | None = None
    state: str = "starting"  # starting → running → done | failed | stopped | fenced
    error: str | None = None


class SourceWorker:
    """Runs sources on request; answers `ping` with the state of each (the controller's only view of it)."""

    def __init__(self, cfg_json: str, name: str, detector_factory: str | None = None) -> None:
        self.cfg = PipelineConfig.model_validate_json(cfg_json)
        if self.cfg.redis is None:
            raise ValueError("a worker needs redis: fenced writes are how ownership is enforced")
        self.name = name
        self._factory = detector_factory
        self._detector: Detector | None = None
        self._detector_lock = threading.Lock()
        self._lock = threading.Lock()
        self._runs: dict[str, _SourceRun] = {}
        self._fence = Fence(max_seen_ids=self.cfg.cluster.max_seen_ids, seen_ttl_s=self.cfg.cluster.seen_ttl_s)
        self._publisher = RedisPublisher(self.cfg.redis, self._fence, on_stale=self._fenced_out)
        self._publisher.check()
        self._client = redis_from_url(self.cfg.redis.url, cluster=self.cfg.redis.cluster)

    # --- control calls (from the controller, through Ray) -----------------------------------------------------
    def ping(self) -> dict[str, Any]:
        with self._lock:
            sources = {source_id: _describe(run) for source_id, run in self._runs.items()}
        return {
            "name": self.name,
            "pid": os.getpid(),
            "node": _node_id(),
            "sources": sources,
            **self._publisher.stats(),
        }

    def start_source(self, source_json: str, epoch: int, run_id: str, handover: str | None = None) -> None:
        """Own `source` under `epoch` from now on: start its pipeline in a thread and return at once."""
        source = SourceConfig.model_validate_json(source_json)
        with self._lock:
            old = self._runs.get(source.id)
            if old is not None and old.state in ("starting", "running"):
                old.sink.fenced = True  # superseded on this very worker (a controller restart): silence it
                if old.pipeline is not None:
                    old.pipeline.abort()
            self._fence.epochs[source.id] = epoch
            run = _SourceRun(source, epoch, _OwnedSink(self._publisher, handover))
            self._runs[source.id] = run
        run.thread = threading.Thread(target=self._run, args=(run, run_id), name=f"run-{source.id}", daemon=True)
        run.thread.start()

    def stop_source(self, source_id: str, reason: str = "moved", timeout_s: float = 15.0) -> bool:
        """Graceful hand-over: end tracks with `reason`, flush. True when everything reached Redis in time."""
        with self._lock:
            run = self._runs.get(source_id)
        if run is None or run.thread is None:
            return True
        run.sink.ending = reason
        if run.pipeline is not None:
            run.pipeline.stop()
        run.thread.join(timeout_s)
        return not run.thread.is_alive() and self._publisher.flush(max(0.1, timeout_s / 2))

    def shutdown(self, timeout_s: float = 15.0) -> None:
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            if run.pipeline is not None:
                run.pipeline.stop()
        for run in runs:
            if run.thread is not None:
                run.thread.join(timeout_s)
        self._publisher.close(timeout_s)

    # --- inside the worker ---------------------------------------------------------------------------------------
    def _detector_for(self) -> Detector:
        with self._detector_lock:  # one model per worker, shared by its sources' pipelines
            if self._detector is None:
                self._detector = (
                    load_factory(self._factory)(self.cfg) if self._factory else load_detector(self.cfg.model)
                )
            return self._detector

    def _run(self, run: _SourceRun, run_id: str) -> None:
        from pipeline.runner import Pipeline

        source_id = run.cfg.id
        try:
            if run.sink.handover == "worker_lost" and run.cfg.live:
                self._end_what_the_lost_owner_left(run)
            cfg = self.cfg.model_copy(update={"sources": [run.cfg]})
            run.pipeline = Pipeline(
                cfg, detector=self._detector_for(), event_sinks=[run.sink], frame_sinks=[], run_id=run_id
            )
            if run.sink.fenced:
                return
            run.state = "running"
            report = run.pipeline.run()
            stats = report.sources.get(source_id)
            if run.sink.fenced:
                run.state = "fenced"
            elif run.sink.ending is not None:
                run.state = "stopped"
            elif stats is not None and stats.failed:
                run.state, run.error = "failed", stats.errors[0] if stats.errors else "failed"
            else:
                # done only once every event is in Redis: a worker lost after "done" must lose nothing
                run.state = "done" if self._publisher.flush(self.cfg.sinks.close_timeout_s) else "failed"
                if run.state == "failed":
                    run.error = "events could not be delivered to Redis in time"
        except Exception as exc:
            run.state = "fenced" if run.sink.fenced else "failed"
            run.error = f"{type(exc).__name__}: {redact_text(str(exc))}"
            log.error("worker %s: source %s: %s", self.name, source_id, run.error)

    def _end_what_the_lost_owner_left(self, run: _SourceRun) -> None:
        """The lost owner's open tracks end (`worker_lost`), then its stream is said disconnected."""
        assert self.cfg.redis is not None
        source_id, epoch, now = run.cfg.id, run.epoch, time.time()
        events = []
        for last in open_tracks(self._client, self.cfg.redis.key_for(source_id)):
            ended = dict(last, type="track.ended", reason="worker_lost", event_id=f"h{epoch}:t{last['track_id']}:ended")
            events.append(ended)
        events.append(
            {
                "v": SCHEMA_VERSION,
                "event_id": f"h{epoch}:s:disconnected",
                "type": "stream.disconnected",
                "source_id": source_id,
                "frame_index": None,
                "pts": None,
                "capture_time": now,
                "reason": "worker_lost",
                "info": {},
            }
        )
        self._publisher.publish(source_id, events)

    def _fenced_out(self, stale: StaleEpoch) -> None:
        """The publisher was refused: another worker owns the source now. Stop it here, publish nothing more."""
        with self._lock:
            run = self._runs.get(stale.source_id)
        if run is None or run.epoch != stale.epoch:
            return
        log.warning("worker %s: %s; stopping it here", self.name, stale)
        run.sink.fenced = True
        run.state = "fenced"
        if run.pipeline is not None:
            run.pipeline.abort()


def _describe(run: _SourceRun) -> dict[str, Any]:
    described: dict[str, Any] = {"state": run.state, "epoch": run.epoch, "error": run.error}
    stats = run.pipeline.stats.sources.get(run.cfg.id) if run.pipeline is not None else None
    if stats is not None:
        described.update(frames=stats.frames_done, expected_frames=stats.expected_frames)
        described["size"] = [stats.info.get("width"), stats.info.get("height")]
    return described


def _node_id() -> str | None:
    """The Ray node this worker runs on (None outside Ray: this module never imports Ray itself)."""
    ray = sys.modules.get("ray")
    return ray.get_runtime_context().get_node_id() if ray is not None else None
