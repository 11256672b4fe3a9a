"""Tracking evaluation: identical detections fed to our tracker and to established trackers, scored with TrackEval.

Steps (driven by `maskstream eval-tracking`, see `evaluation/tracking_cli.py`; clips in `clips.py`, detections in `detections.py`, trackers in `trackers.py`):
1. synthetic clips of both modes and several seeds (`synth.render_clip`), kept under the output directory;
2. detections per clip, computed ONCE and cached (`detections/<clip>.<source>.npz`): either the bundled model's
   (`--detections model`) or, for development, ground truth degraded with noise, misses and false positives
   (`--detections noisy-gt`, always labelled so in the results);
3. every tracker runs on the same decoded frames and detections: ours (plus ablations) and boxmot's ByteTrack,
   OC-SORT and BoT-SORT (no ReID; with and without camera-motion compensation), all parameters set explicitly;
4. tracks are scored against the clip's ground truth on boxes (HOTA, DetA, AssA, MOTA, IDF1, ID switches) and on
   masks (mask HOTA, sMOTSA); a tracker's mask for a frame is the mask of the detection it was matched to.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.clips import Clip, ensure_clips, iter_video
from evaluation.detections import DetectionSet, model_detections, noisy_gt_detections
from evaluation.trackers import TrackerAdapter, boxmot_trackers, our_trackers
from pipeline.errors import DatasetError
from pipeline.items import Frame
from tracking.association import box_iou
from tracking.metrics import evaluate, summarise
from tracking.mot_io import FrameObjects

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------------------
# running and scoring


def run_tracker(
    clip: Clip, detections: DetectionSet, make: Callable[[], TrackerAdapter], frames: list[np.ndarray]
) -> tuple[dict[int, FrameObjects], float]:
    """Tracks per frame (0-based index) and the seconds spent inside the tracker."""
    tracker = make()
    height, width = clip.size
    out: dict[int, FrameObjects] = {}
    spent = 0.0
    for index, image in enumerate(frames):
        fd = detections.frames[index]
        dets = fd.to_detections(height, width)
        frame = Frame(clip.name, index, index / clip.fps, 0.0, image)
        t0 = time.perf_counter()
        rows = tracker(frame, dets)
        spent += time.perf_counter() - t0
        if rows:
            out[index] = FrameObjects(
                ids=np.array([r[0] for r in rows], np.int64),
                boxes=np.array([r[1] for r in rows], float).reshape(-1, 4),
                classes=np.array([r[2] for r in rows], np.int64),
                scores=np.ones(len(rows)),
                rles=[fd.rles[r[3]] if 0 <= r[3] < len(fd.rles) else None for r in rows],
            )
    return out, spent


def drop_ignored(tracks: dict[int, FrameObjects], clip: Clip) -> dict[int, FrameObjects]:
    """Remove track boxes that cover an ignored (iscrowd) object and no scored one, as MOT benchmarks do."""
    cleaned = {}
    for f, objs in tracks.items():
        keep = np.ones(len(objs), bool)
        ign = clip.ignore.get(f)
        if ign is not None and len(ign):
            gt = clip.gt.get(f)
            on_ignored = box_iou(objs.boxes, ign.boxes).max(axis=1) >= 0.5
            on_gt = box_iou(objs.boxes, gt.boxes).max(axis=1) >= 0.5 if gt is not None and len(gt) else False
            keep = ~(on_ignored & ~on_gt)
        idx = np.flatnonzero(keep)
        cleaned[f] = FrameObjects(
            objs.ids[idx], objs.boxes[idx], objs.classes[idx], objs.scores[idx], [objs.rles[i] for i in idx]
        )
    return cleaned


def with_masks_only(tracks: dict[int, FrameObjects]) -> dict[int, FrameObjects]:
    out = {}
    for f, objs in tracks.items():
        idx = [i for i, r in enumerate(objs.rles) if r is not None]
        out[f] = FrameObjects(
            objs.ids[idx], objs.boxes[idx], objs.classes[idx], objs.scores[idx], [objs.rles[i] for i in idx]
        )
    return out


def score(clip: Clip, tracks: dict[int, FrameObjects]) -> dict[str, float]:
    tracks = drop_ignored(tracks, clip)
    frames = range(clip.num_frames)
    boxes = evaluate(clip.gt, tracks, frames, use_masks=False)
    masks = evaluate(clip.gt, with_masks_only(tracks), frames, use_masks=True)
    result = dict(boxes)
    result["mask HOTA"] = masks["HOTA"]
    result["sMOTSA"] = masks["sMOTA"]
    result["mask IDSW"] = masks["IDSW"]
    return result


def gt_as_tracks(clip: Clip) -> dict[int, FrameObjects]:
    return {f: objs for f, objs in clip.gt.items()}


@dataclass
class EvaluationResult:
    detections: str
    modes: list[str]
    seeds: list[int]
    frames: int
    per_clip: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # tracker -> clip -> metrics
    tracker_ms: dict[str, list[float]] = field(default_factory=dict)

    def mean(self, tracker: str, mode: str) -> dict[str, float]:
        runs = [m for clip, m in self.per_clip[tracker].items() if clip.startswith(mode + "-")]
        return summarise(runs)

    def to_json(self) -> dict:
        return {
            "detections": self.detections,
            "modes": self.modes,
            "seeds": self.seeds,
            "frames": self.frames,
            "per_clip": self.per_clip,
            "mean": {t: {m: self.mean(t, m) for m in self.modes} for t in self.per_clip},
            "tracker_ms_per_frame": {t: float(np.mean(v)) for t, v in self.tracker_ms.items()},
        }


def run_evaluation(
    out_dir: Path,
    modes: list[str],
    seeds: list[int],
    frames: int,
    size: tuple[int, int],
    detections: str,
    include_boxmot: bool = True,
    detector_factory: Callable[[], Any] | None = None,
    rerender: bool = False,
) -> EvaluationResult:
    clips = ensure_clips(out_dir, modes, seeds, frames, size, rerender)
    trackers: dict[str, Callable[[], TrackerAdapter]] = {"ground truth (check)": lambda: None}  # type: ignore
    trackers.update(our_trackers())
    if include_boxmot:
        trackers.update(boxmot_trackers(clips[0].fps if clips else 30.0))
    result = EvaluationResult(detections, modes, seeds, frames)
    detector = None
    for clip in clips:
        cache = out_dir / "detections" / f"{clip.name}.{detections}.npz"
        if cache.exists():
            dets = DetectionSet.load(cache)
        else:
            if detections == "model":
                if detector is None:
                    detector = detector_factory() if detector_factory else _default_detector()
                dets = model_detections(clip, detector)
            else:
                dets = noisy_gt_detections(clip, seed=clip.seed)
            dets.save(cache)
        if len(dets.frames) != clip.num_frames:
            raise DatasetError(f"{cache}: {len(dets.frames)} frames of detections for a {clip.num_frames}-frame clip")
        dets = DetectionSet(dets.source, [f.valid(*clip.size) for f in dets.frames])
        images = [image for _, _, image in iter_video(clip.video)]
        for name, make in trackers.items():
            if name == "ground truth (check)":
                tracks, spent = gt_as_tracks(clip), 0.0
            else:
                tracks, spent = run_tracker(clip, dets, make, images)
            metrics = score(clip, tracks)
            result.per_clip.setdefault(name, {})[clip.name] = metrics
            result.tracker_ms.setdefault(name, []).append(1000 * spent / max(1, clip.num_frames))
            log.info("%s %s: HOTA %.1f IDSW %d", clip.name, name, metrics["HOTA"], metrics["IDSW"])
    return result


def _default_detector() -> Any:
    from pipeline.config import ModelConfig
    from stages.inference import load_detector

    # A low score threshold so that the low-score association stage has something to work with.
    return load_detector(ModelConfig(weights="bundled", score_threshold=0.1, device="auto"))


COLUMNS = ("HOTA", "DetA", "AssA", "LocA", "MOTA", "IDF1", "IDSW", "mask HOTA", "sMOTSA")


def markdown_table(result: EvaluationResult) -> str:
    lines = []
    for mode in result.modes:
        lines.append(
            f"\n**{mode}** — mean over seeds {', '.join(map(str, result.seeds))} ({result.frames} frames each), "
            f"detections: {result.detections}\n"
        )
        lines.append("| Tracker | " + " | ".join(COLUMNS) + " | ms/frame |")
        lines.append("|---" * (len(COLUMNS) + 2) + "|")
        for tracker in result.per_clip:
            m = result.mean(tracker, mode)
            ms = np.mean(result.tracker_ms[tracker])
            cells = [f"{m[c]:.1f}" for c in COLUMNS]
            lines.append(f"| {tracker} | " + " | ".join(cells) + f" | {ms:.2f} |")
    return "\n".join(lines) + "\n"
