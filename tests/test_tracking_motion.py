"""Camera-motion estimation and the Kalman filter's handling of warps and time steps."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.items import Detections
from tests.toyscene import textured_background
from tracking.camera_motion import CameraMotionEstimator, crop_sampler, sampler_of
from tracking.kalman import BoxKalman, cxcywh_to_xyxy, xyxy_to_cxcywh


def shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    warp = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, warp, (image.shape[1], image.shape[0]), borderMode=cv2.BORDER_REFLECT)


@pytest.mark.parametrize("mode", ["auto", "flow", "ecc"])
def test_warp_recovers_a_known_shift(mode):
    base = textured_background(360, 640, seed=5)
    estimator = CameraMotionEstimator(mode=mode)
    assert estimator.estimate(base).method == "identity"  # first frame: nothing to compare with
    estimate = estimator.estimate(shifted(base, 7.0, -4.0))
    assert estimate.method == ("ecc" if mode == "ecc" else "flow")
    assert estimate.matrix[:2, 2] == pytest.approx([7.0, -4.0], abs=0.3)
    assert estimate.matrix[:2, :2] == pytest.approx(np.eye(2), abs=0.01)


def test_warp_recovers_rotation_and_zoom_with_homography_model():
    base = textured_background(360, 640, seed=6)
    truth = cv2.getRotationMatrix2D((320, 180), 2.0, 1.03)
    moved = cv2.warpAffine(base, truth, (640, 360), borderMode=cv2.BORDER_REFLECT)
    estimator = CameraMotionEstimator(mode="flow", model="homography")
    estimator.estimate(base)
    estimate = estimator.estimate(moved)
    corners = np.array([[100, 100, 1], [540, 100, 1], [100, 260, 1], [540, 260, 1]], float)
    expected = corners @ np.vstack([truth, [0, 0, 1]]).T
    got = corners @ estimate.matrix.T
    assert got[:, :2] / got[:, 2:] == pytest.approx(expected[:, :2], abs=1.0)


def test_moving_objects_do_not_bias_the_camera_estimate():
    """An object covering most of the frame moves on its own over a static background: only the pixels outside
    its mask may be used, otherwise its motion would be taken for the camera's."""
    base = textured_background(360, 640, seed=7)
    patch = textured_background(300, 520, seed=8)

    def frame(x: int) -> tuple[np.ndarray, np.ndarray, object]:
        img = base.copy()
        img[30:330, x : x + 520] = patch
        mask = np.zeros((1, 360, 640), bool)
        mask[0, 30:330, x : x + 520] = True
        boxes = np.array([[x, 30, x + 520, 330]], float)
        return img, boxes, Detections.from_full_masks(boxes, np.ones(1), np.ones(1), mask).mask_in

    frames = [frame(20), frame(50)]  # the object jumps 30 px, the camera does not move
    with_masks = CameraMotionEstimator(mode="auto")
    blind = CameraMotionEstimator(mode="auto")
    for img, box, mask in frames:
        estimate = with_masks.estimate(img, box, mask)
        fooled = blind.estimate(img)
    assert estimate.method == "static"
    assert np.array_equal(estimate.matrix, np.eye(3))
    assert fooled.matrix[0, 2] == pytest.approx(30.0, abs=1.0)  # the scene really would mislead a blind estimator


def test_textureless_frames_fall_back_to_identity():
    flat = np.full((180, 320, 3), 90, np.uint8)
    estimator = CameraMotionEstimator(mode="auto")
    estimator.estimate(flat)
    estimate = estimator.estimate(flat)
    assert np.array_equal(estimate.matrix, np.eye(3))


def test_size_change_resets_the_estimator():
    estimator = CameraMotionEstimator(mode="auto")
    estimator.estimate(textured_background(360, 640))
    estimate = estimator.estimate(textured_background(180, 320))
    assert estimate.method == "reset"


def test_kalman_warp_moves_and_scales_states():
    kf = BoxKalman(0.05, 0.5)
    means, covs = kf.initiate(xyxy_to_cxcywh(np.array([[10.0, 20.0, 30.0, 60.0]])))
    means[0, 4:6] = [3.0, 0.0]
    zoom_shift = np.array([[2.0, 0.0, 5.0], [0.0, 2.0, -1.0], [0.0, 0.0, 1.0]])
    warped, warped_covs = kf.warp(means, covs, zoom_shift)
    assert cxcywh_to_xyxy(warped[:, :4])[0] == pytest.approx([25.0, 39.0, 65.0, 119.0])
    assert warped[0, 4:6] == pytest.approx([6.0, 0.0])
    assert warped_covs[0, 0, 0] == pytest.approx(4 * covs[0, 0, 0])


def test_kalman_learns_velocity_in_pixels_per_second_independent_of_frame_rate():
    kf = BoxKalman(0.05, 0.5)
    speeds = []
    for fps in (10.0, 50.0):
        means, covs = kf.initiate(np.array([[100.0, 100.0, 20.0, 40.0]]))
        for i in range(1, int(2 * fps) + 1):
            means, covs = kf.predict(means, covs, 1 / fps)
            means, covs = kf.update(means, covs, np.array([[100.0 + 60.0 * i / fps, 100.0, 20.0, 40.0]]))
        speeds.append(means[0, 4])
    assert speeds == pytest.approx([60.0, 60.0], rel=0.05)


def test_crop_sampler_reads_the_same_pixels_as_the_mask_window():
    """The camera-motion estimator samples each detection's mask straight from its crop; every window and step
    must give exactly the pixels of the materialised window, strided."""
    rng = np.random.default_rng(3)
    height, width = 90, 120
    masks = rng.random((6, height, width)) > 0.5
    boxes = np.array([[10, 5, 40, 30], [0, 0, 120, 90], [100, 70, 120, 90], [50, 40, 51, 41], [30, 30, 30, 60],
                      [-5, -5, 20, 15]], float)  # fmt: skip
    dets = Detections.from_full_masks(boxes, np.ones(6), np.ones(6), masks)
    sample, reference = crop_sampler(dets), sampler_of(dets.mask_in)
    for _ in range(300):
        n, step = int(rng.integers(6)), int(rng.integers(1, 5))
        x1, x2 = sorted(rng.integers(0, width + 1, 2).tolist())
        y1, y2 = sorted(rng.integers(0, height + 1, 2).tolist())
        got, want = sample(n, (x1, y1, x2, y2), step), reference(n, (x1, y1, x2, y2), step)
        assert got.shape == want.shape and np.array_equal(got, want), (n, step, (x1, y1, x2, y2))
