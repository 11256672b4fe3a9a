"""Procedural scene simulator with exact ground truth (surveillance and drone footage).

render_clip(out_dir, mode=..., seed=..., frames=..., size=(w, h), fps=30)   # video + COCO/MOT/MOTS
render_dataset(out_dir, images=..., mode="both", seed=..., size=(w, h))     # COCO stills for training
iter_frames(mode, seed, frames, size)   # (rgb, [Instance]) without touching the disk
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from synth.annotations import GENERATOR_VERSION
    from synth.clip import render_clip
    from synth.dataset import render_dataset
    from synth.frames import Instance, iter_frames

# Loaded on first use: `maskstream synth --help` and synth.params must not pull in cv2 and pycocotools.
_LAZY = {
    "GENERATOR_VERSION": "synth.annotations",
    "render_clip": "synth.clip",
    "render_dataset": "synth.dataset",
    "Instance": "synth.frames",
    "iter_frames": "synth.frames",
}

__all__ = ["GENERATOR_VERSION", "Instance", "iter_frames", "render_clip", "render_dataset"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'synth' has no attribute {name!r}")
