"""The pipeline graph: builds every stage from the root config, runs them in threads, stops them cleanly.

    source threads ──(per-source queue: block | drop_oldest)──┐
    source threads ───────────────────────────────────────────┤ QueueGroup (round-robin, fair)
                                                              ▼
    batcher ──▶ inference ──▶ masks ──▶ tracker ──▶ [zones] ──▶ publish (events → Redis / JSONL; results → MP4 / MOT)

Threads, not processes: decoding (FFmpeg), torch and OpenCV release the GIL for their heavy work, and handing
frames between threads costs no copy (docs/PIPELINE.md has the measurements). Every queue is bounded, so memory is
bounded: files wait for the model, live sources lose their oldest frames.

Shutdown (`stop`, e.g. on SIGINT/SIGTERM): sources stop and send `ended`; everything already decoded drains
through the graph; trackers close their tracks; sinks flush (the Redis spool within `sinks.close_timeout_s`).
`abort` (second signal) closes every queue at once and skips the drain.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pipeline.config import PipelineConfig
from pipeline.config.sources import SourceConfig
from pipeline.errors import MaskstreamError, SourceError
from pipeline.events import EventBuilder
from pipeline.graph import STAGE_GRAPH, GraphContext, build_event_sinks, build_frame_sinks
from pipeline.items import Frame, StreamStatus
from pipeline.metrics import FRAMES_DROPPED
from pipeline.model_notice import model_label, warn_if_bundled_on_real_footage
from pipeline.queues import BoundedQueue, QueueClosed, QueueGroup
from pipeline.redact import redact_text
from pipeline.stage import StageThread
from pipeline.stats import RunStats, SourceStats
from sinks.base import EventSink, FrameSink
from sinks.paths import check_output_paths
from sources.base import VideoSource
from sources.open import open_source
from stages.inference import Detector, load_detector

log = logging.getLogger(__name__)


@dataclass
class RunReport:
    """How a run went, per source."""

    sources: dict[str, SourceStats]
    elapsed_s: float
    stopped: bool  # ended by stop() (signal) rather than by the sources running out

    @property
    def frames(self) -> int:
        return sum(s.frames_done for s in self.sources.values())

    @property
    def fps(self) -> float:
        return self.frames / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def failed(self) -> list[SourceStats]:
        return [s for s in self.sources.values() if s.failed]

    @property
    def exit_code(self) -> int:
        """0: every source fine; 1: some sources failed while others completed (see docs/PIPELINE.md)."""
        return 1 if self.failed else 0

    def events_by_type(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for stats in self.sources.values():
            for kind, count in stats.events.items():
                totals[kind] = totals.get(kind, 0) + count
        return dict(sorted(totals.items()))


@dataclass
class _SourceSlot:
    cfg: SourceConfig
    queue: BoundedQueue
    source: VideoSource | None = None
    thread: threading.Thread | None = None
    error: str | None = None
    stop_requested: threading.Event = field(default_factory=threading.Event)


def _local_files(slot: _SourceSlot) -> list[str] | None:
    """The files an opened file source reads; None for a live source (real footage by definition)."""
    if slot.cfg.live or slot.source is None:
        return None if slot.cfg.live else []
    return list(getattr(slot.source, "files", []))


class Pipeline:
    """One run of the configured graph. `run()` blocks until every source ended (or `stop()`/`abort()`)."""

    def __init__(
        self,
        cfg: PipelineConfig,
        *,
        detector: Detector | None = None,
        event_sinks: list[EventSink] | None = None,
        frame_sinks: list[FrameSink] | None = None,
        sources: dict[str, VideoSource] | None = None,
        run_id: str = "",
        event_taps: list[EventSink] | None = None,
        frame_taps: list[FrameSink] | None = None,
    ) -> None:
        self.cfg = cfg
        self._given_sources = sources or {}  # by source id, instead of opening its URL (benchmarks, tests)
        self.detector = detector
        self._event_sinks = event_sinks
        self._frame_sinks = frame_sinks
        # sinks added to the configured (or given) ones, e.g. the live page's (web)
        self._event_taps = list(event_taps or [])
        self._frame_taps = list(frame_taps or [])
        self.run_id = run_id
        self.stats = RunStats()
        self._group = QueueGroup()
        self._slots: list[_SourceSlot] = []
        self._stage_threads: list[StageThread] = []
        self._stop = threading.Event()
        self._aborted = threading.Event()
        self.model_ready = threading.Event()
        self.event_sinks: list[EventSink] = []
        for source_cfg in cfg.sources:
            self.stats.add_source(source_cfg.id, bool(source_cfg.live))

    # --- control ---------------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Graceful: sources stop soon and send `ended`; work in flight drains; sinks flush. Thread-safe."""
        if self._stop.is_set():
            return
        self._stop.set()
        log.info("stopping: sources end, work in flight drains, sinks flush")
        for slot in self._slots:
            slot.stop_requested.set()
            if slot.source is not None:
                slot.source.stop()

    def abort(self) -> None:
        """Immediate: close every queue; threads end without draining (events in flight may be lost)."""
        self.stop()
        self._aborted.set()
        log.warning("aborting without draining")
        for slot in self._slots:
            slot.queue.close()
            slot.queue.drain()
        for thread in self._stage_threads:
            thread.inbox.close()
            if thread.outbox is not None:
                thread.outbox.close()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def aborted(self) -> bool:
        return self._aborted.is_set()

    def ready(self) -> tuple[bool, str]:
        """(ready, why): the model is loaded and warmed up, and every event sink that can be down is connected."""
        if not self.model_ready.is_set():
            return False, "model loading or warming up"
        for sink in self.event_sinks:
            if not sink.connected():
                return False, f"{type(sink).__name__} not connected"
        return True, "ready"

    def healthy(self) -> bool:
        """Every stage thread that was started is alive or finished normally (none broke)."""
        return all(t.failure is None for t in self._stage_threads) and not self._aborted.is_set()

    # --- run -------------------------------------------------------------------------------------------------
    def run(self, on_tick: Callable[[RunStats], None] | None = None, tick_s: float = 0.5) -> RunReport:
        """Open sources, load the model, start every thread and wait for the end. Raises MaskstreamError when the
        run cannot start (an output that cannot be written, no source can be opened, Redis unreachable, bad
        weights)."""
        check_output_paths(self.cfg)
        self._open_file_sources()  # cheap checks first: a missing file fails before the model loads
        if self._slots and all(slot.error for slot in self._slots):
            raise _all_failed([slot.error or "" for slot in self._slots])
        # Redis before the model: an unreachable Redis should fail in a second, not after the model loaded
        self.event_sinks = self._event_sinks if self._event_sinks is not None else build_event_sinks(self.cfg)
        if self.detector is None:
            try:
                self.detector = load_detector(self.cfg.model)
            except BaseException:
                for sink in self.event_sinks:
                    sink.close(1.0)
                raise
        if self.detector.info:  # a detector built by the model factory (tests may inject bare ones)
            self.stats.model = model_label(self.detector.info)
            log.info("model: %s on %s", self.stats.model, self.detector.device)
        warn_if_bundled_on_real_footage(self.detector.info, [(s.cfg.id, _local_files(s)) for s in self._slots])
        frame_sinks = (
            self._frame_sinks
            if self._frame_sinks is not None
            else build_frame_sinks(self.cfg, self.detector.class_names)
        )
        builder = EventBuilder(
            self.detector.class_names,
            frame_summary=self.cfg.sinks.frame_summary,
            run_id=self.run_id,
            model=self.detector.info,
        )
        self._start_stages(builder, frame_sinks + self._frame_taps)
        for slot in self._slots:
            slot.thread = threading.Thread(target=self._source_main, args=(slot,), name=f"source-{slot.cfg.id}")
            slot.thread.daemon = True
            slot.thread.start()
        last = self._stage_threads[-1]
        while last.is_alive():
            last.join(tick_s)
            if on_tick is not None:
                on_tick(self.stats)
            if any(t.failure is not None for t in self._stage_threads) and not self._aborted.is_set():
                self.abort()  # a broken stage: unblock everyone instead of waiting on a queue nobody reads
        for thread in self._stage_threads:
            thread.join(5.0)
        for slot in self._slots:
            if slot.thread is not None:
                slot.thread.join(5.0)
        self.stats.finished = time.monotonic()
        report = RunReport(self.stats.snapshot(), self.stats.elapsed(), stopped=self._stop.is_set())
        broken = [t for t in self._stage_threads if t.failure is not None]
        if broken:
            raise MaskstreamError(
                f"stage {broken[0].stage.name} failed: {type(broken[0].failure).__name__}: "
                f"{redact_text(str(broken[0].failure))}"
            )
        if report.sources and all(s.failed for s in report.sources.values()) and not report.frames:
            raise _all_failed([s.errors[0] for s in report.sources.values()])
        return report

    def _open_file_sources(self) -> None:
        for source_cfg in self.cfg.sources:
            live = bool(source_cfg.live)
            queue = BoundedQueue(
                f"source:{source_cfg.id}",
                self.cfg.batcher.live_queue_size if live else self.cfg.batcher.file_queue_size,
                "drop_oldest" if live else "block",
                is_droppable=lambda item: isinstance(item, Frame),
                on_drop=self._count_stale,
                condition=self._group.condition,
            )
            slot = _SourceSlot(source_cfg, self._group.add(queue), self._given_sources.get(source_cfg.id))
            if not live and slot.source is None:
                try:
                    slot.source = open_source(source_cfg)
                except SourceError as exc:
                    slot.error = str(exc)
                    log.error("%s", exc)
            self._slots.append(slot)

    def _count_stale(self, item: Frame) -> None:
        FRAMES_DROPPED.labels(source=item.source_id, reason="stale").inc()
        self.stats.frame_dropped(item.source_id)

    def _start_stages(self, builder: EventBuilder, frame_sinks: list[FrameSink]) -> None:
        assert self.detector is not None
        ctx = GraphContext(
            self.cfg,
            self.detector,
            builder,
            self.event_sinks + self._event_taps,
            frame_sinks,
            self.stats,
            self.model_ready,  # set by the inference stage once the model is warm (or needs no warm-up)
        )
        active = [spec for spec in STAGE_GRAPH if spec.enabled(self.cfg)]
        try:
            stages = [spec.build(ctx) for spec in active]
        except MaskstreamError:  # e.g. a zone's class the model does not know: nothing has started yet
            for event_sink in self.event_sinks:
                event_sink.close(1.0)
            for frame_sink in frame_sinks:
                frame_sink.close()
            raise
        inbox: BoundedQueue | QueueGroup = self._group
        for stage, following in zip(stages, (*active[1:], None), strict=True):
            outbox = None
            if following is not None:
                assert following.inbox_size is not None, f"stage {following.name} needs an inbox size"
                outbox = BoundedQueue(following.name, following.inbox_size)
            self._stage_threads.append(StageThread(stage, inbox, outbox, on_busy=self.stats.stage_busy))
            if outbox is not None:
                inbox = outbox
        for thread in self._stage_threads:
            thread.start()

    def _source_main(self, slot: _SourceSlot) -> None:
        source_id = slot.cfg.id
        try:
            if slot.error is not None:
                self._put_status(slot, "error", slot.error)
                return
            if slot.source is None:
                if slot.stop_requested.is_set():
                    return
                try:
                    slot.source = open_source(slot.cfg, self.cfg.batcher.live_queue_size, self._count_stale)
                except SourceError as exc:
                    log.error("%s", exc)
                    self._put_status(slot, "error", str(exc))
                    return
                if slot.stop_requested.is_set():  # stop() raced with the opening
                    slot.source.stop()
            self.stats.update(source_id, state="running")
            for item in slot.source:
                if isinstance(item, Frame):
                    self.stats.frame_decoded(source_id)
                elif item.kind == "started" and item.info.get("frame_count"):
                    self.stats.update(source_id, expected_frames=int(item.info["frame_count"]))
                slot.queue.put(item)
        except QueueClosed:
            pass  # aborted
        except Exception as exc:  # a broken source must not take the others down
            message = f"source {source_id!r} failed: {type(exc).__name__}: {redact_text(str(exc))}"
            log.exception("%s", message)
            try:
                self._put_status(slot, "error", message)
                self._put_status(slot, "ended", "error")
            except QueueClosed:
                pass
        finally:
            if slot.source is not None:
                try:
                    slot.source.close()
                except Exception:
                    log.exception("source %s: close failed", source_id)
            slot.queue.close()

    def _put_status(self, slot: _SourceSlot, kind: str, reason: str) -> None:
        slot.queue.put(StreamStatus(source_id=slot.cfg.id, kind=kind, time=time.time(), reason=reason))  # type: ignore[arg-type]


def _all_failed(reasons: list[str]) -> MaskstreamError:
    if len(reasons) == 1:
        return MaskstreamError(reasons[0])
    return MaskstreamError(f"all {len(reasons)} sources failed; first: {reasons[0]}")
