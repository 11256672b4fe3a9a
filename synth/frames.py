"""Frames with exact per-instance ground truth, without touching the disk: `iter_frames`.

The visible mask of an instance is where the id map holds its id: occlusion by nearer objects and by
scenery and clipping at the frame border are already applied. Instances that are barely visible are
kept but flagged `ignore` (written as COCO `iscrowd: 1`, MOT `conf 0`): a detector must not be punished,
nor rewarded, for objects nobody can see.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from synth.effects import CameraEffects
from synth.params import check_count, check_fps, check_mode, check_seed, check_size, clip_seed_sequence, rng_from
from synth.scene import RenderedFrame, Scene

MIN_VISIBLE_FRACTION = 0.1
MIN_AREA_AT_640x360 = 48  # pixels; scaled with the frame area for other sizes


@dataclass(slots=True)
class Instance:
    """One object as the camera sees it in one frame."""

    track_id: int
    category_id: int
    mask: np.ndarray  # (H, W) bool, the visible pixels
    bbox: tuple[int, int, int, int]  # x, y, w, h of the visible pixels
    area: int  # visible pixels
    visibility: float  # visible / full silhouette (occlusion and frame border both count)
    ignore: bool  # too small or too hidden to expect a detection


def min_visible_area(size: tuple[int, int]) -> int:
    width, height = size
    return max(8, round(MIN_AREA_AT_640x360 * width * height / (640 * 360)))


def make_scene(
    mode: str, seq: np.random.SeedSequence, size: tuple[int, int], fps: float, *, short: bool = False
) -> Scene:
    """A scene of `mode`; `short` scenes (dataset stills) need only a little world around the camera."""
    if mode == "surveillance":
        from synth.surveillance import SurveillanceScene

        return SurveillanceScene(seq, size, fps)
    from synth.drone import DroneScene

    return DroneScene(seq, size, fps, travel=10.0 if short else 60.0)


def extract_instances(frame: RenderedFrame, min_area: int) -> list[Instance]:
    """Per-instance visible masks and boxes from the id map (one pass over the image)."""
    ids = frame.ids
    areas = np.bincount(ids.ravel(), minlength=len(frame.objects) + 1)
    boxes = ndimage.find_objects(ids, max_label=len(frame.objects))
    out: list[Instance] = []
    for index, (track_id, category, full_area) in enumerate(frame.objects, start=1):
        area = int(areas[index])
        box = boxes[index - 1]
        if area == 0 or box is None:
            continue
        ys, xs = box
        mask = np.zeros(ids.shape, bool, order="F")  # column-major: COCO RLE encodes it without a copy
        mask[ys, xs] = ids[ys, xs] == index
        visibility = min(1.0, area / full_area) if full_area > 0 else 1.0
        out.append(
            Instance(
                track_id=track_id,
                category_id=category,
                mask=mask,
                bbox=(xs.start, ys.start, xs.stop - xs.start, ys.stop - ys.start),
                area=area,
                visibility=round(visibility, 4),
                ignore=area < min_area or visibility < MIN_VISIBLE_FRACTION,
            )
        )
    out.sort(key=lambda inst: inst.track_id)
    return out


def iter_scene(
    scene: Scene, effects: CameraEffects, frames: int, size: tuple[int, int]
) -> Iterator[tuple[np.ndarray, list[Instance]]]:
    min_area = min_visible_area(size)
    for index in range(frames):
        if index:
            scene.step()
        rendered = scene.render()
        yield effects.apply(rendered.rgb, index), extract_instances(rendered, min_area)


def iter_frames(
    mode: str, seed: int, frames: int, size: tuple[int, int], fps: float = 30.0
) -> Iterator[tuple[np.ndarray, list[Instance]]]:
    """Yield (rgb uint8 HxWx3, instances) for each frame of the clip `(mode, seed)`; same as `render_clip` writes."""
    check_mode(mode)
    seed, frames, fps = check_seed(seed), check_count("frames", frames), check_fps(fps)
    size = check_size(size)
    seq = clip_seed_sequence(mode, seed)
    scene = make_scene(mode, seq, size, fps)
    effects = CameraEffects(rng_from(seq, 3), size, fps)
    return iter_scene(scene, effects, frames, size)
