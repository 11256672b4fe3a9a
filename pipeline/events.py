"""The event schema (version 1): what maskstream tells the world, as plain JSON-ready dicts.

Every event carries the common fields

    v             schema version (int, 1)
    event_id      deterministic, unique per source: the same input gives the same ids, so consumers can
                  drop the duplicates an at-least-once retry may write
    type          one of EVENT_TYPES
    source_id     the source's configured id
    frame_index   frame the event belongs to (null for stream events before the first frame)
    pts           presentation time of that frame in seconds (null if unknown)
    capture_time  wall clock (unix seconds) when that frame was decoded, or when the stream event happened

and the fields of its type (see `TYPE_FIELDS` and docs/EVENTS.md for a full example of each). Masks are COCO
RLE in full-frame coordinates, `{"size": [H, W], "counts": str}`, which `pycocotools.mask.decode` reads.

`EventBuilder` turns pipeline data (`FrameResult`, `StreamStatus`, end-of-stream transitions) into events;
sinks implement `EventSink`. `to_stream_fields` / `from_stream_fields` are the Redis entry layout.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: the schema (and the config that names it) loads without numpy
    from pipeline.items import FrameResult, StreamStatus, TrackState, TrackTransition, ZoneEvent

SCHEMA_VERSION = 1
# one stream per source; str.format template -> maskstream:{cam1}:events (a Redis Cluster hash tag per source)
DEFAULT_STREAM_KEY = "maskstream:{{{source_id}}}:events"

TRACK_TYPES = ("track.started", "track.updated", "track.lost", "track.ended")
STREAM_TYPES = ("stream.started", "stream.ended", "stream.connected", "stream.disconnected", "stream.error")
ZONE_TYPES = ("zone.entered", "zone.exited", "zone.dwell", "zone.occupancy", "line.crossed")
EVENT_TYPES = (*TRACK_TYPES, *STREAM_TYPES, "frame.summary", "publisher.dropped", *ZONE_TYPES)

COMMON_FIELDS = ("v", "event_id", "type", "source_id", "frame_index", "pts", "capture_time")
_TRACK_FIELDS = (
    "track_id",
    "class_id",
    "class_name",
    "score",
    "bbox",
    "mask",
    "first_seen",
    "last_seen",
    "duration_s",
    "hits",
)
TYPE_FIELDS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(TRACK_TYPES, _TRACK_FIELDS),
    **dict.fromkeys(STREAM_TYPES, ("reason", "info")),
    "frame.summary": ("width", "height", "detections", "track_ids"),
    "publisher.dropped": (
        "count",
        "first_event_id",
        "last_event_id",
        "first_frame_index",
        "last_frame_index",
        "first_capture_time",
        "last_capture_time",
    ),
    "zone.entered": ("zone", "track_id", "class_id", "class_name"),
    "zone.exited": ("zone", "track_id", "class_id", "class_name", "dwell_s"),
    "zone.dwell": ("zone", "track_id", "class_id", "class_name", "dwell_s"),
    "zone.occupancy": ("zone", "counts", "total"),
    "line.crossed": ("line", "track_id", "class_id", "class_name", "direction"),
}


class EventBuilder:
    """Builds schema-v1 events. One builder serves every source; call it from one thread.

    `run_id` (optional) prefixes every event id. Ids are deterministic per input, so re-processing a file gives
    the same ids; a live camera restarted by a new process starts again at frame 0, and a `run_id` (e.g. the
    start time) keeps those ids apart from the previous run's if consumers dedupe across restarts.
    """

    def __init__(
        self,
        class_names: list[str] | tuple[str, ...],
        frame_summary: bool = False,
        run_id: str = "",
        model: dict[str, Any] | None = None,
    ) -> None:
        self.class_names = list(class_names)
        self.model = dict(model or {})  # named in every `stream.started` info (arch, weights file, bundled)
        self.frame_summary = frame_summary
        self._prefix = f"{run_id}:" if run_id else ""
        # per source and stream-event kind: how many we built, so stream event ids are unique and deterministic
        self._status_counts: dict[tuple[str, str], int] = defaultdict(int)

    def for_frame(self, result: FrameResult) -> list[dict[str, Any]]:
        """The track events of one frame (in the tracker's order), then the optional frame summary."""
        frame = result.frame
        events = [self._track_event(result, transition) for transition in result.transitions]
        if result.analytics is not None:
            events += self.for_zone_events(frame.source_id, result.analytics.events)
        if self.frame_summary:
            height, width = frame.size
            event = self._common(frame.source_id, "frame.summary", f"f{frame.index}:summary", frame.index)
            event.update(pts=frame.pts, capture_time=frame.capture_time)
            event.update(
                width=width,
                height=height,
                detections=len(result.detections),
                track_ids=[int(track.track_id) for track in result.tracks],
            )
            events.append(event)
        return events

    def for_status(self, status: StreamStatus) -> dict[str, Any]:
        """`stream.<kind>` for a source status change (its reason and info are already redacted by the source)."""
        kind = status.kind
        ordinal = self._status_counts[(status.source_id, kind)]
        self._status_counts[(status.source_id, kind)] += 1
        event = self._common(status.source_id, f"stream.{kind}", f"s:{kind}:{ordinal}", status.frame_index)
        event.update(capture_time=float(status.time), reason=status.reason, info=_jsonable(status.info))
        if kind == "started" and self.model:
            event["info"]["model"] = dict(self.model)
        return event

    def for_ended_tracks(self, source_id: str, transitions: Iterable[TrackTransition]) -> list[dict[str, Any]]:
        """`track.ended` for the tracks a source still had at end of stream (`TrackerStage.end_source`)."""
        events = []
        for transition in transitions:
            track = transition.track
            event = self._track_fields(source_id, transition.kind, track, None, rle=None, pts=None)
            event["frame_index"] = int(track.last_frame)
            event["capture_time"] = float(track.last_time)
            events.append(event)
        return events

    def for_zone_events(self, source_id: str, zone_events: Iterable[ZoneEvent]) -> list[dict[str, Any]]:
        """`zone.*` and `line.crossed` events. Ids are deterministic: region, track, kind and the frame it happened
        on (a dwell alert is sent once per track and zone, so its id has no frame)."""
        events = []
        for item in zone_events:
            kind = item.kind.split(".", 1)[1]
            if item.kind == "zone.occupancy":
                local_id = f"z:{item.region}:occupancy:f{item.frame_index}"
            elif item.kind == "zone.dwell":
                local_id = f"z:{item.region}:t{item.track_id}:dwell"
            else:
                prefix = "l" if item.kind == "line.crossed" else "z"
                local_id = f"{prefix}:{item.region}:t{item.track_id}:{kind}:f{item.frame_index}"
            event = self._common(source_id, item.kind, local_id, item.frame_index)
            event.update(pts=item.pts, capture_time=float(item.capture_time))
            event["line" if item.kind == "line.crossed" else "zone"] = item.region
            if item.kind == "zone.occupancy":
                counts = {self._class_name(label): int(n) for label, n in (item.counts or {}).items()}
                event.update(counts=counts, total=sum(counts.values()))
            else:
                label = int(item.label) if item.label is not None else -1
                event.update(track_id=int(item.track_id or 0), class_id=label, class_name=self._class_name(label))
            if item.dwell_s is not None:
                event["dwell_s"] = round(float(item.dwell_s), 3)
            if item.direction is not None:
                event["direction"] = item.direction
            events.append(event)
        return events

    def _class_name(self, label: int) -> str:
        return self.class_names[label] if 0 <= label < len(self.class_names) else str(label)

    def _track_event(self, result: FrameResult, transition: TrackTransition) -> dict[str, Any]:
        frame, track = result.frame, transition.track
        index = track.detection_index
        observed = index is not None and index < len(result.detections.rles)
        rle = result.detections.rles[index] if observed and index is not None else None
        event = self._track_fields(frame.source_id, transition.kind, track, frame.index, rle=rle, pts=frame.pts)
        if observed:
            # the detection's own box, so bbox and mask always agree (a tracker may smooth its track box)
            event["bbox"] = _bbox(result.detections.boxes[track.detection_index])
        event["frame_index"] = int(frame.index)
        event["capture_time"] = float(frame.capture_time)
        return event

    def _track_fields(
        self,
        source_id: str,
        kind: str,
        track: TrackState,
        frame_index: int | None,
        rle: dict[str, Any] | None,
        pts: float | None,
    ) -> dict[str, Any]:
        # a track starts and ends once; it may be updated or lost on many frames, so those ids carry the frame
        once = kind in ("started", "ended") or frame_index is None
        event_id = f"t{track.track_id}:{kind}" + ("" if once else f":f{frame_index}")
        event = self._common(source_id, f"track.{kind}", event_id, None)
        label = int(track.label)
        event.update(
            pts=pts,
            track_id=int(track.track_id),
            class_id=label,
            class_name=self.class_names[label] if 0 <= label < len(self.class_names) else str(label),
            score=round(float(track.score), 4),
            bbox=_bbox(track.box),
            mask=rle_to_json(rle) if rle is not None else None,
            first_seen={"frame_index": int(track.first_frame), "capture_time": float(track.first_time)},
            last_seen={"frame_index": int(track.last_frame), "capture_time": float(track.last_time)},
            duration_s=round(float(track.last_time - track.first_time), 3),
            hits=int(track.hits),
        )
        return event

    def _common(self, source_id: str, type_: str, local_id: str, frame_index: int | None) -> dict[str, Any]:
        return {
            "v": SCHEMA_VERSION,
            "event_id": self._prefix + local_id,
            "type": type_,
            "source_id": source_id,
            "frame_index": None if frame_index is None else int(frame_index),
            "pts": None,
            "capture_time": None,
        }


def dropped_event(source_id: str, dropped: list[dict[str, Any]], count: int, capture_time: float) -> dict[str, Any]:
    """`publisher.dropped`: the spool lost `count` events of a source, `dropped` = [first, last] of them."""
    first, last = dropped[0], dropped[-1]
    return {
        "v": SCHEMA_VERSION,
        "event_id": f"d:{first['event_id']}..{last['event_id']}",
        "type": "publisher.dropped",
        "source_id": source_id,
        "frame_index": None,
        "pts": None,
        "capture_time": capture_time,
        "count": count,
        "first_event_id": first["event_id"],
        "last_event_id": last["event_id"],
        "first_frame_index": first.get("frame_index"),
        "last_frame_index": last.get("frame_index"),
        "first_capture_time": first.get("capture_time"),
        "last_capture_time": last.get("capture_time"),
    }


def rle_to_json(rle: dict[str, Any]) -> dict[str, Any]:
    """pycocotools RLE (counts as bytes) → JSON-ready {"size": [H, W], "counts": str}."""
    counts = rle["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    elif not isinstance(counts, str):
        raise ValueError("mask RLE counts must be compressed (bytes or str), not an uncompressed list")
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": counts}


def validate_event(event: dict[str, Any]) -> None:
    """Raise ValueError naming the problem if `event` does not follow schema v1 (used by tests and consumers)."""
    missing = [name for name in COMMON_FIELDS if name not in event]
    if missing:
        raise ValueError(f"event {event.get('event_id')!r} lacks {missing}")
    if event["v"] != SCHEMA_VERSION:
        raise ValueError(f"event {event['event_id']!r} has schema version {event['v']}, expected {SCHEMA_VERSION}")
    if event["type"] not in TYPE_FIELDS:
        raise ValueError(f"event {event['event_id']!r} has unknown type {event['type']!r}")
    missing = [name for name in TYPE_FIELDS[event["type"]] if name not in event]
    if missing:
        raise ValueError(f"{event['type']} event {event['event_id']!r} lacks {missing}")


def encode_event(event: dict[str, Any]) -> str:
    """Compact JSON of one event (the `data` field of a stream entry, one line of a JSONL file).

    Strict JSON: a NaN or infinity (e.g. a broken stream's pts) becomes null rather than an invalid token that
    other languages' parsers reject.
    """
    try:
        return json.dumps(event, separators=(",", ":"), allow_nan=False)
    except ValueError:
        return json.dumps(_finite(event), separators=(",", ":"), allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def to_stream_fields(event: dict[str, Any], data: str | None = None) -> dict[str, str]:
    """The XADD fields of one event: `type`, `event_id` and `v` for filtering without parsing, `data` = JSON."""
    return {
        "type": event["type"],
        "event_id": event["event_id"],
        "v": str(event["v"]),
        "data": data if data is not None else encode_event(event),
    }


def from_stream_fields(fields: dict[bytes | str, bytes | str]) -> dict[str, Any]:
    """Inverse of `to_stream_fields` (accepts redis-py's bytes or decoded str fields)."""
    data = fields.get(b"data", fields.get("data"))
    if data is None:
        raise ValueError("stream entry has no 'data' field (not a maskstream event)")
    return json.loads(data)


def _bbox(box: Any) -> list[float]:
    return [round(float(v), 2) for v in box]


def _jsonable(value: Any) -> Any:
    """Numpy scalars/arrays and tuples in status info → plain JSON types."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
