"""`run --ray` on a local multi-node Ray cluster (real Ray, real redis-server): failures cost no event, no duplicate.

Every test checks the events in Redis against a single-process run of the same sources: the same ids in the same
order per source, the same payloads but for wall-clock readings, and no id twice.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import PipelineConfig, build_config
from tests.cluster_helpers import (  # before Ray: it sets up token auth
    FACTORY,
    PACE_ENV,
    TINY_FACTORY,
    LocalRayCluster,
    local_ray_cluster,
    single_process_events,
    stream_events,
    without_wall_clock,
)
from tests.pipeline_helpers import write_clip
from tests.rtsp_server import RtspServer, rtsp_server_available
from tests.servers import RedisServer

pytest.importorskip("ray")
pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

FRAMES = 48


@pytest.fixture
def clips(tmp_path: Path) -> list[Path]:
    return [write_clip(tmp_path / f"clip{i}.mp4", frames=FRAMES, seed=i) for i in range(8)]


@pytest.fixture(autouse=True)
def paced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PACE_ENV, "0.04")  # ~2 s of model time per clip; the workers inherit it


def job_config(redis_url: str, clips: list[Path], **cluster: Any) -> PipelineConfig:
    return build_config(
        {
            "sources": [{"id": path.stem, "url": str(path)} for path in clips],
            "model": {"device": "cpu"},
            "batcher": {"batch_size": 1, "max_wait_ms": 0},
            "tracker": {"camera_motion": "off"},
            "redis": {"url": redis_url, "initial_backoff_s": 0.05, "max_backoff_s": 0.5},
            "log": {"progress": False},
            "cluster": {"poll_interval_s": 0.25, "worker_timeout_s": 3.0, "worker_capacity": 2.0, **cluster},
        }
    )


class RunningJob:
    """The controller in a thread of the test process, with the worker actors on the local cluster's nodes."""

    def __init__(self, cfg: PipelineConfig, job_id: str, factory: str = FACTORY) -> None:
        from cluster.controller import Controller

        self.controller = Controller(cfg, job_id, detector_factory=factory)
        self.report: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.report = self.controller.run()
        except BaseException as exc:
            self.error = exc

    def wait_for(self, condition: Callable[[], bool], timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.error is None, self.error
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.1)

    def busy_worker(self) -> dict[str, Any]:
        """A worker's last report while it has a source with frames done (the one to break)."""
        for view in list(self.controller.workers.values()):
            sources = view.report.get("sources", {})
            if any(s["state"] == "running" and s.get("frames", 0) > 3 for s in sources.values()):
                return view.report
        return {}

    def finish(self, timeout: float = 150.0) -> Any:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the job did not finish"
        assert self.error is None, self.error
        self.controller.shutdown()
        return self.report


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[LocalRayCluster]:
    """One local cluster for the module (starting Ray costs 10-20 s here); each test gets 3 worker nodes."""
    from cluster.driver import connect

    with local_ray_cluster(3) as cluster:
        connect(cluster.address, "maskstream-test")
        yield cluster


@pytest.fixture
def three_nodes(ray_cluster: LocalRayCluster) -> Iterator[LocalRayCluster]:
    while len(ray_cluster.nodes) < 3:  # a previous test removed one
        ray_cluster.nodes.append(ray_cluster.add_node())
    yield ray_cluster


def assert_same_as_single_process(server: RedisServer, cfg: PipelineConfig, tmp: Path, factory: str = FACTORY) -> None:
    reference = single_process_events(cfg, tmp, factory)
    client = server.client()
    for source in cfg.sources:
        got = [event for _, event, _ in stream_events(client, source.id)]
        ids = [event["event_id"] for event in got]
        assert len(ids) == len(set(ids)), f"{source.id}: duplicate ids in Redis"
        want = reference[source.id]
        assert ids == [e["event_id"] for e in want], f"{source.id}: events lost or reordered"
        assert [without_wall_clock(e) for e in got] == [without_wall_clock(e) for e in want]


def test_footage_job_with_a_worker_node_removed_mid_run(
    clips: list[Path], tmp_path: Path, redis_server: RedisServer, three_nodes, caplog: pytest.LogCaptureFixture
) -> None:
    missing = str(tmp_path / "missing.mp4")
    cfg = job_config(redis_server.url, clips)
    with_missing = cfg.model_copy(
        update={"sources": [*cfg.sources, *build_config({"sources": [{"id": "missing", "url": missing}]}).sources]}
    )
    caplog.set_level(logging.WARNING, logger="maskstream.cluster")
    job = RunningJob(with_missing, "node-removed")
    job.wait_for(lambda: bool(job.busy_worker()))
    three_nodes.remove_node(job.busy_worker()["node"])
    report = job.finish()
    assert sorted(report.done) == sorted(path.stem for path in clips)
    assert list(report.failed) == ["missing"] and "missing.mp4" in report.failed["missing"]
    assert job.controller.states["missing"].attempts == 3  # its retry budget, then it stopped
    assert any(r.reason == "restart" for r in report.reassignments)  # the lost node's files ran again
    assert any("waits: no worker has room" in r.message for r in caplog.records)  # 9 sources > 3 x 2 slots
    assert_same_as_single_process(redis_server, cfg, tmp_path)


