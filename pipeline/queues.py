"""Bounded queues between stages, with the back-pressure policy of the data they carry.

- `block`: a full queue makes the producer wait. Files use it: every frame is processed, in order.
- `drop_oldest`: a full queue discards its oldest *frame* to make room. Live sources use it, so a slow model
  never lets latency pile up: the frames that wait are always the newest ones.

Control items (stream status, end-of-stream markers) are never dropped and never wait for room: they are rare and
tiny, and losing one would break the ordering guarantees downstream (`stream.ended` after the last track event).

Several queues may share one `threading.Condition` (see `QueueGroup`), so one consumer (the batcher) can wait for
"anything arrived in any of my inputs" without polling.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Literal

from pipeline.metrics import QUEUE_DEPTH

QueuePolicy = Literal["block", "drop_oldest"]


class QueueClosed(Exception):
    """Raised by `put` on a closed queue, and by `get` on a closed queue that has been drained."""


class Empty(Exception):
    """Raised by `get` when nothing arrived within the timeout."""


class BoundedQueue:
    """A bounded FIFO between one or more producers and one consumer.

    `is_droppable(item)` says which items the drop-oldest policy may discard (frames); `on_drop(item)` is called for
    each discarded item (to count it). Everything else is a control item: always accepted, never dropped.
    """

    def __init__(
        self,
        name: str,
        maxsize: int,
        policy: QueuePolicy = "block",
        *,
        is_droppable: Callable[[Any], bool] = lambda item: True,
        on_drop: Callable[[Any], None] | None = None,
        condition: threading.Condition | None = None,
    ) -> None:
        if maxsize < 1:
            raise ValueError(f"queue {name}: maxsize must be >= 1 (got {maxsize})")
        self.name = name
        self.maxsize = maxsize
        self.policy = policy
        self._is_droppable = is_droppable
        self._on_drop = on_drop
        self._items: deque[Any] = deque()
        self._data_items = 0  # droppable items currently queued: only these count against maxsize
        self._closed = False
        self._consumers_waiting = 0
        self._cond = condition or threading.Condition()
        self._gauge = QUEUE_DEPTH.labels(queue=name)
        self.dropped = 0

    # --- producer side ---------------------------------------------------------------------------------------
    def put(self, item: Any, timeout: float | None = None) -> bool:
        """Queue `item`. Returns False only when a blocking put timed out. Raises QueueClosed when closed."""
        droppable = self._is_droppable(item)
        dropped: list[Any] = []
        with self._cond:
            if self._closed:
                raise QueueClosed(self.name)
            if droppable and self._data_items >= self.maxsize:
                if self.policy == "drop_oldest":
                    dropped.append(self._drop_oldest_locked())
                else:
                    deadline = None if timeout is None else time.monotonic() + timeout
                    while self._data_items >= self.maxsize and not self._closed:
                        remaining = None if deadline is None else deadline - time.monotonic()
                        if remaining is not None and remaining <= 0:
                            return False
                        self._cond.wait(remaining)
                    if self._closed:
                        raise QueueClosed(self.name)
            self._items.append(item)
            self._data_items += droppable
            self._gauge.set(len(self._items))
            self._cond.notify_all()
        for item_dropped in dropped:  # outside the lock: the callback may log or touch metrics
            if self._on_drop is not None:
                self._on_drop(item_dropped)
        return True

    def _drop_oldest_locked(self) -> Any:
        for position, queued in enumerate(self._items):
            if self._is_droppable(queued):
                del self._items[position]
                self._data_items -= 1
                self.dropped += 1
                return queued
        raise AssertionError("a full queue holds no droppable item")  # _data_items >= maxsize >= 1

    def wait_for_room(self, timeout: float | None = None) -> bool:
        """Block until a droppable item would fit without waiting (or the queue closes). False on timeout."""
        return self._wait_until(lambda: self._data_items < self.maxsize, timeout)

    def wait_for_idle_consumer(self, timeout: float | None = None) -> bool:
        """Block until the queue is empty AND its consumer is waiting for an item (or the queue closes)."""
        return self._wait_until(lambda: not self._items and self._consumers_waiting > 0, timeout)

    def _wait_until(self, condition: Callable[[], bool], timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not condition() and not self._closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    # --- consumer side ---------------------------------------------------------------------------------------
    def get(self, timeout: float | None = None) -> Any:
        """Oldest item; waits up to `timeout` (None = forever). Raises Empty, or QueueClosed once closed and drained."""
        with self._cond:
            deadline = None if timeout is None else time.monotonic() + timeout
            while not self._items:
                if self._closed:
                    raise QueueClosed(self.name)
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise Empty(self.name)
                self._consumers_waiting += 1
                self._cond.notify_all()  # a producer may be waiting for an idle consumer
                try:
                    self._cond.wait(remaining)
                finally:
                    self._consumers_waiting -= 1
            return self._pop_locked()

    def get_nowait(self) -> Any:
        with self._cond:
            if not self._items:
                if self._closed:
                    raise QueueClosed(self.name)
                raise Empty(self.name)
            return self._pop_locked()

    def _pop_locked(self) -> Any:
        item = self._items.popleft()
        self._data_items -= self._is_droppable(item)
        self._gauge.set(len(self._items))
        self._cond.notify_all()  # wake producers waiting for room
        return item

    # --- lifecycle -------------------------------------------------------------------------------------------
    def close(self) -> None:
        """No more puts; the consumer drains what is queued, then gets QueueClosed. Wakes every waiter."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def drain(self) -> list[Any]:
        """Remove and return everything queued (used when aborting)."""
        with self._cond:
            items = list(self._items)
            self._items.clear()
            self._data_items = 0
            self._gauge.set(0)
            self._cond.notify_all()
            return items


class QueueGroup:
    """Queues that share one condition, so a single consumer can wait on all of them at once."""

    def __init__(self) -> None:
        self.condition = threading.Condition()
        self.queues: list[BoundedQueue] = []
        self._cursor = 0

    def add(self, queue: BoundedQueue) -> BoundedQueue:
        if queue._cond is not self.condition:
            raise ValueError(f"queue {queue.name} was not created with this group's condition")
        self.queues.append(queue)
        return queue

    def get(self, timeout: float | None = None) -> Any:
        """Next item from any queue, round-robin (fair to every source). Raises Empty on timeout, QueueClosed once
        every queue is closed and drained."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.condition:
            while True:
                count = len(self.queues)
                for step in range(count):
                    queue = self.queues[(self._cursor + step) % count]
                    if queue._items:
                        self._cursor = (self._cursor + step + 1) % count
                        return queue._pop_locked()
                if all(q._closed for q in self.queues):
                    raise QueueClosed("all inputs")
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise Empty("all inputs")
                self.condition.wait(remaining)

    def close(self) -> None:
        for queue in self.queues:
            queue.close()
