"""Redis outage during a file run, and publisher throughput vs plain redis-py (docs/BENCHMARKS.md, "Events and Redis").

1. `outage`: a synthetic 640x360 clip runs through the real pipeline (`pipeline.runner.Pipeline`: file source,
   decoder, batcher, mask paste, tracker, EventBuilder, RedisPublisher). Only the model is a stand-in: it takes
   `--model-s` seconds per frame and "sees" four moving objects, so the tracker and the publisher do their real
   work (every track updated every frame). `--before-s` into the run the redis-server (AOF, fsync always, so it
   keeps what it acknowledged) is SIGKILLed and restarted on the same port `--outage-s` later. Every event the
   pipeline handed to the publisher is recorded and compared with the stream: lost, duplicated, out of order.
2. `throughput`: the events recorded in (1) are replayed as fast as possible into a fresh redis-server, once with
   plain redis-py (one pipelined XADD MAXLEN ~ round trip per frame, in the caller's thread) and through
   RedisPublisher (publish() per frame, then flush) with the memory spool and with the SQLite disk spool; alternated
   `--repeats` times, medians reported. Also the caller-side cost of publish() per frame.

    nice -n 10 .venv/bin/python -m benchmarks.redis_outage --outage-s 60 --out redis_outage.json
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `tests.*` helpers when run as a script

from pipeline.config import BatcherConfig, PipelineConfig
from pipeline.config.redis import RedisConfig
from pipeline.config.sources import SourceConfig
from pipeline.config.tracker import TrackerConfig
from pipeline.items import RawDetections
from pipeline.runner import Pipeline
from sinks.redis_publisher import RedisPublisher
from stages.inference import Detector
from tests.servers import RedisServer

log = logging.getLogger("redis_outage")
SOURCE_ID = "outagecam"
WIDTH, HEIGHT = 640, 360


def make_clip(path: Path, frames: int, fps: int = 30) -> None:
    """A plain moving-gradient clip: the stand-in model ignores the pixels, the decoder still decodes them."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "35"})
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        ramp = np.linspace(0, 255, WIDTH, dtype=np.uint8)[None, :, None]
        for i in range(frames):
            image = np.broadcast_to(np.roll(ramp, i * 4, axis=1), (HEIGHT, WIDTH, 3)).copy()
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@dataclass
class MovingObjectsDetector(Detector):
    """Stand-in model: `seconds_per_frame` per frame, four objects moving steadily across the frame."""

    seconds_per_frame: float = 0.05
    frames_seen: int = 0

    def detect(self, images: list[torch.Tensor]) -> list[RawDetections]:
        time.sleep(self.seconds_per_frame * len(images))
        results = []
        for _ in images:
            k = self.frames_seen
            self.frames_seen += 1
            boxes = [[40.0 + (2 * k + 150 * i) % 480, 40.0 + 75 * i, 0.0, 0.0] for i in range(4)]
            for box in boxes:
                box[2], box[3] = box[0] + 90, box[1] + 60
            results.append(
                RawDetections(
                    boxes=torch.tensor(boxes),
                    scores=torch.full((4,), 0.9),
                    labels=torch.ones(4, dtype=torch.int64),
                    mask_probs=torch.ones((4, 1, 28, 28)),
                )
            )
        return results


class RecordingSink:
    """An event sink that remembers every batch the pipeline published, in order (the ground truth)."""

    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []

    def publish(self, source_id: str, events: list[dict[str, Any]]) -> None:
        self.batches.append(list(events))

    def close(self, timeout_s: float) -> None:
        pass


def outage_run(args: argparse.Namespace, workdir: Path) -> tuple[dict[str, Any], list[list[dict[str, Any]]]]:
    frames = int((args.before_s + args.outage_s + args.after_s) / args.model_s)
    clip = workdir / "clip.mp4"
    make_clip(clip, frames)
    server = RedisServer(args=["--appendonly", "yes", "--appendfsync", "always"]).start()
    redis_cfg = RedisConfig(url=server.url, spool_max_events=args.spool, maxlen=None)
    cfg = PipelineConfig(
        sources=[SourceConfig(id=SOURCE_ID, url=str(clip))],
        batcher=BatcherConfig(batch_size=1, max_wait_ms=0, pin_memory=False),
        tracker=TrackerConfig(updated_interval_s=0.0),
        redis=redis_cfg,
    )
    detector = MovingObjectsDetector(
        model=torch.nn.Identity(), class_names=["__background__", "box"], device=torch.device("cpu"),
        seconds_per_frame=args.model_s,
    )  # fmt: skip
    recorder = RecordingSink()
    publisher = RedisPublisher(redis_cfg)
    publisher.check()
    pipeline = Pipeline(cfg, detector=detector, event_sinks=[recorder, publisher])

    timeline: dict[str, float] = {}
    spool_samples: list[tuple[float, int]] = []
    stop = threading.Event()
    began = time.monotonic()

    def outage() -> None:
        if stop.wait(args.before_s):
            return
        timeline["killed_at_s"] = time.monotonic() - began
        server.kill()
        log.info("redis-server killed; down for %.0f s", args.outage_s)
        if stop.wait(args.outage_s):
            return
        server.start()
        timeline["restarted_at_s"] = time.monotonic() - began
        log.info("redis-server restarted")
        while not stop.wait(0.05):
            if publisher.stats()["spooled"] == 0:
                timeline["drained_at_s"] = time.monotonic() - began
                return

    def sample() -> None:
        while not stop.wait(0.25):
            spool_samples.append((time.monotonic() - began, publisher.stats()["spooled"]))

    threads = [threading.Thread(target=outage, daemon=True), threading.Thread(target=sample, daemon=True)]
    for thread in threads:
        thread.start()
    report = pipeline.run()
    timeline["run_ended_s"] = time.monotonic() - began
    stop.set()
    for thread in threads:
        thread.join(5)
    stats = publisher.stats()  # the pipeline closed (flushed) it at the end of the run

    sent = [e["event_id"] for batch in recorder.batches for e in batch]
    entries = server.client().xrange(redis_cfg.key_for(SOURCE_ID))
    stored = [fields[b"event_id"].decode() for _, fields in entries]
    first_copies = list(dict.fromkeys(stored))
    position = {event_id: i for i, event_id in enumerate(first_copies)}
    arrived = [i for i in sent if i in position]
    result = {
        "pipeline_frames": report.frames,
        "pipeline_fps": round(report.fps, 1),
        "events_handed_to_publisher": len(sent),
        "events_in_stream": len(stored),
        "events_lost": len(sent) - len(arrived),
        "duplicates_in_stream": len(stored) - len(first_copies),
        "unexpected_events_in_stream": len(set(first_copies) - set(sent)),
        "order_kept": [position[i] for i in arrived] == sorted(position[i] for i in arrived),
        "every_event_arrived_in_order": first_copies == sent,
        "peak_spooled_events": max((n for _, n in spool_samples), default=0),
        "publisher_stats": stats,
        "timeline_s": {k: round(v, 2) for k, v in timeline.items()},
        "drain_s": round(timeline.get("drained_at_s", float("nan")) - timeline.get("restarted_at_s", float("nan")), 2),
    }
    server.close()
    return result, recorder.batches


