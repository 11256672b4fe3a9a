"""Tracking evaluation, step 1: synthetic clips and their ground truth (see evaluation/tracking.py)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import DatasetError
from tracking.mot_io import FrameObjects

log = logging.getLogger(__name__)


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


def rle_str(rle: dict) -> dict:
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
            rles=[rle_str(a["segmentation"]) for a in anns],
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
