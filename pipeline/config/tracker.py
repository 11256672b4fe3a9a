"""Configuration of the per-source multi-object tracker (the `tracker:` section of the pipeline config)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pipeline.config.base import StrictModel

CameraMotionMode = Literal["off", "auto", "flow", "ecc"]


class TrackerConfig(StrictModel):
    """How detections become tracks. Ages are in seconds of stream time, so behaviour does not depend on fps."""

    enabled: bool = Field(
        True, description="Track instances. When false the stage passes frames through with no tracks or events."
    )

    # --- detection score gates (ByteTrack-style two-stage association) ---
    high_score: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Detections scoring at least this are matched first, against every confirmed and lost track.",
    )
    low_score: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="Detections scoring in [low_score, high_score) are matched second, only to tracks still "
        "unmatched and not lost (they keep a track alive through partial occlusion). Lower scores are ignored.",
    )
    new_track_score: float = Field(
        0.6,
        ge=0.0,
        le=1.0,
        description="An unmatched detection starts a new (tentative) track only when it scores at least this.",
    )

    # --- association cost ---
    match_threshold: float = Field(
        0.2,
        ge=0.0,
        le=1.0,
        description="Minimum similarity (blend of box and mask IoU, minus the class penalty) for a match in the "
        "first stage (high-score detections).",
    )
    low_match_threshold: float = Field(
        0.5, ge=0.0, le=1.0, description="Minimum similarity for the second stage (low-score detections)."
    )
    tentative_match_threshold: float = Field(
        0.3, ge=0.0, le=1.0, description="Minimum similarity for matching leftover detections to tentative tracks."
    )
    mask_weight: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Weight of mask IoU in the similarity where boxes overlap: similarity = (1 - w) * box IoU + "
        "w * mask IoU, the track's last mask being moved and scaled onto its predicted box. 0 = box-only cost.",
    )
    lost_box_growth: float = Field(
        3.0,
        ge=0.0,
        description="For a track unobserved for t seconds, both its predicted box and the detections' boxes are "
        "widened by min(lost_box_growth * t, 1) times their size before the IoU (buffered IoU): uncertain, small "
        "or erratically moving objects still overlap their prediction after a gap. 0 disables.",
    )
    recover_from_last_observation: bool = Field(
        True,
        description="After the first two stages, match tracks unobserved for a while against leftover "
        "confident detections using the box where they were last seen (OC-SORT's observation-centric recovery).",
    )
    mask_full_weight_area: float = Field(
        0.0,
        ge=0.0,
        description="Masks smaller than this many pixels get a proportionally smaller mask_weight (the IoU of "
        "tiny masks is noise). 0 = mask_weight for every size.",
    )
    class_penalty: float = Field(
        0.3,
        ge=0.0,
        le=1.0,
        description="Subtracted from the similarity when a detection's class differs from the track's "
        "(majority-vote) class. 1.0 forbids matching across classes; smaller values tolerate a flickering class.",
    )

    # --- lifecycle (seconds of stream time: pts when the stream has them, else capture wall clock) ---
    confirm_hits: int = Field(
        2, ge=1, description="A tentative track is confirmed (track.started) once it has been observed this often."
    )
    tentative_max_age_s: float = Field(
        0.0,
        ge=0.0,
        description="A tentative track unobserved for longer than this (and for at least one frame) is dropped "
        "silently. 0 drops it at its first miss.",
    )
    lost_after_s: float = Field(
        0.1,
        ge=0.0,
        description="A confirmed track becomes lost once unobserved for this long. It is never demoted for a "
        "single missed frame, whatever this value.",
    )
    max_lost_s: float = Field(
        1.5,
        gt=0.0,
        description="A track unobserved for longer than this is removed (track.ended) and forgotten; its id is "
        "never reused.",
    )
    observation_centric_update: bool = Field(
        True,
        description="When a lost track is found again, re-run its Kalman filter along a straight virtual path "
        "across the gap (OC-SORT's observation-centric re-update) so its velocity is not corrupted by the coast.",
    )

    # --- Kalman filter noise (relative to box height; per second of stream time) ---
    position_noise: float = Field(
        0.05, gt=0.0, description="Measurement noise of box centre and size, as a fraction of the box height."
    )
    velocity_noise: float = Field(
        0.2,
        gt=0.0,
        description="Process noise of the velocities, as a fraction of the box height per second^1.5 "
        "(how fast objects may accelerate).",
    )

    # --- camera-motion compensation ---
    camera_motion: CameraMotionMode = Field(
        "auto",
        description="Global camera-motion compensation applied to every track each frame. 'auto': sparse optical "
        "flow + RANSAC, ECC as fallback, identity when both fail, and motion below camera_motion_min_px treated as "
        "a static camera; 'flow': sparse flow only; 'ecc': ECC only; 'off': static camera, nothing computed.",
    )
    camera_motion_model: Literal["similarity", "affine", "homography"] = Field(
        "similarity",
        description="Warp fitted to the background motion: similarity (shift, rotation, zoom; most robust), "
        "affine, or homography (strong perspective change).",
    )
    camera_motion_width: int = Field(
        320, ge=64, le=1920, description="Frames are downscaled to this width (grey) for motion estimation."
    )
    camera_motion_max_features: int = Field(
        150,
        ge=16,
        le=5000,
        description="Background corners followed by sparse optical flow; re-detected when fewer than half remain.",
    )
    camera_motion_min_px: float = Field(
        0.25,
        ge=0.0,
        description="In 'auto' mode, a warp that moves no frame corner more than this many full-resolution "
        "pixels is treated as no motion (keeps a static camera's tracks free of estimation jitter).",
    )

    # --- events ---
    updated_interval_s: float | None = Field(
        1.0,
        ge=0.0,
        description="Emit track.updated for an observed confirmed track at most once per this many seconds "
        "(0 = every frame it is observed, null = never).",
    )
    emit_lost: bool = Field(False, description="Emit track.lost when a confirmed track becomes lost.")
    report_box: Literal["detection", "filtered"] = Field(
        "filtered",
        description="Box reported for an observed track: the matched detection's own box (consistent with its "
        "mask) or the Kalman-filtered box (smoother, usually closer to the truth when detections jitter).",
    )
    report_coasting: bool = Field(
        True,
        description="List confirmed tracks that were not observed in this frame (but are not yet lost) in the "
        "frame's tracks, with their predicted box and no detection.",
    )

    @model_validator(mode="after")
    def _check_ordering(self) -> TrackerConfig:
        if self.low_score > self.high_score:
            raise ValueError(f"low_score ({self.low_score}) must not exceed high_score ({self.high_score})")
        if self.new_track_score < self.high_score:
            raise ValueError(
                f"new_track_score ({self.new_track_score}) must be at least high_score ({self.high_score})"
            )
        if self.lost_after_s > self.max_lost_s:
            raise ValueError(f"lost_after_s ({self.lost_after_s}) must not exceed max_lost_s ({self.max_lost_s})")
        return self
