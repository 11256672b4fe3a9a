"""Zones and lines: config errors, the rules' state machine, the stage, the events, the parked-car clip."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from analytics.rules import Moment, ObjectView, RegionRules
from pipeline.config import build_config
from pipeline.config.tracker import TrackerConfig
from pipeline.config.zones import LineConfig, ZoneConfig
from pipeline.errors import ConfigError
from pipeline.events import EventBuilder, validate_event
from pipeline.items import Detections, Frame, FrameResult, StreamStatus
from stages.tracker import TrackerStage
from stages.zones import ZonesStage
from tests.pipeline_helpers import tiny_detector, write_clip

CLASSES = ["__background__", "person", "car"]
PERSON, CAR = 1, 2


def error_of(sources: list[dict]) -> str:
    with pytest.raises(ConfigError) as info:
        build_config({"sources": sources}, origin="cam.yaml")
    message = str(info.value)
    assert "\n" not in message
    return message


def source(**extra) -> dict:
    return {"id": "cam", "url": "cam.mp4", **extra}


SQUARE = [[10, 10], [100, 10], [100, 100], [10, 100]]


# --- config ------------------------------------------------------------------------------------------------------
def test_bad_zones_and_lines_are_one_line_errors_naming_the_field() -> None:
    bow_tie = [[10, 10], [100, 100], [100, 10], [10, 100]]
    assert error_of([source(zones=[{"name": "z", "points": bow_tie}])]).startswith(
        "config error: cam.yaml: sources[0].zones[0].points: edges 0-1 and 2-3 intersect"
    )
    collinear = [[0, 0], [10, 10], [20, 20]]
    assert "sources[0].zones[0].points: the polygon has no area" in error_of(
        [source(zones=[{"name": "z", "points": collinear}])]
    )
    assert "sources[0].zones[0].points: list should have at least 3 items" in error_of(
        [source(zones=[{"name": "z", "points": [[0, 0], [1, 1]]}])]
    )
    assert "sources[0].lines[0].points: the line has zero length" in error_of(
        [source(lines=[{"name": "l", "points": [[5, 5], [5, 5]]}])]
    )
    assert "sources[0].zones[0].points: point 1 (1.5, 0.5) is outside the frame (fractions are 0..1)" in error_of(
        [source(zones=[{"name": "z", "units": "fraction", "points": [[0, 0], [1.5, 0.5], [0, 1]]}])]
    )
    assert "sources[0].lines[0].points: point 0 (-3.0, 4.0) is outside the frame" in error_of(
        [source(lines=[{"name": "l", "points": [[-3, 4], [5, 5]]}])]
    )
    duplicate = error_of(
        [source(zones=[{"name": "door", "points": SQUARE}], lines=[{"name": "door", "points": [[0, 0], [9, 9]]}])]
    )
    assert "sources[0]: lines[0].name: 'door' is already used by zones[0]" in duplicate
    assert "sources[0].zones[0].reference" in error_of(
        [source(zones=[{"name": "z", "points": SQUARE, "reference": "centre"}])]
    )


def test_unknown_class_names_fail_when_the_stage_is_built() -> None:
    cfg = build_config({"sources": [source(zones=[{"name": "z", "points": SQUARE, "classes": ["persn"]}])]})
    with pytest.raises(ConfigError, match=r"sources\[0\]\.zones\[0\]\.classes: unknown class 'persn'"):
        ZonesStage(cfg.sources, CLASSES)


# --- rules -------------------------------------------------------------------------------------------------------
def square_object(track_id: int, x: float, y: float, size: int = 10, label: int = PERSON) -> ObjectView:
    crop = np.ones((size, size), bool)
    return ObjectView(track_id, label, np.array([x, y, x + size, y + size], np.float32), crop, int(x), int(y))


def moment(index: int, fps: float = 10.0) -> Moment:
    return Moment(index, index / fps, 1000.0 + index / fps)


def run_rules(rules: RegionRules, path: list[tuple[float, float] | None], track_id: int = 1) -> list:
    rules.resolve(200, 200)
    events = []
    for index, xy in enumerate(path):
        objects = [] if xy is None else [square_object(track_id, *xy)]
        events += rules.step(moment(index), objects)
    return events


def test_entry_waits_for_min_frames_and_is_dated_at_the_first_of_them() -> None:
    zone = ZoneConfig(name="z", points=SQUARE, min_frames=3, dwell_s=0.5)
    rules = RegionRules([zone], [], CLASSES)
    # outside, then inside for 8 frames, one unobserved frame in the middle, then out
    path = [(150, 150)] * 2 + [(40, 40)] * 4 + [None] + [(40, 40)] * 4 + [(150, 150)] * 4
    events = run_rules(rules, path)
    kinds = [(e.kind, e.frame_index) for e in events]
    assert ("zone.entered", 2) in kinds
    exited = next(e for e in events if e.kind == "zone.exited")
    assert exited.frame_index == 11 and exited.dwell_s == pytest.approx(0.9)
    dwell = [e for e in events if e.kind == "zone.dwell"]
    # 0.5 s after the entry is frame 7, unobserved: the alert comes with the next observation
    assert len(dwell) == 1 and dwell[0].frame_index == 8 and dwell[0].dwell_s == pytest.approx(0.6)
    occupancy = [(e.frame_index, e.counts) for e in events if e.kind == "zone.occupancy"]
    assert occupancy == [(4, {PERSON: 1}), (13, {})]  # reported when it changes (entry confirmed at frame 4)


def test_jitter_at_the_edge_does_not_flap() -> None:
    zone = ZoneConfig(name="z", points=SQUARE, min_frames=3)
    rules = RegionRules([zone], [], CLASSES)
    # a square straddling the right edge x=100: alternately 70% and 30% inside
    path = [(93, 40), (97, 40)] * 10
    assert [e.kind for e in run_rules(rules, path)] == []


def test_a_line_counts_each_crossing_once_with_its_direction() -> None:
    line = LineConfig(name="gate", points=[[100, 0], [100, 200]], in_side="left", min_frames=2)
    rules = RegionRules([], [line], CLASSES)
    # left→right: from screen-left of a downward line… its left on screen is +x (east)
    xs = list(range(60, 140, 8)) + list(range(140, 60, -8))
    events = run_rules(rules, [(x, 50) for x in xs])
    crossed = [(e.direction, e.frame_index) for e in events if e.kind == "line.crossed"]
    assert [d for d, _ in crossed] == ["in", "out"]
    # mask reference: the crossing is when most of the 10 px square is past x=100 (x >= 96 → 4 px left, 6 right)
    assert xs[crossed[0][1]] == 100 and xs[crossed[1][1]] == 92


def test_walking_around_the_end_of_a_line_is_no_crossing() -> None:
    line = LineConfig(name="gate", points=[[100, 0], [100, 50]], min_frames=1)
    rules = RegionRules([], [line], CLASSES)
    path = [(60, 20), (60, 80), (140, 80), (140, 20)]  # down, across below the end, back up
    assert [e for e in run_rules(rules, path) if e.kind == "line.crossed"] == []


def test_zones_in_fractions_resolve_to_the_frame_size_and_outside_points_are_reported() -> None:
    zones = [
        ZoneConfig(name="half", units="fraction", points=[[0, 0], [0.5, 0], [0.5, 1], [0, 1]]),
        ZoneConfig(name="far", points=[[0, 0], [500, 0], [500, 50]]),
    ]
    rules = RegionRules(zones, [], CLASSES, "sources[0].")
    problems = rules.resolve(320, 180)
    assert problems == ["sources[0].zones[1].points: point 1 (500, 0) is outside the 320x180 frame; left out"]
    assert [z.cfg.name for z in rules.zones] == ["half"]
    np.testing.assert_allclose(rules.zones[0].polygon, [[0, 0], [160, 0], [160, 180], [0, 180]])


# --- the stage, the tracker and the events -------------------------------------------------------------------------
def person_mask(height: int, width: int, x: int, car: tuple[int, int, int, int] | None) -> np.ndarray:
    """A 16 x 80 px walker (y 50..130) at column x, minus what the parked car hides."""
    mask = np.zeros((height, width), bool)
    mask[50:130, max(0, x) : max(0, x + 16)] = True
    if car is not None:
        x1, y1, x2, y2 = car
        mask[y1:y2, x1:x2] = False
    return mask


def detections_of(masks: list[np.ndarray], labels: list[int]) -> Detections:
    boxes, rles = [], []
    for mask in masks:
        ys, xs = np.nonzero(mask)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        rle = mask_utils.encode(np.asfortranarray(mask.view(np.uint8)))
        rles.append({"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")})
    return Detections.from_full_masks(
        boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
        scores=np.full(len(masks), 0.95, np.float32),
        labels=np.asarray(labels, np.int64),
        masks=np.stack(masks) if masks else np.zeros((0, 180, 320), bool),
        rles=rles,
    )


CAR_BOX = (120, 80, 220, 140)  # x1 y1 x2 y2 of the parked car's silhouette
BAY = [[124, 70], [216, 70], [216, 150], [124, 150]]  # the parking-bay zone, drawn around the car


def parked_car_clip(reference: str) -> list[dict]:
    """People walk along the pavement behind a parked car: their feet and legs are hidden, their heads and
    shoulders show above its roof — and their visible boxes end on the roof, inside the bay drawn around the car."""
    cfg = build_config(
        {
            "sources": [source(zones=[{"name": "bay", "points": BAY, "classes": ["person"], "reference": reference}])],
            "tracker": {"camera_motion": "off"},
        }
    )
    tracker = TrackerStage(TrackerConfig(camera_motion="off"))
    zones = ZonesStage(cfg.sources, CLASSES)
    builder = EventBuilder(CLASSES)
    car = np.zeros((180, 320), bool)
    car[CAR_BOX[1] : CAR_BOX[3], CAR_BOX[0] : CAR_BOX[2]] = True
    events = []
    fps = 15.0
    for index in range(75):
        walkers = [person_mask(180, 320, 10 + 4 * index, CAR_BOX), person_mask(180, 320, 300 - 4 * index, CAR_BOX)]
        masks = [car] + [m for m in walkers if m.any()]
        frame = Frame("cam", index, index / fps, 1000 + index / fps, np.zeros((180, 320, 3), np.uint8))
        result = tracker.track(FrameResult(frame, detections_of(masks, [CAR] + [PERSON] * (len(masks) - 1))))
        for out in zones.process(result):
            assert isinstance(out, FrameResult)
            events += builder.for_frame(out)
    ended = tracker.on_status(StreamStatus("cam", "ended", 0.0))
    for out in ended:
        for item in zones.on_control(out) if not isinstance(out, StreamStatus) else []:
            events += builder.for_ended_tracks("cam", item.transitions) + builder.for_zone_events(
                "cam", item.zone_events
            )
    for event in events:
        validate_event(event)
    return events


def test_people_behind_a_parked_car_do_not_enter_its_bay_by_mask_but_do_by_box() -> None:
    ours = parked_car_clip("mask")
    assert [e for e in ours if e["type"].startswith("zone.")] == []
    assert len({e["track_id"] for e in ours if e["type"] == "track.started"}) == 3  # the car and both walkers
    # the same clip with the box bottom-centre anchor (what peers use) and the mask footprint: false entries
    boxed = parked_car_clip("box_bottom")
    assert len([e for e in boxed if e["type"] == "zone.entered"]) == 2
    footprint = parked_car_clip("footprint")
    assert len([e for e in footprint if e["type"] == "zone.entered"]) == 2


def test_zone_events_carry_track_class_time_and_deterministic_ids() -> None:
    events = parked_car_clip("box_bottom")
    entered = [e for e in events if e["type"] == "zone.entered"]
    exited = [e for e in events if e["type"] == "zone.exited"]
    assert {e["class_name"] for e in entered} == {"person"} and len(exited) == 2
    for event in entered + exited:
        assert event["zone"] == "bay" and event["event_id"].startswith(f"z:bay:t{event['track_id']}:")
        assert event["capture_time"] == pytest.approx(1000 + event["frame_index"] / 15.0)
    assert all(e["dwell_s"] > 0 for e in exited)
    occupancy = [e for e in events if e["type"] == "zone.occupancy"]
    assert occupancy and all(e["total"] == sum(e["counts"].values()) for e in occupancy)
    assert [e["event_id"] for e in events] == [e["event_id"] for e in parked_car_clip("box_bottom")]
    assert len({e["event_id"] for e in events}) == len(events)


# --- the whole pipeline ----------------------------------------------------------------------------------------------
def test_a_run_with_a_zone_outside_the_frame_reports_it_and_completes(tmp_path: Path) -> None:
    from pipeline.runner import Pipeline

    clip = write_clip(tmp_path / "clip.mp4", frames=12)
    events_file = tmp_path / "events.jsonl"
    cfg = build_config(
        {
            "sources": [
                source(
                    url=str(clip),
                    zones=[
                        {"name": "all", "units": "fraction", "points": [[0, 0], [1, 0], [1, 1], [0, 1]]},
                        {"name": "off", "points": [[0, 0], [400, 0], [400, 100]]},
                    ],
                    lines=[{"name": "mid", "units": "fraction", "points": [[0.5, 0], [0.5, 1]]}],
                )
            ],
            "model": {"device": "cpu"},
            "tracker": {"camera_motion": "off", "high_score": 0.3, "new_track_score": 0.3, "low_score": 0.1},
            "sinks": {"jsonl": str(events_file)},
        }
    )
    pipeline = Pipeline(cfg, detector=tiny_detector())
    report = pipeline.run()
    assert report.frames == 12
    assert [t.stage.name for t in pipeline._stage_threads][-2:] == ["zones", "publish"]
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    for event in events:
        validate_event(event)
    errors = [e for e in events if e["type"] == "stream.error"]
    assert [e["reason"] for e in errors] == [
        "sources[0].zones[1].points: point 1 (400, 0) is outside the 320x180 frame; left out"
    ]
    assert events[-1]["type"] == "stream.ended"
    started = {e["track_id"] for e in events if e["type"] == "track.started"}
    entered = {e["track_id"] for e in events if e["type"] == "zone.entered"}
    assert entered <= started
    exited = {e["track_id"] for e in events if e["type"] == "zone.exited"}
    assert exited == entered  # every track inside "all" leaves it when it ends


def test_annotated_frames_show_zones_and_counts() -> None:
    from sinks.annotated_video import draw_result

    zone = ZoneConfig(name="z", points=SQUARE)
    rules = RegionRules([zone], [], CLASSES)
    rules.resolve(200, 200)
    frame = Frame("cam", 0, 0.0, 0.0, np.zeros((200, 200, 3), np.uint8))
    from pipeline.items import AnalyticsFrame

    result = FrameResult(frame, Detections.empty(200, 200), analytics=AnalyticsFrame([], rules.overlay()))
    image = draw_result(result, CLASSES)
    assert image[10, 50].any() and image[100, 50].any()  # the outline
    assert not image[150, 150].any()
    assert rules.overlay()[0].text == "z: 0"
    _ = cv2  # drawing is OpenCV


def test_dwell_is_sent_once_per_track_and_zone_even_after_a_re_entry() -> None:
    zone = ZoneConfig(name="z", points=SQUARE, min_frames=1, dwell_s=0.2)
    rules = RegionRules([zone], [], CLASSES)
    path = [(40, 40)] * 4 + [(150, 150)] * 2 + [(40, 40)] * 4
    events = run_rules(rules, path)
    assert [e.kind for e in events if e.kind != "zone.occupancy"] == [
        "zone.entered", "zone.dwell", "zone.exited", "zone.entered"
    ]  # fmt: skip
    rules.end_tracks([(1, moment(9))])
    assert [e.kind for e in run_rules(rules, [(40, 40)] * 4) if e.kind == "zone.dwell"] == ["zone.dwell"]  # a new life


def test_prometheus_counts_per_zone_event_and_line_direction() -> None:
    from prometheus_client import REGISTRY

    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = value("maskstream_zone_events_total", source="cam", zone="bay", event="entered")
    parked_car_clip("box_bottom")
    assert value("maskstream_zone_events_total", source="cam", zone="bay", event="entered") == before + 2
    assert value("maskstream_zone_occupancy", source="cam", zone="bay") == 0

    stage = ZonesStage(
        build_config(
            {"sources": [source(lines=[{"name": "gate", "points": [[100, 0], [100, 100]], "min_frames": 1}])]}
        ).sources,
        CLASSES,
    )
    crossed_before = value("maskstream_line_crossings_total", source="cam", line="gate", direction="in")
    tracker = TrackerStage(TrackerConfig(camera_motion="off"))
    for index in range(20):  # a walker going east across x=100: towards the line's left (on screen), "in"
        mask = np.zeros((180, 320), bool)
        mask[20:60, 60 + 4 * index : 80 + 4 * index] = True
        frame = Frame("cam", index, index / 15, 1000 + index / 15, np.zeros((180, 320, 3), np.uint8))
        list(stage.process(tracker.track(FrameResult(frame, detections_of([mask], [PERSON])))))
    assert value("maskstream_line_crossings_total", source="cam", line="gate", direction="in") == crossed_before + 1
