"""Random but plausible looks: clothes, skin, hair, car paint, body proportions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synth.raster import Colour

SKIN = [(255, 219, 172), (241, 194, 125), (224, 172, 105), (198, 134, 66), (141, 85, 36), (92, 58, 34)]
HAIR = [(20, 16, 12), (60, 40, 25), (110, 75, 40), (200, 170, 110), (150, 150, 150), (120, 50, 20)]
CAR_PAINT = [
    (235, 235, 235), (20, 20, 22), (128, 130, 135), (180, 182, 186), (150, 20, 25), (25, 50, 120),
    (30, 80, 45), (200, 160, 40), (90, 60, 40), (220, 100, 20), (70, 110, 160), (245, 240, 225),
]  # fmt: skip
CARGO = [(240, 240, 240), (200, 40, 30), (30, 70, 150), (230, 190, 40), (90, 110, 90), (160, 160, 165)]


def _jitter(rng: np.random.Generator, colour: Colour, amount: int = 18) -> Colour:
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in colour)  # type: ignore[return-value]


def random_cloth(rng: np.random.Generator) -> Colour:
    """Clothes: mostly muted, sometimes saturated."""
    if rng.random() < 0.35:
        hue = rng.random()
        base = np.array([np.sin(2 * np.pi * (hue + k / 3)) for k in range(3)]) * 0.5 + 0.5
        return tuple(int(v) for v in 40 + 200 * base)  # type: ignore[return-value]
    grey = rng.integers(25, 200)
    tint = rng.integers(-30, 31, 3)
    return tuple(int(np.clip(grey + t, 0, 255)) for t in tint)  # type: ignore[return-value]


def darker(colour: Colour, factor: float = 0.6) -> Colour:
    return tuple(int(c * factor) for c in colour)  # type: ignore[return-value]


def lighter(colour: Colour, factor: float = 1.18) -> Colour:
    """Surfaces facing the sky (roofs) catch more light."""
    return tuple(min(255, int(c * factor + 8)) for c in colour)  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class PersonLook:
    height: float
    build: float  # shoulder-width factor
    skin: Colour
    hair: Colour
    hair_long: bool
    shirt: Colour
    shirt_stripes: tuple[Colour, float] | None
    short_sleeves: bool
    trousers: Colour
    skirt: bool
    shoes: Colour
    backpack: Colour | None
    hat: Colour | None

    @staticmethod
    def random(rng: np.random.Generator, *, child_fraction: float = 0.08) -> PersonLook:
        height = float(rng.uniform(1.05, 1.35) if rng.random() < child_fraction else rng.normal(1.72, 0.09))
        shirt = random_cloth(rng)
        return PersonLook(
            height=float(np.clip(height, 1.0, 2.05)),
            build=float(rng.uniform(0.85, 1.2)),
            skin=_jitter(rng, SKIN[rng.integers(len(SKIN))], 10),
            hair=_jitter(rng, HAIR[rng.integers(len(HAIR))], 10),
            hair_long=bool(rng.random() < 0.3),
            shirt=shirt,
            shirt_stripes=(random_cloth(rng), float(rng.uniform(0.06, 0.14))) if rng.random() < 0.25 else None,
            short_sleeves=bool(rng.random() < 0.4),
            trousers=random_cloth(rng) if rng.random() < 0.5 else _jitter(rng, (40, 50, 80), 20),
            skirt=bool(rng.random() < 0.12),
            shoes=_jitter(rng, (35, 30, 30), 25),
            backpack=random_cloth(rng) if rng.random() < 0.2 else None,
            hat=random_cloth(rng) if rng.random() < 0.1 else None,
        )


@dataclass(frozen=True, slots=True)
class VehicleLook:
    length: float
    width: float
    height: float
    paint: Colour
    cargo: Colour  # trucks: the box; cars: unused
    style: int  # cars: 0 sedan, 1 hatchback, 2 SUV/van; trucks: 0 box, 1 flatbed-with-load
    wheel_radius: float

    @staticmethod
    def random_car(rng: np.random.Generator) -> VehicleLook:
        style = int(rng.choice(3, p=[0.45, 0.3, 0.25]))
        length = [rng.uniform(4.3, 5.0), rng.uniform(3.7, 4.3), rng.uniform(4.4, 5.1)][style]
        height = [rng.uniform(1.38, 1.5), rng.uniform(1.42, 1.55), rng.uniform(1.65, 1.95)][style]
        return VehicleLook(
            length=float(length),
            width=float(rng.uniform(1.7, 1.95)),
            height=float(height),
            paint=_jitter(rng, CAR_PAINT[rng.integers(len(CAR_PAINT))], 12),
            cargo=(0, 0, 0),
            style=style,
            wheel_radius=float(rng.uniform(0.3, 0.36)),
        )

    @staticmethod
    def random_truck(rng: np.random.Generator) -> VehicleLook:
        return VehicleLook(
            length=float(rng.uniform(6.5, 10.0)),
            width=float(rng.uniform(2.3, 2.55)),
            height=float(rng.uniform(3.0, 3.8)),
            paint=_jitter(rng, CAR_PAINT[rng.integers(len(CAR_PAINT))], 12),
            cargo=_jitter(rng, CARGO[rng.integers(len(CARGO))], 15),
            style=int(rng.random() < 0.2),
            wheel_radius=float(rng.uniform(0.45, 0.52)),
        )

    @staticmethod
    def random_bicycle(rng: np.random.Generator) -> VehicleLook:
        return VehicleLook(
            length=float(rng.uniform(1.65, 1.8)),
            width=0.6,
            height=1.0,
            paint=_jitter(rng, CAR_PAINT[rng.integers(len(CAR_PAINT))], 20),
            cargo=(0, 0, 0),
            style=0,
            wheel_radius=float(rng.uniform(0.31, 0.36)),
        )
