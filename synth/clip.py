"""`render_clip`: one clip on disk — video.mp4, annotations.json (COCO), gt/gt.txt (MOT), gt/gt_masks.txt (MOTS)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from synth.annotations import GENERATOR_VERSION, GroundTruth
from synth.frames import MIN_VISIBLE_FRACTION, iter_frames, min_visible_area
from synth.output import prepare_out_dir
from synth.params import check_count, check_fps, check_mode, check_seed, check_size
from synth.video import VideoWriter

if TYPE_CHECKING:
    from pipeline.config.zones import RegionsConfig

VIDEO_NAME = "video.mp4"


def render_clip(
    out_dir: str | Path,
    *,
    mode: str = "surveillance",
    seed: int = 0,
    frames: int = 300,
    size: tuple[int, int] = (640, 360),
    fps: float = 30.0,
    force: bool = False,
    regions: RegionsConfig | None = None,
) -> Path:
    """Render the clip `(mode, seed)` into `out_dir` and return that directory. Deterministic by arguments.
    With `regions` (zones/lines), also the true zone and line events (`events_gt.jsonl`, synth.zone_truth)."""
    check_mode(mode)
    seed, frames, fps, size = check_seed(seed), check_count("frames", frames), check_fps(fps), check_size(size)
    out = prepare_out_dir(out_dir, force=force)
    # an older clip's annotations must not survive next to a half-written new video
    (out / "annotations.json").unlink(missing_ok=True)
    width, height = size
    truth_events = None
    if regions is not None:
        from synth.zone_truth import TrueEvents

        truth_events = TrueEvents(regions, size, fps)
    truth = GroundTruth(
        {
            "description": f"maskstream synthetic {mode} clip",
            "mode": mode,
            "seed": seed,
            "size": [width, height],
            "fps": fps,
            "frames": frames,
            "generator": "maskstream.synth",
            "generator_version": GENERATOR_VERSION,
            "ignore_rule": {"min_area": min_visible_area(size), "min_visibility": MIN_VISIBLE_FRACTION},
        }
    )
    with VideoWriter(out / VIDEO_NAME, size, fps) as video:
        for index, (rgb, instances) in enumerate(iter_frames(mode, seed, frames, size, fps)):
            video.write(rgb)
            image = {
                "id": index + 1,
                "file_name": f"{VIDEO_NAME}#{index:06d}",
                "width": width,
                "height": height,
                "frame_index": index,
            }
            truth.add_frame(image, instances)
            if truth_events is not None:
                truth_events.add(index, instances)
    if truth_events is not None:
        from pipeline.events import encode_event
        from synth.zone_truth import TRUTH_FILE

        (out / TRUTH_FILE).write_text("".join(encode_event(e) + "\n" for e in truth_events.finish()))
    truth.write(out)
    return out
