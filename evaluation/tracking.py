"""Tracking evaluation: identical detections fed to our tracker and to established trackers, scored with TrackEval.

Steps (driven by `maskstream eval-tracking`, see `tracking.cli`):
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

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from pipeline.config.tracker import TrackerConfig
from pipeline.errors import DatasetError
from pipeline.items import Detections, Frame
from tracking.association import box_iou
from tracking.metrics import evaluate, summarise
from tracking.mot_io import FrameObjects
from tracking.tracker import MultiObjectTracker

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------------------
# clips and ground truth


@dataclass(slots=True)
class Clip:
    name: str
    directory: Path
    mode: str
    seed: int
    fps: float
    size: tuple[int, int]  # height, width
    num_frames: int
    gt: dict[int, FrameObjects]  # frame index (0-based) -> objects to find
    ignore: dict[int, FrameObjects]  # frame index -> iscrowd regions (too small/hidden): neither credited nor punished
    category_names: dict[int, str]

    @property
    def video(self) -> Path:
        return self.directory / "video.mp4"


def _rle_str(rle: dict) -> dict:
    counts = rle["counts"]
    return {
        "size": [int(v) for v in rle["size"]],
        "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts,
    }


def load_clip(directory: str | Path) -> Clip:
    """A clip written by `synth.render_clip`: video.mp4 + annotations.json (COCO with track ids)."""
    directory = Path(directory)
    path = directory / "annotations.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read clip annotations {path}: {exc}") from exc
    info = data.get("info", {})
    images = {img["id"]: img for img in data.get("images", [])}
    if not images:
        raise DatasetError(f"{path}: no images")
    frame_of = {iid: int(img.get("frame_index", k)) for k, (iid, img) in enumerate(sorted(images.items()))}
    first = next(iter(images.values()))
    size = (int(first["height"]), int(first["width"]))
    rows: dict[int, list[dict]] = {}
    crowd: dict[int, list[dict]] = {}
    for ann in data.get("annotations", []):
        if "track_id" not in ann:
            raise DatasetError(f"{path}: annotation {ann.get('id')} has no track_id: not a tracking clip")
        target = crowd if ann.get("iscrowd", 0) else rows
        target.setdefault(frame_of[ann["image_id"]], []).append(ann)

    def objects(anns: list[dict]) -> FrameObjects:
        boxes = np.array(
            [[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]] for a in anns]
        )
        return FrameObjects(
            ids=np.array([int(a["track_id"]) for a in anns], np.int64),
            boxes=boxes.reshape(-1, 4).astype(float),
            classes=np.array([int(a["category_id"]) for a in anns], np.int64),
            scores=np.ones(len(anns)),
            rles=[_rle_str(a["segmentation"]) for a in anns],
        )

    return Clip(
        name=directory.name,
        directory=directory,
        mode=str(info.get("mode", "unknown")),
        seed=int(info.get("seed", -1)),
        fps=float(info.get("fps", 30.0)),
        size=size,
        num_frames=len(images),
        gt={f: objects(a) for f, a in rows.items()},
        ignore={f: objects(a) for f, a in crowd.items()},
        category_names={int(c["id"]): c["name"] for c in data.get("categories", [])},
    )


def ensure_clips(
    root: Path, modes: list[str], seeds: list[int], frames: int, size: tuple[int, int], rerender: bool = False
) -> list[Clip]:
    """Render the clips that are not there yet (deterministic by seed) and load them all. A re-rendered clip's
    cached detections are deleted with it."""
    clips = []
    for mode in modes:
        for seed in seeds:
            directory = root / "clips" / f"{mode}-{seed}"
            ready = not rerender and (directory / "annotations.json").exists() and (directory / "video.mp4").exists()
            if ready:
                clip = load_clip(directory)
                ready = clip.num_frames == frames and clip.size == (size[1], size[0])
            if not ready:
                import synth

                log.info("rendering clip %s (%d frames)", directory.name, frames)
                synth.render_clip(directory, mode=mode, seed=seed, frames=frames, size=size, force=True)
                for stale in (root / "detections").glob(f"{directory.name}.*.npz"):
                    stale.unlink()
                clip = load_clip(directory)
            clips.append(clip)
    return clips


def iter_video(path: Path) -> Iterator[tuple[int, float, np.ndarray]]:
    """(index, pts seconds, RGB image) of every frame of a file."""
    import av

    try:
        container = av.open(str(path))
    except (OSError, av.error.FFmpegError) as exc:
        raise DatasetError(f"cannot open clip video {path}: {exc}") from exc
    with container:
        stream = container.streams.video[0]
        for index, frame in enumerate(container.decode(stream)):
            pts = float(frame.pts * frame.time_base) if frame.pts is not None and frame.time_base else None
            yield index, pts if pts is not None else index / 30.0, frame.to_ndarray(format="rgb24")


# --------------------------------------------------------------------------------------------------------------
# detections, computed once per clip and cached


@dataclass(slots=True)
class FrameDetections:
    boxes: np.ndarray  # (N, 4) xyxy float32
    scores: np.ndarray  # (N,) float32
    classes: np.ndarray  # (N,) int64, the ground truth's category ids
    rles: list[dict]  # COCO RLE, counts str

    def to_detections(self, height: int, width: int) -> Detections:
        from pycocotools import mask as mask_utils

        if len(self.rles):
            encoded = [{"size": r["size"], "counts": r["counts"].encode("ascii")} for r in self.rles]
            masks = np.ascontiguousarray(mask_utils.decode(encoded).transpose(2, 0, 1).astype(bool))
        else:
            masks = np.zeros((0, height, width), bool)
        return Detections.from_full_masks(self.boxes, self.scores, self.classes, masks, self.rles)

    def valid(self, height: int, width: int) -> FrameDetections:
        """Boxes clipped to the frame and at least one pixel wide and high (some trackers reject others)."""
        boxes = self.boxes.copy()
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
        keep = np.flatnonzero((boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1))
        return FrameDetections(boxes[keep], self.scores[keep], self.classes[keep], [self.rles[i] for i in keep])


@dataclass(slots=True)
class DetectionSet:
    source: str  # "model" or "noisy-gt"
    frames: list[FrameDetections]

    def save(self, path: Path) -> None:
        counts = np.array([len(f.scores) for f in self.frames], np.int64)
        flat_rles = [r for f in self.frames for r in f.rles]
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(
            tmp,
            source=np.array(self.source),
            counts=counts,
            boxes=np.concatenate([f.boxes for f in self.frames]).astype(np.float32).reshape(-1, 4),
            scores=np.concatenate([f.scores for f in self.frames]).astype(np.float32),
            classes=np.concatenate([f.classes for f in self.frames]).astype(np.int64),
            rle_counts=np.array([r["counts"] for r in flat_rles], dtype=str),
            rle_sizes=np.array([r["size"] for r in flat_rles], np.int64).reshape(-1, 2),
        )
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> DetectionSet:
        with np.load(path, allow_pickle=False) as data:  # never unpickle: cached files are plain arrays
            counts = data["counts"]
            offsets = np.concatenate([[0], np.cumsum(counts)])
            frames = []
            for k in range(len(counts)):
                a, b = offsets[k], offsets[k + 1]
                rles = [
                    {"size": [int(h), int(w)], "counts": str(c)}
                    for (h, w), c in zip(data["rle_sizes"][a:b], data["rle_counts"][a:b], strict=True)
                ]
                frames.append(FrameDetections(data["boxes"][a:b], data["scores"][a:b], data["classes"][a:b], rles))
            return cls(str(data["source"]), frames)


def noisy_gt_detections(clip: Clip, seed: int = 0) -> DetectionSet:
    """DEVELOPMENT STAND-IN for a detector: ground truth with box jitter, misses that grow with occlusion,
    scores that fall with occlusion (so some land in the low-score band), rare class flips and false positives."""
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(1_000_003 * seed + 17)
    height, width = clip.size
    classes = sorted(clip.category_names) or [1]
    frames = []
    for f in range(clip.num_frames):
        objs = clip.gt.get(f, FrameObjects())
        boxes, scores, labels, rles = [], [], [], []
        for k in range(len(objs)):
            box = objs.boxes[k]
            area_box = max(1.0, (box[2] - box[0]) * (box[3] - box[1]))
            fill = float(mask_utils.area({"size": objs.rles[k]["size"], "counts": objs.rles[k]["counts"].encode()}))
            visible = min(1.0, fill / (0.7 * area_box))  # rough visibility: masks fill ~70% of their box
            if rng.random() < 0.05 + 0.4 * (1 - visible):
                continue
            size = np.array([box[2] - box[0], box[3] - box[1]] * 2)
            boxes.append(box + rng.normal(0, 0.04, 4) * size)
            scores.append(float(np.clip(rng.normal(0.55 + 0.4 * visible, 0.12), 0.05, 0.99)))
            labels.append(int(objs.classes[k]) if rng.random() > 0.02 else int(rng.choice(classes)))
            rles.append(objs.rles[k])
        for _ in range(rng.poisson(0.5)):
            w, h = rng.uniform(10, 60, 2)
            x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
            boxes.append(np.array([x, y, x + w, y + h]))
            scores.append(float(rng.uniform(0.1, 0.65)))
            labels.append(int(rng.choice(classes)))
            mask = np.zeros((height, width), np.uint8, order="F")
            mask[int(y) : int(y + h), int(x) : int(x + w)] = 1
            rle = mask_utils.encode(mask)
            rles.append({"size": [height, width], "counts": rle["counts"].decode("ascii")})
        frames.append(
            FrameDetections(
                np.array(boxes, np.float32).reshape(-1, 4),
                np.array(scores, np.float32),
                np.array(labels, np.int64),
                rles,
            )
        )
    return DetectionSet("noisy-gt", frames)


def model_detections(clip: Clip, detector: Any, mask_threshold: float = 0.5) -> DetectionSet:
    """The bundled model's detections on every frame of a clip, labels mapped to the clip's category ids by name."""
    import torch

    from stages.masks import frame_detections

    by_name = {name: cid for cid, name in clip.category_names.items()}
    label_to_class = np.array([by_name.get(name, -1) for name in detector.class_names], np.int64)
    frames = []
    started = time.monotonic()
    for index, pts, image in iter_video(clip.video):
        tensor = torch.from_numpy(image).to(detector.device).permute(2, 0, 1).float().div_(255)
        raw = detector.detect([tensor])[0]
        frame = Frame(clip.name, index, pts, 0.0, image)
        dets = frame_detections(frame, raw, mask_threshold)
        frames.append(
            FrameDetections(dets.boxes, dets.scores, label_to_class[dets.labels], [_rle_str(r) for r in dets.rles])
        )
        if index % 25 == 0:
            log.info("%s: frame %d, %.1f s per frame", clip.name, index, (time.monotonic() - started) / (index + 1))
    return DetectionSet("model", frames)


# --------------------------------------------------------------------------------------------------------------
# trackers behind one small interface


class TrackerAdapter(Protocol):
    def __call__(self, frame: Frame, dets: Detections) -> list[tuple[int, np.ndarray, int, int]]:
        """-> (track id, box xyxy, class, detection index) for every track reported in this frame."""
        ...


class OursAdapter:
    def __init__(self, cfg: TrackerConfig) -> None:
        self.tracker = MultiObjectTracker(cfg)

    def __call__(self, frame: Frame, dets: Detections) -> list[tuple[int, np.ndarray, int, int]]:
        step = self.tracker.step(frame, dets)
        return [(t.track_id, t.box, t.label, t.detection_index) for t in step.tracks if t.detection_index is not None]


class BoxmotAdapter:
    """boxmot trackers: update(N x 6 [x1, y1, x2, y2, score, class], BGR image) -> [x1, y1, x2, y2, id, conf,
    class, detection index]."""

    def __init__(self, tracker: Any) -> None:
        self.tracker = tracker

    def __call__(self, frame: Frame, dets: Detections) -> list[tuple[int, np.ndarray, int, int]]:
        arr = np.concatenate(
            [dets.boxes.reshape(-1, 4), dets.scores.reshape(-1, 1), dets.labels.reshape(-1, 1).astype(np.float32)],
            axis=1,
        ).astype(np.float32)
        out = self.tracker.update(arr, np.ascontiguousarray(frame.image[:, :, ::-1]))
        out = np.asarray(out).reshape(-1, 8) if out is not None and len(out) else np.zeros((0, 8))
        return [(int(r[4]), r[:4].copy(), int(r[6]), int(r[7])) for r in out]


def boxmot_trackers(fps: float) -> dict[str, Callable[[], TrackerAdapter]]:
    """boxmot's trackers with every parameter that matters set explicitly (its constructor defaults differ from
    its YAML presets), thresholds aligned with ours: high 0.5, low 0.1, new track 0.6, 30-frame buffer."""
    from boxmot import BotSort, ByteTrack, OcSort

    rate = round(fps)

    def bytetrack() -> TrackerAdapter:
        return BoxmotAdapter(
            ByteTrack(min_conf=0.1, track_thresh=0.5, match_thresh=0.8, track_buffer=30, frame_rate=rate)
        )

    def ocsort() -> TrackerAdapter:
        return BoxmotAdapter(
            OcSort(
                min_conf=0.1,
                delta_t=3,
                inertia=0.2,
                use_byte=False,
                det_thresh=0.5,
                max_age=30,
                min_hits=3,
                iou_threshold=0.3,
                asso_func="iou",
            )
        )

    def botsort(cmc: str | None) -> Callable[[], TrackerAdapter]:
        def make() -> TrackerAdapter:
            return BoxmotAdapter(
                BotSort(
                    track_high_thresh=0.5,
                    track_low_thresh=0.1,
                    new_track_thresh=0.6,
                    track_buffer=30,
                    match_thresh=0.8,
                    proximity_thresh=0.5,
                    appearance_thresh=0.25,
                    use_embeddings=False,
                    use_cmc=cmc is not None,
                    cmc_method=cmc or "ecc",
                    frame_rate=rate,
                    fuse_first_associate=False,
                    second_match_thresh=0.5,
                    unconfirmed_match_thresh=0.7,
                )
            )

        return make

    return {
        "ByteTrack": bytetrack,
        "OC-SORT": ocsort,
        "BoT-SORT (no CMC)": botsort(None),
        "BoT-SORT (ECC CMC)": botsort("ecc"),
        "BoT-SORT (sparse-flow CMC)": botsort("sof"),
    }


def our_trackers(base: TrackerConfig | None = None) -> dict[str, Callable[[], TrackerAdapter]]:
    base = base or TrackerConfig()
    variants = {
        "maskstream": {},
        "maskstream: no low-score stage": {"low_score": base.high_score},
        "maskstream: no compensation": {"camera_motion": "off"},
        "maskstream: box-only cost": {"mask_weight": 0.0},
        "maskstream: no OC re-update": {"observation_centric_update": False},
        "maskstream: no buffered IoU / recovery": {"lost_box_growth": 0.0, "recover_from_last_observation": False},
        "maskstream: strict classes": {"class_penalty": 1.0},
        "maskstream: mask weight fades below 200 px": {"mask_full_weight_area": 200.0},
    }

    def factory(cfg: TrackerConfig) -> Callable[[], TrackerAdapter]:
        return lambda: OursAdapter(cfg)

    return {name: factory(base.model_copy(update=changes)) for name, changes in variants.items()}


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
    return load_detector(ModelConfig(score_threshold=0.1, device="auto"))


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
