"""One track's state (Kalman state, lifecycle phase, class votes, last observation) and the OC-SORT re-update
that re-filters a re-found track along a virtual path across its gap. The tracker (tracking/tracker.py) owns
the lifecycle; this module owns what a single track remembers."""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from pipeline.items import TrackState
from tracking.association import CroppedMask
from tracking.kalman import BoxKalman

# Virtual observations used to re-filter a re-found track across its gap (OC-SORT); more adds cost, not accuracy.
MAX_VIRTUAL_STEPS = 10


class Phase(enum.Enum):
    TENTATIVE = "tentative"
    CONFIRMED = "confirmed"
    LOST = "lost"


@dataclass(slots=True, eq=False)
class Track:
    mean: np.ndarray
    cov: np.ndarray
    phase: Phase
    track_id: int  # 0 until confirmed: ids are handed out on confirmation so published ids have no gaps
    first_frame: int
    first_time: float  # capture time
    first_t: float  # stream time
    last_frame: int
    last_time: float
    last_t: float
    score: float
    hits: int = 1
    misses: int = 0  # consecutive frames without an observation
    labels: Counter[int] = field(default_factory=Counter)
    label: int = 0
    last_box: np.ndarray = field(default_factory=lambda: np.zeros(4, np.float32))  # latest observed, xyxy
    mask: CroppedMask | None = None  # latest observed mask, cropped to its box
    detection_index: int | None = None
    last_updated_event_t: float = float("-inf")
    # state right after the last observation, kept in current image coordinates, for the observation-centric
    # re-update; gap_ts: stream times of the frames missed since then
    obs_mean: np.ndarray | None = None
    obs_cov: np.ndarray | None = None
    gap_ts: list[float] = field(default_factory=list)

    def vote(self, label: int) -> None:
        self.labels[label] += 1
        self.label = self.labels.most_common(1)[0][0]

    def predicted_box(self) -> np.ndarray:
        cx, cy, w, h = self.mean[:4].tolist()
        return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])

    def state(self, filtered_box: bool = False) -> TrackState:
        observed = self.detection_index is not None
        box = self.last_box if observed and not filtered_box else self.predicted_box().astype(np.float32)
        return TrackState(
            track_id=self.track_id,
            label=self.label,
            score=self.score,
            box=np.asarray(box, np.float32).copy(),
            detection_index=self.detection_index,
            first_frame=self.first_frame,
            first_time=self.first_time,
            last_frame=self.last_frame,
            last_time=self.last_time,
            hits=self.hits,
        )


def observation_centric_reupdate(kalman: BoxKalman, track: Track, z_new: np.ndarray, t: float) -> None:
    """Re-run the filter from the last observation along a straight path to the new one."""
    assert track.obs_mean is not None and track.obs_cov is not None
    z_old = track.obs_mean[:4].copy()
    span = t - track.last_t
    gap = track.gap_ts
    if len(gap) > MAX_VIRTUAL_STEPS:
        picks = np.linspace(0, len(gap) - 1, MAX_VIRTUAL_STEPS).round().astype(int)
        gap = [gap[i] for i in picks]
    mean, cov = track.obs_mean[None], track.obs_cov[None]
    prev_t = track.last_t
    for gt in [*gap, t]:
        mean, cov = kalman.predict(mean, cov, gt - prev_t)
        frac = (gt - track.last_t) / span if span > 0 else 1.0
        z_virtual = z_old + (z_new - z_old) * frac
        mean, cov = kalman.update(mean, cov, z_virtual[None])
        prev_t = gt
    track.mean, track.cov = mean[0], cov[0]