def test_footage_job_with_a_worker_process_killed(
    clips: list[Path], tmp_path: Path, redis_server: RedisServer, three_nodes
) -> None:
    cfg = job_config(redis_server.url, clips[:5])
    job = RunningJob(cfg, "process-killed")
    job.wait_for(lambda: bool(job.busy_worker()))
    os.kill(job.busy_worker()["pid"], signal.SIGKILL)
    report = job.finish()
    assert sorted(report.done) == sorted(path.stem for path in clips[:5]) and not report.failed
    assert report.reassignments
    assert_same_as_single_process(redis_server, cfg, tmp_path)


def test_a_real_mask_rcnn_footage_job_with_a_worker_killed_equals_a_single_process_run(
    clips: list[Path], tmp_path: Path, redis_server: RedisServer, three_nodes
) -> None:
    """A real (tiny) Mask R-CNN in fp32 on the CPU: masks, scores and boxes must come out identical too."""
    plain = job_config(redis_server.url, clips[:3])
    # the tiny model's random weights score about 0.33: let the tracker take such detections
    tracker = plain.tracker.model_copy(update={"high_score": 0.3, "low_score": 0.1, "new_track_score": 0.3})
    cfg = plain.model_copy(update={"tracker": tracker})
    job = RunningJob(cfg, "tiny-maskrcnn", TINY_FACTORY)
    job.wait_for(lambda: bool(job.busy_worker()))
    os.kill(job.busy_worker()["pid"], signal.SIGKILL)
    report = job.finish()
    assert sorted(report.done) == sorted(path.stem for path in clips[:3]) and report.reassignments
    reference = single_process_events(cfg, tmp_path, TINY_FACTORY)
    assert any(e["type"] == "track.started" and e["mask"] for events in reference.values() for e in events)
    assert_same_as_single_process(redis_server, cfg, tmp_path, TINY_FACTORY)


def test_a_paused_worker_resumed_after_its_files_moved_writes_nothing(
    clips: list[Path], tmp_path: Path, redis_server: RedisServer, three_nodes
) -> None:
    cfg = job_config(redis_server.url, clips[:5])
    job = RunningJob(cfg, "paused")
    job.wait_for(lambda: bool(job.busy_worker()))
    victim = job.busy_worker()
    owned = {s: info["epoch"] for s, info in victim["sources"].items() if info["state"] == "running"}
    os.kill(victim["pid"], signal.SIGSTOP)
    try:
        client = redis_server.client()
        # its files restart elsewhere under a new epoch, and the new owners publish
        job.wait_for(lambda: all(any(ep > owned[s] for *_, ep in stream_events(client, s)) for s in owned), 60)
    finally:
        os.kill(victim["pid"], signal.SIGCONT)
    report = job.finish()
    assert sorted(report.done) == sorted(path.stem for path in clips[:5]) and not report.failed
    for source_id, old_epoch in owned.items():
        epochs = [epoch for *_, epoch in stream_events(client, source_id)]
        takeover = next(i for i, epoch in enumerate(epochs) if epoch > old_epoch)
        assert old_epoch not in epochs[takeover:], f"{source_id}: the paused owner wrote after the take-over"
    assert_same_as_single_process(redis_server, cfg, tmp_path)


def test_workers_keep_running_while_the_controller_is_killed_and_restarted(
    clips: list[Path], tmp_path: Path, redis_server: RedisServer, three_nodes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PACE_ENV, "0.08")  # slower, so the workers are still busy once the controller is dead
    cfg = job_config(redis_server.url, clips[:6])
    config_file = tmp_path / "job.json"
    config_file.write_text(cfg.model_dump_json())
    command = [sys.executable, "-m", "tests.cluster_job", three_nodes.address, "restarted", str(config_file)]
    driver = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    client = redis_server.client()

    def events_so_far() -> int:
        return sum(client.xlen(f"maskstream:{{{source.id}}}:events") for source in cfg.sources)

    try:
        deadline = time.monotonic() + 120
        while events_so_far() < 10:
            assert driver.poll() is None and time.monotonic() < deadline, driver.stdout.read()  # type: ignore[union-attr]
            time.sleep(0.2)
        driver.kill()  # SIGKILL: no goodbye, no shutdown of the workers
        driver.wait(10)
        before = events_so_far()
        time.sleep(2.0)
        assert events_so_far() > before, "the workers stopped with the controller"
    finally:
        if driver.poll() is None:
            driver.kill()
    restarted = subprocess.run(command, capture_output=True, text=True, timeout=150)
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    assert "re-attached to" in restarted.stderr
    assert_same_as_single_process(redis_server, cfg, tmp_path)


