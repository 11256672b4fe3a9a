"""The multi-object tracker of one source: prediction, camera-motion compensation, association, lifecycle.

Per frame:
1. every track's Kalman state is predicted to the frame's time and moved by the estimated camera motion;
2. high-score detections are matched to confirmed and lost tracks, low-score detections to the confirmed tracks
   still unmatched (ByteTrack), leftover high-score detections to tentative tracks; the similarity blends box IoU
   with mask IoU and penalises class disagreement;
3. matched tracks are corrected (a lost track found again is re-filtered along a virtual path across its gap, as
   in OC-SORT); unmatched confident detections start tentative tracks;
4. the lifecycle advances: tentative -> confirmed (track.started) -> lost (optional track.lost) -> removed
   (track.ended), with ages in seconds of stream time. Removed tracks are forgotten; ids are never reused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.config.tracker import TrackerConfig
from pipeline.items import Detections, Frame, TrackState, TrackTransition
from tracking.association import CroppedMask, assign, box_iou, integer_box, similarity
from tracking.camera_motion import CameraMotionEstimator, MotionEstimate, crop_sampler
from tracking.kalman import BoxKalman, cxcywh_to_xyxy, xyxy_to_cxcywh
from tracking.track import MAX_VIRTUAL_STEPS, Phase, Track, observation_centric_reupdate

# Used when a stream's clock stalls or runs backwards (pts reset after a reconnect): assume a plausible frame step.
_FALLBACK_DT = 1.0 / 25.0


def _expanded(boxes: np.ndarray, grow: float) -> np.ndarray:
    """Boxes widened by `grow` times their width and height (half on each side)."""
    half = (boxes[:, 2:] - boxes[:, :2]) * (grow / 2)
    return np.concatenate([boxes[:, :2] - half, boxes[:, 2:] + half], axis=1)


@dataclass(slots=True)
class StepResult:
    transitions: list[TrackTransition]
    tracks: list[TrackState]
    motion: MotionEstimate


class MultiObjectTracker:
    """Tracks the instances of ONE source. Not thread-safe: feed it frames in order from one thread."""

    def __init__(self, cfg: TrackerConfig) -> None:
        self.cfg = cfg
        self.kalman = BoxKalman(cfg.position_noise, cfg.velocity_noise)
        self.motion = CameraMotionEstimator(
            mode=cfg.camera_motion,
            model=cfg.camera_motion_model,
            width=cfg.camera_motion_width,
            max_features=cfg.camera_motion_max_features,
            min_motion_px=cfg.camera_motion_min_px,
        )
        self.tracks: list[Track] = []
        self._next_id = 1
        self._t: float | None = None
        self._dt = _FALLBACK_DT
        self._frame_size: tuple[int, int] | None = None
        self._motion_size: tuple[int, ...] | None = None  # the frame size `estimate_motion` saw last
        self._filtered = cfg.report_box == "filtered"

    @property
    def next_id(self) -> int:
        return self._next_id

    # --- public API ---

    def estimate_motion(self, frame: Frame, dets: Detections) -> MotionEstimate:
        """The camera motion from the previous frame to this one. It depends on the frames and detections only,
        never on the tracks, so a caller may run it on frame n + 1 (in another thread) while `step` tracks frame
        n, and hand the result to `step`; called in frame order, from one thread at a time."""
        size = frame.image.shape[:2]
        if self._motion_size is not None and self._motion_size != size:
            self.motion.reset()  # as `step` does when the resolution changes
        self._motion_size = size
        boxes = np.asarray(dets.boxes, dtype=np.float64).reshape(-1, 4)
        have_masks = len(dets.windows) == len(boxes)
        return self.motion.estimate(frame.image, boxes, sampler=crop_sampler(dets) if have_masks else None)

    def step(self, frame: Frame, dets: Detections, motion: MotionEstimate | None = None) -> StepResult:
        """Track one frame. `motion`: this frame's `estimate_motion`, when the caller computed it ahead."""
        transitions: list[TrackTransition] = []
        height, width = frame.image.shape[:2]
        if self._frame_size is not None and self._frame_size != (height, width):
            # Coordinates of the old resolution mean nothing in the new one: end every track, start afresh.
            transitions.extend(self._end_all())
            self._t = None
        self._frame_size = (height, width)
        t, dt = self._advance_clock(frame)

        self._predict(dt)
        boxes = np.asarray(dets.boxes, dtype=np.float64).reshape(-1, 4)
        have_masks = len(dets.windows) == len(boxes)
        if motion is None:
            motion = self.estimate_motion(frame, dets)
        if not motion.is_identity:
            self._warp(motion.matrix)

        scores = np.asarray(dets.scores, dtype=np.float64).reshape(-1)
        labels = np.asarray(dets.labels).reshape(-1).astype(np.int64)
        det_pixel_boxes = [integer_box(b, height, width) for b in boxes]
        det_masks: list[CroppedMask | None] = [None] * len(boxes)
        if have_masks and self.cfg.mask_weight > 0:
            # the masks stage keeps each mask in exactly this window, so these are views, not copies
            det_masks = [
                CroppedMask(dets.mask_in(i, det_pixel_boxes[i]), det_pixel_boxes[i]) for i in range(len(boxes))
            ]

        for track in self.tracks:
            track.detection_index = None
        matches = self._associate(boxes, scores, labels, det_masks, height, width)

        matched_tracks = {id(track) for track, _ in matches}
        self._apply_matches(matches, frame, t, boxes, scores, labels, det_masks, det_pixel_boxes, transitions)
        self._start_tracks(matches, frame, t, boxes, scores, labels, det_masks, det_pixel_boxes, transitions)
        self._age_unmatched(matched_tracks, t, transitions)

        states = [
            track.state(self._filtered)
            for track in self.tracks
            if track.phase is Phase.CONFIRMED and (track.detection_index is not None or self.cfg.report_coasting)
        ]
        return StepResult(transitions, states, motion)

    def finish(self) -> list[TrackTransition]:
        """End every live track (end of stream)."""
        transitions = self._end_all()
        self.motion.reset()
        self._t = None
        self._frame_size = None
        self._motion_size = None
        return transitions

    # --- steps ---

    def _advance_clock(self, frame: Frame) -> tuple[float, float]:
        raw = frame.pts if frame.pts is not None else frame.capture_time
        if self._t is None:
            self._t = float(raw)
            return self._t, 0.0
        dt = float(raw) - self._t
        if not np.isfinite(dt) or dt <= 0:
            dt = self._dt  # clock reset or stalled: assume the usual step
        else:
            self._dt = min(dt, 1.0)
        self._t += dt
        return self._t, dt

    def _predict(self, dt: float) -> None:
        if not self.tracks or dt <= 0:
            return
        means = np.stack([t.mean for t in self.tracks])
        covs = np.stack([t.cov for t in self.tracks])
        means, covs = self.kalman.predict(means, covs, dt)
        for i, track in enumerate(self.tracks):
            track.mean, track.cov = means[i], covs[i]

    def _warp(self, matrix: np.ndarray) -> None:
        if not self.tracks:
            return
        means, covs = self.kalman.warp(
            np.stack([t.mean for t in self.tracks]), np.stack([t.cov for t in self.tracks]), matrix
        )
        for i, track in enumerate(self.tracks):
            track.mean, track.cov = means[i], covs[i]
        coasting = [t for t in self.tracks if t.obs_mean is not None and t.misses > 0]
        if coasting:
            obs_means, obs_covs = self.kalman.warp(
                np.stack([t.obs_mean for t in coasting]), np.stack([t.obs_cov for t in coasting]), matrix
            )
            for i, track in enumerate(coasting):
                track.obs_mean, track.obs_cov = obs_means[i], obs_covs[i]

    def _associate(
        self,
        boxes: np.ndarray,
        scores: np.ndarray,
        labels: np.ndarray,
        det_masks: list[CroppedMask | None],
        height: int,
        width: int,
    ) -> list[tuple[Track, int]]:
        cfg = self.cfg
        high = np.flatnonzero(scores >= cfg.high_score).tolist()
        low = np.flatnonzero((scores >= cfg.low_score) & (scores < cfg.high_score)).tolist()
        active = [t for t in self.tracks if t.phase is not Phase.TENTATIVE]
        tentative = [t for t in self.tracks if t.phase is Phase.TENTATIVE]
        placed: dict[tuple[int, bool], CroppedMask | None] = {}

        def stage(tracks: list[Track], det_idx: list[int], threshold: float, from_last_observation: bool = False):
            if not tracks or not det_idx:
                return [], tracks, det_idx
            states = [t.obs_mean if from_last_observation and t.obs_mean is not None else t.mean for t in tracks]
            predicted = cxcywh_to_xyxy(np.stack([m[:4] for m in states]))
            det_boxes = boxes[det_idx]
            ious = box_iou(predicted, det_boxes)
            if cfg.lost_box_growth > 0:
                # Buffered IoU for tracks unseen for a while: their position is less certain, and small objects
                # stop overlapping their prediction after a few frames of drift.
                for r, track in enumerate(tracks):
                    if track.misses > 0:
                        grow = min(cfg.lost_box_growth * (self._t - track.last_t), 1.0)
                        ious[r] = box_iou(_expanded(predicted[r : r + 1], grow), _expanded(det_boxes, grow))[0]
            track_masks: list[CroppedMask | None] = []
            # a track's mask is only placed when its box overlaps a detection's (mask IoU is computed for those)
            overlaps = (ious > 0).any(axis=1).tolist() if cfg.mask_weight > 0 else [False] * len(tracks)
            for track, pbox, overlap in zip(tracks, predicted.tolist(), overlaps, strict=True):
                key = (id(track), from_last_observation)
                if key not in placed:
                    use = overlap and track.mask is not None
                    placed[key] = track.mask.placed(integer_box(pbox, height, width)) if use else None
                track_masks.append(placed[key])
            sim = similarity(
                ious,
                track_masks,
                [det_masks[i] for i in det_idx],
                np.array([t.label for t in tracks], np.int64),
                labels[det_idx],
                cfg.mask_weight,
                cfg.class_penalty,
                cfg.mask_full_weight_area,
                floor=threshold,
            )
            pairs, free_rows, free_cols = assign(sim, threshold)
            return (
                [(tracks[r], det_idx[c]) for r, c in pairs],
                [tracks[r] for r in free_rows],
                [det_idx[c] for c in free_cols],
            )

        first, left_tracks, left_high = stage(active, high, cfg.match_threshold)
        still_tracked = [t for t in left_tracks if t.phase is Phase.CONFIRMED]
        second, _, _ = stage(still_tracked, low, cfg.low_match_threshold)
        recovered: list[tuple[Track, int]] = []
        if cfg.recover_from_last_observation:
            # OC-SORT's observation-centric recovery: a track whose prediction went astray during a gap may still
            # sit where it was last seen (an object that stopped behind an occluder).
            matched_second = {id(t) for t, _ in second}
            unmatched = [t for t in left_tracks if id(t) not in matched_second and t.misses > 0]
            recovered, _, left_high = stage(unmatched, left_high, cfg.match_threshold, from_last_observation=True)
        third, _, _ = stage(tentative, left_high, cfg.tentative_match_threshold)
        return first + second + recovered + third

    def _apply_matches(
        self,
        matches: list[tuple[Track, int]],
        frame: Frame,
        t: float,
        boxes: np.ndarray,
        scores: np.ndarray,
        labels: np.ndarray,
        det_masks: list[CroppedMask | None],
        det_pixel_boxes: list[tuple[int, int, int, int]],
        transitions: list[TrackTransition],
    ) -> None:
        if not matches:
            return
        z = xyxy_to_cxcywh(boxes[[d for _, d in matches]])
        regular = [i for i, (track, _) in enumerate(matches) if not self._needs_reupdate(track)]
        if regular:
            means = np.stack([matches[i][0].mean for i in regular])
            covs = np.stack([matches[i][0].cov for i in regular])
            means, covs = self.kalman.update(means, covs, z[regular])
            for k, i in enumerate(regular):
                matches[i][0].mean, matches[i][0].cov = means[k], covs[k]
        for i, (track, d) in enumerate(matches):
            if self._needs_reupdate(track):
                observation_centric_reupdate(self.kalman, track, z[i], t)
            was = track.phase
            track.detection_index = d
            track.score = float(scores[d])
            track.vote(int(labels[d]))
            track.last_box = boxes[d].astype(np.float32)
            track.mask = det_masks[d]
            track.hits += 1
            track.misses = 0
            track.last_frame = frame.index
            track.last_time = frame.capture_time
            track.last_t = t
            track.obs_mean, track.obs_cov = track.mean.copy(), track.cov.copy()
            track.gap_ts.clear()
            if was is Phase.TENTATIVE:
                if track.hits >= self.cfg.confirm_hits:
                    self._confirm(track, t, transitions)
            elif was is Phase.LOST:
                track.phase = Phase.CONFIRMED
                track.last_updated_event_t = t
                transitions.append(TrackTransition("updated", track.state(self._filtered)))
            elif self._updated_due(track, t):
                track.last_updated_event_t = t
                transitions.append(TrackTransition("updated", track.state(self._filtered)))

    def _needs_reupdate(self, track: Track) -> bool:
        return (
            self.cfg.observation_centric_update
            and track.phase is not Phase.TENTATIVE
            and track.misses > 0
            and track.obs_mean is not None
        )

    def _updated_due(self, track: Track, t: float) -> bool:
        interval = self.cfg.updated_interval_s
        if interval is None:
            return False
        return t - track.last_updated_event_t >= interval - 1e-9

    def _confirm(self, track: Track, t: float, transitions: list[TrackTransition]) -> None:
        track.phase = Phase.CONFIRMED
        track.track_id = self._next_id
        self._next_id += 1
        track.last_updated_event_t = t
        transitions.append(TrackTransition("started", track.state(self._filtered)))

    def _start_tracks(
        self,
        matches: list[tuple[Track, int]],
        frame: Frame,
        t: float,
        boxes: np.ndarray,
        scores: np.ndarray,
        labels: np.ndarray,
        det_masks: list[CroppedMask | None],
        det_pixel_boxes: list[tuple[int, int, int, int]],
        transitions: list[TrackTransition],
    ) -> None:
        used = {d for _, d in matches}
        new = [d for d in np.flatnonzero(scores >= self.cfg.new_track_score).tolist() if d not in used]
        if not new:
            return
        means, covs = self.kalman.initiate(xyxy_to_cxcywh(boxes[new]))
        for k, d in enumerate(new):
            track = Track(
                mean=means[k],
                cov=covs[k],
                phase=Phase.TENTATIVE,
                track_id=0,
                first_frame=frame.index,
                first_time=frame.capture_time,
                first_t=t,
                last_frame=frame.index,
                last_time=frame.capture_time,
                last_t=t,
                score=float(scores[d]),
                last_box=boxes[d].astype(np.float32),
                mask=det_masks[d],
                detection_index=d,
            )
            track.vote(int(labels[d]))
            track.obs_mean, track.obs_cov = track.mean.copy(), track.cov.copy()
            self.tracks.append(track)
            if self.cfg.confirm_hits <= 1:
                self._confirm(track, t, transitions)

    def _age_unmatched(self, matched: set[int], t: float, transitions: list[TrackTransition]) -> None:
        cfg = self.cfg
        keep: list[Track] = []
        for track in self.tracks:
            if id(track) in matched or track.detection_index is not None:
                keep.append(track)
                continue
            track.misses += 1
            track.gap_ts.append(t)
            unseen = t - track.last_t
            if track.phase is Phase.TENTATIVE:
                if unseen > cfg.tentative_max_age_s:
                    continue  # never confirmed: dropped without an event
            elif unseen > cfg.max_lost_s:
                transitions.append(TrackTransition("ended", track.state(self._filtered)))
                continue  # forgotten: memory stays bounded however long the stream runs
            elif track.phase is Phase.CONFIRMED and track.misses >= 2 and unseen >= cfg.lost_after_s:
                track.phase = Phase.LOST
                if cfg.emit_lost:
                    transitions.append(TrackTransition("lost", track.state(self._filtered)))
            if len(track.gap_ts) > 4 * MAX_VIRTUAL_STEPS:
                # keep the gap list bounded at any frame rate; only an even spread of it is used
                track.gap_ts = track.gap_ts[::2]
            keep.append(track)
        self.tracks = keep

    def _end_all(self) -> list[TrackTransition]:
        transitions = []
        for track in self.tracks:
            if track.phase is not Phase.TENTATIVE:
                track.detection_index = None
                transitions.append(TrackTransition("ended", track.state(self._filtered)))
        self.tracks = []
        return transitions
