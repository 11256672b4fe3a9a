"""Tracker cost per frame, alone: CPU time of `MultiObjectTracker.step` on the pipeline ceiling's detections.

    python benchmarks/tracker_step.py [--sizes 1280x720 1920x1080] [--objects 5 30 100] [--frames 60]
        [--repeat 3] [--json FILE]

Frames are the ceiling benchmark's clip (`pipeline_ceiling.write_clip`, decoded to RGB), detections its zero-cost
stand-in model's (K moving objects) turned into box-local `Detections` by the masks stage's own code, all made
before timing. Then one thread tracks them, and its CPU time (`time.thread_time`, so other processes' load hardly
matters) is split into camera-motion estimation (`estimate_motion`, the part the tracker stage runs ahead in its
motion lane) and the rest of the step (prediction, association, lifecycle), for `camera_motion: auto` (the
default) and `off` (a static camera); a tracker without `estimate_motion` (before the split) counts it all as
the step. The best of `--repeat` passes counts. A digest of every step's tracks and
transitions is printed, so a change that claims to keep tracking results can be checked against the one before.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

import av
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.pipeline_ceiling import ZeroCostDetector, write_clip
from pipeline.config.tracker import TrackerConfig
from pipeline.items import Detections, Frame
from stages.masks import frame_detections
from tracking.tracker import MultiObjectTracker


def clip_frames(clip: Path, frames: int) -> list[Frame]:
    with av.open(str(clip)) as container:
        images = [f.to_ndarray(format="rgb24") for _, f in zip(range(frames), container.decode(video=0), strict=False)]
    return [Frame("bench", i, i / 30, 1000 + i / 30, image) for i, image in enumerate(images)]


def detections(frames: list[Frame], objects: int) -> list[Detections]:
    model = ZeroCostDetector(objects)
    out = []
    for frame in frames:
        (raw,) = model.detect([torch.from_numpy(frame.image).permute(2, 0, 1)])
        out.append(frame_detections(frame, raw, 0.5))
    return out


def track_pass(frames: list[Frame], dets: list[Detections], camera_motion: str) -> tuple[float, float, str]:
    """(motion CPU ms/frame, rest-of-step CPU ms/frame, digest of the results)."""
    tracker = MultiObjectTracker(TrackerConfig(camera_motion=camera_motion))
    digest = hashlib.sha256()
    motion_s = step_s = 0.0
    for frame, det in zip(frames, dets, strict=True):
        started = time.thread_time()
        if hasattr(tracker, "estimate_motion"):
            motion = tracker.estimate_motion(frame, det)
            between = time.thread_time()
            result = tracker.step(frame, det, motion)
        else:  # a tracker from before the split (to measure a baseline): all of it counts as the step
            between = started
            result = tracker.step(frame, det)
        step_s += time.thread_time() - between
        motion_s += between - started
        for t in result.transitions:
            digest.update(repr((t.kind, t.track.track_id, t.track.box.tobytes())).encode())
        for s in result.tracks:
            digest.update(repr((s.track_id, s.box.tobytes(), s.detection_index, s.hits)).encode())
        digest.update(result.motion.matrix.tobytes())
    n = max(1, len(frames))
    return 1000 * motion_s / n, 1000 * step_s / n, digest.hexdigest()[:12]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["1280x720", "1920x1080"])
    parser.add_argument("--objects", nargs="+", type=int, default=[5, 30, 100])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cases = []
    print(f"{'clip':>10} {'objects':>7} {'motion':>6} {'motion ms':>9} {'rest ms':>8} {'total ms':>8}  digest")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            width, height = (int(v) for v in size.split("x"))
            frames = clip_frames(write_clip(Path(tmp) / f"{size}.mp4", width, height, args.frames), args.frames)
            for objects in args.objects:
                dets = detections(frames, objects)
                for camera_motion in ("auto", "off"):
                    passes = [track_pass(frames, dets, camera_motion) for _ in range(args.repeat)]
                    motion_ms, rest_ms, digest = min(passes, key=lambda p: p[0] + p[1])
                    case = {
                        "size": size,
                        "objects": objects,
                        "camera_motion": camera_motion,
                        "motion_ms": round(motion_ms, 2),
                        "rest_ms": round(rest_ms, 2),
                        "total_ms": round(motion_ms + rest_ms, 2),
                        "digest": digest,
                    }
                    cases.append(case)
                    print(
                        f"{size:>10} {objects:>7} {camera_motion:>6} {motion_ms:>9.2f} {rest_ms:>8.2f} "
                        f"{motion_ms + rest_ms:>8.2f}  {digest}",
                        flush=True,
                    )
    if args.json:
        args.json.write_text(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M"), "cases": cases}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
