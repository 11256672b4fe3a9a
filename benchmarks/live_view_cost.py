"""What the live page costs the pipeline: fps on the demo clip with no server, with the page's server but nobody
watching, with 1 viewer and with 4 viewers, interleaved in one run (docs/BENCHMARKS.md, "Live page").

    python benchmarks/live_view_cost.py [--frames 150] [--rounds 2] [--torch-threads 1] [--device cpu]

Each run is the demo's pipeline (configs/demo.yaml: bundled model, batch 2, tracker, events into a private
redis-server; no annotated MP4 or JSON Lines, so the page is the only extra output). Viewers are plain HTTP clients
in a separate process reading `/api/live` (every source's pictures at `web.max_fps`, the source list, the event
feed) as a browser does, and throwing the bytes away: the server's cost, not a browser's decoding. Every round runs
each mode once, the order rotated by one each round (a mode is not always first or last), so drift in the
machine's load hits every mode alike; the table gives each mode's median fps and its ratio to "no server", and
the time spent drawing + encoding pictures (the part of the cost that grows with viewers' pictures per second).
"""

from __future__ import annotations

import argparse
import json
import platform
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.config import load_config
from pipeline.demo import DEMO_CONFIG, demo_clip, redis_for_demo
from pipeline.run_command import pipeline_with_server
from stages.inference import load_detector
from tests.servers import free_port

MODES = ("no server", "page closed", "1 viewer", "4 viewers")

# The viewers: N threads reading the live stream until SIGTERM; prints what they received.
VIEWER_SCRIPT = r"""
import http.client, json, signal, sys, threading, time
port, count = int(sys.argv[1]), int(sys.argv[2])
totals = [[0, 0] for _ in range(count)]  # bytes, pictures
def view(i):
    while True:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            connection.request("GET", "/api/live")
            response = connection.getresponse()
            while True:
                data = response.read1(65536)
                if not data:
                    break
                totals[i][0] += len(data)
                totals[i][1] += data.count(b"event: frame")
        except OSError:
            time.sleep(0.2)
for i in range(count):
    threading.Thread(target=view, args=(i,), daemon=True).start()
signal.signal(signal.SIGTERM, lambda *_: (print(json.dumps(totals), flush=True), sys.exit(0)))
while True:
    time.sleep(1)
"""


def one_run(mode: str, detector, clip: Path, redis_url: str) -> dict:
    overrides = [f"sources[0].url='{clip}'", f"redis.url='{redis_url}'", "sinks.annotate=null", "sinks.jsonl=null",
                 "log.progress=false"]  # fmt: skip
    if mode != "no server":
        overrides += [f"metrics.port={free_port()}", "metrics.host=127.0.0.1"]
    cfg = load_config(DEMO_CONFIG, overrides=overrides, env={"REDIS_URL": redis_url})
    pipeline, server = pipeline_with_server(cfg, detector=detector)
    viewers = {"1 viewer": 1, "4 viewers": 4}.get(mode, 0)
    process = None
    if viewers:
        assert server is not None
        process = subprocess.Popen(
            [sys.executable, "-c", VIEWER_SCRIPT, str(server.port), str(viewers)], stdout=subprocess.PIPE, text=True
        )
        time.sleep(1.0)  # the viewers are connected before the first frame
    try:
        began = time.perf_counter()  # not the pipeline's own clock: that started before the viewers connected
        report = pipeline.run()
        elapsed = time.perf_counter() - began
    finally:
        received = []
        if process is not None:
            process.send_signal(signal.SIGTERM)
            out, _ = process.communicate(timeout=20)
            received = json.loads(out.strip().splitlines()[-1]) if out.strip() else []
        if server is not None:
            server.stop()
    web = server.web if server is not None else None
    return {
        "mode": mode,
        "fps": report.frames / elapsed,
        "frames": report.frames,
        "encodes": web.view.encodes if web is not None else 0,
        "encode_ms": 1000 * web.view.encode_cpu_s / web.view.encodes if web is not None and web.view.encodes else None,
        "elapsed_s": elapsed,
        "pictures_per_viewer": [r[1] for r in received],
        "mb_per_viewer": [round(r[0] / 1e6, 1) for r in received],
    }


def page_closed_cost(clip: Path, calls: int = 20000) -> None:
    """What the page adds to the publish stage per frame while nobody watches: LiveView.write (keep the result) and
    EventFeed.publish (ring the frame's events), timed on a real decoded frame of the clip."""
    import av

    from pipeline.items import Detections, Frame, FrameResult
    from sinks.live_events import EventFeed
    from sinks.live_view import LiveView

    with av.open(str(clip)) as container:
        image = next(container.decode(video=0)).to_ndarray(format="rgb24")
    result = FrameResult(Frame("bench", 0, 0.0, time.time(), image), Detections.empty(*image.shape[:2]))
    events = [{"type": "track.updated", "event_id": str(i)} for i in range(4)]
    view, feed = LiveView(lambda: []), EventFeed()
    began = time.perf_counter()
    for _ in range(calls):
        view.write(result)
        feed.publish("bench", events)
    per_frame_us = (time.perf_counter() - began) / calls * 1e6
    print(f"page closed, publish stage's extra work per frame (write + 4 events): {per_frame_us:.1f} µs "
          f"({calls} frames, encodes {view.encodes})")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.torch_threads)
    clip = demo_clip(ROOT / "out" / "bench-live", args.frames, (640, 360), seed=1)
    cfg = load_config(DEMO_CONFIG, overrides=[f"model.device={args.device}"], env={"REDIS_URL": "redis://x"})
    detector = load_detector(cfg.model)
    runs = []
    with redis_for_demo() as (redis_url, _):
        for round_index in range(args.rounds):
            shift = round_index % len(MODES)
            for mode in MODES[shift:] + MODES[:shift]:
                run = one_run(mode, detector, clip, redis_url)
                runs.append(run)
                print(f"round {round_index + 1} {mode:<12} {run['fps']:6.2f} fps  encodes {run['encodes']:4d} "
                      f"({run['encode_ms'] or 0:.1f} ms CPU each, draw + JPEG)  "
                      f"pictures/viewer {run['pictures_per_viewer']}  MB/viewer {run['mb_per_viewer']}", flush=True)  # fmt: skip
    page_closed_cost(clip)
    if not runs:
        return 0
    base = statistics.median(r["fps"] for r in runs if r["mode"] == "no server")
    print()
    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, torch threads "
          f"{args.torch_threads}, device {detector.device}, {args.frames} frames, {args.rounds} rounds")  # fmt: skip
    print("| mode | fps per round | median | vs no server |")
    print("|---|---|---|---|")
    for mode in MODES:
        fps = [r["fps"] for r in runs if r["mode"] == mode]
        median = statistics.median(fps)
        print(f"| {mode} | {', '.join(f'{f:.2f}' for f in fps)} | {median:.2f} | {median / base:.3f} |")
    watched = [r for r in runs if r["encode_ms"]]
    if watched:
        per_picture = statistics.median(r["encode_ms"] for r in watched)
        share = statistics.median(r["encodes"] * r["encode_ms"] / 1000 / r["elapsed_s"] for r in watched)
        print(f"\ndraw + JPEG per picture: median {per_picture:.1f} ms of CPU; share of one core while watched: "
              f"{100 * share:.1f} %")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
