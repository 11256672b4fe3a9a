"""What the COCO architectures cost on a CPU, per knob: input size (`model.min_size`) and detections per frame.

    nice -n 10 .venv/bin/python benchmarks/coco_cpu_speed.py [--arch resnet50_fpn_coco] [--sizes 360,480,600,800]
                                                             [--detections 100,10] [--threads 2] [--repeats 3]

Random weights of the real architecture: the speed of a network does not depend on its weight values, only on its
shapes and on how many detections reach the mask head. So the number of detections is forced: the box head's own
post-processing runs as usual (decoding, softmax, score threshold 0.5, NMS), then its output is replaced by the top
N proposals, which go through the mask head and the mask paste. N = 100 is torchvision's cap (a crowded frame, or a
low threshold), a small N is a quiet scene with a sensible threshold. (Forcing N with a score threshold of 0
instead would time NMS over 1000 proposals x 90 classes, which a trained model with a real threshold never does.) Input: one 640x360 synthetic still (pixel values do not change the
cost when the detection count is forced). Whole model call (resize, backbone, RPN, heads, mask paste), one frame per
call, median of `--repeats` calls after one warm-up. Accuracy is not measured here (random weights have none).
Baseline, measured in the same run: the bundled model's architecture (`slim_resnet_fpn_light`, its 360-px input)
with the same forced detection counts; the `x bundled` column is the COCO model's time over the baseline's.

Two clocks: wall seconds, and CPU seconds of this process (`time.process_time`, all threads). On a shared, loaded
machine the wall time measures the other jobs as much as the model; the CPU time is what the model itself needs,
and with `--threads 1` it is close to the wall time the same call takes on an idle core.
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

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from maskrcnn import build_model


def frame_640x360() -> torch.Tensor:
    import tempfile

    import numpy as np
    from PIL import Image

    from synth import render_dataset

    directory = render_dataset(Path(tempfile.mkdtemp()) / "frames", images=1, seed=424242, size=(640, 360))
    path = sorted((directory / "images").glob("*.jpg"))[0]
    return torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1).float().div(255)


def force_detections(heads: torch.nn.Module, count: int) -> None:
    """After the real post-processing, keep the first `count` proposals (the RPN's best) as the detections."""
    original = type(heads).postprocess_detections.__get__(heads)

    def postprocess(class_logits, box_regression, proposals, image_shapes):
        original(class_logits, box_regression, proposals, image_shapes)  # its real cost; random weights keep ~nothing
        boxes = [p[:count] for p in proposals]
        return boxes, [torch.ones(len(b)) for b in boxes], [torch.ones(len(b), dtype=torch.int64) for b in boxes]

    heads.postprocess_detections = postprocess


def median_seconds(model: torch.nn.Module, frame: torch.Tensor, repeats: int) -> tuple[float, float, float]:
    """(median wall seconds, median CPU seconds, mean detections) per call."""
    with torch.inference_mode():
        model([frame])  # warm-up: allocator, lazy initialisation
        wall, cpu, detections = [], [], []
        for _ in range(repeats):
            start, start_cpu = time.perf_counter(), time.process_time()
            (out,) = model([frame])
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
            detections.append(len(out["boxes"]))
    return statistics.median(wall), statistics.median(cpu), statistics.mean(detections)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="resnet50_fpn_coco")
    parser.add_argument("--sizes", default="360,480,600,800", help="model.min_size values (shorter side, px)")
    parser.add_argument("--max-size", type=int, default=1333, help="model.max_size (longer side cap, px)")
    parser.add_argument("--detections", default="100,10", help="forced detections per frame")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    frame = frame_640x360()
    print(f"# coco_cpu_speed  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  {platform.node()}  {platform.processor() or ''}")
    print(f"# command: {' '.join(sys.argv)}")
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, frame {tuple(frame.shape)}, random weights")
    print(f"# load average (1/5/15 min): {' '.join(f'{v:.1f}' for v in os.getloadavg())} on {os.cpu_count()} CPUs")
    print("| arch | min_size | model input | detections | wall s/frame | CPU s/frame | x bundled (CPU) |")
    print("|---|---|---|---|---|---|---|")
    counts = [int(n) for n in args.detections.split(",")]
    baseline: dict[int, float] = {}
    runs = [("slim_resnet_fpn_light", 360, 640)] + [(args.arch, int(s), args.max_size) for s in args.sizes.split(",")]
    for arch, size, max_size in runs:
        model = build_model(arch, min_size=size, max_size=max_size).eval()
        model.roi_heads.score_thresh = 0.5  # model.score_threshold's default
        with torch.inference_mode():
            resized = model.transform([frame])[0].image_sizes[0]
        for count in counts:
            force_detections(model.roi_heads, count)
            wall, cpu, got = median_seconds(model, frame, args.repeats)
            baseline.setdefault(count, cpu)
            print(
                f"| {arch} | {size} | {resized[1]}x{resized[0]} | {got:.0f} | {wall:.2f} | {cpu:.2f} "
                f"| {cpu / baseline[count]:.1f} |",
                flush=True,
            )
    print(f"# load average after: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
