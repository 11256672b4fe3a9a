"""Event schema v1: the builder's output, deterministic ids, mask RLEs, the JSONL sink."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocotools import mask as mask_utils

from pipeline.events import (
    EVENT_TYPES,
    SCHEMA_VERSION,
    EventBuilder,
    dropped_event,
    encode_event,
    from_stream_fields,
    rle_to_json,
    to_stream_fields,
    validate_event,
)
from pipeline.items import Detections, Frame, FrameResult, StreamStatus, TrackState, TrackTransition, ZoneEvent
from sinks.jsonl import JsonlSink

pytestmark = pytest.mark.timeout(60)

CLASSES = ["background", "person", "car"]
H, W = 48, 64


def make_result(index: int, kinds: list[tuple[str, int, bool]], source_id: str = "cam1") -> FrameResult:
    """A frame with one rectangle detection per observed track; `kinds` = [(transition kind, track id, observed)]."""
    masks, boxes, rles, tracks, transitions = [], [], [], [], []
    for n, (kind, track_id, observed) in enumerate(kinds):
        x1, y1 = 4 + 10 * n + index % 5, 6 + n
        box = np.array([x1, y1, x1 + 8, y1 + 12], np.float32)
        detection_index = None
        if observed:
            mask = np.zeros((H, W), bool)
            mask[y1 : y1 + 12, x1 : x1 + 8] = True
            detection_index = len(masks)
            masks.append(mask)
            boxes.append(box)
            rles.append(mask_utils.encode(np.asfortranarray(mask.astype(np.uint8))))
        track = TrackState(
            track_id, 1 + track_id % 2, 0.9, box, detection_index, 0, 100.0, index, 100.0 + index / 10, index + 1
        )
        tracks.append(track)
        transitions.append(TrackTransition(kind, track))  # type: ignore[arg-type]
    n = len(masks)
    detections = Detections.from_full_masks(
        boxes=np.array(boxes, np.float32).reshape(n, 4),
        scores=np.full(n, 0.9, np.float32),
        labels=np.ones(n, np.int64),
        masks=np.array(masks, bool).reshape(n, H, W),
        rles=rles,
    )
    frame = Frame(source_id, index, index / 10, 100.0 + index / 10, np.zeros((H, W, 3), np.uint8))
    return FrameResult(frame, detections, transitions, tracks)


def test_track_events_follow_the_schema_and_masks_decode_to_the_frame() -> None:
    builder = EventBuilder(CLASSES, frame_summary=True)
    result = make_result(3, [("started", 7, True), ("updated", 8, True), ("lost", 9, False)])
    events = builder.for_frame(result)
    assert [e["type"] for e in events] == ["track.started", "track.updated", "track.lost", "frame.summary"]
    for event in events:
        validate_event(event)
        assert event["v"] == SCHEMA_VERSION and event["source_id"] == "cam1" and event["frame_index"] == 3
        assert event["pts"] == pytest.approx(0.3) and event["capture_time"] == pytest.approx(100.3)
    started, _updated, lost, summary = events
    assert started["class_name"] == "car" and started["track_id"] == 7 and started["score"] == pytest.approx(0.9)
    # the mask round-trips through JSON and pycocotools to exactly the detection's mask
    rle = json.loads(json.dumps(started["mask"]))
    assert isinstance(rle["counts"], str) and rle["size"] == [H, W]
    decoded = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)
    np.testing.assert_array_equal(decoded, result.detections.full_mask(0))
    x1, y1, x2, y2 = started["bbox"]
    ys, xs = np.nonzero(decoded)
    assert x1 <= xs.min() and xs.max() < x2 and y1 <= ys.min() and ys.max() < y2
    assert lost["mask"] is None  # not observed this frame
    assert summary["detections"] == 2 and summary["track_ids"] == [7, 8, 9] and summary["width"] == W


def test_event_ids_are_deterministic_and_unique_per_source() -> None:
    def run() -> list[dict]:
        builder = EventBuilder(CLASSES, frame_summary=True)
        events = [builder.for_status(StreamStatus("cam1", "started", 1.0, info={"width": W}))]
        for i in range(20):
            kinds = [("started", 1, True)] if i == 0 else [("updated", 1, i % 3 != 0)]
            kinds += [("lost", 2, False)] if i % 4 == 0 else []
            events += builder.for_frame(make_result(i, kinds))
        events.append(builder.for_status(StreamStatus("cam1", "disconnected", 2.0, reason="eof", frame_index=19)))
        events.append(builder.for_status(StreamStatus("cam1", "disconnected", 3.0, reason="eof", frame_index=19)))
        ended = TrackTransition("ended", make_result(19, [("ended", 1, True)]).tracks[0])
        events += builder.for_ended_tracks("cam1", [ended])
        return events

    first, second = run(), run()
    assert [e["event_id"] for e in first] == [e["event_id"] for e in second]
    ids = [e["event_id"] for e in first]
    assert len(set(ids)) == len(ids)
    assert first[-1]["type"] == "track.ended" and first[-1]["frame_index"] == 19
    prefixed = EventBuilder(CLASSES, run_id="r1").for_frame(make_result(0, [("started", 1, True)]))
    assert prefixed[0]["event_id"] == "r1:" + first[1]["event_id"]


def test_stream_fields_round_trip_every_event_type() -> None:
    builder = EventBuilder(CLASSES, frame_summary=True)
    events = builder.for_frame(
        make_result(0, [(k, i, k != "lost") for i, k in enumerate(["started", "updated", "lost"])])
    )
    events += [builder.for_status(StreamStatus("cam1", k, 5.0, reason="why", info={"fps": np.float32(25.0)}))  # type: ignore[arg-type]
               for k in ("started", "connected", "disconnected", "error", "ended")]  # fmt: skip
    end = make_result(1, [("ended", 0, True)])
    events += builder.for_frame(end)
    events.append(dropped_event("cam1", [events[0], events[1]], 2, 6.0))
    events += builder.for_zone_events("cam1", [
        ZoneEvent("zone.entered", "door", 3, 0.1, 7.0, track_id=4, label=1),
        ZoneEvent("zone.exited", "door", 9, 0.3, 7.2, track_id=4, label=1, dwell_s=0.2),
        ZoneEvent("zone.dwell", "door", 6, 0.2, 7.1, track_id=4, label=1, dwell_s=0.1),
        ZoneEvent("zone.occupancy", "door", 5, 0.2, 7.1, counts={1: 2}),
        ZoneEvent("line.crossed", "gate", 5, 0.2, 7.1, track_id=4, label=1, direction="in"),
    ])  # fmt: skip
    assert {e["type"] for e in events} == set(EVENT_TYPES)
    for event in events:
        validate_event(event)
        fields = to_stream_fields(event)
        assert set(fields) == {"type", "event_id", "v", "data"}
        # redis-py returns bytes keys and values
        raw = {k.encode(): v.encode() for k, v in fields.items()}
        assert from_stream_fields(raw) == json.loads(json.dumps(event))


def test_validate_event_names_the_problem() -> None:
    event = EventBuilder(CLASSES).for_status(StreamStatus("cam1", "started", 1.0))
    del event["info"]
    with pytest.raises(ValueError, match=r"stream.started event 's:started:0' lacks \['info'\]"):
        validate_event(event)


def test_jsonl_sink_writes_one_event_per_line(tmp_path) -> None:
    builder = EventBuilder(CLASSES)
    path = tmp_path / "out" / "events.jsonl"
    sink = JsonlSink(path)
    published = []
    for i in range(5):
        events = builder.for_frame(make_result(i, [("started" if i == 0 else "updated", 1, True)]))
        sink.publish("cam1", events)
        published += events
    sink.close(5)
    lines = path.read_text().splitlines()
    assert [json.loads(line) for line in lines] == json.loads(json.dumps(published))


def test_jsonl_sink_unwritable_path_is_a_one_line_error(tmp_path) -> None:
    from pipeline.errors import MaskstreamError

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(MaskstreamError, match=r"cannot write events to .*file/events\.jsonl"):
        JsonlSink(blocker / "events.jsonl")


def test_bbox_is_the_detections_box_when_observed_and_the_prediction_otherwise() -> None:
    result = make_result(2, [("updated", 1, True), ("lost", 2, False)])
    for track in result.tracks:
        track.box = track.box + 3.5  # a tracker's smoothed / predicted box differs from the detection's
    updated, lost = EventBuilder(CLASSES).for_frame(result)
    assert updated["bbox"] == [float(v) for v in result.detections.boxes[0]]
    assert lost["bbox"] == [float(v) for v in result.tracks[1].box]


@settings(max_examples=40, deadline=None)
@given(
    height=st.integers(1, 40),
    width=st.integers(1, 40),
    seed=st.integers(0, 2**31 - 1),
    density=st.floats(0.0, 1.0),
)
def test_any_mask_survives_the_event_json_round_trip(height: int, width: int, seed: int, density: float) -> None:
    mask = np.random.default_rng(seed).random((height, width)) < density
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    event_mask = json.loads(json.dumps(rle_to_json(rle)))
    decoded = mask_utils.decode({"size": event_mask["size"], "counts": event_mask["counts"].encode()})
    np.testing.assert_array_equal(decoded.astype(bool), mask)


def test_non_finite_numbers_become_null_in_strict_json() -> None:
    event = EventBuilder(CLASSES).for_frame(make_result(0, [("started", 1, True)]))[0]
    event["pts"] = float("nan")
    event["bbox"][0] = float("inf")
    decoded = json.loads(encode_event(event))
    assert decoded["pts"] is None and decoded["bbox"][0] is None and decoded["bbox"][1] == event["bbox"][1]
