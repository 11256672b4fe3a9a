"""The stage contract: what every step of the pipeline implements, and the thread that drives one.

A stage knows nothing of its neighbours (as a GStreamer element knows only its pads). It receives items in
order on ONE channel — data (frames, batches, results) interleaved with control items (`StreamStatus`,
`TracksEnded`, `EndOfStream`) — and returns what goes downstream. Keeping status on the same channel as data is
what keeps a source's `stream.started` before its first track event and `stream.ended` after its last one.

Each thread counts the seconds its stage spends working on items (`busy_s`; not the waits on its queues), so
the bottleneck stage is the one busy nearly all the time: in the status line and as
`maskstream_stage_busy_seconds_total{stage}`.

Errors never kill the pipeline: an exception while processing an item is logged with its context (stage, source
id, frame index) and becomes a `StreamStatus(kind="error")` for each source the item carried, so the affected
stream reports it and every other stream keeps going.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import Any

from pipeline.items import EndOfStream, Frame, FrameResult, StreamStatus, TracksEnded
from pipeline.metrics import STAGE_BUSY_SECONDS
from pipeline.queues import BoundedQueue, Empty, QueueClosed, QueueGroup
from pipeline.redact import redact_text

log = logging.getLogger(__name__)


class StageError(Exception):
    """A stage failed on an item; the message carries the context an operator needs to find it."""

    def __init__(self, stage: str, context: list[tuple[str, int | None]], cause: BaseException) -> None:
        where = ", ".join(f"{sid} frame {idx}" if idx is not None else sid for sid, idx in context) or "no source"
        super().__init__(f"stage {stage} failed on {where}: {type(cause).__name__}: {redact_text(str(cause))}")
        self.stage = stage


class Stage(ABC):
    """One step of the pipeline. Runs in its own thread; sees items one at a time, in order.

    Override `process` (data items). The defaults pass control items through unchanged and flush nothing.
    """

    name: str = "stage"
    # When to take the next input: None = as soon as it arrives; "room" = once the output queue has room; "idle" =
    # once the next stage has nothing queued and waits. For the batcher, "idle" means frames are picked only when
    # the model is free, so live frames wait in their drop-oldest source queues (staying the newest) instead of
    # ageing in a batch queued in front of a busy model; "room" keeps one batch ready for throughput on files.
    pull_policy: str | None = None

    def start(self) -> None:  # noqa: B027 - optional hook
        """Called once in the stage's thread before the first item (e.g. to warm up a model)."""

    @abstractmethod
    def process(self, item: Any) -> Iterable[Any]:
        """Handle one data item; return the items to send downstream (possibly none)."""

    def on_status(self, status: StreamStatus) -> Iterable[Any]:
        """A source's status change. Stages that hold back data (the batcher) flush it first."""
        return [status]

    def on_control(self, item: Any) -> Iterable[Any]:
        """Any other control item (e.g. `TracksEnded`)."""
        return [item]

    def finish(self) -> Iterable[Any]:
        """End of all streams: return whatever is still held back."""
        return []

    def wait_timeout(self) -> float | None:
        """How long the thread may wait for the next item before calling `on_idle` (None = forever)."""
        return None

    def on_idle(self) -> Iterable[Any]:
        """Nothing arrived within `wait_timeout()` (e.g. the batcher sends a partial batch)."""
        return []

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources; called once in the stage's thread, after `finish` or after an abort."""


def item_context(item: Any) -> list[tuple[str, int | None]]:
    """(source id, frame index) of every frame an item carries, for error messages."""
    if isinstance(item, Frame):
        return [(item.source_id, item.index)]
    if isinstance(item, FrameResult):
        return [(item.frame.source_id, item.frame.index)]
    if isinstance(item, StreamStatus):
        return [(item.source_id, item.frame_index)]
    frames = getattr(item, "frames", None)
    if frames is not None:
        return [(f.source_id, f.index) for f in frames]
    return []


