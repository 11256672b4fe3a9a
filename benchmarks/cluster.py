"""`run --ray` coordination on one machine: footage throughput with 1/2/4 workers, reassignment time after kills.

A local multi-node Ray cluster (Ray's `cluster_utils.Cluster`, one `maskstream_slot` per node, token auth, all on
loopback) and a private redis-server. The model is the paced stand-in of the tests (`tests.cluster_helpers`:
`--model-s` seconds per frame under a per-worker lock, like one accelerator per worker), so on a 2-core machine
this measures coordination — placement, fencing, hand-over — not compute. Everything else is the real pipeline.

- `throughput`: the same footage job (`--files` clips of `--frames` frames) with 1, 2 and 4 workers; aggregate
  frames per second of model time, and scaling efficiency against 1 worker (ideal = N x).
- `kills`: `--cameras` live RTSP sources (gst-rtsp-server) on 4 workers; a worker owning cameras is SIGKILLed
  `--kills` times, one at a time after the previous recovery. Per moved camera: kill → lost (detection), lost →
  new epoch (fencing), → start sent (placement), → the new owner's first event in Redis (reconnect + first frame).

    PYTHONPATH=. nice -n 10 .venv/bin/python -m benchmarks.cluster --mode throughput --out cluster_tp.json
    PYTHONPATH=. nice -n 10 .venv/bin/python -m benchmarks.cluster --mode kills --kills 10 --out cluster_kills.json
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `tests.*` helpers when run as a script
from tests.cluster_helpers import FACTORY, PACE_ENV, LocalRayCluster, stream_events, use_token_auth

use_token_auth()  # before the first `import ray` (also a barrier that keeps import sorting from moving it)

from cluster.controller import Controller
from cluster.driver import connect
from pipeline.config import PipelineConfig, build_config
from tests.pipeline_helpers import write_clip
from tests.rtsp_server import RtspServer
from tests.servers import RedisServer


def job_config(sources: list[dict[str, Any]], redis_url: str) -> PipelineConfig:
    return build_config(
        {
            "sources": sources,
            "model": {"device": "cpu"},
            "batcher": {"batch_size": 1, "max_wait_ms": 0},
            "tracker": {"camera_motion": "off"},
            "redis": {"url": redis_url, "initial_backoff_s": 0.05, "max_backoff_s": 0.5},
            "log": {"progress": False},
            "cluster": {"poll_interval_s": 0.25, "worker_timeout_s": 3.0, "worker_capacity": 2.0},
        }
    )


def run_job(cfg: PipelineConfig, job_id: str) -> tuple[float, float]:
    """(seconds from the first frame processed to the last source done, seconds until the workers answered)."""
    controller = Controller(cfg, job_id, detector_factory=FACTORY)
    started = time.monotonic()
    ready_at: float | None = None
    while not controller.finished():
        controller.step()
        if ready_at is None and any(view.report.get("published") for view in controller.workers.values()):
            ready_at = time.monotonic()
        time.sleep(0.1)
    done = time.monotonic()
    controller.shutdown()
    ready_at = ready_at or started
    return done - ready_at, ready_at - started


def throughput(args: argparse.Namespace, tmp: Path, redis: RedisServer) -> dict[str, Any]:
    clips = [write_clip(tmp / f"clip{i}.mp4", frames=args.frames, seed=i) for i in range(args.files)]
    sources = [{"id": clip.stem, "url": str(clip)} for clip in clips]
    frames = args.files * args.frames
    rows = []
    cluster = LocalRayCluster(1)
    try:
        connect(cluster.address, "maskstream-bench")
        for workers in (1, 2, 4):
            while len(cluster.nodes) < workers:
                cluster.nodes.append(cluster.add_node())
            redis.client().flushall()
            seconds, startup = run_job(job_config(sources, redis.url), f"tp{workers}")
            rows.append({"workers": workers, "seconds": round(seconds, 2), "fps": round(frames / seconds, 1),
                         "worker_startup_s": round(startup, 1)})  # fmt: skip
            print(rows[-1], flush=True)
    finally:
        cluster.shutdown()
    base = rows[0]["fps"]
    for row in rows:
        row["speedup"] = round(row["fps"] / base, 2)
        row["efficiency"] = round(row["fps"] / (base * row["workers"]), 2)
    return {"frames": frames, "ideal_fps_per_worker": round(1 / args.model_s, 1), "rows": rows}


def kills(args: argparse.Namespace, redis: RedisServer) -> dict[str, Any]:
    cameras = [RtspServer(fps=10).start() for _ in range(args.cameras)]
    cluster = LocalRayCluster(4)
    samples: list[dict[str, float]] = []
    try:
        connect(cluster.address, "maskstream-bench")
        cfg = job_config([{"id": f"cam{i}", "url": c.url} for i, c in enumerate(cameras)], redis.url)
        controller = Controller(cfg, "kills", detector_factory=FACTORY)
        stop = threading.Event()
        loop = threading.Thread(target=lambda: _loop(controller, stop), daemon=True)
        loop.start()
        client = redis.client()
        for number in range(args.kills):
            victim = _wait_for_victim(controller)
            owned = {s: i["epoch"] for s, i in victim["sources"].items() if i["state"] == "running"}
            seen = len(controller.reassignments)
            killed = time.time()
            os.kill(victim["pid"], signal.SIGKILL)
            firsts = {s: _first_event_after(client, s, epoch, deadline=killed + 60) for s, epoch in owned.items()}
            moved = [r for r in controller.reassignments[seen:] if r.source_id in owned and r.reason == "worker_lost"]
            for record in moved:
                samples.append({
                    "detection_s": record.detected_at - killed,
                    "fencing_s": record.fenced_at - record.detected_at,
                    "placement_s": record.started_at - record.fenced_at,
                    "hand_over_events_s": firsts[record.source_id]["write"] - record.started_at,
                    "reconnect_s": firsts[record.source_id]["connected"] - firsts[record.source_id]["write"],
                    "first_frame_s": firsts[record.source_id]["frame"] - firsts[record.source_id]["connected"],
                    "kill_to_first_write_s": firsts[record.source_id]["write"] - killed,
                    "kill_to_first_frame_event_s": firsts[record.source_id]["frame"] - killed,
                })  # fmt: skip
            worst = max((s["kill_to_first_frame_event_s"] for s in samples[-len(moved) :]), default=float("nan"))
            print(f"kill {number + 1}: {len(moved)} camera(s) moved, worst {worst:.2f} s to a frame event", flush=True)
            time.sleep(2.0)  # the replacement worker joins and takes its share back (graceful hand-overs)
        stop.set()
        loop.join(10)
        controller.stop()
        controller.shutdown()
        duplicates = 0
        for source in cfg.sources:
            ids = [e["event_id"] for _, e, _ in stream_events(client, source.id)]
            duplicates += len(ids) - len(set(ids))
    finally:
        cluster.shutdown()
        for camera in cameras:
            camera.stop()
    summary = {key: _percentiles([s[key] for s in samples]) for key in samples[0]} if samples else {}
    return {"kills": args.kills, "moved_cameras": len(samples), "duplicates_in_redis": duplicates, "phases": summary}


def _loop(controller: Controller, stop: threading.Event) -> None:
    while not stop.is_set():
        controller.step()
        time.sleep(0.05)


def _wait_for_victim(controller: Controller, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for view in list(controller.workers.values()):
            running = [s for s in view.report.get("sources", {}).values() if s["state"] == "running"]
            if view.usable and running and all(s.get("frames", 0) > 5 for s in running):
                return view.report
        time.sleep(0.2)
    raise RuntimeError("no worker with running cameras")


def _first_event_after(client: Any, source_id: str, epoch: int, deadline: float) -> dict[str, float]:
    """Wall times (from Redis entry ids, ms) of the new owner's first write (the hand-over events), its
    `stream.connected` and its first track event (a processed frame)."""
    while time.time() < deadline:
        times: dict[str, float] = {}
        for entry_id, event, entry_epoch in stream_events(client, source_id):
            if entry_epoch <= epoch:
                continue
            at = int(entry_id.split("-")[0]) / 1000
            times.setdefault("write", at)
            if event["type"] == "stream.connected":
                times.setdefault("connected", at)
            if event["type"].startswith("track.") and not event["event_id"].startswith("h"):
                times.setdefault("frame", at)
        if len(times) == 3:
            return times
        time.sleep(0.05)
    raise RuntimeError(f"{source_id}: no event from a new owner within 60 s")


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"p50": round(statistics.median(ordered), 2), "p95": round(p95, 2), "max": round(ordered[-1], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=["throughput", "kills"], required=True)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--model-s", type=float, default=0.05, help="stand-in model seconds per frame")
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    os.environ[PACE_ENV] = str(args.model_s if args.mode == "throughput" else 0.02)
    redis = RedisServer().start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            result = throughput(args, Path(tmp), redis) if args.mode == "throughput" else kills(args, redis)
    finally:
        redis.close()
    result.update(mode=args.mode, date=time.strftime("%Y-%m-%d"), machine="2-core CPU, shared/loaded")
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
