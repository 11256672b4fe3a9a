"""One GPU check: every GPU measurement of maskstream in one run, under 6 minutes on an H100/H200.

    bash benchmarks/gpu_check.sh                       # on the GPU machine (installs the carried wheels first)
    python benchmarks/gpu_check.py --smoke             # CPU, tiny sizes: the same code paths in well under a minute

1. kernel: our RoIAlign vs torchvision (benchmarks/roi_align_gpu.py): correctness (fp32/fp16/bf16, forward and
   backward) and MultiScaleRoIAlign speed (box head 1000 RoIs/image at batch 1 and 8, mask head 100 RoIs/image).
2. scale: 8k RoIs x 256 channels against torchvision, forward and backward, also called on a non-default CUDA
   stream right after that stream wrote the features, and from a worker thread with its own stream.
3. detector: R50-FPN `Detector.detect` at 720p, batch 1/4/8/16, torchvision's pooler vs ours, fp32/fp16/bf16
   (random weights, box predictor biased so every image has 100 detections); detections counted and matched.
4. pipeline: the whole pipeline (batcher → inference → masks → tracker → events, no Redis: a counting sink) at
   720p with the zero-cost stand-in model and with R50-FPN; realised batch size, masks-stage ms per frame.

Markdown tables on stdout; JSON to --out (default $OUT/gpu_check.json when $OUT is set). Exit code 1 when any
correctness check fails or a section breaks (a broken section is reported and the others still run).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch
import torchvision

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.roi_align_gpu import (
    NAMES,
    Run,
    bench_poolers,
    check_correctness,
    environment,
    fpn_features,
    max_relative,
    proposals,
    report_kernel_build,
)
from kernels import MultiScaleRoIAlign, swap_poolers
from pipeline.config import ModelConfig
from pipeline.items import RawDetections
from stages.inference import Detector


class CheckRun(Run):
    """The sizes of the GPU run, or of the CPU smoke run that goes through the same code."""

    def __init__(self, smoke: bool) -> None:
        super().__init__(smoke)
        self.scale_rois = 400 if smoke else 8000
        self.scale_channels = 8 if smoke else 256
        self.frame = (72, 128) if smoke else (720, 1280)
        self.detect_batches = (2,) if smoke else (1, 4, 8, 16)
        self.precisions = ("fp32", "bf16") if smoke else ("fp32", "fp16", "bf16")
        self.detections = 2 if smoke else 100  # CPU: the mask head costs ~1 GFLOP per detection
        self.detect_warmup = 0 if smoke else 3
        self.detect_iters = 1 if smoke else 10
        self.pipeline_frames = 8 if smoke else 300
        self.results |= {"scale": [], "detector": [], "pipeline": []}

    def skip(self, name: str, why: str) -> None:
        """A check this run cannot make (e.g. CUDA streams on the CPU): said, never counted as passed."""
        print(f"  [SKIP] {name}: {why}")
        self.results["checks"].append({"name": name, "ok": None, "detail": why})


# --- 2. correctness at scale ----------------------------------------------------------------------------------


def check_at_scale(run: CheckRun) -> None:
    print(f"\n## Correctness at scale ({run.scale_rois} RoIs, {run.scale_channels} channels)")
    cuda = run.device.type == "cuda"
    g = torch.Generator(device=run.device).manual_seed(3)
    channels, run.channels = run.channels, run.scale_channels
    try:
        features = fpn_features(run, 2, torch.float32, g)
    finally:
        run.channels = channels
    boxes = proposals(run, run.scale_rois // 2, 2, g)
    shapes = [run.image] * 2
    ours = MultiScaleRoIAlign(NAMES, 7, 2, backend=run.backend)
    reference = torchvision.ops.MultiScaleRoIAlign(NAMES, 7, 2)(features, boxes, shapes)
    on_default = ours(features, boxes, shapes)
    diff = (on_default - reference).abs().max().item()
    run.check("forward at scale vs torchvision", diff <= 1e-5, f"max abs diff {diff:.2e}")

    leaves = [OrderedDict((k, v.clone().requires_grad_(True)) for k, v in features.items()) for _ in range(2)]
    grad = torch.randn(reference.shape, generator=g, device=run.device)
    ours(leaves[0], boxes, shapes).backward(grad)
    torchvision.ops.MultiScaleRoIAlign(NAMES, 7, 2)(leaves[1], boxes, shapes).backward(grad)
    rel = max(max_relative(leaves[0][k].grad, leaves[1][k].grad) for k in NAMES)
    run.check("backward at scale vs torchvision autograd", rel <= 1e-5, f"max relative diff {rel:.2e}")

    if cuda:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            # written on the side stream just before the call: a kernel launched on another stream would race it
            fresh = OrderedDict((k, v * 1.0) for k, v in features.items())
            out = ours(fresh, boxes, shapes)
        side.synchronize()
        run.check("non-default stream gives the same result", torch.equal(out, on_default), "torch.equal")
    else:
        run.skip("non-default stream gives the same result", "no CUDA streams in a CPU smoke run")

    outputs: list[torch.Tensor] = []
    errors: list[str] = []

    def worker() -> None:
        try:
            stream = torch.cuda.Stream() if cuda else None
            with torch.cuda.stream(stream) if stream is not None else nullcontext():
                if stream is not None:
                    stream.wait_stream(torch.cuda.default_stream())
                result = ours(features, boxes, shapes)
            if stream is not None:
                stream.synchronize()
            outputs.append(result)
        except Exception:
            errors.append(traceback.format_exc())

    thread = threading.Thread(target=worker, name="gpu-check-worker")
    thread.start()
    thread.join()
    same = not errors and torch.equal(outputs[0], on_default)
    run.check("worker thread (own stream) gives the same result", same, errors[0] if errors else "torch.equal")
    run.results["scale"].append(
        {"rois": run.scale_rois, "channels": run.scale_channels, "forward_diff": diff, "backward_rel": rel}
    )


# --- 3. R50-FPN Detector.detect -------------------------------------------------------------------------------


def r50_model(run: CheckRun) -> torch.nn.Module:
    """torchvision's R50-FPN Mask R-CNN, random weights, detections forced (`force_detections`); smoke: tiny
    input and few proposals (a CPU can run it)."""
    kwargs = {"min_size": 64, "max_size": 128, "rpn_post_nms_top_n_test": 50} if run.smoke else {}
    torch.manual_seed(0)
    model = torchvision.models.detection.maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, **kwargs)
    model = model.eval().to(run.device)
    g = torch.Generator(device=run.device).manual_seed(5)
    force_detections(model, [torch.rand(3, *run.frame, generator=g, device=run.device)])
    return model


# Score threshold that goes with `force_detections`: about 60 % of the proposals pass it, NMS and the cap decide.
FORCED_SCORE_THRESHOLD = 0.05


def force_detections(model: torch.nn.Module, images: list[torch.Tensor], label: int = 1) -> None:
    """Make a random-weights model detect like a trained one on a busy scene, with well separated scores.

    Random weights give every proposal arbitrary class logits (std ~8): scores pile up at exactly 1.0 for random
    classes, and the top-k cut among ties would differ between two poolers for no real reason. Here the box
    classifier scores one class only, from a random direction of the box features, standardised (on one
    calibration image) to mean 2 and std 2 against 90 classes at logit 0: scores spread over (0.01, 0.99), so
    rankings differ between poolers only where their features really differ. The score still comes from the
    pooled features, so the detections depend on the pooler, as they should in this check.
    """
    classifier = model.roi_heads.box_predictor.cls_score
    captured: list[torch.Tensor] = []
    handle = classifier.register_forward_hook(lambda _module, inputs, _output: captured.append(inputs[0].clone()))
    try:
        with torch.inference_mode():
            model(images)
    finally:
        handle.remove()
    features = captured[0].float()
    generator = torch.Generator().manual_seed(6)
    direction = torch.randn(features.shape[1], generator=generator).to(features.device)
    projection = features @ direction
    scale = 2.0 / max(projection.std().item(), 1e-12)
    with torch.no_grad():
        classifier.weight.zero_()
        classifier.bias.zero_()
        classifier.weight[label].copy_(direction * scale)
        classifier.bias[label] = 2.0 - scale * projection.mean().item()


def class_names(count: int) -> list[str]:
    return ["background", *(f"class{i}" for i in range(1, count))]


def match_detections(a: list[RawDetections], b: list[RawDetections]) -> tuple[int, int, int]:
    """(detections in a, in b, matched): same label and box IoU ≥ 0.99, one to one."""
    total_a = total_b = matched = 0
    for da, db in zip(a, b, strict=True):
        total_a, total_b = total_a + len(da.scores), total_b + len(db.scores)
        if len(da.scores) and len(db.scores):
            iou = torchvision.ops.box_iou(da.boxes.float(), db.boxes.float())
            good = (iou >= 0.99) & (da.labels[:, None] == db.labels[None, :])
            matched += min(int(good.any(1).sum()), int(good.any(0).sum()))
    return total_a, total_b, matched


# fp32 must give the same detections with either pooler; in half precision the features carry ~3 significant
# digits, so boxes move a little and near-ties at the NMS/top-k cut can swap: a lower floor that still catches a
# broken pooler (which matches ~0).
MATCH_FLOOR = {"fp32": 0.99, "fp16": 0.75, "bf16": 0.75}


def bench_detector(run: CheckRun) -> None:
    height, width = run.frame
    print(f"\n## R50-FPN Detector.detect at {width}x{height}, {run.detections} detections/image (median ms per batch)")
    print(
        "| precision | batch | torchvision pooler | ours | speed-up | frames/s (ours) | detections tv / ours | matched |"
    )
    print("|---|---|---|---|---|---|---|---|")
    if run.device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: as the inference stage does for files
    model = r50_model(run)
    torchvision_poolers = (model.roi_heads.box_roi_pool, model.roi_heads.mask_roi_pool)
    names = class_names(model.roi_heads.box_predictor.cls_score.out_features)
    g = torch.Generator(device=run.device).manual_seed(4)
    frames = [torch.rand(3, height, width, generator=g, device=run.device) for _ in range(max(run.detect_batches))]
    for precision in run.precisions:
        cfg = ModelConfig(
            device=run.device.type,
            precision=precision,
            score_threshold=FORCED_SCORE_THRESHOLD,
            max_detections=run.detections,
        )
        times: dict[tuple[str, int], float] = {}
        outputs: dict[tuple[str, int], list[RawDetections]] = {}
        for pooler in ("torchvision", "ours"):
            model.roi_heads.box_roi_pool, model.roi_heads.mask_roi_pool = torchvision_poolers
            if pooler == "ours":
                swap_poolers(model, backend=run.backend)
            detector = Detector.from_model(model, names, cfg, device=run.device, arch="r50-fpn (random, forced)")
            if not run.smoke:  # the inference stage's warm-up (not timed); the smoke run has it in section 4
                detector.warm_up(max(run.detect_batches), run.frame)
            for batch in run.detect_batches:
                outputs[(pooler, batch)], times[(pooler, batch)] = timed_detect(run, detector, frames[:batch])
        for batch in run.detect_batches:
            tv, ours = times[("torchvision", batch)], times[("ours", batch)]
            n_tv, n_ours, matched = match_detections(outputs[("torchvision", batch)], outputs[("ours", batch)])
            floor = MATCH_FLOOR[precision]
            ok = n_tv > 0 and matched >= floor * max(n_tv, n_ours)
            print(
                f"| {precision} | {batch} | {tv:.2f} | {ours:.2f} | {tv / ours:.2f}x | {batch * 1000 / ours:.1f} | "
                f"{n_tv} / {n_ours} | {matched} |"
            )
            run.check(
                f"detect {precision} batch {batch}: same detections with either pooler",
                ok,
                f"{matched} of {max(n_tv, n_ours)} matched (floor {floor:.0%}; box IoU >= 0.99, same label)",
            )
            run.results["detector"].append(
                {
                    "precision": precision,
                    "batch": batch,
                    "torchvision_ms": tv,
                    "ours_ms": ours,
                    "speedup": tv / ours,
                    "frames_per_s_ours": batch * 1000 / ours,
                    "detections_torchvision": n_tv,
                    "detections_ours": n_ours,
                    "matched": matched,
                }
            )
    model.roi_heads.box_roi_pool, model.roi_heads.mask_roi_pool = torchvision_poolers


def timed_detect(run: CheckRun, detector: Detector, images: list[torch.Tensor]) -> tuple[list[RawDetections], float]:
    """The detections of the last call and the median ms of `detect_iters` calls after `detect_warmup` ones."""
    outputs: list[list[RawDetections]] = []

    def detect() -> None:
        outputs[:] = [detector.detect(images)]  # keep only the latest

    warmup, run.warmup = run.warmup, run.detect_warmup
    try:
        ms = run.median_ms(detect, iters=run.detect_iters)
    finally:
        run.warmup = warmup
    return outputs[-1], ms


# --- main -----------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny sizes, host kernel build (tests the script)")
    parser.add_argument("--out", type=Path, help="JSON results (default $OUT/gpu_check.json when $OUT is set)")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=("kernel", "scale", "detector", "pipeline"),
        help="run only these sections (default: all)",
    )
    args = parser.parse_args(argv)
    if not args.smoke and not torch.cuda.is_available():
        print("gpu_check: no CUDA device; use --smoke for the CPU dry run", file=sys.stderr)
        return 2
    run = CheckRun(args.smoke)
    run.results["environment"] = environment(run)
    print("# maskstream GPU check" + (" (CPU smoke run: tiny sizes, no GPU figures)" if args.smoke else ""))
    print("  " + ", ".join(f"{k}={v}" for k, v in run.results["environment"].items()))
    print(f"  command: python {' '.join(sys.argv)}")

    from benchmarks.gpu_check_pipeline import bench_pipeline  # needs the pipeline's packages (wheels on the GPU)

    sections: dict[str, list[Callable[[CheckRun], None]]] = {
        "kernel": [check_correctness, report_kernel_build, bench_poolers],
        "scale": [check_at_scale],
        "detector": [bench_detector],
        "pipeline": [bench_pipeline],
    }
    out = args.out or (Path(os.environ["OUT"]) / "gpu_check.json" if os.environ.get("OUT") else None)
    run.results["section_seconds"] = {}
    for name, parts in sections.items():
        if args.only and name not in args.only:
            continue
        started = time.perf_counter()
        for part in parts:
            # One GPU run must report as much as it can: a crash in one part is a failed check, not the end.
            try:
                part(run)
            except Exception:
                run.check(f"{part.__name__} ran without an exception", False, traceback.format_exc())
        seconds = time.perf_counter() - started
        run.results["section_seconds"][name] = seconds
        print(f"\n  ({name}: {seconds:.1f} s)")
        if out:  # after every section: a run stopped by its time limit still leaves what it measured
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(run.results, indent=2, default=str))
    if out:
        print(f"\nresults written to {out}")
    if run.failures:
        print(f"\nFAILED checks: {', '.join(run.failures)}")
        return 1
    print("\nall checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
