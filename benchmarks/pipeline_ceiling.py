"""Pipeline ceiling: how fast the CPU side can go when the model costs nothing, against decoding alone.

    python benchmarks/pipeline_ceiling.py [--sizes 640x360 1280x720 1920x1080] [--objects 5 30 100]
        [--sources 1 4] [--seconds 2] [--sink redis|jsonl] [--camera-motion auto off] [--repeat 1] [--gil]
        [--json FILE]

For every clip size, object count and source count, in ONE process, interleaved so a shared machine's load
falls on both alike:
1. decode only: each source's clip decoded by the pipeline's own file source (PyAV → RGB frames), one thread per
   source, frames thrown away;
2. the real pipeline (`pipeline.runner.Pipeline`: file sources, batcher, inference, masks, tracker, publish with
   events to a private redis-server — or a JSON Lines file with `--sink jsonl`) with a zero-cost stand-in model
   that reports K moving objects (box sides 2–25 % of the frame's, 28 x 28 mask probabilities shaped like a
   mask head's);
3. decode only again.
The ratio is pipeline fps / mean decode-only fps; the per-stage busy share (seconds each stage thread worked /
wall time) shows where the time goes (the bottleneck is the stage near 100 %), with each stage thread's CPU ms
per frame beside it. On a loaded machine busy time is mostly waiting for a core, so the process CPU time per frame
of both sides is printed too, and their quotient ("cpu ratio": decode-only CPU per frame / pipeline CPU per
frame, redis-server not counted) is the ratio a machine with cores to spare would allow if nothing but CPU
limited it.

`--gil` first measures whether the masks stage holds the GIL: the rate of a pure-Python loop (a stand-in for the
inference thread's Python work) alone, and beside a thread doing the masks stage's work on 1080p / 30-object
batches (crop paste + crop RLE), and beside the full-frame paste + pycocotools encoding it replaced.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import av
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.config import build_config
from pipeline.config.sources import SourceConfig
from pipeline.demo import redis_for_demo
from pipeline.items import Frame, RawDetections
from pipeline.runner import Pipeline
from sources.open import open_source

M = 28  # mask head resolution, as torchvision's Mask R-CNN


def blob_probs(n: int, seed: int) -> torch.Tensor:
    """(n, 1, M, M) smooth blob-shaped probabilities, like a trained mask head's."""
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, M), torch.linspace(-1, 1, M), indexing="ij")
    centres = torch.rand(n, 2, generator=gen) * 0.6 - 0.3
    radius = torch.rand(n, generator=gen) * 0.3 + 0.5
    dist = ((xx[None] - centres[:, 0, None, None]) ** 2 + (yy[None] - centres[:, 1, None, None]) ** 2).sqrt()
    return torch.sigmoid(12 * (radius[:, None, None] - dist))[:, None]


class ZeroCostDetector:
    """Stands in for the model: K objects bouncing around the frame, reported with no computation on the pixels.

    Objects advance 1/sources of a step per image, so with several sources interleaved each source sees them move
    at about one step per frame (box sides 2–25 % of the frame's; a few pixels per frame)."""

    def __init__(self, objects: int, sources: int = 1, seed: int = 0) -> None:
        self.objects = objects
        self.step = 1.0 / max(1, sources)
        self.seed = seed
        self.device = torch.device("cpu")
        self.class_names = ["background", "person"]
        self.precision = "fp32"
        self.info: dict[str, str] = {}  # what the runner reads of a factory-built detector (none: a stand-in)
        self._state: dict[tuple[int, int], dict[str, torch.Tensor]] = {}

    def _scene(self, height: int, width: int) -> dict[str, torch.Tensor]:
        scene = self._state.get((height, width))
        if scene is None:
            gen = torch.Generator().manual_seed(self.seed)
            k = self.objects
            frame = torch.tensor([width, height], dtype=torch.float32)
            size = (torch.rand(k, 2, generator=gen) * 0.23 + 0.02) * frame
            scene = {
                "size": size,
                "pos": torch.rand(k, 2, generator=gen) * (frame - size),
                "vel": (torch.rand(k, 2, generator=gen) - 0.5) * 0.01 * frame,
                "room": frame - size,
                "probs": blob_probs(k, self.seed),
                "scores": torch.rand(k, generator=gen) * 0.3 + 0.65,
                "labels": torch.ones(k, dtype=torch.int64),
            }
            self._state[(height, width)] = scene
        return scene

    def detect(self, images: list[torch.Tensor]) -> list[RawDetections]:
        results = []
        for image in images:
            s = self._scene(int(image.shape[-2]), int(image.shape[-1]))
            pos = s["pos"] + s["vel"] * self.step
            bounce = (pos < 0) | (pos > s["room"])
            s["vel"] = torch.where(bounce, -s["vel"], s["vel"])
            s["pos"] = pos.clamp(min=torch.zeros_like(s["room"]), max=s["room"])
            boxes = torch.cat([s["pos"], s["pos"] + s["size"]], 1)
            results.append(RawDetections(boxes, s["scores"], s["labels"], s["probs"]))
        return results


