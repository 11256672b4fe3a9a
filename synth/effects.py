"""What the camera does to a rendered frame: lens softness, slow lighting drift, sensor noise, motion blur.

Only the image changes: masks stay those of the scene (a blurred edge still belongs to its object).
"""

from __future__ import annotations

import cv2
import numpy as np


class CameraEffects:
    """Per-scene camera character; `apply` is deterministic given the frame index."""

    def __init__(self, rng: np.random.Generator, size: tuple[int, int], fps: float) -> None:
        width, height = size
        self.fps = fps
        self.softness = float(rng.uniform(0.45, 0.85))
        self.gain_amplitude = float(rng.uniform(0.03, 0.12))
        self.gain_period = float(rng.uniform(20.0, 90.0))  # seconds: clouds, auto-exposure hunting
        self.temperature_amplitude = float(rng.uniform(0.01, 0.05))
        self.temperature_period = float(rng.uniform(40.0, 160.0))
        self.phases = rng.uniform(0, 2 * np.pi, 2)
        # overcast or dusk now and then, bright noon sometimes
        self.base_gain = float(rng.uniform(0.6, 0.85) if rng.random() < 0.25 else rng.uniform(0.85, 1.15))
        self.base_tint = rng.uniform(-0.05, 0.05, 3)
        sigma = float(rng.uniform(1.2, 4.0))
        # one noise field a little larger than the frame; each frame takes a shifted, flipped crop of it:
        # per-pixel noise for a fraction of the cost of drawing it fresh every frame
        self.pad = 16
        self.noise = np.round(
            rng.standard_normal((height + self.pad, width + self.pad, 3), dtype=np.float32) * sigma
        ).astype(np.int16)
        self.size = size

    def colour_matrix(self, frame_index: int) -> np.ndarray:
        t = frame_index / self.fps
        gain = self.base_gain * (1 + self.gain_amplitude * np.sin(2 * np.pi * t / self.gain_period + self.phases[0]))
        warm = self.temperature_amplitude * np.sin(2 * np.pi * t / self.temperature_period + self.phases[1])
        channel = gain * (1 + self.base_tint + np.array([warm, 0.0, -warm]))
        return np.diag(channel).astype(np.float32)

    def apply(self, rgb: np.ndarray, frame_index: int) -> np.ndarray:
        out = cv2.GaussianBlur(rgb, (3, 3), self.softness)
        out = cv2.transform(out, self.colour_matrix(frame_index)).astype(np.int16)
        pick = (frame_index * 2654435761) & 0xFFFFFFFF  # deterministic, decorrelated from frame to frame
        dy, dx = pick % self.pad, (pick >> 8) % self.pad
        width, height = self.size
        noise = self.noise[dy : dy + height, dx : dx + width]
        if pick >> 16 & 1:
            noise = noise[::-1]
        if pick >> 17 & 1:
            noise = noise[:, ::-1]
        out += noise
        return np.clip(out, 0, 255).astype(np.uint8)


def motion_blur(rgb: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Blur along the image-space displacement `shift` (pixels during the exposure) with a line kernel."""
    length = float(np.hypot(*shift))
    if length < 1.0:
        return rgb
    size = int(np.ceil(length)) | 1
    kernel = np.zeros((size, size), np.float32)
    centre = size // 2
    direction = shift / length
    for s in np.linspace(-length / 2, length / 2, max(2, int(length * 2))):
        x, y = centre + direction[0] * s, centre + direction[1] * s
        kernel[round(y), round(x)] += 1.0
    kernel /= kernel.sum()
    return cv2.filter2D(rgb, -1, kernel, borderType=cv2.BORDER_REFLECT)
