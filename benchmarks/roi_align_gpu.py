"""Every GPU check and benchmark of the RoIAlign kernel, in one run.

    python benchmarks/roi_align_gpu.py [--out results.json]      # on a CUDA machine with CuPy
    python benchmarks/roi_align_gpu.py --smoke                   # CPU dry run of the same script (host backend)

1. Correctness of the CuPy kernel against torchvision's CUDA op (single level, fused multi-level, fp32/fp16/bf16,
   forward and backward) and bit-exactness against torchvision's CPU op (our build has no FMA contraction).
2. Median CUDA-event time of torchvision's MultiScaleRoIAlign vs ours, forward and forward+backward:
   box head (1000 RoIs per image, 256 channels, 7x7, batch 1 and 8, 800x1333 input) and mask head (100 RoIs per
   image, 14x14), fp32, fp16 and bf16 (half features; torchvision runs under autocast of that dtype, as in a
   mixed-precision model).
3. Mask R-CNN R50-FPN (random weights, 800x1333) latency with each pooler, fp32 and fp16 autocast, and whether
   the two poolers give the same detections.

Needs only torch, torchvision, numpy and CuPy (no av/redis/pycocotools). Prints a report and writes JSON
(--out, default $OUT/roi_align_gpu.json when $OUT is set). Exit code 1 when a correctness check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kernels import MultiScaleRoIAlign, roi_align, swap_poolers

NAMES = ["0", "1", "2", "3"]


class Run:
    """Settings of one run: the real GPU run, or the CPU smoke run that exercises the same code paths."""

    def __init__(self, smoke: bool) -> None:
        self.smoke = smoke
        self.device = torch.device("cpu" if smoke else "cuda")
        self.backend = "host" if smoke else "cupy"
        self.image = (64, 96) if smoke else (800, 1333)
        self.channels = 4 if smoke else 256
        self.box_rois = 16 if smoke else 1000
        self.mask_rois = 4 if smoke else 100
        self.batches = (1, 2) if smoke else (1, 8)
        self.warmup = 0 if smoke else 10
        self.iters = 1 if smoke else 50
        self.model_iters = 1 if smoke else 20
        self.failures: list[str] = []
        self.results: dict = {"checks": [], "poolers": [], "model": []}

    def check(self, name: str, ok: bool, detail: str) -> None:
        print(f"  [{'PASS' if ok else 'FAIL'}] {name}: {detail}")
        self.results["checks"].append({"name": name, "ok": ok, "detail": detail})
        if not ok:
            self.failures.append(name)

    def median_ms(self, fn: Callable[[], object], iters: int | None = None) -> float:
        iters = iters or self.iters
        for _ in range(self.warmup):
            fn()
        times = []
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            for _ in range(iters):
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end))
        else:
            for _ in range(iters):
                t0 = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t0) * 1000)
        return statistics.median(times)


def fpn_features(run: Run, batch: int, dtype: torch.dtype, generator: torch.Generator) -> OrderedDict:
    """P2-P5 for a batch padded to a multiple of 32, as torchvision's GeneralizedRCNNTransform produces."""
    height, width = (-(-s // 32) * 32 for s in run.image)
    features = OrderedDict()
    for level, stride in enumerate((4, 8, 16, 32)):
        shape = (batch, run.channels, height // stride, width // stride)
        features[str(level)] = torch.randn(shape, generator=generator, device=run.device).to(dtype)
    return features


def proposals(run: Run, count: int, batch: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Box-like proposals: centres anywhere in the image, sides log-uniform 8..700 px, clipped to the image."""
    height, width = run.image
    boxes = []
    for _ in range(batch):
        centre = torch.rand(count, 2, generator=generator, device=run.device) * torch.tensor(
            [width, height], device=run.device
        )
        side = 8 * 2 ** (torch.rand(count, 2, generator=generator, device=run.device) * 6.45)
        b = torch.cat([centre - side / 2, centre + side / 2], dim=1)
        b[:, 0::2] = b[:, 0::2].clamp(0, width)
        b[:, 1::2] = b[:, 1::2].clamp(0, height)
        boxes.append(b)
    return boxes


def max_relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).abs().max() / b.float().abs().max().clamp_min(1e-12)).item()


def check_correctness(run: Run) -> None:
    print("\n## Correctness")
    g = torch.Generator(device=run.device).manual_seed(0)
    features = torch.randn(2, 16, 40, 56, generator=g, device=run.device)
    xy = torch.rand(300, 2, generator=g, device=run.device) * 260 - 20
    wh = torch.rand(300, 2, generator=g, device=run.device) * 150
    ids = torch.randint(0, 2, (300, 1), generator=g, device=run.device).float()
    rois = torch.cat([ids, xy, xy + wh], dim=1)
    rois[::10, 3:] = rois[::10, 1:3]  # degenerate boxes
    for aligned in (False, True):
        for sampling_ratio in (-1, 0, 2):
            args = ((7, 7), 0.25, sampling_ratio, aligned)
            ours = roi_align(features, rois, *args, backend=run.backend)
            reference = torchvision.ops.roi_align(features, rois, *args)
            cpu = torchvision.ops.roi_align(features.cpu(), rois.cpu(), *args)
            name = f"roi_align fp32 aligned={aligned} sampling_ratio={sampling_ratio}"
            diff = (ours - reference).abs().max().item()
            run.check(f"{name} vs torchvision {run.device.type}", diff <= 1e-5, f"max abs diff {diff:.2e}")
            run.check(f"{name} bit-exact vs torchvision cpu", torch.equal(ours.cpu(), cpu), "torch.equal")
    for dtype in (torch.float16, torch.bfloat16):
        ours = roi_align(features.to(dtype), rois, 7, 0.25, 2, True, backend=run.backend)
        expected = torchvision.ops.roi_align(features.to(dtype).float().cpu(), rois.cpu(), 7, 0.25, 2, True)
        same = torch.equal(ours.cpu(), expected.to(dtype))
        run.check(f"roi_align {dtype} = fp32 result rounded once", same, "torch.equal vs torchvision cpu fp32")

    leaf = features.clone().requires_grad_(True)
    reference_leaf = features.clone().requires_grad_(True)
    grad = torch.randn(300, 16, 7, 7, generator=g, device=run.device)
    roi_align(leaf, rois, 7, 0.25, 2, False, backend=run.backend).backward(grad)
    torchvision.ops.roi_align(reference_leaf, rois, 7, 0.25, 2, False).backward(grad)
    rel = max_relative(leaf.grad, reference_leaf.grad)
    run.check("roi_align backward vs torchvision autograd", rel <= 1e-5, f"max relative diff {rel:.2e}")

    x = fpn_features(run, 2, torch.float32, g)
    boxes = proposals(run, 200, 2, g)
    shapes = [run.image] * 2
    for size in (7, 14):
        ours = MultiScaleRoIAlign(NAMES, size, 2, backend=run.backend)(x, boxes, shapes)
        reference = torchvision.ops.MultiScaleRoIAlign(NAMES, size, 2)(x, boxes, shapes)
        cpu = torchvision.ops.MultiScaleRoIAlign(NAMES, size, 2)(
            OrderedDict((k, v.cpu()) for k, v in x.items()), [b.cpu() for b in boxes], shapes
        )
        diff = (ours - reference).abs().max().item()
        differing = (ours.cpu() != cpu).flatten(1).any(1).sum().item()
        run.check(f"MultiScaleRoIAlign {size}x{size} fp32 vs torchvision", diff <= 1e-5, f"max abs diff {diff:.2e}")
        run.check(
            f"MultiScaleRoIAlign {size}x{size} bit-exact vs torchvision cpu", differing == 0, f"{differing} RoIs differ"
        )
    x16 = OrderedDict((k, v.half()) for k, v in x.items())
    ours = MultiScaleRoIAlign(NAMES, 7, 2, backend=run.backend)(x16, boxes, shapes)
    with torch.autocast(run.device.type, dtype=torch.float16, enabled=True):
        reference = torchvision.ops.MultiScaleRoIAlign(NAMES, 7, 2)(x16, boxes, shapes)
    diff = (ours.float() - reference.float()).abs().max().item()
    run.check("MultiScaleRoIAlign fp16 vs torchvision (autocast)", diff <= 1e-2, f"max abs diff {diff:.2e}")

    leaves = [OrderedDict((k, v.clone().requires_grad_(True)) for k, v in x.items()) for _ in range(2)]
    grad = torch.randn(400, x["0"].shape[1], 7, 7, generator=g, device=run.device)
    MultiScaleRoIAlign(NAMES, 7, 2, backend=run.backend)(leaves[0], boxes, shapes).backward(grad)
    torchvision.ops.MultiScaleRoIAlign(NAMES, 7, 2)(leaves[1], boxes, shapes).backward(grad)
    rel = max(max_relative(leaves[0][k].grad, leaves[1][k].grad) for k in NAMES)
    run.check("MultiScaleRoIAlign backward vs torchvision autograd", rel <= 1e-5, f"max relative diff {rel:.2e}")


def time_pooler(
    run: Run,
    pooler: torch.nn.Module,
    features: OrderedDict,
    boxes: list[torch.Tensor],
    shapes: list[tuple[int, int]],
    mode: str,
    autocast: torch.dtype | None,
) -> float:
    """Median ms of one pooler call (and its backward for mode "forward+backward")."""
    backward = mode != "forward"
    leaves = OrderedDict((k, v.clone().requires_grad_(backward)) for k, v in features.items())
    grad: list[torch.Tensor] = []

    def step() -> None:
        with torch.autocast(run.device.type, dtype=autocast or torch.float32, enabled=autocast is not None):
            out = pooler(leaves, boxes, shapes)
        if backward:
            for leaf in leaves.values():
                leaf.grad = None
            if not grad:
                grad.append(torch.ones_like(out))
            out.backward(grad[0])

    with torch.enable_grad() if backward else torch.no_grad():
        return run.median_ms(step)


def bench_poolers(run: Run) -> None:
    print("\n## MultiScaleRoIAlign: torchvision vs ours (median ms)")
    print("| head | batch | dtype | pass | torchvision | ours | speed-up |")
    print("|---|---|---|---|---|---|---|")
    g = torch.Generator(device=run.device).manual_seed(1)
    for head, size, rois_per_image in (("box", 7, run.box_rois), ("mask", 14, run.mask_rois)):
        for batch in run.batches:
            boxes = proposals(run, rois_per_image, batch, g)
            shapes = [run.image] * batch
            for dtype in (torch.float32, torch.float16, torch.bfloat16):
                x = fpn_features(run, batch, dtype, g)
                autocast = None if dtype == torch.float32 else dtype
                poolers = {
                    "torchvision": torchvision.ops.MultiScaleRoIAlign(NAMES, size, 2),
                    "ours": MultiScaleRoIAlign(NAMES, size, 2, backend=run.backend),
                }
                for mode in ("forward", "forward+backward"):
                    times = {
                        label: time_pooler(
                            run, pooler, x, boxes, shapes, mode, autocast if label == "torchvision" else None
                        )
                        for label, pooler in poolers.items()
                    }
                    speedup = times["torchvision"] / times["ours"]
                    dtype_name = str(dtype).removeprefix("torch.")
                    print(
                        f"| {head} {size}x{size}, {rois_per_image} RoIs/img | {batch} | {dtype_name} | {mode} | "
                        f"{times['torchvision']:.3f} | {times['ours']:.3f} | {speedup:.2f}x |"
                    )
                    run.results["poolers"].append(
                        {
                            "head": head,
                            "output_size": size,
                            "rois_per_image": rois_per_image,
                            "batch": batch,
                            "dtype": dtype_name,
                            "pass": mode,
                            "torchvision_ms": times["torchvision"],
                            "ours_ms": times["ours"],
                            "speedup": speedup,
                        }
                    )


def compare_detections(a: list[dict], b: list[dict]) -> tuple[bool, str]:
    """Same detections: same count and labels per image, boxes within 1e-3 px, scores within 1e-4."""
    details = []
    same = True
    for i, (da, db) in enumerate(zip(a, b, strict=True)):
        if len(da["labels"]) != len(db["labels"]) or not torch.equal(da["labels"], db["labels"]):
            same = False
            details.append(f"image {i}: {len(da['labels'])} vs {len(db['labels'])} detections / labels differ")
            continue
        box = (da["boxes"] - db["boxes"]).abs().max().item() if len(da["boxes"]) else 0.0
        score = (da["scores"] - db["scores"]).abs().max().item() if len(da["scores"]) else 0.0
        exact = all(torch.equal(da[k], db[k]) for k in da)
        same &= box <= 1e-3 and score <= 1e-4
        details.append(
            f"image {i}: {len(da['labels'])} dets, max box diff {box:.1e}, score diff {score:.1e}, "
            f"bit-identical={exact}"
        )
    return same, "; ".join(details)


def bench_model(run: Run) -> None:
    print("\n## Mask R-CNN R50-FPN (random weights), median ms per batch")
    torch.manual_seed(0)
    # Smoke: few proposals and detections, or the CPU spends its time in the mask head's convolutions.
    kwargs = {"min_size": 64, "max_size": 96, "rpn_post_nms_top_n_test": 50, "box_detections_per_img": 10}
    kwargs = kwargs if run.smoke else {}
    model = torchvision.models.detection.maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, **kwargs)
    model = model.eval().to(run.device)
    g = torch.Generator(device=run.device).manual_seed(2)
    images = [torch.rand(3, *run.image, generator=g, device=run.device)]
    torchvision_poolers = (model.roi_heads.box_roi_pool, model.roi_heads.mask_roi_pool)
    for precision in ("fp32", "fp16"):
        autocast = precision == "fp16" and run.device.type == "cuda"
        outputs, times = {}, {}
        for pooler in ("torchvision", run.backend):
            # torchvision's own modules for the baseline, not our module's torchvision backend.
            model.roi_heads.box_roi_pool, model.roi_heads.mask_roi_pool = torchvision_poolers
            if pooler != "torchvision":
                swap_poolers(model, backend=pooler)

            def infer(autocast: bool = autocast) -> list[dict]:
                with torch.inference_mode(), torch.autocast(run.device.type, enabled=autocast):
                    return model(images)

            outputs[pooler] = infer()
            times[pooler] = run.median_ms(infer, iters=run.model_iters)
        speedup = times["torchvision"] / times[run.backend]
        same, detail = compare_detections(outputs["torchvision"], outputs[run.backend])
        print(
            f"  {precision}: torchvision pooler {times['torchvision']:.2f} ms, ours {times[run.backend]:.2f} ms "
            f"({speedup:.3f}x)"
        )
        run.check(f"Mask R-CNN {precision} same detections with either pooler", same, detail)
        run.results["model"].append(
            {
                "precision": precision,
                "torchvision_ms": times["torchvision"],
                "ours_ms": times[run.backend],
                "speedup": speedup,
                "same_detections": same,
                "detail": detail,
            }
        )


def report_kernel_build(run: Run) -> None:
    if run.backend == "cupy":
        from kernels.cupy_backend import cupy_launcher

        run.results["environment"]["kernel_build"] = cupy_launcher().compiled_by
        print(f"  kernel build: {cupy_launcher().compiled_by}")


def environment(run: Run) -> dict:
    info = {"torch": torch.__version__, "torchvision": torchvision.__version__, "python": platform.python_version()}
    if run.device.type == "cuda":
        import cupy

        info |= {"gpu": torch.cuda.get_device_name(), "cupy": cupy.__version__, "cuda": torch.version.cuda}
    else:
        info |= {"cpu": platform.processor() or platform.machine(), "smoke": True}
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny CPU run with the host backend (tests the script)")
    parser.add_argument("--out", type=Path, help="JSON results file (default $OUT/roi_align_gpu.json if $OUT is set)")
    parser.add_argument("--skip-model", action="store_true", help="skip the Mask R-CNN latency part")
    args = parser.parse_args(argv)
    run = Run(args.smoke)
    if not args.smoke and not torch.cuda.is_available():
        print("roi_align_gpu: no CUDA device; use --smoke for a CPU dry run", file=sys.stderr)
        return 2
    run.results["environment"] = environment(run)
    print("# RoIAlign kernel GPU checks and benchmark")
    print("  " + ", ".join(f"{k}={v}" for k, v in run.results["environment"].items()))
    print(f"  command: python {' '.join(sys.argv)}")
    sections = [check_correctness, report_kernel_build, bench_poolers]
    if not args.skip_model:
        sections.append(bench_model)
    for section in sections:
        # One GPU run must report as much as it can: a crash in one part is a failed check, not the end.
        try:
            section(run)
        except Exception:
            run.check(f"{section.__name__} ran without an exception", False, traceback.format_exc())
    out = args.out or (Path(os.environ["OUT"]) / "roi_align_gpu.json" if os.environ.get("OUT") else None)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(run.results, indent=2))
        print(f"\nresults written to {out}")
    if run.failures:
        print(f"\nFAILED checks: {', '.join(run.failures)}")
        return 1
    print("\nall checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
