"""Tracking evaluation, step 3: every tracker behind one small interface (see evaluation/tracking.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from pipeline.config.tracker import TrackerConfig
from pipeline.items import Detections, Frame
from tracking.tracker import MultiObjectTracker


class TrackerAdapter(Protocol):
    def __call__(self, frame: Frame, dets: Detections) -> list[tuple[int, np.ndarray, int, int]]:
        """-> (track id, box xyxy, class, detection index) for every track reported in this frame."""
        ...


class OursAdapter:
    def __init__(self, cfg: TrackerConfig) -> None:
        self.tracker = MultiObjectTracker(cfg)

    def __call__(self, frame: Frame, dets: Detections) -> list[tuple[int, np.ndarray, int, int]]:
        step = self.tracker.step(frame, dets)
        return [(t.track_id, t.box, t.label, t.detection_index) for t in step.tracks if t.detection_index is not None]


class BoxmotAdapter:
    """boxmot trackers: update(N x 6 [x1, y1, x2, y2, score, class], BGR image) -> [x1, y1, x2, y2, id, conf,
    class, detection index]."""

    def __init__(self, tracker: Any) -> None:
        self.tracker = tracker

    def __call__(self, frame: Frame, dets: Detections) -> list[tuple[int, np.ndarray, int, int]]:
        arr = np.concatenate(
            [dets.boxes.reshape(-1, 4), dets.scores.reshape(-1, 1), dets.labels.reshape(-1, 1).astype(np.float32)],
            axis=1,
        ).astype(np.float32)
        out = self.tracker.update(arr, np.ascontiguousarray(frame.image[:, :, ::-1]))
        out = np.asarray(out).reshape(-1, 8) if out is not None and len(out) else np.zeros((0, 8))
        return [(int(r[4]), r[:4].copy(), int(r[6]), int(r[7])) for r in out]


def boxmot_trackers(fps: float) -> dict[str, Callable[[], TrackerAdapter]]:
    """boxmot's trackers with every parameter that matters set explicitly (its constructor defaults differ from
    its YAML presets), thresholds aligned with ours: high 0.5, low 0.1, new track 0.6, 30-frame buffer."""
    from boxmot import BotSort, ByteTrack, OcSort

    rate = round(fps)

    def bytetrack() -> TrackerAdapter:
        return BoxmotAdapter(
            ByteTrack(min_conf=0.1, track_thresh=0.5, match_thresh=0.8, track_buffer=30, frame_rate=rate)
        )

    def ocsort() -> TrackerAdapter:
        return BoxmotAdapter(
            OcSort(
                min_conf=0.1,
                delta_t=3,
                inertia=0.2,
                use_byte=False,
                det_thresh=0.5,
                max_age=30,
                min_hits=3,
                iou_threshold=0.3,
                asso_func="iou",
            )
        )

    def botsort(cmc: str | None) -> Callable[[], TrackerAdapter]:
        def make() -> TrackerAdapter:
            return BoxmotAdapter(
                BotSort(
                    track_high_thresh=0.5,
                    track_low_thresh=0.1,
                    new_track_thresh=0.6,
                    track_buffer=30,
                    match_thresh=0.8,
                    proximity_thresh=0.5,
                    appearance_thresh=0.25,
                    use_embeddings=False,
                    use_cmc=cmc is not None,
                    cmc_method=cmc or "ecc",
                    frame_rate=rate,
                    fuse_first_associate=False,
                    second_match_thresh=0.5,
                    unconfirmed_match_thresh=0.7,
                )
            )

        return make

    return {
        "ByteTrack": bytetrack,
        "OC-SORT": ocsort,
        "BoT-SORT (no CMC)": botsort(None),
        "BoT-SORT (ECC CMC)": botsort("ecc"),
        "BoT-SORT (sparse-flow CMC)": botsort("sof"),
    }


def our_trackers(base: TrackerConfig | None = None) -> dict[str, Callable[[], TrackerAdapter]]:
    base = base or TrackerConfig()
    variants = {
        "maskstream": {},
        "maskstream: no low-score stage": {"low_score": base.high_score},
        "maskstream: no compensation": {"camera_motion": "off"},
        "maskstream: box-only cost": {"mask_weight": 0.0},
        "maskstream: no OC re-update": {"observation_centric_update": False},
        "maskstream: no buffered IoU / recovery": {"lost_box_growth": 0.0, "recover_from_last_observation": False},
        "maskstream: strict classes": {"class_penalty": 1.0},
        "maskstream: mask weight fades below 200 px": {"mask_full_weight_area": 200.0},
    }

    def factory(cfg: TrackerConfig) -> Callable[[], TrackerAdapter]:
        return lambda: OursAdapter(cfg)

    return {name: factory(base.model_copy(update=changes)) for name, changes in variants.items()}
