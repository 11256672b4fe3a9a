"""`render_dataset`: a COCO training set of JPEG stills sampled from many short random scenes.

Diversity beats continuity for training: each scene (its own layout, camera, lighting, traffic) gives
a few stills about a second apart, then a new scene starts. Scene k of dataset `seed` is seeded by
`dataset_scene_seed(seed, k)`, a stream salted apart from every clip seed, so a training set never
contains an evaluation clip's scene.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from synth.annotations import GENERATOR_VERSION, GroundTruth
from synth.effects import CameraEffects
from synth.frames import MIN_VISIBLE_FRACTION, extract_instances, make_scene, min_visible_area
from synth.output import prepare_out_dir
from synth.params import MODES, check_count, check_mode, check_seed, check_size, dataset_scene_seed, rng_from

STILLS_PER_SCENE = 5
JPEG_QUALITY = 92
FPS = 30.0


def render_dataset(
    out_dir: str | Path,
    *,
    images: int = 1000,
    mode: str = "both",
    seed: int = 0,
    size: tuple[int, int] = (640, 360),
    force: bool = False,
    progress: bool = False,
) -> Path:
    """Write `images` stills to out_dir/images/*.jpg and their COCO annotations to out_dir/annotations.json."""
    check_mode(mode, allow_both=True)
    images, seed, size = check_count("images", images, maximum=10_000_000), check_seed(seed), check_size(size)
    out = prepare_out_dir(out_dir, force=force)
    image_dir = out / "images"
    image_dir.mkdir(exist_ok=True)
    # with --force, drop what an earlier run wrote: its annotations and any stills beyond this run's count
    (out / "annotations.json").unlink(missing_ok=True)
    for stale in image_dir.glob("[0-9]" * 7 + ".jpg"):
        stale.unlink()
    width, height = size
    min_area = min_visible_area(size)
    truth = GroundTruth(
        {
            "description": f"maskstream synthetic training stills ({mode})",
            "mode": mode,
            "seed": seed,
            "size": [width, height],
            "images": images,
            "stills_per_scene": STILLS_PER_SCENE,
            "scene_seed_rule": "SeedSequence([0xDA7A5E70, seed, scene_index]) (clips use salt 0x5C3EC11F)",
            "generator": "maskstream.synth",
            "generator_version": GENERATOR_VERSION,
            "ignore_rule": {"min_area": min_area, "min_visibility": MIN_VISIBLE_FRACTION},
        }
    )
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=images, unit="img", desc="synth dataset")
    written = 0
    scene_index = 0
    while written < images:
        scene_mode = MODES[scene_index % 2] if mode == "both" else mode
        seq = dataset_scene_seed(seed, scene_index)
        timing = rng_from(seq, 9)
        scene = make_scene(scene_mode, seq, size, FPS, short=True)
        effects = CameraEffects(rng_from(seq, 3), size, FPS)
        elapsed = float(timing.uniform(0.0, 2.0))
        scene.advance(elapsed)
        for _ in range(min(STILLS_PER_SCENE, images - written)):
            frame_index = round(elapsed * FPS)
            rendered = scene.render()
            rgb = effects.apply(rendered.rgb, frame_index)
            written += 1
            name = f"images/{written:07d}.jpg"
            if not cv2.imwrite(
                str(out / name), np.ascontiguousarray(rgb[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
            ):
                raise OSError(f"could not write {out / name}")
            image = {
                "id": written,
                "file_name": name,
                "width": width,
                "height": height,
                "frame_index": frame_index,
                "scene": scene_index,
                "mode": scene_mode,
            }
            truth.add_frame(image, extract_instances(rendered, min_area), tracks=False)
            gap = float(timing.uniform(0.4, 1.5))  # seconds between stills of one scene
            scene.advance(gap)
            elapsed += gap
            if bar is not None:
                bar.update(1)
        scene_index += 1
    if bar is not None:
        bar.close()
    truth.write(out, tracks=False)
    return out
