"""Per-stage busy time: counted while a stage works, not while its thread waits on a queue."""

from __future__ import annotations

import time

import numpy as np

from pipeline.items import EndOfStream, Frame
from pipeline.queues import BoundedQueue
from pipeline.run_command import stage_busy_text
from pipeline.stage import Stage, StageThread
from pipeline.stats import RunStats


class Sleeper(Stage):
    name = "sleeper"

    def process(self, item: Frame) -> list[Frame]:
        time.sleep(0.05)
        return [item]


class Spinner(Stage):
    name = "spinner"

    def process(self, item: Frame) -> list[Frame]:
        deadline = time.thread_time() + 0.03
        while time.thread_time() < deadline:  # CPU work
            pass
        return [item]


def test_busy_time_counts_work_not_waiting_and_reaches_the_run_stats() -> None:
    stats = RunStats()
    inbox, middle, outbox = BoundedQueue("in", 10), BoundedQueue("mid", 10), BoundedQueue("out", 10)
    sleeper = StageThread(Sleeper(), inbox, middle, on_busy=stats.stage_busy)
    spinner = StageThread(Spinner(), middle, outbox, on_busy=stats.stage_busy)
    sleeper.start()
    spinner.start()
    time.sleep(0.3)  # idle: waiting on an empty queue is not busy time
    for index in range(4):
        inbox.put(Frame("cam", index, None, 0.0, np.zeros((2, 2, 3), np.uint8)))
    inbox.put(EndOfStream())
    sleeper.join(5)
    spinner.join(5)
    assert 0.2 <= sleeper.busy_s < 0.45  # 4 x 50 ms asleep, not the 300 ms of waiting before
    assert sleeper.cpu_s < 0.05  # sleeping uses no CPU
    assert spinner.cpu_s >= 0.11 and spinner.busy_s >= spinner.cpu_s
    busy = stats.stage_busy_seconds()
    assert list(busy) == ["sleeper", "spinner"] and busy["sleeper"] == sleeper.busy_s
    assert stats.stage_cpu_seconds()["spinner"] == spinner.cpu_s
    assert stage_busy_text(stats).startswith(" | busy: sleeper ")
