"""Live-source soak runs: a real RTSP camera (gst-rtsp-server) into the real pipeline (`pipeline.runner.Pipeline`).

Two modes (docs/BENCHMARKS.md, "Live sources", has the results):

- `latency`: a 30 fps stream into a pipeline that manages ~5 fps. Reports capture-to-publish latency p50/p99 per
  minute and its trend, stale-frame drops, and resident memory growth after warm-up.
- `kills`: the RTSP server is SIGKILLed `--kills` times (evenly spread) and restarted on the same port after
  `--down-s` seconds. Reports reconnects (stream.connected events), crashes, and thread / file-descriptor counts.

The model is the one part replaced: a paced stand-in that takes `--model-s` seconds per frame (0.2 s = 5 fps; the
bundled Mask R-CNN needs ~2 s per frame on this CPU) and reports one detection per frame, so the tracker, the mask
stage and the Redis publisher do their real work (events go to a private redis-server on a free port).

    nice -n 10 .venv/bin/python -m benchmarks.live_soak --mode latency --duration 600 --out soak_latency.json
    nice -n 10 .venv/bin/python -m benchmarks.live_soak --mode kills --duration 600 --kills 20 --out soak_kills.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `tests.*` helpers when run as a script

from pipeline.config import BatcherConfig, PipelineConfig
from pipeline.config.redis import RedisConfig
from pipeline.config.sources import SourceConfig
from pipeline.items import FrameResult, RawDetections
from pipeline.metrics import FRAMES_DECODED, FRAMES_DROPPED, RECONNECTS
from pipeline.runner import Pipeline
from sinks.redis_publisher import RedisPublisher
from stages.inference import Detector
from tests.rtsp_server import RtspServer
from tests.servers import RedisServer

log = logging.getLogger("live_soak")
SOURCE_ID = "soakcam"


@dataclass
class PacedDetector(Detector):
    """Stands in for the model: `seconds_per_frame` of wall time per frame and one fixed detection per frame."""

    seconds_per_frame: float = 0.2

    def detect(self, images: list[torch.Tensor]) -> list[RawDetections]:
        time.sleep(self.seconds_per_frame * len(images))
        return [
            RawDetections(
                boxes=torch.tensor([[100.0, 80.0, 260.0, 240.0]]),
                scores=torch.tensor([0.9]),
                labels=torch.tensor([1]),
                mask_probs=torch.ones((1, 1, 28, 28)),
            )
            for _ in images
        ]


class LatencySink:
    """A frame sink (runs in the publish stage): capture-to-publish latency of every processed frame."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []  # (monotonic time, latency s)

    def write(self, result: FrameResult) -> None:
        self.samples.append((time.monotonic(), time.time() - result.frame.capture_time))

    def end_source(self, source_id: str) -> None:
        pass

    def close(self) -> None:
        pass


