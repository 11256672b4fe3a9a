"""Everything that crosses a queue between stages: frames, batches, detections, tracks, stream status, control.

Everything here is plain data (numpy on the CPU), so any stage can be tested on its own and any
sink can consume it. Stages pass these downstream through the runtime's bounded queues.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:  # torch only for annotations: the consumer SDK and sinks import this module without it
    import torch


@dataclass(slots=True)
class Frame:
    """One decoded picture of one source."""

    source_id: str
    index: int  # 0-based position in the source's decoded stream (skipped frames still count)
    pts: float | None  # presentation time in seconds; None when the stream gives none
    capture_time: float  # wall clock (time.time()) when the decoder delivered the frame
    image: np.ndarray  # H x W x 3, uint8, RGB, C-contiguous

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return self.image.shape[0], self.image.shape[1]


@dataclass(slots=True)
class Detections:
    """Model output for one frame, in full-frame pixel coordinates."""

    boxes: np.ndarray  # (N, 4) float32, x1 y1 x2 y2
    scores: np.ndarray  # (N,) float32
    labels: np.ndarray  # (N,) int64, index into the model's class_names
    masks: np.ndarray  # (N, H, W) bool, full frame
    rles: list[dict[str, Any]]  # COCO RLE per detection: {"size": [H, W], "counts": str}

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls, height: int, width: int) -> Detections:
        return cls(
            boxes=np.zeros((0, 4), np.float32),
            scores=np.zeros((0,), np.float32),
            labels=np.zeros((0,), np.int64),
            masks=np.zeros((0, height, width), bool),
            rles=[],
        )


@dataclass(slots=True)
class TrackState:
    """A track as it stands after one frame's update."""

    track_id: int  # unique per source for the life of the process, never reused
    label: int  # class by majority vote over the track's detections (index into class_names)
    score: float  # score of the latest matched detection
    box: np.ndarray  # (4,) float32 x1 y1 x2 y2: Kalman-filtered box (or the matched detection's: tracker.report_box); the prediction when unmatched
    detection_index: int | None  # index into this frame's Detections; None when not observed this frame
    first_frame: int
    first_time: float  # capture time of the first observation
    last_frame: int
    last_time: float  # capture time of the latest observation
    hits: int  # frames in which the track was observed


TrackEventKind = Literal["started", "updated", "lost", "ended"]


@dataclass(slots=True)
class TrackTransition:
    """A lifecycle step of one track, turned into a `track.<kind>` event by the publisher side."""

    kind: TrackEventKind
    track: TrackState


ZoneEventKind = Literal["zone.entered", "zone.exited", "zone.dwell", "zone.occupancy", "line.crossed"]


@dataclass(slots=True)
class ZoneEvent:
    """Something a track did with a zone or line (becomes an event of the same `kind` in the publish stage)."""

    kind: ZoneEventKind
    region: str  # the zone's or line's name
    frame_index: (
        int  # the frame where it happened (entries/exits/crossings are dated at the first frame of the new state)
    )
    pts: float | None
    capture_time: float
    track_id: int | None = None  # None for zone.occupancy
    label: int | None = None
    dwell_s: float | None = None  # zone.exited, zone.dwell
    direction: str | None = None  # line.crossed: "in" | "out"
    counts: dict[int, int] | None = None  # zone.occupancy: tracks inside per class index


@dataclass(slots=True)
class RegionOverlay:
    """A zone or line as drawn on annotated video, with its live counts."""

    name: str
    kind: Literal["zone", "line"]
    points: np.ndarray  # (K, 2) float pixels
    text: str  # e.g. "door: 2" or "gate: in 3 / out 1"


@dataclass(slots=True)
class AnalyticsFrame:
    """What the zones stage made of one frame: its zone/line events and the overlay for drawing."""

    events: list[ZoneEvent] = field(default_factory=list)
    overlay: list[RegionOverlay] = field(default_factory=list)


@dataclass(slots=True)
class FrameResult:
    """A frame with what the model found and what the tracker made of it."""

    frame: Frame
    detections: Detections
    transitions: list[TrackTransition] = field(default_factory=list)
    tracks: list[TrackState] = field(default_factory=list)  # every live track after this frame
    analytics: AnalyticsFrame | None = None  # zones and lines (stages/zones.py), when the source has any


StreamStatusKind = Literal["started", "ended", "connected", "disconnected", "error"]


@dataclass(slots=True)
class StreamStatus:
    """Something that happened to a source rather than a frame (becomes a `stream.<kind>` event)."""

    source_id: str
    kind: StreamStatusKind
    time: float  # wall clock
    reason: str | None = None  # human-readable, credentials redacted
    frame_index: int | None = None  # last frame index delivered so far, if any
    info: dict[str, Any] = field(default_factory=dict)  # e.g. url (redacted), width, height, fps, codec


# --- between the batcher, the model and the masks stage (tensors on the model's device) ---


@dataclass(slots=True)
class Batch:
    """Frames on their way to the model, with their images already on the model's device."""

    frames: list[Frame]
    images: list[torch.Tensor]  # per frame: 3 x H x W float32 in [0, 1], on the device
    created: float  # time.monotonic() when the batch left the batcher


@dataclass(slots=True)
class RawDetections:
    """What the model found in one frame, still on its device: boxes in full-frame pixels, masks at M x M."""

    boxes: torch.Tensor  # (N, 4)
    scores: torch.Tensor  # (N,)
    labels: torch.Tensor  # (N,)
    mask_probs: torch.Tensor  # (N, 1, M, M)


@dataclass(slots=True)
class InferenceBatch:
    """A batch's frames with the model's raw detections, in the same order."""

    frames: list[Frame]
    detections: list[RawDetections]
    created: float


# --- control items: they travel on the same channel as data, so order is kept ---


@dataclass(frozen=True, slots=True)
class EndOfStream:
    """Control item: every source is done; stages flush (`finish`) and pass it on, then their thread ends."""


@dataclass(slots=True)
class TracksEnded:
    """Control item: the tracker closed every open track of a source at its end of stream."""

    source_id: str
    transitions: list[TrackTransition] = field(default_factory=list)
    time: float = field(default_factory=time.time)
    zone_events: list[ZoneEvent] = field(default_factory=list)  # exits of the tracks that ended (stages/zones.py)
