"""Live view sink: the latest result per source, drawn and JPEG-encoded only when a viewer asks for it.

The pipeline's side (`write`) only swaps a reference under a lock: no drawing, no encoding, no copy, no waiting on
viewers. A viewer's thread (the web server's) calls `snapshot`, which draws with `draw_result` (the annotated
video's drawing, so masks, boxes, ids and whatever else it learns to draw appear here too) and encodes a JPEG at
most `max_fps` times a second per source; viewers asking in between share the cached JPEG. Nobody watching costs
nothing; a slow viewer only sees fewer frames.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from pipeline.items import FrameResult
from sinks.annotated_video import draw_result
from sinks.base import FrameSink

# Highlighted renderings kept per source (one per track being highlighted by some viewer, plus the plain one).
_CACHED_RENDERINGS = 8
_DIM = 0.5  # a highlighted view darkens the rest of the picture so the chosen track stands out


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One encoded picture of a source."""

    source_id: str
    seq: int  # counts the results written for this source; a viewer sends a picture only when it grows
    frame_index: int
    capture_time: float
    jpeg: bytes
    width: int
    height: int
    track_ids: tuple[int, ...]  # tracks drawn (all live tracks, or the highlighted one)
    highlight: int | None


@dataclass
class _Slot:
    seq: int = 0
    result: FrameResult | None = None
    ended: bool = False
    encode_lock: threading.Lock = field(default_factory=threading.Lock)
    cache: dict[int | None, Snapshot] = field(default_factory=dict)
    encoded_at: dict[int | None, float] = field(default_factory=dict)


class LiveView(FrameSink):
    """Keeps the latest `FrameResult` of every source; `snapshot(source_id)` gives its JPEG."""

    def __init__(
        self,
        class_names: Callable[[], Sequence[str]],
        max_fps: float = 5.0,
        jpeg_quality: int = 70,
    ) -> None:
        self.class_names = class_names  # a callable: the model (and its names) loads after the sink is made
        self.min_interval_s = 1.0 / max_fps
        self.jpeg_quality = jpeg_quality
        self._lock = threading.Lock()
        self._slots: dict[str, _Slot] = {}
        self.encodes = 0  # pictures drawn and JPEG-encoded so far (the cost benchmark and tests read these)
        self.encode_cpu_s = 0.0  # CPU time of the viewers' threads spent drawing and encoding

    # --- the pipeline's side: O(1), never blocks on a viewer -------------------------------------------------
    def start_source(self, source_id: str, info: dict[str, Any]) -> None:
        with self._lock:
            self._slots.setdefault(source_id, _Slot()).ended = False

    def write(self, result: FrameResult) -> None:
        with self._lock:
            slot = self._slots.get(result.frame.source_id)
            if slot is None:
                slot = self._slots[result.frame.source_id] = _Slot()
            slot.result = result
            slot.seq += 1

    def end_source(self, source_id: str) -> None:
        with self._lock:
            if source_id in self._slots:
                self._slots[source_id].ended = True  # the last picture stays on the page

    # --- the viewers' side -----------------------------------------------------------------------------------
    def seq(self, source_id: str) -> int:
        with self._lock:
            slot = self._slots.get(source_id)
            return slot.seq if slot else 0

    def active_tracks(self, source_id: str) -> int | None:
        with self._lock:
            slot = self._slots.get(source_id)
            return len(slot.result.tracks) if slot and slot.result and not slot.ended else None

    def snapshot(self, source_id: str, highlight: int | None = None) -> Snapshot | None:
        """The latest picture of the source (None before its first result); re-encoded at most `max_fps` a second."""
        with self._lock:
            slot = self._slots.get(source_id)
            if slot is None or slot.result is None:
                return None
        with slot.encode_lock:  # viewers of one source share one encode
            with self._lock:
                result, seq = slot.result, slot.seq
            cached = slot.cache.get(highlight)
            now = time.monotonic()
            if cached is not None and (
                cached.seq == seq or now - slot.encoded_at.get(highlight, 0.0) < self.min_interval_s
            ):
                return cached
            snapshot = self._encode(result, seq, highlight)
            if len(slot.cache) >= _CACHED_RENDERINGS and highlight not in slot.cache:
                oldest = min(slot.encoded_at, key=slot.encoded_at.__getitem__)
                slot.cache.pop(oldest, None)
                slot.encoded_at.pop(oldest, None)
            slot.cache[highlight] = snapshot
            slot.encoded_at[highlight] = now
            return snapshot

    def _encode(self, result: FrameResult, seq: int, highlight: int | None) -> Snapshot:
        began = time.thread_time()
        names = list(self.class_names())
        if highlight is None:
            image = draw_result(result, names)
            track_ids = tuple(t.track_id for t in result.tracks)
        else:
            image = _draw_highlighted(result, names, highlight)
            track_ids = (highlight,)
        ok, encoded = cv2.imencode(
            ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality]
        )
        if not ok:  # pragma: no cover - OpenCV encodes any uint8 image
            raise RuntimeError("JPEG encoding failed")
        self.encodes += 1
        self.encode_cpu_s += time.thread_time() - began
        height, width = result.frame.size
        frame = result.frame
        return Snapshot(
            frame.source_id,
            seq,
            frame.index,
            frame.capture_time,
            encoded.tobytes(),
            width,
            height,
            track_ids,
            highlight,
        )


def _draw_highlighted(result: FrameResult, class_names: list[str], track_id: int) -> np.ndarray:
    """Only the chosen track drawn (mask, box, label), on a darkened picture; a note when it is not in view."""
    track = next((t for t in result.tracks if t.track_id == track_id), None)
    dimmed = dataclasses.replace(result.frame, image=(result.frame.image * _DIM).astype(np.uint8))
    if track is None:
        alone = FrameResult(dimmed, result.detections.subset([]), [], [])
        note = f"track #{track_id} is not in view"
    elif track.detection_index is None:
        alone = FrameResult(dimmed, result.detections.subset([]), [], [track])
        note = f"track #{track_id}: predicted (not seen in this frame)"
    else:
        only = dataclasses.replace(track, detection_index=0)
        alone = FrameResult(dimmed, result.detections.subset([track.detection_index]), [], [only])
        note = f"track #{track_id}"
    image = draw_result(alone, class_names)
    cv2.putText(image, note, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    return image