class EventCounter:
    """An event sink that counts event types (stream.connected, track.updated, ...)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def publish(self, source_id: str, events: list[dict[str, Any]]) -> None:
        self.counts.update(event["type"] for event in events)

    def close(self, timeout_s: float) -> None:
        pass


def process_counts() -> dict[str, int]:
    status = Path("/proc/self/status").read_text()
    rss_kb = int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])
    return {
        "rss_mb": round(rss_kb / 1024, 1),
        "python_threads": threading.active_count(),
        "os_threads": len(os.listdir("/proc/self/task")),
        "fds": len(os.listdir("/proc/self/fd")),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    redis_server = RedisServer().start()
    camera = RtspServer(width=args.width, height=args.height, fps=args.fps).start()
    source = SourceConfig(
        id=SOURCE_ID,
        url=camera.url,
        open_timeout_s=5,
        read_timeout_s=2,
        stall_timeout_s=5,
        reconnect={"initial_backoff_s": 0.5, "max_backoff_s": 2.0},
    )
    cfg = PipelineConfig(
        sources=[source],
        batcher=BatcherConfig(batch_size=1, max_wait_ms=0, live_queue_size=2, pin_memory=False),
        redis=RedisConfig(url=redis_server.url),
    )
    detector = PacedDetector(
        model=torch.nn.Identity(),
        class_names=["__background__", "ball"],
        device=torch.device("cpu"),
        seconds_per_frame=args.model_s,
    )
    latency = LatencySink()
    counter = EventCounter()
    publisher = RedisPublisher(cfg.redis)
    pipeline = Pipeline(cfg, detector=detector, event_sinks=[publisher, counter], frame_sinks=[latency])

    samples: list[dict[str, Any]] = []
    kills_done = 0
    began = time.monotonic()
    stop = threading.Event()

    def monitor() -> None:
        while not stop.wait(5.0):
            stale = FRAMES_DROPPED.labels(source=SOURCE_ID, reason="stale")._value.get()
            samples.append({"t": round(time.monotonic() - began, 1), "stale": stale, **process_counts()})

    before_kills: list[dict[str, Any]] = []  # steady state (connected) just before each kill

    def killer() -> None:
        nonlocal kills_done
        period = args.duration / args.kills
        for k in range(args.kills):
            if stop.wait(max(0.0, began + period * (k + 0.5) - time.monotonic())):
                return
            before_kills.append({"kill": k + 1, **process_counts()})
            log.info("kill %d/%d", k + 1, args.kills)
            camera.kill()
            if stop.wait(args.down_s):
                return
            camera.start()
            kills_done += 1

    threads = [threading.Thread(target=monitor, daemon=True)]
    if args.mode == "kills":
        threads.append(threading.Thread(target=killer, daemon=True))
    timer = threading.Timer(args.duration, pipeline.stop)
    for thread in threads:
        thread.start()
    timer.start()
    crashed = None
    try:
        pipeline.run()
    except Exception as exc:  # a crash is a result of the soak, not a reason to lose the numbers
        log.exception("pipeline crashed")
        crashed = f"{type(exc).__name__}: {exc}"
    stop.set()
    for thread in threads:
        thread.join(5)
    camera.stop()
    redis_server.close()
    time.sleep(1.0)
    after = process_counts()

    return {
        "mode": args.mode,
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "stream": f"{args.width}x{args.height} @ {args.fps} fps H.264 over RTSP/TCP (gst-rtsp-server)",
        "model_s_per_frame": args.model_s,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "crashed": crashed,
        "frames_processed": len(latency.samples),
        "frames_decoded": FRAMES_DECODED.labels(source=SOURCE_ID)._value.get(),
        "stale_dropped": FRAMES_DROPPED.labels(source=SOURCE_ID, reason="stale")._value.get(),
        "reconnect_attempts": RECONNECTS.labels(source=SOURCE_ID)._value.get(),
        "kills": kills_done,
        "events": dict(counter.counts),
        "per_minute": per_minute(latency.samples, began, args.duration),
        "trend": trend(latency.samples, began, args.warmup, args.duration),
        # both taken by the monitor thread, so the same helper threads are alive in each
        "at_warmup": next((x for x in samples if x["t"] >= args.warmup), {}),
        "at_end": next((x for x in reversed(samples) if x["t"] <= args.duration - 1), {}),
        "before_kills": before_kills,
        "after_cleanup": after,
        "samples": samples,
    }


def per_minute(samples: list[tuple[float, float]], began: float, duration: float) -> list[dict[str, Any]]:
    rows = []
    for minute in range(int(np.ceil(duration / 60))):
        lat = [lat for t, lat in samples if minute * 60 <= t - began < (minute + 1) * 60]
        if lat:
            span = min(60.0, duration - minute * 60)
            rows.append({
                "minute": minute + 1,
                "frames": len(lat),
                "fps": round(len(lat) / span, 2),
                "p50_ms": round(1000 * float(np.percentile(lat, 50)), 1),
                "p99_ms": round(1000 * float(np.percentile(lat, 99)), 1),
                "max_ms": round(1000 * max(lat), 1),
            })  # fmt: skip
    return rows


def trend(samples: list[tuple[float, float]], began: float, warmup: float, duration: float) -> dict[str, float]:
    """Least-squares slope of latency against time after warm-up (ms per minute), for the median and the tail.
    Frames drained after the stop (t >= duration) are left out, as in the per-minute table."""
    after = [(t - began, lat) for t, lat in samples if warmup <= t - began < duration]
    if len(after) < 10:
        return {}
    times = np.array([t for t, _ in after]) / 60.0
    lats = np.array([lat for _, lat in after]) * 1000.0
    slope_all = float(np.polyfit(times, lats, 1)[0])
    # tail trend: p99 of each 30 s window, regressed on window start
    windows = np.floor(times * 2) / 2
    starts = sorted(set(windows.tolist()))
    p99s = [float(np.percentile(lats[windows == w], 99)) for w in starts]
    slope_p99 = float(np.polyfit(starts, p99s, 1)[0]) if len(starts) > 2 else 0.0
    return {"latency_slope_ms_per_min": round(slope_all, 3), "p99_slope_ms_per_min": round(slope_p99, 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=["latency", "kills"], default="latency")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before memory/thread/fd baselines")
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--down-s", type=float, default=2.0, help="seconds the server stays dead after a kill")
    parser.add_argument("--model-s", type=float, default=0.2, help="stand-in model seconds per frame")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--out", type=Path, default=None, help="write the full result as JSON here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result = run(args)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text)
    summary = {k: v for k, v in result.items() if k != "samples"}
    print(json.dumps(summary, indent=2))
    return 1 if result["crashed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
