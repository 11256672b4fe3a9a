"""Constant-velocity Kalman filter on boxes, vectorised over all tracks of a frame.

State per track: centre x, centre y, width, height and their velocities (pixels per SECOND), so the filter
behaves the same at 5 fps and 60 fps: the transition and the process noise are functions of the real time step.
Noise scales with the box height (a far, small object moves fewer pixels than a near one).
"""

from __future__ import annotations

import numpy as np

STATE_DIM = 8
MEAS_DIM = 4

# Random-walk intensity of the position/size, relative to the measurement noise, per second. It is what lets a box
# change size or drift without the velocity having to explain it (ByteTrack's per-frame position noise, at 30 Hz).
_POSITION_WALK_RATE = 30.0
# Initial velocity uncertainty, in box heights per second: objects we have seen once may move fast.
_INITIAL_VELOCITY_STD = 2.0
_MIN_SIZE = 1.0


def xyxy_to_cxcywh(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    return np.stack([boxes[:, 0] + w / 2, boxes[:, 1] + h / 2, w, h], axis=1)


def cxcywh_to_xyxy(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64).reshape(-1, 4)
    half_w = z[:, 2] / 2
    half_h = z[:, 3] / 2
    return np.stack([z[:, 0] - half_w, z[:, 1] - half_h, z[:, 0] + half_w, z[:, 1] + half_h], axis=1)


class BoxKalman:
    """The filter's parameters; states live with the tracks as (N, 8) means and (N, 8, 8) covariances."""

    def __init__(self, position_noise: float, velocity_noise: float) -> None:
        self.position_noise = float(position_noise)
        self.velocity_noise = float(velocity_noise)

    def _noise_scale(self, means: np.ndarray) -> np.ndarray:
        return np.maximum(means[:, 3], _MIN_SIZE)

    def initiate(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """States for new tracks from (N, 4) cx, cy, w, h measurements, velocities zero."""
        z = np.asarray(z, dtype=np.float64).reshape(-1, 4)
        n = len(z)
        means = np.zeros((n, STATE_DIM))
        means[:, :4] = z
        h = np.maximum(z[:, 3], _MIN_SIZE)
        std = np.empty((n, STATE_DIM))
        std[:, :4] = 2.0 * self.position_noise * h[:, None]
        std[:, 4:] = _INITIAL_VELOCITY_STD * h[:, None]
        covs = np.zeros((n, STATE_DIM, STATE_DIM))
        idx = np.arange(STATE_DIM)
        covs[:, idx, idx] = std**2
        return means, covs

    def predict(self, means: np.ndarray, covs: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
        """Advance every state by dt seconds (white-noise acceleration model)."""
        if len(means) == 0 or dt <= 0:
            return means, covs
        transition = np.eye(STATE_DIM)
        transition[:4, 4:] = dt * np.eye(4)
        new_means = means @ transition.T
        new_covs = transition @ covs @ transition.T
        h2 = self._noise_scale(means) ** 2
        q_vel = self.velocity_noise**2
        q_pos = self.position_noise**2 * _POSITION_WALK_RATE
        # Continuous white-noise acceleration integrated over dt, plus a random walk on position/size.
        pos = (q_vel * dt**3 / 3 + q_pos * dt) * h2
        cross = q_vel * dt**2 / 2 * h2
        vel = q_vel * dt * h2
        for k in range(4):
            new_covs[:, k, k] += pos
            new_covs[:, k, k + 4] += cross
            new_covs[:, k + 4, k] += cross
            new_covs[:, k + 4, k + 4] += vel
        new_means[:, 2:4] = np.maximum(new_means[:, 2:4], _MIN_SIZE)
        return new_means, new_covs

    def update(self, means: np.ndarray, covs: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Correct (N, 8) states with (N, 4) measurements."""
        if len(means) == 0:
            return means, covs
        z = np.asarray(z, dtype=np.float64).reshape(-1, 4)
        r = (self.position_noise * np.maximum(z[:, 3], _MIN_SIZE)) ** 2
        innovation_cov = covs[:, :4, :4].copy()
        idx = np.arange(4)
        innovation_cov[:, idx, idx] += r[:, None]
        cross = covs[:, :, :4]  # P H^T
        # K = P H^T S^-1, solved rather than inverted; S is symmetric so K^T = S^-1 H P.
        gain = np.linalg.solve(innovation_cov, np.transpose(cross, (0, 2, 1))).transpose(0, 2, 1)
        residual = z - means[:, :4]
        new_means = means + np.einsum("nij,nj->ni", gain, residual)
        new_covs = covs - gain @ covs[:, :4, :]
        new_means[:, 2:4] = np.maximum(new_means[:, 2:4], _MIN_SIZE)
        return new_means, new_covs

    @staticmethod
    def warp(means: np.ndarray, covs: np.ndarray, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Move states by a 3x3 image warp (camera motion): centres are projected, sizes and velocities follow
        the warp's local linear part at each centre (exact for affine warps, first order for homographies)."""
        if len(means) == 0:
            return means, covs
        matrix = np.asarray(matrix, dtype=np.float64)
        centres = means[:, :2]
        homogeneous = centres @ matrix[:2, :2].T + matrix[:2, 2]
        denom = centres @ matrix[2, :2] + matrix[2, 2]
        new_centres = homogeneous / denom[:, None]
        # Jacobian of the projective map at each centre: (A - p' g^T) / denom.
        linear = (matrix[None, :2, :2] - new_centres[:, :, None] * matrix[None, 2, :2][:, None, :]) / denom[
            :, None, None
        ]
        scale_x = np.linalg.norm(linear[:, :, 0], axis=1)
        scale_y = np.linalg.norm(linear[:, :, 1], axis=1)
        n = len(means)
        transform = np.zeros((n, STATE_DIM, STATE_DIM))
        transform[:, 0:2, 0:2] = linear
        transform[:, 2, 2] = scale_x
        transform[:, 3, 3] = scale_y
        transform[:, 4:6, 4:6] = linear
        transform[:, 6, 6] = scale_x
        transform[:, 7, 7] = scale_y
        new_means = np.einsum("nij,nj->ni", transform, means)
        new_means[:, :2] = new_centres
        new_covs = transform @ covs @ np.transpose(transform, (0, 2, 1))
        return new_means, new_covs