def write_clip(path: Path, width: int, height: int, frames: int, fps: int = 30) -> Path:
    """Textured background with moving bright shapes, H.264 (what a camera sends), `frames` long."""
    rng = np.random.default_rng(0)
    small = rng.integers(30, 200, (height // 8 + 1, width // 8 + 1, 3)).astype(np.uint8)
    background = np.ascontiguousarray(np.repeat(np.repeat(small, 8, 0), 8, 1)[:height, :width])
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "23"}
        for index in range(frames):
            image = background.copy()
            for k in range(6):
                x = int((index * (3 + k) * width / 400 + k * width / 6) % (width * 0.8))
                y = int(height * (0.1 + 0.13 * k))
                image[y : y + height // 8, x : x + width // 8] = (230, 40 * k, 255 - 40 * k)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def decode_only(clip: Path, sources: int) -> tuple[float, float]:
    """(frames per second of all sources together, process CPU ms per frame) of the pipeline's file source alone,
    one thread per source."""
    counts = [0] * sources

    def run(i: int) -> None:
        source = open_source(SourceConfig(id=f"d{i}", url=str(clip)))
        try:
            for item in source:
                if isinstance(item, Frame):
                    counts[i] += 1
        finally:
            source.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(sources)]
    started, cpu_started = time.perf_counter(), time.process_time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    cpu_ms = 1000 * (time.process_time() - cpu_started) / max(1, sum(counts))
    return sum(counts) / (time.perf_counter() - started), cpu_ms


def pipeline_run(
    clip: Path, sources: int, objects: int, sink: dict, camera_motion: str = "auto"
) -> tuple[float, dict[str, float], int, dict[str, float]]:
    """(fps of all sources together, busy share per stage, frames, CPU ms per frame per stage) of the real pipeline
    with the stand-in model."""
    tree = {
        "sources": [{"id": f"cam{i}", "url": str(clip)} for i in range(sources)],
        "model": {"device": "cpu"},
        "tracker": {"camera_motion": camera_motion},
        "log": {"progress": False},
        **sink,
    }
    cfg = build_config(tree)
    pipeline = Pipeline(cfg, detector=ZeroCostDetector(objects, sources))  # type: ignore[arg-type]
    started, cpu_started = time.perf_counter(), time.process_time()
    report = pipeline.run()
    wall = time.perf_counter() - started
    process_cpu_ms = 1000 * (time.process_time() - cpu_started) / max(1, report.frames)
    stage_busy = getattr(pipeline.stats, "stage_busy_seconds", dict)  # absent before this benchmark's branch
    busy = {name: seconds / wall for name, seconds in stage_busy().items()}
    stage_cpu = getattr(pipeline.stats, "stage_cpu_seconds", dict)
    cpu_ms = {name: 1000 * seconds / max(1, report.frames) for name, seconds in stage_cpu().items()}
    cpu_ms["process"] = process_cpu_ms
    return report.frames / wall, busy, report.frames, cpu_ms


def gil_probe(seconds: float = 2.0) -> dict[str, float]:
    """Rate of a pure-Python loop alone and beside the masks stage's work (new crop path, old full-frame path)."""
    from pycocotools import mask as mask_utils

    from kernels.mask_paste import paste_masks
    from stages.masks import batch_detections

    height, width, batch = 1080, 1920, 4
    detector = ZeroCostDetector(30)
    frames = [Frame("g", i, None, 0.0, np.zeros((height, width, 3), np.uint8)) for i in range(batch)]
    raws = detector.detect([torch.zeros(3, height, width, dtype=torch.uint8)] * batch)

    def crops() -> None:
        batch_detections(frames, raws, 0.5)

    def full_frame() -> None:
        for raw in raws:
            masks = paste_masks(raw.mask_probs, raw.boxes, height, width).numpy()
            mask_utils.encode(masks.view(np.uint8).transpose(2, 1, 0))

    def probe(work=None) -> tuple[float, float]:
        stop = threading.Event()
        batches = [0]

        def background() -> None:
            while not stop.is_set():
                work()
                batches[0] += 1

        worker = threading.Thread(target=background) if work else None
        if worker:
            worker.start()
        loops, deadline, started = 0, time.perf_counter() + seconds, time.perf_counter()
        while time.perf_counter() < deadline:
            for _ in range(1000):
                loops += 1
        elapsed = time.perf_counter() - started
        stop.set()
        if worker:
            worker.join()
        return loops / elapsed, batches[0] * batch / elapsed

    alone, _ = probe()
    beside_crops, crop_fps = probe(crops)
    beside_full, full_fps = probe(full_frame)
    return {
        "python_loop_alone_per_s": alone,
        "python_loop_beside_crop_masks_ratio": beside_crops / alone,
        "python_loop_beside_full_frame_masks_ratio": beside_full / alone,
        "crop_masks_fps_1080p_30obj": crop_fps,
        "full_frame_masks_fps_1080p_30obj": full_fps,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["640x360", "1280x720", "1920x1080"])
    parser.add_argument("--objects", nargs="+", type=int, default=[5, 30, 100])
    parser.add_argument("--sources", nargs="+", type=int, default=[1, 4])
    parser.add_argument("--seconds", type=float, default=2.0, help="clip length (30 fps)")
    parser.add_argument("--sink", choices=["redis", "jsonl"], default="redis")
    parser.add_argument(
        "--camera-motion",
        nargs="+",
        default=["auto"],
        choices=["auto", "off"],
        help="tracker camera-motion compensation: 'auto' is the default config, 'off' a static camera's "
        "(configs/rtsp.yaml, configs/demo.yaml)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="pipeline runs per case (best one counts)")
    parser.add_argument("--gil", action="store_true", help="also measure GIL holding of the masks stage's work")
    parser.add_argument("--json", type=Path, help="write the results here too")
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="torch intra-op threads (model.threads): the stand-in model computes nothing, and on a loaded machine "
        "more threads only make the masks stage's small torch ops wait for each other",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.torch_threads)

    out: dict = {
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads",
        "date": time.strftime("%Y-%m-%d"),
        "sink": args.sink,
        "cases": [],
    }
    if args.gil:
        out["gil"] = gil_probe()
        print(json.dumps(out["gil"], indent=2), flush=True)
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        if args.sink == "redis":
            url, _ = stack.enter_context(redis_for_demo())
            sink = {"redis": {"url": url}}
        else:
            sink = {"sinks": {"jsonl": str(Path(tmp) / "events.jsonl")}}
        header = (
            f"{'clip':>10} {'objects':>7} {'sources':>7} {'motion':>6} {'decode fps':>10} {'pipeline fps':>12} {'ratio':>6} "
            f"{'CPU ms/frame decode | pipeline':>31} {'cpu ratio':>9}  busy share per stage (CPU ms per frame)"
        )
        print(header, flush=True)
        for size in args.sizes:
            width, height = (int(v) for v in size.split("x"))
            clip = write_clip(Path(tmp) / f"{size}.mp4", width, height, math.ceil(args.seconds * 30))
            for sources in args.sources:
                for objects in args.objects:
                    before, decode_cpu_before = decode_only(clip, sources)
                    runs = {
                        motion: [pipeline_run(clip, sources, objects, sink, motion) for _ in range(args.repeat)]
                        for motion in args.camera_motion
                    }
                    after, decode_cpu_after = decode_only(clip, sources)
                    decode_cpu = (decode_cpu_before + decode_cpu_after) / 2
                    decode = (before + after) / 2
                    for motion, motion_runs in runs.items():
                        fps, busy, frames, cpu_ms = max(motion_runs, key=lambda r: r[0])
                        case = {
                            "size": size,
                            "objects": objects,
                            "sources": sources,
                            "camera_motion": motion,
                            "frames": frames,
                            "decode_fps": round(decode, 1),
                            "pipeline_fps": round(fps, 1),
                            "ratio": round(fps / decode, 2),
                            "decode_cpu_ms_per_frame": round(decode_cpu, 2),
                            # load-independent: the ratio if CPU were the only limit (no GIL, no waits)
                            "cpu_ratio": round(decode_cpu / cpu_ms["process"], 2),
                            "busy": {name: round(share, 2) for name, share in busy.items()},
                            "cpu_ms_per_frame": {name: round(ms, 2) for name, ms in cpu_ms.items()},
                        }
                        out["cases"].append(case)
                        shares = " ".join(
                            f"{name} {100 * share:.0f}% ({cpu_ms.get(name, 0):.1f} ms)" for name, share in busy.items()
                        )
                        print(
                            f"{size:>10} {objects:>7} {sources:>7} {motion:>6} {decode:>10.1f} {fps:>12.1f} "
                            f"{fps / decode:>6.2f} {decode_cpu:>15.1f} | {cpu_ms['process']:>13.1f} "
                            f"{case['cpu_ratio']:>9.2f}  {shares}",
                            flush=True,
                        )
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
