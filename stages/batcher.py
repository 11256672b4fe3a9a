"""Batcher: frames of every source → model batches on the model's device.

A batch leaves when it holds `batch_size` frames or when its first frame has waited `max_wait_ms`, whichever comes
first (so a lone live camera is never held back waiting for company). Frames of different sources and sizes mix
freely: a batch is a list of CHW tensors, and the model's transform resizes each one.

The copy to the device happens here, in the batcher's thread, so it overlaps the previous batch's inference:
uint8 frames (4x smaller than float) go to the device — from pinned memory with non-blocking copies on CUDA; on
the CPU the batch's tensors are the decoded frames themselves, no copy. They stay uint8 CHW views: the detector
converts to float in [0, 1] on its device (`Detector.detect`) only if its model needs floats, so a stand-in
model that needs no pixels pays nothing per frame. The model's own transform then normalises with its mean/std.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import torch

from pipeline.items import Batch, Frame, StreamStatus
from pipeline.stage import Stage


def frames_to_device(frames: list[Frame], device: torch.device, pin_memory: bool = True) -> list[torch.Tensor]:
    """uint8 HWC numpy frames → uint8 CHW tensors on `device` (views of the frames on the CPU: no copy)."""
    cuda = device.type == "cuda"
    images = []
    for frame in frames:
        host = torch.from_numpy(frame.image)
        if cuda and pin_memory:
            host = host.pin_memory()  # page-locked: the copy below is asynchronous and faster
        on_device = host.to(device, non_blocking=cuda)
        images.append(on_device.permute(2, 0, 1))
    return images


class BatcherStage(Stage):
    """Groups frames (from a `QueueGroup` of per-source queues) into `Batch`es; keeps status in order."""

    name = "batcher"

    def __init__(
        self,
        batch_size: int,
        max_wait_ms: float,
        device: torch.device | str,
        pin_memory: bool = True,
        low_latency: bool = False,
    ) -> None:
        # live sources: pick frames only when the model is free (freshest frames, lowest latency); files only:
        # keep one batch ready in front of the model (throughput)
        self.pull_policy = "idle" if low_latency else "room"
        self.batch_size = batch_size
        self.max_wait_s = max_wait_ms / 1000.0
        self.device = torch.device(device)
        self.pin_memory = pin_memory and self.device.type == "cuda" and torch.cuda.is_available()
        self._pending: list[Frame] = []
        self._first_at = 0.0  # monotonic time the oldest pending frame arrived

    def process(self, item: Frame) -> Iterable[Batch]:
        if not self._pending:
            self._first_at = time.monotonic()
        self._pending.append(item)
        if len(self._pending) >= self.batch_size or self.max_wait_s == 0:
            return self._flush()
        return []

    def on_status(self, status: StreamStatus) -> Iterable[Batch | StreamStatus]:
        # The status must follow every frame its source delivered before it: send pending frames first.
        return [*self._flush(), status]

    def on_control(self, item: object) -> Iterable[object]:
        return [*self._flush(), item]

    def finish(self) -> Iterable[Batch]:
        return self._flush()

    def wait_timeout(self) -> float | None:
        if not self._pending:
            return None
        return max(0.0, self._first_at + self.max_wait_s - time.monotonic())

    def on_idle(self) -> Iterable[Batch]:
        if self._pending and time.monotonic() - self._first_at >= self.max_wait_s:
            return self._flush()
        return []

    def _flush(self) -> list[Batch]:
        if not self._pending:
            return []
        frames, self._pending = self._pending, []
        return [Batch(frames, frames_to_device(frames, self.device, self.pin_memory), time.monotonic())]
