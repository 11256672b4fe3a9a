"""Argument checks and seed rules shared by the clip writer, the dataset writer and the CLI.

Every random stream is a `numpy.random.Generator(PCG64(...))` seeded from a `SeedSequence` whose entropy
mixes the user's seed with a fixed salt per purpose, so streams never depend on each other's draws and
dataset scenes can never reproduce an evaluation clip (see `dataset_scene_seed`).
"""

from __future__ import annotations

import re

import numpy as np

from pipeline.errors import ConfigError

MODES = ("surveillance", "drone")
DATASET_MODES = (*MODES, "both")
MIN_SIZE = (64, 48)
MAX_SIZE = (3840, 2160)
MAX_FRAMES = 1_000_000

# Salts (arbitrary fixed constants) keep the purposes' random streams apart.
SALT_CLIP = 0x5C3E_C11F
SALT_DATASET = 0xDA7A_5E70
SALT_NOISE = 0x0015_E0F5

_SIZE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def parse_size(text: str) -> tuple[int, int]:
    """Parse "WxH" (e.g. "640x360") into (width, height), checking it is a size we can encode."""
    match = _SIZE.match(text)
    if match is None:
        raise ConfigError(f"size {text!r} is not WIDTHxHEIGHT (e.g. 640x360)")
    return check_size((int(match.group(1)), int(match.group(2))))


def check_size(size: tuple[int, int]) -> tuple[int, int]:
    """Width and height must be even (H.264 yuv420p) and within a sane range."""
    try:
        width, height = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ConfigError(f"size {size!r} is not a (width, height) pair of integers") from None
    if not (MIN_SIZE[0] <= width <= MAX_SIZE[0] and MIN_SIZE[1] <= height <= MAX_SIZE[1]):
        raise ConfigError(
            f"size {width}x{height} is out of range: width {MIN_SIZE[0]}..{MAX_SIZE[0]}, height {MIN_SIZE[1]}..{MAX_SIZE[1]}"
        )
    if width % 2 or height % 2:
        raise ConfigError(f"size {width}x{height} must have an even width and height (H.264 yuv420p)")
    return width, height


def check_mode(mode: str, *, allow_both: bool = False) -> str:
    allowed = DATASET_MODES if allow_both else MODES
    if mode not in allowed:
        raise ConfigError(f"mode {mode!r} is unknown; choose one of {', '.join(allowed)}")
    return mode


def check_count(name: str, value: int, *, maximum: int = MAX_FRAMES) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not 1 <= value <= maximum:
        raise ConfigError(f"{name} must be an integer in 1..{maximum}, got {value!r}")
    return int(value)


def check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def check_fps(fps: float) -> float:
    if not isinstance(fps, int | float) or not 1 <= fps <= 240:
        raise ConfigError(f"fps must be a number in 1..240, got {fps!r}")
    return float(fps)


def clip_seed_sequence(mode: str, seed: int) -> np.random.SeedSequence:
    """The root of all randomness of the clip `(mode, seed)`."""
    return np.random.SeedSequence([SALT_CLIP, MODES.index(mode), seed])


def dataset_scene_seed(seed: int, scene_index: int) -> np.random.SeedSequence:
    """Scene k of dataset `seed`: seeded under a different salt from every clip, so no training scene
    can ever coincide with an evaluation clip whatever seeds the two use."""
    return np.random.SeedSequence([SALT_DATASET, seed, scene_index])


def rng_from(seq: np.random.SeedSequence, *purpose: int) -> np.random.Generator:
    """An independent stream for one purpose (scene layout, spawns, noise...) of a seed sequence."""
    child = np.random.SeedSequence(seq.entropy, spawn_key=(*seq.spawn_key, *purpose))
    return np.random.Generator(np.random.PCG64(child))
