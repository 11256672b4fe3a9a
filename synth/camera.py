"""The drone's camera: a pinhole at some altitude looking down (nadir or oblique), as a ground homography."""

from __future__ import annotations

import numpy as np


def ground_homography(
    target: np.ndarray, yaw: float, tilt: float, altitude: float, pixels_per_metre: float, size: tuple[int, int]
) -> np.ndarray:
    """3x3 homography from ground metres (x, y, z=0; z up) to image pixels.

    The optical axis passes through `target`; `yaw` turns the image about the vertical, `tilt` (radians
    from straight down) makes the view oblique, and the focal length is chosen so that one metre at the
    target spans `pixels_per_metre` pixels across.
    """
    width, height = size
    cy, sy = np.cos(yaw), np.sin(yaw)
    # camera axes (rows) in world coordinates for a nadir view: x right, y down the image, z into the ground
    nadir = np.array([[cy, sy, 0.0], [sy, -cy, 0.0], [0.0, 0.0, -1.0]])
    ct, st = np.cos(tilt), np.sin(tilt)
    pitch = np.array([[1.0, 0.0, 0.0], [0.0, ct, -st], [0.0, st, ct]])
    rotation = pitch @ nadir
    forward = rotation[2]  # optical axis in world coordinates
    distance = altitude / -forward[2]
    centre = np.array([target[0], target[1], 0.0]) - forward * distance
    focal = pixels_per_metre * distance
    intrinsics = np.array([[focal, 0.0, width / 2], [0.0, focal, height / 2], [0.0, 0.0, 1.0]])
    translation = -rotation @ centre
    extrinsics = np.column_stack([rotation[:, 0], rotation[:, 1], translation])
    homography = intrinsics @ extrinsics
    return homography / homography[2, 2]


def apply_homography(homography: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map (N, 2) points through a 3x3 homography."""
    pts = np.asarray(points, float)
    mapped = np.column_stack([pts, np.ones(len(pts))]) @ homography.T
    return mapped[:, :2] / mapped[:, 2:3]


def area_scale(homography: np.ndarray, point: np.ndarray) -> float:
    """How many output pixels one input pixel covers near `point` (|det| of the homography's Jacobian)."""
    u, v = float(point[0]), float(point[1])
    a, b, c = homography @ np.array([u, v, 1.0])
    h = homography
    jac = np.array(
        [
            [(h[0, 0] * c - a * h[2, 0]) / c**2, (h[0, 1] * c - a * h[2, 1]) / c**2],
            [(h[1, 0] * c - b * h[2, 0]) / c**2, (h[1, 1] * c - b * h[2, 1]) / c**2],
        ]
    )
    return float(abs(np.linalg.det(jac)))
