"""Global camera-motion estimation (what BoT-SORT calls GMC), so tracks follow the scene when the camera moves.

Each frame is downscaled to a small grey image. Background corners of the previous frame (pixels under detected
objects excluded: they move on their own) are followed into the current frame with pyramidal Lucas-Kanade flow, and
a warp is fitted with RANSAC. When flow cannot give a warp (texture-less sky, motion blur) ECC image alignment is
tried; when that fails too the warp is the identity. The warp maps previous-frame pixel coordinates to current-frame
pixel coordinates at full resolution, as a 3x3 matrix.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.items import Detections
from tracking.association import integer_box

log = logging.getLogger(__name__)

_MIN_FLOW_POINTS = 12
_MIN_INLIER_FRACTION = 0.3
_RANSAC_THRESHOLD_PX = 1.0  # in downscaled pixels
_ECC_ITERATIONS = 40
_ECC_EPS = 1e-4
_EXCLUDE_DILATE_PX = 3  # a margin round each object: corners on its outline move with it, not the camera

# mask n inside the pixel window (x1, y1, x2, y2), as a (y2 - y1, x2 - x1) bool array (`Detections.mask_in`)
MaskWindow = Callable[[int, tuple[int, int, int, int]], np.ndarray]
# mask n inside a pixel window, every `step`-th row and column: `mask_window(n, window)[::step, ::step]`
MaskSampler = Callable[[int, tuple[int, int, int, int], int], np.ndarray]


def sampler_of(masks: MaskWindow) -> MaskSampler:
    """A sampler over any mask-window function (materialises the window, then strides it)."""
    return lambda n, window, step: masks(n, window)[::step, ::step]


def crop_sampler(dets: Detections) -> MaskSampler:
    """A sampler reading the detections' box-local crops directly: work proportional to the sampled pixels, no
    window copy (the pixels are those of `sampler_of(dets.mask_in)`)."""

    def sample(n: int, window: tuple[int, int, int, int], step: int) -> np.ndarray:
        wx1, wy1, wx2, wy2 = window
        x0, y0, w, h = (int(v) for v in dets.windows[n])
        if x0 <= wx1 and y0 <= wy1 and wx2 <= x0 + w and wy2 <= y0 + h:  # inside the crop: a strided view
            return dets.mask(n)[wy1 - y0 : wy2 - y0 : step, wx1 - x0 : wx2 - x0 : step]
        out = np.zeros((-(-(wy2 - wy1) // step), -(-(wx2 - wx1) // step)), bool)
        # output row k is frame row wy1 + k * step; keep the rows (columns) the crop covers
        r0, r1 = -(-(max(wy1, y0) - wy1) // step), -(-(min(wy2, y0 + h) - wy1) // step)
        c0, c1 = -(-(max(wx1, x0) - wx1) // step), -(-(min(wx2, x0 + w) - wx1) // step)
        if r1 > r0 and c1 > c0:
            ys, xs = wy1 + r0 * step - y0, wx1 + c0 * step - x0
            out[r0:r1, c0:c1] = dets.mask(n)[ys::step, xs::step][: r1 - r0, : c1 - c0]
        return out

    return sample


@dataclass(slots=True)
class MotionEstimate:
    matrix: np.ndarray  # 3x3, previous frame pixel -> current frame pixel (full resolution)
    method: str  # "flow", "ecc", "static", "identity" (failed or first frame), "reset" (size changed), "off"

    @property
    def is_identity(self) -> bool:
        return self.method in ("static", "identity", "reset", "off")


class CameraMotionEstimator:
    """Stateful per-source estimator: call `estimate` once per frame, in order."""

    def __init__(
        self,
        mode: str = "auto",
        model: str = "similarity",
        width: int = 320,
        max_features: int = 150,
        min_motion_px: float = 0.25,
    ) -> None:
        if mode not in ("off", "auto", "flow", "ecc"):
            raise ValueError(f"unknown camera motion mode {mode!r}")
        if model not in ("similarity", "affine", "homography"):
            raise ValueError(f"unknown camera motion model {model!r}")
        self.mode = mode
        self.model = model
        self.width = width
        self.max_features = max_features
        self.min_motion_px = min_motion_px
        self._prev_grey: np.ndarray | None = None
        self._prev_usable: np.ndarray | None = None
        self._prev_points: np.ndarray | None = None  # background corners in the previous frame, (N, 1, 2)
        self._full_size: tuple[int, int] | None = None
        self._scale = 1.0

    def reset(self) -> None:
        self._prev_grey = None
        self._prev_usable = None
        self._prev_points = None
        self._full_size = None

    def estimate(
        self,
        image: np.ndarray,
        boxes: np.ndarray | None = None,
        masks: MaskWindow | None = None,
        sampler: MaskSampler | None = None,
    ) -> MotionEstimate:
        """Warp from the previous frame to `image` (H x W x 3 RGB or H x W grey). `boxes` (N, 4) and `masks`
        (mask n inside a pixel window, e.g. `Detections.mask_in`) or, cheaper, `sampler` (e.g. `crop_sampler`)
        of this frame's detections mark pixels that are not background."""
        identity = np.eye(3)
        if self.mode == "off":
            return MotionEstimate(identity, "off")
        full_h, full_w = image.shape[:2]
        size_changed = self._full_size is not None and self._full_size != (full_h, full_w)
        if self._full_size is None or size_changed:
            self._full_size = (full_h, full_w)
            self._scale = min(1.0, self.width / full_w)
            self._prev_grey = None
            self._prev_points = None
        grey = self._downscale_grey(image)
        if sampler is None and masks is not None:
            sampler = sampler_of(masks)
        usable = self._background_mask(grey.shape, boxes, sampler)
        prev_grey, prev_usable = self._prev_grey, self._prev_usable
        self._prev_grey, self._prev_usable = grey, usable
        if prev_grey is None:
            return MotionEstimate(identity, "reset" if size_changed else "identity")

        small: np.ndarray | None = None
        method = "identity"
        if self.mode in ("auto", "flow"):
            small = self._flow_warp(prev_grey, prev_usable, grey)
            method = "flow"
        if small is None and self.mode in ("auto", "ecc"):
            small = self._ecc_warp(prev_grey, prev_usable, grey)
            method = "ecc"
        if small is None:
            return MotionEstimate(identity, "identity")
        matrix = self._to_full_resolution(small)
        if self.mode == "auto" and self._max_corner_shift(matrix) < self.min_motion_px:
            return MotionEstimate(identity, "static")
        return MotionEstimate(matrix, method)

    # --- internals ---

    def _downscale_grey(self, image: np.ndarray) -> np.ndarray:
        full_h, full_w = image.shape[:2]
        if self._scale < 1.0:
            size = (max(1, round(full_w * self._scale)), max(1, round(full_h * self._scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        if image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        return np.ascontiguousarray(image)

    def _background_mask(
        self, shape: tuple[int, ...], boxes: np.ndarray | None, masks: MaskSampler | None
    ) -> np.ndarray:
        """uint8 mask at the small scale: 255 where a pixel may be used for camera motion."""
        usable = np.full(shape[:2], 255, np.uint8)
        if boxes is None or len(boxes) == 0:
            return usable
        s = self._scale
        small_h, small_w = shape[:2]
        full_h, full_w = self._full_size or (0, 0)
        step = max(1, round(1.0 / s))
        for i, box in enumerate((np.asarray(boxes, dtype=np.float64) * s).tolist()):
            x1, y1, x2, y2 = integer_box(box, small_h, small_w)
            if x2 <= x1 or y2 <= y1:
                continue
            if masks is None:
                usable[y1:y2, x1:x2] = 0
                continue
            # Strided view of the mask inside the box (no full-frame work), fitted to the small box if the
            # scale is not a whole step.
            fy1, fy2 = min(round(y1 / s), full_h), min(round(y2 / s), full_h)
            fx1, fx2 = min(round(x1 / s), full_w), min(round(x2 / s), full_w)
            region = masks(i, (fx1, fy1, max(fx1, fx2), max(fy1, fy2)), step)
            if region.shape != (y2 - y1, x2 - x1):
                if region.size == 0:
                    continue
                region = cv2.resize(region.view(np.uint8), (x2 - x1, y2 - y1), interpolation=cv2.INTER_NEAREST)
                region = region.view(bool)
            usable[y1:y2, x1:x2][region] = 0
        kernel = np.ones((2 * _EXCLUDE_DILATE_PX + 1, 2 * _EXCLUDE_DILATE_PX + 1), np.uint8)
        return cv2.erode(usable, kernel)

    def _flow_warp(self, prev: np.ndarray, prev_usable: np.ndarray | None, cur: np.ndarray) -> np.ndarray | None:
        points = self._prev_points
        if points is None or len(points) < self.max_features // 2:
            # Too few corners carried over from the last frame: detect afresh (the costly part, so not every frame).
            points = cv2.goodFeaturesToTrack(
                prev,
                maxCorners=self.max_features,
                qualityLevel=0.01,
                minDistance=max(3.0, prev.shape[1] / 48),
                mask=prev_usable,
                blockSize=3,
            )
        self._prev_points = None
        if points is None or len(points) < _MIN_FLOW_POINTS:
            return None
        moved, status, _err = cv2.calcOpticalFlowPyrLK(
            prev, cur, points, None, winSize=(11, 11), maxLevel=3,
            criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 10, 0.03),
        )  # fmt: skip
        if moved is None:
            return None
        ok = status.reshape(-1).astype(bool)
        src = points.reshape(-1, 2)[ok]
        dst = moved.reshape(-1, 2)[ok]
        if len(src) < _MIN_FLOW_POINTS:
            return None
        if self.model == "homography":
            matrix, inliers = cv2.findHomography(src, dst, cv2.RANSAC, _RANSAC_THRESHOLD_PX)
        elif self.model == "affine":
            matrix, inliers = cv2.estimateAffine2D(
                src, dst, method=cv2.RANSAC, ransacReprojThreshold=_RANSAC_THRESHOLD_PX
            )
        else:
            matrix, inliers = cv2.estimateAffinePartial2D(
                src, dst, method=cv2.RANSAC, ransacReprojThreshold=_RANSAC_THRESHOLD_PX
            )
        if matrix is None or inliers is None:
            return None
        n_inliers = int(inliers.sum())
        if n_inliers < _MIN_FLOW_POINTS or n_inliers < _MIN_INLIER_FRACTION * len(src):
            return None
        if matrix.shape == (2, 3):
            matrix = np.vstack([matrix, [0.0, 0.0, 1.0]])
        if not np.all(np.isfinite(matrix)):
            return None
        self._carry_points(dst[inliers.reshape(-1).astype(bool)], cur.shape)
        return matrix

    def _carry_points(self, points: np.ndarray, shape: tuple[int, ...]) -> None:
        """Background corners found again in this frame are followed into the next one (as a KLT tracker does),
        except those now under a detected object."""
        h, w = shape[:2]
        xs = np.round(points[:, 0]).astype(np.intp)
        ys = np.round(points[:, 1]).astype(np.intp)
        inside = (xs >= 0) & (xs < w) & (ys >= 0) & (ys < h)
        points, xs, ys = points[inside], xs[inside], ys[inside]
        if self._prev_usable is not None:
            keep = self._prev_usable[ys, xs] > 0
            points = points[keep]
        self._prev_points = np.ascontiguousarray(points.reshape(-1, 1, 2), dtype=np.float32)

    def _ecc_warp(self, prev: np.ndarray, prev_usable: np.ndarray | None, cur: np.ndarray) -> np.ndarray | None:
        motion = {
            "similarity": cv2.MOTION_EUCLIDEAN,
            "affine": cv2.MOTION_AFFINE,
            "homography": cv2.MOTION_HOMOGRAPHY,
        }[self.model]
        warp = np.eye(3, dtype=np.float32) if motion == cv2.MOTION_HOMOGRAPHY else np.eye(2, 3, dtype=np.float32)
        criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, _ECC_ITERATIONS, _ECC_EPS)
        try:
            # findTransformECC(template, input) finds W with input(W(x)) ~ template(x): W maps prev -> cur.
            _cc, warp = cv2.findTransformECC(prev, cur, warp, motion, criteria, prev_usable, 3)
        except cv2.error:
            return None
        warp = warp.astype(np.float64)
        if warp.shape == (2, 3):
            warp = np.vstack([warp, [0.0, 0.0, 1.0]])
        return warp if np.all(np.isfinite(warp)) else None

    def _to_full_resolution(self, small: np.ndarray) -> np.ndarray:
        s = self._scale
        if s == 1.0:
            return small
        to_small = np.diag([s, s, 1.0])
        to_full = np.diag([1.0 / s, 1.0 / s, 1.0])
        return to_full @ small @ to_small

    def _max_corner_shift(self, matrix: np.ndarray) -> float:
        assert self._full_size is not None
        h, w = self._full_size
        corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], dtype=np.float64)
        moved = corners @ matrix.T
        moved = moved[:, :2] / moved[:, 2:3]
        return float(np.max(np.linalg.norm(moved - corners[:, :2], axis=1)))
