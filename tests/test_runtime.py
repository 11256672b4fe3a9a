"""Queues (block / drop-oldest), fair merging of sources, the stage thread and its error handling, /healthz."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from pipeline.http import HealthServer
from pipeline.items import EndOfStream, Frame, StreamStatus
from pipeline.queues import BoundedQueue, Empty, QueueClosed, QueueGroup
from pipeline.stage import Stage, StageThread


def frame(source: str, index: int) -> Frame:
    return Frame(source, index, None, time.time(), np.zeros((2, 2, 3), np.uint8))


def is_frame(item: object) -> bool:
    return isinstance(item, Frame)


def test_block_policy_makes_the_producer_wait_and_loses_nothing() -> None:
    queue = BoundedQueue("t-block", 2, "block", is_droppable=is_frame)
    queue.put(frame("a", 0))
    queue.put(frame("a", 1))
    assert queue.put(frame("a", 2), timeout=0.05) is False  # full: the producer waits
    got: list[int] = []
    consumer = threading.Thread(target=lambda: got.extend(queue.get(1).index for _ in range(5)))
    consumer.start()
    for index in (2, 3, 4):
        assert queue.put(frame("a", index), timeout=2)
    consumer.join(5)
    assert got == [0, 1, 2, 3, 4]


def test_drop_oldest_keeps_the_newest_frames_and_every_status() -> None:
    dropped: list[int] = []
    queue = BoundedQueue("t-live", 3, "drop_oldest", is_droppable=is_frame, on_drop=lambda f: dropped.append(f.index))
    started = StreamStatus("cam", "started", time.time())
    queue.put(started)
    for index in range(10):
        queue.put(frame("cam", index))  # never blocks
        assert sum(isinstance(i, Frame) for i in queue._items) <= 3  # bounded, whatever the producer does
    ended = StreamStatus("cam", "ended", time.time())
    queue.put(ended)
    items = [queue.get_nowait() for _ in range(len(queue))]
    assert items[0] is started and items[-1] is ended
    assert [i.index for i in items[1:-1]] == [7, 8, 9]
    assert dropped == list(range(7)) and queue.dropped == 7


def test_closed_queue_drains_then_reports_closed_and_refuses_puts() -> None:
    queue = BoundedQueue("t-close", 2)
    queue.put("x")
    queue.close()
    with pytest.raises(QueueClosed):
        queue.put("y")
    assert queue.get(0) == "x"
    with pytest.raises(QueueClosed):
        queue.get(0)


def test_a_closed_queue_wakes_a_blocked_producer() -> None:
    queue = BoundedQueue("t-wake", 1)
    queue.put("x")
    errors: list[BaseException] = []

    def produce() -> None:
        try:
            queue.put("y")
        except QueueClosed as exc:
            errors.append(exc)

    producer = threading.Thread(target=produce)
    producer.start()
    time.sleep(0.05)
    queue.close()
    producer.join(2)
    assert not producer.is_alive() and len(errors) == 1


def test_queue_group_is_fair_across_sources_and_ends_when_all_close() -> None:
    group = QueueGroup()
    a = group.add(BoundedQueue("t-a", 10, condition=group.condition))
    b = group.add(BoundedQueue("t-b", 10, condition=group.condition))
    for index in range(3):
        a.put(("a", index))
        b.put(("b", index))
    order = [group.get(0) for _ in range(6)]
    assert order == [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 2)]
    with pytest.raises(Empty):
        group.get(0.01)
    a.close()
    b.close()
    with pytest.raises(QueueClosed):
        group.get(0.01)


class Doubler(Stage):
    name = "doubler"

    def __init__(self) -> None:
        self.finished = False

    def process(self, item: Frame) -> list[Frame]:
        if item.index == 3:
            raise ValueError("boom")
        return [item, item]

    def finish(self) -> list[str]:
        self.finished = True
        return ["flushed"]


def test_stage_thread_turns_an_error_into_a_status_with_context_and_keeps_going() -> None:
    inbox, outbox = BoundedQueue("t-in", 10), BoundedQueue("t-out", 100)
    stage = Doubler()
    thread = StageThread(stage, inbox, outbox)
    thread.start()
    for index in range(5):
        inbox.put(frame("cam7", index))
    inbox.put(EndOfStream())
    thread.join(5)
    out = [outbox.get_nowait() for _ in range(len(outbox))]
    frames = [o.index for o in out if isinstance(o, Frame)]
    assert frames == [0, 0, 1, 1, 2, 2, 4, 4]
    (error,) = [o for o in out if isinstance(o, StreamStatus)]
    assert error.kind == "error" and error.source_id == "cam7"
    assert "stage doubler failed on cam7 frame 3: ValueError: boom" in error.reason
    assert out[-2:] == ["flushed", EndOfStream()] and stage.finished and thread.errors == 1


class Health:
    def __init__(self) -> None:
        self.ok, self.is_ready = True, (False, "model not loaded")

    def healthy(self) -> bool:
        return self.ok

    def ready(self) -> tuple[bool, str]:
        return self.is_ready


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_metrics_healthz_and_readyz_endpoints() -> None:
    target = Health()
    server = HealthServer(target, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        status, body = fetch(base + "/metrics")
        assert status == 200 and "maskstream_frames_processed_total" in body
        assert fetch(base + "/healthz")[0] == 200
        assert fetch(base + "/readyz") == (503, "model not loaded\n")
        target.is_ready = (True, "ready")
        assert fetch(base + "/readyz")[0] == 200
        target.ok = False
        assert fetch(base + "/healthz")[0] == 503
        assert fetch(base + "/nope")[0] == 404
    finally:
        server.stop()


def test_status_line_shows_fps_drops_latency_and_events_per_source() -> None:
    from pipeline.run_command import status_line
    from pipeline.stats import RunStats

    stats = RunStats()
    stats.add_source("gate", live=True)
    stats.update("gate", state="running")
    for _ in range(3):
        stats.frame_dropped("gate")
    for latency in (0.2, 0.3, 0.4):
        stats.frame_done("gate", latency)
        time.sleep(0.01)
    stats.events_published("gate", [{"type": "track.started"}, {"type": "track.updated"}])
    line = status_line(stats)
    assert "gate running" in line and "fps" in line and "dropped 3" in line and "2 events" in line
    assert "latency p50 0.30 s p99 0.40 s" in line


def test_wait_for_room_and_for_an_idle_consumer() -> None:
    queue = BoundedQueue("t-idle", 1)
    assert queue.wait_for_room(0) and not queue.wait_for_idle_consumer(0.01)  # nobody is waiting to consume
    queue.put("x")
    assert not queue.wait_for_room(0.01)
    got: list[str] = []

    def consume() -> None:
        got.append(queue.get(2))
        got.append(queue.get(2))

    consumer = threading.Thread(target=consume)
    consumer.start()
    assert queue.wait_for_idle_consumer(2)  # took "x" and now waits for more
    assert got == ["x"]
    queue.put("y")
    consumer.join(2)
    assert got == ["x", "y"]