def throughput_run(batches: list[list[dict[str, Any]]], repeats: int) -> dict[str, Any]:
    from pipeline.events import to_stream_fields

    server = RedisServer().start()  # no persistence: measure the client side, not the disk
    client = server.client()
    key = f"maskstream:{{{SOURCE_ID}}}:events"
    events = sum(len(b) for b in batches)
    plain_s: list[float] = []
    ours_s: dict[str, list[float]] = {"memory": [], "disk": []}
    publish_us: dict[str, list[float]] = {"memory": [], "disk": []}
    spool_dir = Path(tempfile.mkdtemp(prefix="maskstream-spool-"))
    try:
        for repeat in range(repeats):
            client.delete(key)
            start = time.perf_counter()
            for batch in batches:  # the obvious redis-py code: one pipelined round trip per frame, in the caller
                pipe = client.pipeline(transaction=False)
                for event in batch:
                    pipe.xadd(key, to_stream_fields(event), maxlen=100_000, approximate=True)
                pipe.execute()
            plain_s.append(time.perf_counter() - start)

            for spool in ("memory", "disk"):
                client.delete(key)
                spool_path = spool_dir / f"spool{repeat}.sqlite" if spool == "disk" else None
                publisher = RedisPublisher(RedisConfig(url=server.url, spool_path=spool_path))
                publisher.check()
                start = time.perf_counter()
                for batch in batches:
                    t0 = time.perf_counter()
                    publisher.publish(SOURCE_ID, batch)
                    publish_us[spool].append((time.perf_counter() - t0) * 1e6)
                assert publisher.flush(60)
                ours_s[spool].append(time.perf_counter() - start)
                publisher.close(5)
                assert client.xlen(key) == events
    finally:
        server.close()
        shutil.rmtree(spool_dir, ignore_errors=True)
    plain = statistics.median(plain_s)
    result: dict[str, Any] = {
        "events": events,
        "frames": len(batches),
        "mean_event_json_bytes": round(sum(len(json.dumps(e)) for b in batches for e in b) / max(events, 1)),
        "plain_redis_py_events_per_s": round(events / plain),
        "repeats": repeats,
    }
    for spool in ("memory", "disk"):
        ours = statistics.median(ours_s[spool])
        result[f"publisher_{spool}_spool_events_per_s"] = round(events / ours)
        result[f"publisher_{spool}_spool_vs_plain"] = round(plain / ours, 2)
        result[f"publish_call_{spool}_spool_us_p50"] = round(float(np.percentile(publish_us[spool], 50)), 1)
        result[f"publish_call_{spool}_spool_us_p99"] = round(float(np.percentile(publish_us[spool], 99)), 1)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outage-s", type=float, default=60.0, help="how long Redis stays down")
    parser.add_argument("--before-s", type=float, default=15.0, help="run time before the kill")
    parser.add_argument("--after-s", type=float, default=15.0, help="clip time planned after the restart")
    parser.add_argument("--model-s", type=float, default=0.05, help="stand-in model seconds per frame")
    parser.add_argument("--spool", type=int, default=100_000, help="spool_max_events")
    parser.add_argument("--repeats", type=int, default=3, help="throughput repetitions (medians reported)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="maskstream-outage-") as tmp:
        outage, batches = outage_run(args, Path(tmp))
    results = {
        "machine": f"{platform.machine()} {platform.node()}, python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "outage": outage,
        "throughput": throughput_run(batches, args.repeats),
    }
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0 if outage["every_event_arrived_in_order"] else 1


if __name__ == "__main__":
    sys.exit(main())