def is_control(item: Any) -> bool:
    return isinstance(item, StreamStatus | TracksEnded | EndOfStream)


class StageThread(threading.Thread):
    """Drives one stage: input queue → stage → output queue, until `EndOfStream` or the input closes."""

    def __init__(
        self,
        stage: Stage,
        inbox: BoundedQueue | QueueGroup,
        outbox: BoundedQueue | None,
        on_busy: Callable[[str, float, float], None] | None = None,
    ) -> None:
        super().__init__(name=f"stage-{stage.name}", daemon=True)
        self.stage = stage
        self.inbox = inbox
        self.outbox = outbox
        self.errors = 0
        self.failure: BaseException | None = None  # set when the stage itself broke (start/finish raised)
        self.busy_s = 0.0  # seconds spent in the stage's own code
        self.cpu_s = 0.0  # CPU seconds of this thread in it (less than busy_s when the machine is loaded)
        self._on_busy = on_busy
        self._busy_metric = STAGE_BUSY_SECONDS.labels(stage=stage.name)

    def run(self) -> None:
        try:
            self.stage.start()
            while True:
                if self.outbox is not None and self.stage.pull_policy == "room":
                    self.outbox.wait_for_room()
                elif self.outbox is not None and self.stage.pull_policy == "idle":
                    self.outbox.wait_for_idle_consumer()
                try:
                    item = self.inbox.get(self.stage.wait_timeout())
                except Empty:
                    self._emit(self._timed(self.stage.on_idle))
                    continue
                except QueueClosed:  # every producer is done: same as an explicit end of stream
                    item = EndOfStream()
                if isinstance(item, EndOfStream):
                    self._emit(self._timed(self.stage.finish))
                    self._emit([item])
                    break
                self._handle(item)
        except QueueClosed:
            pass  # the runner aborted: downstream is gone
        except BaseException as exc:  # a broken stage must not hang the pipeline: report it and end
            self.failure = exc
            log.exception("stage %s stopped: %s", self.stage.name, exc)
        finally:
            try:
                self.stage.close()
            except Exception:
                log.exception("stage %s: close failed", self.stage.name)
            if self.outbox is not None and self.failure is not None:
                self.outbox.close()

    def _handle(self, item: Any) -> None:
        try:
            if isinstance(item, StreamStatus):
                outputs = self._timed(self.stage.on_status, item)
            elif is_control(item):
                outputs = self._timed(self.stage.on_control, item)
            else:
                outputs = self._timed(self.stage.process, item)
            self._emit(outputs)
        except QueueClosed:
            raise
        except Exception as exc:
            self.errors += 1
            error = StageError(self.stage.name, item_context(item), exc)
            log.error("%s", error, exc_info=log.isEnabledFor(logging.DEBUG))
            sources = dict.fromkeys(sid for sid, _ in item_context(item))
            self._emit(
                [StreamStatus(source_id=sid, kind="error", time=time.time(), reason=str(error)) for sid in sources]
            )
            if isinstance(item, StreamStatus):  # a status must still reach the end (stream.ended ordering)
                self._emit([item])

    def _timed(self, method: Callable[..., Iterable[Any]], *args: Any) -> list[Any]:
        """Call a stage method and count its time (a generator's too: it is run here, not while emitting)."""
        started, cpu_started = time.perf_counter(), time.thread_time()
        try:
            return list(method(*args))
        finally:
            spent, cpu = time.perf_counter() - started, time.thread_time() - cpu_started
            self.busy_s += spent
            self.cpu_s += cpu
            self._busy_metric.inc(spent)
            if self._on_busy is not None:
                self._on_busy(self.stage.name, spent, cpu)

    def _emit(self, outputs: Iterable[Any]) -> None:
        if self.outbox is None:
            for _ in outputs:  # consume generators of a sink stage
                pass
            return
        for out in outputs:
            self.outbox.put(out)
