"""Frames/s of the whole Mask R-CNN call (resize, backbone, RPN, heads, mask paste) at 640x360 on the CPU.

    nice -n 10 .venv/bin/python benchmarks/model_speed.py [--weights FILE] [--frames DIR] [--threads 2]

Realistic input: synthetic stills (a `maskstream synth --dataset` dir, or a clip dir rendered here). The model is
the bundled one unless `--weights`/`--arch` say otherwise; with random weights (`--arch NAME --random`) the number
of detections is capped at `--detections` so the heads do a typical amount of work. A second measurement forces
50 detections per frame (score threshold 0, detections_per_img 50): the heads' worst ordinary case.
Median over `--repeats` calls after `--warmup` calls, one frame per call (a live camera's latency path).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from maskrcnn import build_model, load_model


def load_frames(directory: Path | None, count: int) -> list[torch.Tensor]:
    from PIL import Image

    if directory is None:
        import tempfile

        from synth import render_dataset

        directory = render_dataset(Path(tempfile.mkdtemp()) / "frames", images=count, seed=424242, size=(640, 360))
    paths = sorted((directory / "images").glob("*.jpg"))[:count]
    if not paths:
        raise SystemExit(f"no images under {directory}/images")
    return [torch.from_numpy(np.asarray(Image.open(p).convert("RGB"))).permute(2, 0, 1).float().div(255) for p in paths]


def time_calls(model: torch.nn.Module, frames: list[torch.Tensor], warmup: int, repeats: int) -> tuple[float, float]:
    """(median seconds per call, mean detections per frame)."""
    detections = []
    with torch.inference_mode():
        for i in range(warmup):
            model([frames[i % len(frames)]])
        seconds = []
        for i in range(repeats):
            frame = frames[i % len(frames)]
            start = time.perf_counter()
            (out,) = model([frame])
            seconds.append(time.perf_counter() - start)
            detections.append(len(out["boxes"]))
    return statistics.median(seconds), float(np.mean(detections))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, help="weights file (default: the bundled model)")
    parser.add_argument("--arch", help="architecture (with --random: build it with random weights)")
    parser.add_argument("--random", action="store_true", help="random weights (speed of an untrained model)")
    parser.add_argument("--detections", type=int, default=20, help="detections cap per frame with --random")
    parser.add_argument("--frames", type=Path, help="a synth --dataset dir (default: render 16 stills)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    if args.random:
        if not args.arch:
            parser.error("--random needs --arch")
        model = build_model(args.arch).eval()
        model.roi_heads.detections_per_img = args.detections
        name = f"{args.arch} (random weights, <= {args.detections} detections)"
    else:
        loaded = load_model(args.weights, arch=args.arch)
        model, name = loaded.model, f"{loaded.arch} ({loaded.weights})"
    frames = load_frames(args.frames, 16)

    print(f"# model_speed  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  {platform.node()}  {platform.processor() or ''}")
    print(f"# command: {' '.join(sys.argv)}")
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, frames {tuple(frames[0].shape)}")
    # the machine is shared: the load says how much of the CPU this measurement really had
    print(f"# load average (1/5/15 min): {' '.join(f'{v:.1f}' for v in os.getloadavg())} on {os.cpu_count()} CPUs")
    print(f"model: {name}, {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters")
    seconds, dets = time_calls(model, frames, args.warmup, args.repeats)
    print(
        f"whole model call: {1 / seconds:6.2f} frames/s  ({seconds * 1000:.0f} ms median, {dets:.1f} detections/frame)"
    )

    heads = model.roi_heads
    saved = heads.score_thresh, heads.detections_per_img, heads.nms_thresh
    heads.score_thresh, heads.detections_per_img, heads.nms_thresh = 0.0, 50, 1.0
    seconds, dets = time_calls(model, frames, 1, max(5, args.repeats // 2))
    heads.score_thresh, heads.detections_per_img, heads.nms_thresh = saved
    print(
        f"forced 50 detections: {1 / seconds:6.2f} frames/s  ({seconds * 1000:.0f} ms median, {dets:.1f} detections/frame)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
