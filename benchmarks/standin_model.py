"""A zero-cost stand-in for the model: a `Detector` that reports K moving objects without running a network.

It measures the ceiling of everything around the model (batcher, masks, tracker, events, sinks): with it, the
pipeline's speed is what the CPU side can take, whatever GPU runs the real model. What it reports is shaped like
Mask R-CNN's output so every later stage does its real work:

- K objects, each a box whose sides are 2-25 % of the frame's sides (log-uniform, as people and cars at varying
  distance), moving in straight lines and bouncing off the frame edges, so the tracker keeps real tracks;
- scores in (0.6, 1), labels cycling over the model's classes;
- a 28x28 mask-probability map per object (a soft ellipse), as the mask head gives, pasted by the masks stage.

Boxes are computed on the model's device with a few vectorised ops per batch (no host sync, no per-object work
in Python). Positions follow the number of images seen so far, so consecutive frames of a source move smoothly.

    from benchmarks.standin_model import StandinDetector
    detector = StandinDetector.create(objects=30, device=torch.device("cuda"))
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from pipeline.items import RawDetections
from stages.inference import Detector

STANDIN_CLASSES = ["background", "person", "car", "bicycle"]
MASK_SIZE = 28  # Mask R-CNN's mask head resolution


def _soft_ellipses(count: int, generator: torch.Generator) -> torch.Tensor:
    """(count, 1, 28, 28) probabilities: an ellipse filling most of the box, soft at its edge, a little varied."""
    cells = (torch.arange(MASK_SIZE, dtype=torch.float32) + 0.5) / MASK_SIZE * 2 - 1  # -1..1 across the box
    radii = 0.75 + 0.2 * torch.rand(count, 2, generator=generator)  # (rx, ry) per object
    x = cells[None, None, :] / radii[:, 0, None, None]
    y = cells[None, :, None] / radii[:, 1, None, None]
    distance = torch.sqrt(x**2 + y**2)  # 1 on the ellipse
    return torch.sigmoid((1 - distance) * 12)[:, None]


@dataclass
class StandinDetector(Detector):
    """Detector-compatible: `detect(images)` returns K `RawDetections` per image in a few device ops."""

    objects: int = 10
    _origin: torch.Tensor = field(default_factory=lambda: torch.zeros(0))  # (K, 2) start centre, fraction of side
    _velocity: torch.Tensor = field(default_factory=lambda: torch.zeros(0))  # (K, 2) fraction of side per frame
    _size: torch.Tensor = field(default_factory=lambda: torch.zeros(0))  # (K, 2) box w, h as fraction of W, H
    _scores: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    _labels: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    _masks: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    _step: int = 0
    _scales: dict[tuple[int, int], torch.Tensor] = field(default_factory=dict)

    @classmethod
    def create(cls, objects: int, device: torch.device, seed: int = 0) -> StandinDetector:
        g = torch.Generator().manual_seed(seed)
        # log-uniform sides in [2 %, 25 %] of the frame side: many small objects, a few large ones
        size = 0.02 * (0.25 / 0.02) ** torch.rand(objects, 2, generator=g)
        detector = cls(
            model=torch.nn.Identity(),
            class_names=list(STANDIN_CLASSES),
            device=device,
            arch=f"stand-in ({objects} objects, zero cost)",
            objects=objects,
        )
        detector._size = size.to(device)
        detector._origin = torch.rand(objects, 2, generator=g).to(device)
        speed = 0.002 + 0.008 * torch.rand(objects, generator=g)  # 0.2-1 % of the side per frame
        angle = torch.rand(objects, generator=g) * 2 * math.pi
        detector._velocity = (torch.stack([angle.cos(), angle.sin()], 1) * speed[:, None]).to(device)
        detector._scores = (0.6 + 0.4 * torch.rand(objects, generator=g)).to(device)
        detector._labels = (torch.arange(objects) % (len(STANDIN_CLASSES) - 1) + 1).to(device)
        detector._masks = _soft_ellipses(objects, g).to(device)
        return detector

    def detect(self, images: list[torch.Tensor]) -> list[RawDetections]:
        steps = torch.arange(self._step, self._step + len(images), device=self.device, dtype=torch.float32)
        self._step += len(images)
        # centre moves in a straight line and bounces inside [half size, 1 - half size] (a triangle wave)
        low = self._size / 2
        span = (1 - self._size).clamp(min=1e-6)
        travel = (self._origin - low) + steps[:, None, None] * self._velocity  # (B, K, 2)
        phase = torch.remainder(travel, 2 * span)
        centre = low + torch.where(phase > span, 2 * span - phase, phase)
        normalised = torch.cat([centre - low, centre + low], dim=2)  # (B, K, 4) x1 y1 x2 y2 as fractions
        results = []
        for image, boxes in zip(images, normalised, strict=True):
            results.append(
                RawDetections(boxes * self._scale(*image.shape[-2:]), self._scores, self._labels, self._masks)
            )
        return results

    def _scale(self, height: int, width: int) -> torch.Tensor:
        """(4,) fractions → pixels, made once per frame size (no host→device copy per frame)."""
        key = (int(height), int(width))
        if key not in self._scales:
            self._scales[key] = torch.tensor([width, height, width, height], device=self.device, dtype=torch.float32)
        return self._scales[key]

    def warm_up(self, batch_size: int, size: tuple[int, int]) -> float:
        started = time.perf_counter()
        self.detect([torch.zeros(3, *size, device=self.device)] * batch_size)
        self._step = 0  # the real frames start at the beginning of the motion
        return time.perf_counter() - started
