"""Mask paste speed: our batched paste vs torchvision's per-detection `paste_masks_in_image`, same inputs.

    python benchmarks/pipeline_masks.py [--size 640x360] [--repeat 15] [--device cpu] [--threads 1 2]

Inputs: N smooth 28x28 mask probability maps (like a mask head's) on random boxes of 12-200 px; both paths end with
thresholded full-frame bool masks. Timings alternate between the two paths; medians are reported with their ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torchvision.models.detection.roi_heads import paste_masks_in_image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kernels.mask_paste import paste_masks


def inputs(n: int, width: int, height: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(n)
    m = 28
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, m), torch.linspace(-1, 1, m), indexing="ij")
    centres = torch.rand(n, 2, generator=gen) * 0.6 - 0.3
    probs = torch.sigmoid(8 * (0.7 - ((xx - centres[:, :1, None]) ** 2 + (yy - centres[:, 1:, None]) ** 2).sqrt()))
    x1 = torch.rand(n, generator=gen) * (width - 40)
    y1 = torch.rand(n, generator=gen) * (height - 40)
    size = torch.rand(n, 2, generator=gen) * 188 + 12
    boxes = torch.stack([x1, y1, (x1 + size[:, 0]).clamp(max=width), (y1 + size[:, 1]).clamp(max=height)], 1)
    return probs[:, None].to(device), boxes.to(device)


def timed(fn, device: torch.device) -> float:
    started = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch CPU thread counts to try")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    device = torch.device(args.device)
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for n in (10, 50, 100):
            probs, boxes = inputs(n, width, height, device)
            ours_t, theirs_t = [], []
            for _ in range(args.repeat):
                ours_t.append(
                    timed(lambda p=probs, b=boxes: paste_masks(p, b, height, width, 0.5, clip_to_box=False), device)
                )
                theirs_t.append(
                    timed(lambda p=probs, b=boxes: paste_masks_in_image(p, b, (height, width)) > 0.5, device)
                )
            ours, theirs = statistics.median(ours_t), statistics.median(theirs_t)
            rows.append(
                {
                    "torch_threads": threads,
                    "detections": n,
                    "torchvision_ms": round(theirs * 1000, 2),
                    "batched_ms": round(ours * 1000, 2),
                    "speedup": round(theirs / ours, 2),
                }
            )
    print(json.dumps({"size": args.size, "device": str(device), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
