"""Procedural scene simulator with exact ground truth (surveillance and drone footage).

render_clip(out_dir, mode=..., seed=..., frames=..., size=(w, h), fps=30)   # video + COCO/MOT/MOTS
render_dataset(out_dir, images=..., mode="both", seed=..., size=(w, h))     # COCO stills for training
iter_frames(mode, seed, frames, size)   # (rgb, [Instance]) without touching the disk
"""

from synth.annotations import GENERATOR_VERSION
from synth.clip import render_clip
from synth.dataset import render_dataset
from synth.frames import Instance, iter_frames

__all__ = ["GENERATOR_VERSION", "Instance", "iter_frames", "render_clip", "render_dataset"]
