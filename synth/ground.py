"""Ground textures in world coordinates: grass or paving, sidewalks with slabs, asphalt with lane markings.

`paint_ground` colours any set of ground points given as metre coordinates, so the perspective camera
(one point per pixel below the horizon) and the drone's world map (one point per map pixel) share it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synth.textures import smooth_noise
from synth.world import Strip


@dataclass(frozen=True, slots=True)
class GroundStyle:
    base: tuple[int, int, int]  # grass / dirt / plaza colour
    base_is_paving: bool
    asphalt: tuple[int, int, int]
    sidewalk: tuple[int, int, int]
    marking: tuple[int, int, int]

    @staticmethod
    def random(rng: np.random.Generator) -> GroundStyle:
        bases = [(78, 112, 52), (96, 122, 60), (120, 110, 80), (140, 132, 118), (70, 96, 48)]
        base_index = int(rng.integers(len(bases)))
        grey = int(rng.integers(62, 104))
        side = int(rng.integers(135, 185))
        return GroundStyle(
            base=bases[base_index],
            base_is_paving=base_index == 3,
            asphalt=(grey, grey + int(rng.integers(-3, 4)), grey + int(rng.integers(0, 8))),
            sidewalk=(side, side - int(rng.integers(0, 12)), side - int(rng.integers(5, 20))),
            marking=(235, 235, 225) if rng.random() < 0.8 else (230, 190, 60),
        )


class NoiseField:
    """A 2-D noise tile sampled at metre coordinates (nearest cell, mirrored repeats): texture fixed to the ground."""

    def __init__(self, rng: np.random.Generator, size: int = 512, cells: tuple[int, ...] = (4, 16, 64, 256)) -> None:
        self.tile = smooth_noise(rng, (size, size), cells)
        self.size = size

    def sample(self, x: np.ndarray, y: np.ndarray, cells_per_metre: float) -> np.ndarray:
        return self.tile[self._mirror(y * cells_per_metre), self._mirror(x * cells_per_metre)]

    def _mirror(self, cells: np.ndarray) -> np.ndarray:
        """Index into the tile, mirrored at its edges so the texture repeats without seams."""
        index = np.floor(cells).astype(np.int64) % (2 * self.size)
        return np.where(index < self.size, index, 2 * self.size - 1 - index)


def paint_ground(
    x: np.ndarray, y: np.ndarray, strips: list[Strip], style: GroundStyle, noise: NoiseField, detail: float = 1.0
) -> np.ndarray:
    """RGB float32 (..., 3) for ground points (x, y) in metres. `detail` < 1 fades fine texture (far away)."""
    shape = x.shape
    rgb = np.empty((*shape, 3), np.float32)
    coarse = noise.sample(x, y, 0.6)
    fine = noise.sample(x + 37.0, y - 11.0, 12.0) * detail
    rgb[:] = style.base
    if style.base_is_paving:
        joint = (np.abs((x % 2.0) - 1.0) > 0.95) | (np.abs((y % 2.0) - 1.0) > 0.95)
        rgb[joint & (detail > 0.3)] *= 0.82
        rgb *= (1 + 0.08 * coarse + 0.08 * fine)[..., None]
    else:
        patches = noise.sample(y + 101.0, x - 53.0, 0.15)
        rgb *= (1 + 0.18 * coarse + 0.2 * fine)[..., None]
        rgb[..., 0] *= 1 + 0.25 * patches
    for kind in ("sidewalk", "road"):
        for strip in strips:
            if strip.kind != kind:
                continue
            if not _may_cross(x, y, strip):
                continue
            along = (x - strip.centre[0]) * strip.direction[0] + (y - strip.centre[1]) * strip.direction[1]
            across = (x - strip.centre[0]) * strip.normal[0] + (y - strip.centre[1]) * strip.normal[1]
            inside = np.abs(across) <= strip.half_width
            if not inside.any():
                continue
            if kind == "sidewalk":
                colour = np.array(style.sidewalk, np.float32)
                slab = (np.abs((along % 1.5) - 0.75) > 0.71) | (np.abs(((across + 50) % 1.5) - 0.75) > 0.71)
                shade = 1 + 0.07 * coarse + 0.1 * fine - 0.18 * slab
            else:
                colour = np.array(style.asphalt, np.float32)
                shade = 1 + 0.12 * coarse + 0.18 * fine
                wear = noise.sample(along * 0.3, across * 2.0 + 7.0, 1.0)
                shade = shade + 0.08 * wear
            rgb[inside] = colour * shade[inside][:, None]
            if kind == "road":
                _paint_markings(rgb, inside, along, across, strip, style)
    return rgb


def _may_cross(x: np.ndarray, y: np.ndarray, strip: Strip) -> bool:
    """False when the grid's four corners (a convex ground region) all lie on one side of the band."""
    if x.ndim != 2:
        return True
    corners_x = np.array([x[0, 0], x[0, -1], x[-1, 0], x[-1, -1]])
    corners_y = np.array([y[0, 0], y[0, -1], y[-1, 0], y[-1, -1]])
    across = (corners_x - strip.centre[0]) * strip.normal[0] + (corners_y - strip.centre[1]) * strip.normal[1]
    return not (np.all(across > strip.half_width) or np.all(across < -strip.half_width))


def _paint_markings(rgb, inside, along, across, strip: Strip, style: GroundStyle) -> None:
    hw = strip.half_width
    line_w = 0.12
    centre = (np.abs(across) < line_w) & ((along % 9.0) < 4.5)
    edges = np.abs(np.abs(across) - (hw - 0.35)) < line_w * 0.8
    lanes = round(hw * 2 / 3.5)
    extra = np.zeros_like(inside)
    if lanes >= 4:  # multi-lane: dashed separators at +-lane width
        for offset in (-3.5, 3.5):
            extra |= (np.abs(across - offset) < line_w) & ((along % 12.0) < 3.0)
    paint = inside & (centre | edges | extra)
    # slightly worn paint: keep a little of the asphalt texture under it
    rgb[paint] = 0.2 * rgb[paint] + 0.8 * np.asarray(style.marking, np.float32)