@pytest.mark.rtsp
@pytest.mark.skipif(not rtsp_server_available(), reason="gst-rtsp-server is not installed (see .ci/run)")
def test_live_cameras_move_when_a_worker_is_killed_and_when_a_node_joins(
    redis_server: RedisServer, three_nodes: LocalRayCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PACE_ENV, "0.02")
    cameras = [RtspServer(fps=10).start() for _ in range(4)]
    try:
        cfg = build_config(
            {
                "sources": [{"id": f"cam{i}", "url": camera.url} for i, camera in enumerate(cameras)],
                "model": {"device": "cpu"},
                "batcher": {"batch_size": 1, "max_wait_ms": 0},
                "tracker": {"camera_motion": "off"},
                "redis": {"url": redis_server.url, "initial_backoff_s": 0.05, "max_backoff_s": 0.5},
                "cluster": {"poll_interval_s": 0.25, "worker_timeout_s": 3.0},
            }
        )
        client = redis_server.client()
        job = RunningJob(cfg, "live")

        def has_open_track(source_id: str) -> bool:
            return any(e["type"] == "track.started" for _, e, _ in stream_events(client, source_id))

        job.wait_for(lambda: bool(job.busy_worker()) and all(has_open_track(s.id) for s in cfg.sources))
        victim = job.busy_worker()
        moved = {s: info["epoch"] for s, info in victim["sources"].items() if info["state"] == "running"}
        killed_at = time.time()
        os.kill(victim["pid"], signal.SIGKILL)

        def resumed(source_id: str) -> bool:
            return any(
                ep > moved[source_id] and e["type"].startswith("track.")
                for _, e, ep in stream_events(client, source_id)
            )

        job.wait_for(lambda: all(resumed(s) for s in moved), 60)
        joined = three_nodes.add_node()  # a fourth slot: a new worker, and about 1/4 of the cameras move to it
        three_nodes.nodes.append(joined)
        job.wait_for(lambda: any(r.reason == "moved" for r in job.controller.reassignments), 60)
        time.sleep(1.0)
        job.controller.stop()
        job.finish()
    finally:
        for camera in cameras:
            camera.stop()
        remove = [n for n in three_nodes.nodes[3:]]
        for node in remove:
            three_nodes.remove_node(node.node_id)

    lost = [r for r in job.controller.reassignments if r.reason == "worker_lost"]
    assert {r.source_id for r in lost} >= set(moved)
    for source_id in (s.id for s in cfg.sources):
        entries = stream_events(client, source_id)
        ids = [e["event_id"] for _, e, _ in entries]
        assert len(ids) == len(set(ids)), f"{source_id}: an event id twice"
        epochs = [ep for *_, ep in entries]
        assert epochs == sorted(epochs), f"{source_id}: an old owner wrote after a new one"
        started = {e["track_id"] for _, e, _ in entries if e["type"] == "track.started"}
        ended = {e["track_id"] for _, e, _ in entries if e["type"] == "track.ended"}
        assert started == ended, f"{source_id}: tracks left open by a hand-over"
    for source_id, old_epoch in moved.items():
        after = [(e, ep) for _, e, ep in stream_events(client, source_id) if ep > old_epoch]
        kinds = [(e["type"], e.get("reason")) for e, _ in after]
        first_new = next(i for i, k in enumerate(kinds) if k == ("stream.connected", "worker_lost"))
        # the new owner first ends the lost owner's open tracks, says the stream was disconnected, then starts
        handover = [k for k in kinds[:first_new] if k[0] != "stream.started"]
        assert handover[-1] == ("stream.disconnected", "worker_lost")
        assert all(k == ("track.ended", "worker_lost") for k in handover[:-1])
        assert after[0][0]["capture_time"] - killed_at < 10.0  # detection + fencing + restart well under 10 s
    handed = [r.source_id for r in job.controller.reassignments if r.reason == "moved"]
    kinds = [(e["type"], e.get("reason")) for _, e, _ in stream_events(client, handed[0])]
    assert ("stream.disconnected", "moved") in kinds and ("stream.connected", "moved") in kinds
    assert ("track.ended", "moved") in kinds or not any(k[0] == "track.started" for k in kinds)
