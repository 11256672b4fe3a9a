"""Batcher: size and time limits, status ordering, device tensors."""

from __future__ import annotations

import time

import numpy as np
import torch

from pipeline.items import Batch, Frame, StreamStatus
from stages.batcher import BatcherStage, frames_to_device
from stages.inference import to_unit_float


def frame(source: str, index: int, size: tuple[int, int] = (18, 32)) -> Frame:
    image = np.full((*size, 3), index % 256, np.uint8)
    return Frame(source, index, index / 10, time.time(), image)


def test_batch_leaves_when_full_with_frames_of_several_sources_and_sizes() -> None:
    batcher = BatcherStage(batch_size=3, max_wait_ms=1000, device="cpu")
    assert list(batcher.process(frame("a", 0))) == []
    assert list(batcher.process(frame("b", 0, (20, 40)))) == []
    (batch,) = batcher.process(frame("a", 1))
    assert isinstance(batch, Batch)
    assert [(f.source_id, f.index) for f in batch.frames] == [("a", 0), ("b", 0), ("a", 1)]
    assert [tuple(img.shape) for img in batch.images] == [(3, 18, 32), (3, 20, 40), (3, 18, 32)]


def test_partial_batch_leaves_after_max_wait() -> None:
    batcher = BatcherStage(batch_size=8, max_wait_ms=30, device="cpu")
    batcher.process(frame("a", 0))
    assert 0 < batcher.wait_timeout() <= 0.03
    assert list(batcher.on_idle()) == []  # not yet
    time.sleep(0.035)
    assert batcher.wait_timeout() == 0
    (batch,) = batcher.on_idle()
    assert len(batch.frames) == 1
    assert batcher.wait_timeout() is None  # nothing pending: wait forever


def test_status_flushes_pending_frames_first() -> None:
    batcher = BatcherStage(batch_size=8, max_wait_ms=1000, device="cpu")
    batcher.process(frame("a", 0))
    status = StreamStatus("a", "ended", time.time())
    out = list(batcher.on_status(status))
    assert isinstance(out[0], Batch) and out[1] is status
    assert list(batcher.finish()) == []


def test_frames_go_to_the_device_as_uint8_chw_and_the_detector_makes_unit_floats() -> None:
    f = Frame("a", 0, 0.0, 0.0, np.array([[[0, 128, 255]]], np.uint8))
    (image,) = frames_to_device([f], torch.device("cpu"))
    assert image.dtype == torch.uint8 and image.shape == (3, 1, 1)
    assert image.data_ptr() == f.image.ctypes.data  # on the CPU the batch holds the decoded frame itself
    unit = to_unit_float(image)
    assert unit.dtype == torch.float32
    torch.testing.assert_close(unit.flatten(), torch.tensor([0.0, 128 / 255, 1.0]))
    assert to_unit_float(unit) is unit
