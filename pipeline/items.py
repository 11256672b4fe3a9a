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
    """Model output for one frame, in full-frame pixel coordinates; masks box-local.

    Each mask is kept only inside its crop window (its integer box clipped to the frame): crop n covers pixels
    x0..x0+w-1, y0..y0+h-1 (`windows[n]`) and is `mask_pixels[mask_offsets[n]:mask_offsets[n + 1]]`, its w
    columns of h pixels one after the other (column-major, the order COCO RLE walks). Every pixel outside a
    mask's window is 0. Work on masks is therefore proportional to the boxes, never to the frame; `mask(n)`
    gives crop n as an (h, w) view, `mask_in(n, box)` the mask inside any other window.
    """

    boxes: np.ndarray  # (N, 4) float32, x1 y1 x2 y2
    scores: np.ndarray  # (N,) float32
    labels: np.ndarray  # (N,) int64, index into the model's class_names
    windows: np.ndarray  # (N, 4) int64 x0 y0 w h: each mask's crop window, inside the frame
    mask_offsets: np.ndarray  # (N + 1,) int64: where each crop starts in mask_pixels
    mask_pixels: np.ndarray  # flat bool: every crop, column-major
    rles: list[dict[str, Any]]  # COCO RLE per detection, full frame: {"size": [H, W], "counts": str}
    frame_size: tuple[int, int]  # (H, W)

    def __len__(self) -> int:
        return len(self.scores)

    def mask(self, n: int) -> np.ndarray:
        """Crop n as an (h, w) bool view (Fortran-ordered: the stored layout is column-major)."""
        w, h = int(self.windows[n, 2]), int(self.windows[n, 3])
        return self.mask_pixels[self.mask_offsets[n] : self.mask_offsets[n + 1]].reshape(w, h).T

    def mask_in(self, n: int, box: tuple[int, int, int, int]) -> np.ndarray:
        """Mask n inside the pixel window box = (x1, y1, x2, y2): an (y2 - y1, x2 - x1) bool array.

        A view when the window is the crop's own; otherwise a copy, zero where the crop does not reach."""
        x1, y1, x2, y2 = box
        x0, y0, w, h = (int(v) for v in self.windows[n])
        crop = self.mask(n)
        if (x1, y1, x2, y2) == (x0, y0, x0 + w, y0 + h):
            return crop
        out = np.zeros((max(y2 - y1, 0), max(x2 - x1, 0)), bool)
        ix1, iy1, ix2, iy2 = max(x1, x0), max(y1, y0), min(x2, x0 + w), min(y2, y0 + h)
        if ix2 > ix1 and iy2 > iy1:
            out[iy1 - y1 : iy2 - y1, ix1 - x1 : ix2 - x1] = crop[iy1 - y0 : iy2 - y0, ix1 - x0 : ix2 - x0]
        return out

    def full_mask(self, n: int) -> np.ndarray:
        """Mask n as a full (H, W) frame. For tests and tools only: the pipeline never builds one."""
        height, width = self.frame_size
        return self.mask_in(n, (0, 0, width, height))

    def full_masks(self) -> np.ndarray:
        """Every mask as a full frame, (N, H, W). For tests and tools only."""
        height, width = self.frame_size
        return np.array([self.full_mask(n) for n in range(len(self.windows))], bool).reshape(-1, height, width)

    def subset(self, indices: list[int]) -> Detections:
        """The chosen detections (in that order), their crops repacked: work proportional to those crops."""
        picked = np.asarray(indices, np.int64).reshape(-1)
        crops = [self.mask_pixels[self.mask_offsets[n] : self.mask_offsets[n + 1]] for n in picked]
        offsets = np.zeros(len(crops) + 1, np.int64)
        np.cumsum([len(c) for c in crops], out=offsets[1:])
        return Detections(
            boxes=self.boxes[picked],
            scores=self.scores[picked],
            labels=self.labels[picked],
            windows=self.windows[picked],
            mask_offsets=offsets,
            mask_pixels=np.concatenate(crops) if crops else np.zeros(0, bool),
            rles=[self.rles[n] for n in picked] if len(self.rles) == len(self) else [],
            frame_size=self.frame_size,
        )

    @classmethod
    def empty(cls, height: int, width: int) -> Detections:
        return cls(
            boxes=np.zeros((0, 4), np.float32),
            scores=np.zeros((0,), np.float32),
            labels=np.zeros((0,), np.int64),
            windows=np.zeros((0, 4), np.int64),
            mask_offsets=np.zeros(1, np.int64),
            mask_pixels=np.zeros(0, bool),
            rles=[],
            frame_size=(height, width),
        )

    @classmethod
    def from_full_masks(
        cls,
        boxes: np.ndarray,
        scores: np.ndarray,
        labels: np.ndarray,
        masks: np.ndarray,
        rles: list[dict[str, Any]] | None = None,
    ) -> Detections:
        """From full-frame (N, H, W) masks (tests, tools, evaluation): each kept in the window of its box and its
        pixels together, so nothing is lost. `rles` None: encoded here."""
        from pipeline.rle import crop_rles  # pycocotools only where RLEs are made

        masks = np.asarray(masks, bool)
        n, height, width = masks.shape
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        windows = np.zeros((n, 4), np.int64)
        crops = []
        for i in range(n):
            box = boxes[i] if i < len(boxes) and np.isfinite(boxes[i]).all() else np.zeros(4)
            x1 = min(max(int(np.floor(box[0])), 0), width)
            y1 = min(max(int(np.floor(box[1])), 0), height)
            x2 = max(min(max(int(np.ceil(box[2])), 0), width), x1)
            y2 = max(min(max(int(np.ceil(box[3])), 0), height), y1)
            ys, xs = np.nonzero(masks[i])
            if len(xs):  # also every set pixel outside the box
                x1, y1 = min(x1, int(xs.min())), min(y1, int(ys.min()))
                x2, y2 = max(x2, int(xs.max()) + 1), max(y2, int(ys.max()) + 1)
            windows[i] = (x1, y1, x2 - x1, y2 - y1)
            crops.append(masks[i, y1:y2, x1:x2].T.reshape(-1))
        offsets = np.zeros(n + 1, np.int64)
        np.cumsum([len(c) for c in crops], out=offsets[1:])
        pixels = np.concatenate(crops) if crops else np.zeros(0, bool)
        if rles is None:
            rles = crop_rles(pixels, offsets, windows, np.tile([height, width], (n, 1)))
        return cls(
            boxes=boxes,
            scores=np.asarray(scores, np.float32),
            labels=np.asarray(labels, np.int64),
            windows=windows,
            mask_offsets=offsets,
            mask_pixels=pixels,
            rles=rles,
            frame_size=(height, width),
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
    images: list[torch.Tensor]  # per frame: 3 x H x W uint8 on the device (the detector converts as it needs)
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
