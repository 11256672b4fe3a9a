"""Procedural noise used for ground, roofs, fabric and paint so that no surface is a flat colour."""

from __future__ import annotations

import cv2
import numpy as np


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: tuple[int, ...] = (4, 16, 64)) -> np.ndarray:
    """Fractal value noise in [-1, 1] (float32): random grids of `cells` per side, upsampled and summed."""
    height, width = shape
    out = np.zeros(shape, np.float32)
    weight = 1.0
    total = 0.0
    for n in cells:
        grid = rng.standard_normal((max(2, n * height // max(height, width)), n)).astype(np.float32)
        out += weight * cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
        total += weight
        weight *= 0.55
    out /= total
    return np.clip(out / (3 * float(out.std()) + 1e-6), -1, 1)


class TextureBank:
    """One shared tile of multiplicative texture (~1 ± amplitude); objects sample crops at random offsets."""

    TILE = 256

    def __init__(self, rng: np.random.Generator) -> None:
        fine = smooth_noise(rng, (self.TILE, self.TILE), cells=(8, 32, 128))
        grain = rng.standard_normal((self.TILE, self.TILE)).astype(np.float32)
        base = 0.75 * fine + 0.25 * np.clip(grain / 3, -1, 1)
        # tiled 2x2 so any crop up to TILE fits without wrapping logic
        self._tile = np.tile(base, (2, 2))

    def modulation(self, shape: tuple[int, int], offset: tuple[int, int], amplitude: float) -> np.ndarray:
        """A (h, w) float32 map of 1 + amplitude * noise, for an object's patch."""
        height, width = shape
        oy, ox = offset[0] % self.TILE, offset[1] % self.TILE
        if height <= self.TILE and width <= self.TILE:
            crop = self._tile[oy : oy + height, ox : ox + width]
        else:  # very large patch (a truck right under the camera): stretch a tile, texture detail scales up
            crop = cv2.resize(self._tile[oy : oy + self.TILE, ox : ox + self.TILE], (width, height))
        return 1.0 + amplitude * crop
