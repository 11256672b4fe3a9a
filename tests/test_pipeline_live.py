"""Bounded latency on a live feed: a 30 fps RTSP camera into a pipeline that manages ~5 fps."""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

import pytest

from pipeline.config import build_config
from pipeline.config.sources import SourceConfig
from pipeline.items import Frame
from pipeline.metrics import FRAMES_DROPPED
from pipeline.queues import BoundedQueue
from pipeline.run_command import status_line
from pipeline.runner import Pipeline
from sources.open import open_source
from tests.pipeline_helpers import tiny_detector
from tests.rtsp_server import RtspServer, rtsp_server_available

pytestmark = [
    pytest.mark.rtsp,
    pytest.mark.timeout(120),
    pytest.mark.skipif(not rtsp_server_available(), reason="gst-rtsp-server is not installed (see .ci/run)"),
]

INFERENCE_S = 0.2  # per frame: the model manages 5 fps, the camera sends 30


class SlowDetector:
    """The tiny real model, paced to a fixed time per frame like a big model on a small machine."""

    def __init__(self) -> None:
        self.inner = tiny_detector(max_detections=3)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def detect(self, images: list) -> list:
        started = time.perf_counter()
        result = self.inner.detect(images)
        time.sleep(max(0.0, INFERENCE_S * len(images) - (time.perf_counter() - started)))
        return result


@pytest.mark.slow
def test_live_source_drops_oldest_frames_and_latency_stays_flat() -> None:
    with RtspServer(fps=30) as server:
        cfg = build_config(
            {
                "sources": [{"id": "cam", "url": server.url}],
                "model": {"device": "cpu"},
                "batcher": {"batch_size": 1, "max_wait_ms": 0, "live_queue_size": 3},
                "tracker": {"camera_motion": "off"},
            }
        )
        pipeline = Pipeline(cfg, detector=SlowDetector(), event_sinks=[])
        dropped_before = FRAMES_DROPPED.labels(source="cam", reason="stale")._value.get()
        reports: list[Any] = []
        runner = threading.Thread(target=lambda: reports.append(pipeline.run()))
        runner.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and pipeline.stats.sources["cam"].frames_done < 25:
            time.sleep(0.1)
        live_buffer = pipeline._slots[0].source._buffer  # the camera's hand-over queue: the pipeline's own kind
        assert (type(live_buffer), live_buffer.maxsize, live_buffer.policy) == (BoundedQueue, 3, "drop_oldest")
        pipeline.stop()
        runner.join(30)
        assert not runner.is_alive()
    (report,) = reports
    cam = report.sources["cam"]
    assert cam.frames_done >= 25 and not cam.failed
    assert cam.frames_dropped > cam.frames_done  # most camera frames had to go
    assert FRAMES_DROPPED.labels(source="cam", reason="stale")._value.get() - dropped_before == cam.frames_dropped
    assert f", dropped {cam.frames_dropped}," in status_line(pipeline.stats)  # the operator sees the drops
    latencies = list(cam.latencies)[5:]  # after warm-up
    # frames are picked when the model is free: latency is about one model call, not a backlog of batches
    assert statistics.median(latencies) < 2.5 * INFERENCE_S, latencies
    assert max(latencies) < 4 * INFERENCE_S + 0.5, latencies
    first, last = latencies[: len(latencies) // 2], latencies[len(latencies) // 2 :]
    assert sum(last) / len(last) < sum(first) / len(first) + 0.15, latencies


@pytest.mark.slow
def test_a_live_source_reports_every_frame_it_drops() -> None:
    dropped: list[Frame] = []
    with RtspServer(fps=30) as server:
        source = open_source(SourceConfig(id="slowreader", url=server.url), live_queue_size=4, on_drop=dropped.append)
        frames = []
        for item in source:
            if isinstance(item, Frame):
                frames.append(item)
                time.sleep(0.2)  # a consumer at 5 fps, the camera at 30
                if len(frames) == 8:
                    source.stop()
        source.close()
    assert len(dropped) > 20 and all(isinstance(frame, Frame) for frame in dropped)
    # every frame the camera sent between the first and the last one delivered was either delivered or reported
    delivered = [f.index for f in frames]
    assert delivered == sorted(delivered) and not set(delivered) & {f.index for f in dropped}
    assert set(range(delivered[0], delivered[-1])) <= set(delivered) | {f.index for f in dropped}
