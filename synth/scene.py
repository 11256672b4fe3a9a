"""What a scene hands to the frame loop: the rendered image, the instance-id map and who is who."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass(slots=True)
class RenderedFrame:
    rgb: np.ndarray  # (H, W, 3) uint8, before camera effects
    ids: np.ndarray  # (H, W) uint16: 0 = nobody, k = objects[k - 1]
    objects: list[tuple[int, int, float]] = field(default_factory=list)  # (track_id, category_id, full area px)


class Scene(Protocol):
    def step(self) -> None:
        """Advance the world by one frame interval."""

    def advance(self, seconds: float) -> None:
        """Advance the world by `seconds` in coarse steps (cheap; for skipping between dataset stills)."""

    def render(self) -> RenderedFrame:
        """Draw the current state."""
