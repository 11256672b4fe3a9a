"""The controller: keeps one worker actor per slot, places sources, moves them when a worker dies or hangs.

It runs in the driver (`maskstream run --ray`) and owns no data path: workers are detached Ray actors that keep
running their sources while the controller is down, and the controller's state lives in Redis (`cluster.state`),
so a restarted controller re-attaches to the workers by name and carries on.

Each tick (`cluster.poll_interval_s`): ping every worker; a ping that fails with a dead actor (process killed,
node lost) loses the worker at once, a worker silent for `cluster.worker_timeout_s` (SIGSTOP, partition) is lost
too. A lost worker's sources get a new epoch (the fence: from then on the old owner's writes are refused) and go
to survivors by rendezvous placement. A lost worker that answers again is killed. Sources that fail by themselves
retry on other workers up to `cluster.max_attempts`; sources beyond capacity wait, logged once and in metrics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.exceptions import RayActorError

from cluster.assignment import assign, moves_after_change, source_cost
from cluster.metrics import REASSIGNMENTS, SOURCES, SOURCES_WAITING, WORKERS
from cluster.state import JobStore, SourceState
from cluster.worker import SourceWorker
from pipeline.config import PipelineConfig
from pipeline.errors import MaskstreamError
from pipeline.redis_client import redis_from_url
from sinks.fence import take_ownership

log = logging.getLogger("maskstream.cluster")
_START_GRACE_S = 10.0  # a worker may not list a source it was just told to start for this long
_MAX_WORKER_START_FAILURES = 3


@dataclass
class _WorkerView:
    name: str
    handle: Any
    created: float
    last_seen: float = field(default_factory=time.monotonic)
    answered: bool = False
    lost_at: float | None = None  # silent too long: its sources moved; killed when it answers again
    ping: Any = None  # the outstanding ping's ObjectRef
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def usable(self) -> bool:
        return self.answered and self.lost_at is None


@dataclass
class _Handover:
    stop: Any  # ObjectRef of the old owner's stop_source
    old: str
    target: str
    epoch: int
    asked: float


@dataclass
class Reassignment:
    source_id: str
    reason: str  # worker_lost | moved | failed
    detected_at: float  # wall clock: worker found dead/lost (or hand-over asked)
    fenced_at: float  # new epoch taken
    started_at: float  # start_source sent to the new owner


@dataclass
class JobReport:
    done: list[str]
    failed: dict[str, str]
    waiting: list[str]
    elapsed_s: float
    reassignments: list[Reassignment]


class Controller:
    def __init__(self, cfg: PipelineConfig, job_id: str, detector_factory: str | None = None) -> None:
        if cfg.redis is None:
            raise MaskstreamError("--ray needs redis: set redis.url (fenced writes are how ownership is enforced)")
        self.cfg, self.ccfg, self.job_id = cfg, cfg.cluster, job_id
        self.client = redis_from_url(cfg.redis.url, cluster=cfg.redis.cluster)
        self.store = JobStore(self.client, job_id)
        self.sources = {source.id: source for source in cfg.sources}
        self.states = self.store.load_sources()
        for source_id, source in self.sources.items():
            if source_id not in self.states:
                self.states[source_id] = SourceState(cost=source_cost(source.fps_cap))
                self.store.save_source(source_id, self.states[source_id])
        self.factory = detector_factory
        self.workers: dict[str, _WorkerView] = {}
        self.reassignments: list[Reassignment] = []
        self._start_sent: dict[str, float] = {source_id: time.monotonic() for source_id in self.states}
        self._waiting_logged: set[str] = set()
        self._worker_start_failures = 0
        self._stopping = False
        self._placed_once = False
        self._handovers: dict[str, _Handover] = {}  # graceful moves waiting for the old owner's stop
        self._started = time.monotonic()
        self._remote = ray.remote(SourceWorker)
        self._slot_resources = self._slot_kind()
        self._adopt_workers()

    # --- workers ---------------------------------------------------------------------------------------------
    def _slot_kind(self) -> dict[str, Any]:
        """Actor options claiming one slot: a `maskstream_slot`, else a share of a GPU; neither → a clear error."""
        resources = ray.cluster_resources()
        if resources.get("maskstream_slot", 0) >= 1:
            return {"num_cpus": 0, "resources": {"maskstream_slot": 1}}
        if resources.get("GPU", 0) >= 1:
            return {"num_cpus": 0, "num_gpus": 1 / self.ccfg.slots_per_gpu}
        raise MaskstreamError(
            "the Ray cluster offers no maskstream_slot and no GPU: start nodes with "
            "--resources '{\"maskstream_slot\": N}' (or on GPU machines)"
        )

    def slots(self) -> int:
        resources = ray.cluster_resources()
        if "maskstream_slot" in self._slot_resources.get("resources", {}):
            return int(resources.get("maskstream_slot", 0))
        return int(resources.get("GPU", 0) * self.ccfg.slots_per_gpu)

    def _adopt_workers(self) -> None:
        """After a controller restart: find the job's workers by name; those gone are simply forgotten."""
        for name, created in self.store.load_workers().items():
            try:
                handle = ray.get_actor(name, namespace=self.ccfg.namespace)
            except ValueError:
                self.store.remove_worker(name)
                continue
            self.workers[name] = _WorkerView(name, handle, created)
        if self.workers:
            log.info("re-attached to %d workers of job %s", len(self.workers), self.job_id)

    def _ensure_workers(self) -> None:
        missing = self.slots() - len(self.workers)
        for _ in range(max(0, missing)):
            name = f"maskstream-{self.job_id}-w{self.store.next_worker_number()}"
            handle = self._remote.options(
                name=name,
                namespace=self.ccfg.namespace,
                lifetime="detached",  # keeps running while the controller restarts
                max_restarts=0,  # a restarted actor would hold no sources: the controller replaces it instead
                max_concurrency=8,  # ping answers while a hand-over is in progress
                **self._slot_resources,
            ).remote(self.cfg.model_dump_json(), name, self.factory)
            self.workers[name] = _WorkerView(name, handle, time.time())
            self.store.add_worker(name, time.time())

    def _ping_workers(self) -> None:
        now = time.monotonic()
        for view in self.workers.values():
            if view.ping is None:
                view.ping = view.handle.ping.remote()
        refs = {view.ping: view for view in self.workers.values()}
        ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=self.ccfg.poll_interval_s)
        for ref in ready:
            view = refs[ref]
            view.ping = None
            try:
                view.report = ray.get(ref)
            except RayActorError as exc:
                self._worker_gone(view, "died", exc)
                continue
            if view.lost_at is not None:  # a zombie woke up: it is fenced already; free its slot
                log.warning("worker %s answers again after being lost; killing it", view.name)
                ray.kill(view.handle)
                self._forget(view)
                continue
            view.answered, view.last_seen = True, time.monotonic()
            self._worker_start_failures = 0
        for view in list(self.workers.values()):
            silent = now - view.last_seen
            if view.answered and view.lost_at is None and silent > self.ccfg.worker_timeout_s:
                view.lost_at = time.time()
                WORKERS.labels("lost").inc()
                log.warning("worker %s silent for %.1f s: lost; its sources move", view.name, silent)

    def _worker_gone(self, view: _WorkerView, how: str, exc: BaseException) -> None:
        log.warning("worker %s %s", view.name, how)
        if not view.answered:
            self._worker_start_failures += 1
            if self._worker_start_failures >= _MAX_WORKER_START_FAILURES:
                raise MaskstreamError(f"workers die before they start: {_first_line(exc)}")
        view.lost_at = view.lost_at or time.time()
        self._forget(view)

    def _forget(self, view: _WorkerView) -> None:
        self.workers.pop(view.name, None)
        self.store.remove_worker(view.name)
        for source_id, state in self.states.items():
            if state.state == "running" and state.worker == view.name:
                self._lose(source_id, state, "worker_lost", view.lost_at or time.time())

    # --- sources ---------------------------------------------------------------------------------------------
    def _lose(self, source_id: str, state: SourceState, reason: str, at: float) -> None:
        state.state, state.worker, state.moves = "pending", None, state.moves + 1
        state.handover = reason if self.sources[source_id].live else None
        state.lost_at = at
        REASSIGNMENTS.labels(reason).inc()
        self.store.save_source(source_id, state)

    def _reconcile(self) -> None:
        for view in list(self.workers.values()):
            if view.lost_at is not None:
                for source_id, state in self.states.items():
                    if state.state == "running" and state.worker == view.name:
                        self._lose(source_id, state, "worker_lost", view.lost_at)
        for source_id, state in self.states.items():
            if state.state != "running":
                continue
            owner = self.workers.get(state.worker or "")
            if owner is None:
                self._lose(source_id, state, "worker_lost", time.time())
                continue
            entry = owner.report.get("sources", {}).get(source_id)
            if entry is None or entry["epoch"] != state.epoch:
                if time.monotonic() - self._start_sent.get(source_id, 0.0) > _START_GRACE_S and owner.answered:
                    log.warning("worker %s does not run %s; starting it again", owner.name, source_id)
                    self._lose(source_id, state, "restart", time.time())
                continue
            self._follow(source_id, state, entry, owner.name)

    def _follow(self, source_id: str, state: SourceState, entry: dict[str, Any], worker: str) -> None:
        if source_id in self._handovers:
            return  # being handed over: its stop is expected, `_finish_handovers` takes it from here
        size = entry.get("size") or [None, None]
        if size[0] and size[1]:
            state.cost = source_cost(self.sources[source_id].fps_cap, size[0], size[1])
        if entry["state"] == "done":
            state.state, state.worker = "done", None
        elif entry["state"] == "failed":
            state.attempts += 1
            state.failed_on.append(worker)
            state.error = entry.get("error") or "failed"
            if state.attempts >= self.ccfg.max_attempts:
                state.state, state.worker = "failed", None
                log.error(
                    "source %s failed %d times (on %s); giving up: %s",
                    source_id,
                    state.attempts,
                    ", ".join(state.failed_on),
                    state.error,
                )
            else:
                log.warning("source %s failed on %s (%s); retrying elsewhere", source_id, worker, state.error)
                state.state, state.worker, state.handover = "pending", None, None
                state.lost_at = time.time()
                REASSIGNMENTS.labels("failed").inc()
        elif entry["state"] in ("fenced", "stopped"):
            state.state, state.worker = "pending", None
        else:
            return
        self.store.save_source(source_id, state)

    def _place(self) -> None:
        usable = [name for name, view in self.workers.items() if view.usable]
        starting = [view for view in self.workers.values() if not view.answered and time.time() - view.created < 30]
        if not self._placed_once and starting:
            return  # at start-up wait for every worker, or the first to answer would get everything
        self._placed_once = True
        active = {s: st for s, st in self.states.items() if not st.final}
        running = {s: st.worker for s, st in active.items() if st.state == "running" and st.worker}
        placement = assign(
            {s: st.cost for s, st in active.items()},
            usable,
            self.ccfg.worker_capacity,
            keep=running,
            avoid={s: st.failed_on for s, st in active.items()},
        )
        for source_id, worker in sorted(placement.owner.items()):
            if active[source_id].state == "pending":
                self._start(source_id, active[source_id], worker)
        waiting = [s for s in placement.waiting if active[s].state == "pending"]
        SOURCES_WAITING.set(len(waiting))
        for source_id in waiting:
            if source_id not in self._waiting_logged:
                self._waiting_logged.add(source_id)
                log.warning(
                    "source %s waits: no worker has room (%d usable workers x capacity %g)",
                    source_id,
                    len(usable),
                    self.ccfg.worker_capacity,
                )

    def _start(self, source_id: str, state: SourceState, worker: str) -> None:
        assert self.cfg.redis is not None
        source = self.sources[source_id]
        detected = state.lost_at
        state.epoch = take_ownership(self.client, self.cfg.redis.key_for(source_id))
        fenced = time.time()
        state.state, state.worker = "running", worker
        handover, state.handover, state.lost_at = state.handover, None, None
        self.store.save_source(source_id, state)
        run_id = f"e{state.epoch}" if source.live else ""  # a file replays the same ids; a camera does not
        self.workers[worker].handle.start_source.remote(source.model_dump_json(), state.epoch, run_id, handover)
        self._start_sent[source_id] = time.monotonic()
        self._waiting_logged.discard(source_id)
        if detected is not None:
            self.reassignments.append(Reassignment(source_id, handover or "restart", detected, fenced, time.time()))

    def _rebalance(self, joined: set[str]) -> None:
        """A worker joined: live sources that now rank it first move there, gracefully. The old owner's stop is
        asked for here and finished in a later tick (`_finish_handovers`), so failure detection never waits."""
        live = {s: st for s, st in self.states.items() if st.state == "running" and self.sources[s].live}
        if not joined or not live:
            return
        usable = [name for name, view in self.workers.items() if view.usable]
        current = {s: st.worker for s, st in live.items() if st.worker}
        moves = moves_after_change({s: st.cost for s, st in live.items()}, current, usable, self.ccfg.worker_capacity)
        for source_id, target in sorted(moves.items()):
            state = live[source_id]
            old = self.workers.get(state.worker or "")
            if target not in joined or old is None or source_id in self._handovers:
                continue
            ref = old.handle.stop_source.remote(source_id, "moved", self.ccfg.stop_timeout_s)
            self._handovers[source_id] = _Handover(ref, old.name, target, state.epoch, time.time())

    def _finish_handovers(self) -> None:
        """Old owners that finished their stop (or took too long: the new epoch fences them anyway): start the
        sources on their new workers."""
        for source_id, handover in list(self._handovers.items()):
            ready, _ = ray.wait([handover.stop], timeout=0)
            overdue = time.time() - handover.asked > self.ccfg.stop_timeout_s + 5
            if not ready and not overdue:
                continue
            del self._handovers[source_id]
            state = self.states[source_id]
            if state.state != "running" or state.epoch != handover.epoch or state.worker != handover.old:
                continue  # its worker was lost meanwhile: it moved as worker_lost instead
            self._lose(source_id, state, "moved", handover.asked)
            target = self.workers.get(handover.target)
            if target is not None and target.usable:
                self._start(source_id, state, handover.target)

    # --- loop ------------------------------------------------------------------------------------------------
    def step(self) -> None:
        before = {name for name, view in self.workers.items() if view.usable}
        self._ensure_workers()
        self._ping_workers()
        self._reconcile()
        self._finish_handovers()
        self._place()
        self._rebalance({name for name, view in self.workers.items() if view.usable} - before if before else set())
        counts: dict[str, int] = {}
        for state in self.states.values():
            counts[state.state] = counts.get(state.state, 0) + 1
        for name in ("pending", "running", "done", "failed"):
            SOURCES.labels(name).set(counts.get(name, 0))
        WORKERS.labels("usable").set(sum(view.usable for view in self.workers.values()))

    def finished(self) -> bool:
        return all(state.final for state in self.states.values())

    def stop(self) -> None:
        self._stopping = True

    def run(self, on_tick: Callable[[Controller], None] | None = None) -> JobReport:
        """Until every source is done or failed (files), or `stop()` (live sources run until then)."""
        while not self._stopping and not self.finished():
            tick = time.monotonic()
            self.step()
            if on_tick is not None:
                on_tick(self)
            time.sleep(max(0.0, self.ccfg.poll_interval_s - (time.monotonic() - tick)))
        return self.report()

    def report(self) -> JobReport:
        return JobReport(
            done=sorted(s for s, st in self.states.items() if st.state == "done"),
            failed={s: st.error or "failed" for s, st in self.states.items() if st.state == "failed"},
            waiting=sorted(s for s, st in self.states.items() if st.state == "pending"),
            elapsed_s=time.monotonic() - self._started,
            reassignments=list(self.reassignments),
        )

    def shutdown(self, timeout_s: float = 30.0) -> None:
        """Stop every worker (sources end normally, events flush), kill them, forget the job if it is complete."""
        calls = [view.handle.shutdown.remote(timeout_s / 2) for view in self.workers.values() if view.usable]
        try:
            ray.wait(calls, num_returns=len(calls), timeout=timeout_s)
        finally:
            for view in list(self.workers.values()):
                ray.kill(view.handle)
                self.store.remove_worker(view.name)
            self.workers.clear()
        if self.finished() or self._stopping:
            self.store.clear()


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
