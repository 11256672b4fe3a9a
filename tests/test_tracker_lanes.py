"""The tracker stage tracks sources in parallel lanes, keeping every source's results and their order."""

from __future__ import annotations

import time

import numpy as np

from pipeline.config.tracker import TrackerConfig
from pipeline.items import Detections, Frame, FrameResult, StreamStatus, TracksEnded
from stages.tracker import TrackerStage
from tests.toyscene import ToyObject, ToyScene
from tracking.tracker import MultiObjectTracker

SIZE = (120, 160)


def result(source: str, index: int) -> FrameResult:
    shift = 3 * index + (0 if source == "a" else 40)
    boxes = np.array([[10 + shift % 90, 20, 40 + shift % 90, 60], [100, 30 + index, 140, 80 + index]], np.float32)
    masks = np.zeros((2, *SIZE), bool)
    for i, (x1, y1, x2, y2) in enumerate(boxes.astype(int)):
        masks[i, y1:y2, x1:x2] = True
    dets = Detections.from_full_masks(boxes, np.full(2, 0.9, np.float32), np.ones(2, np.int64), masks)
    return FrameResult(Frame(source, index, index / 10, 100 + index / 10, np.zeros((*SIZE, 3), np.uint8)), dets)


def summary(item: object) -> object:
    if isinstance(item, FrameResult):
        return (
            item.frame.source_id,
            item.frame.index,
            [(t.kind, t.track.track_id) for t in item.transitions],
            [(t.track_id, t.box.tolist()) for t in item.tracks],
        )
    if isinstance(item, TracksEnded):
        return ("ended-tracks", item.source_id, [t.track.track_id for t in item.transitions])
    if isinstance(item, StreamStatus):
        return ("status", item.source_id, item.kind)
    return item


def run(stage: TrackerStage, items: list) -> list:
    out = []
    for item in items:
        if isinstance(item, StreamStatus):
            out += stage.on_status(item)
        else:
            out += stage.process(item)
    while stage.wait_timeout() is not None:
        time.sleep(stage.wait_timeout() or 0)
        out += stage.on_idle()
    out += stage.finish()
    stage.close()
    return [summary(o) for o in out]


def interleaved() -> list:
    items: list = []
    for index in range(12):
        items += [result("a", index), result("b", index), result("c", index)]
    items.append(StreamStatus("b", "ended", 0.0))
    return [*items, result("a", 12), result("c", 12)]


def test_lanes_give_each_source_what_it_gets_alone_in_arrival_order() -> None:
    busy: list[str] = []
    lanes = run(TrackerStage(workers=2, on_busy=lambda name, s, c: busy.append(name)), interleaved())
    inline = run(TrackerStage(workers=1), interleaved())
    assert lanes == inline  # same tracks, same transitions, same order
    assert [x[:2] for x in lanes[:3]] == [("a", 0), ("b", 0), ("c", 0)]
    ended = lanes.index(("ended-tracks", "b", [1, 2]))
    assert lanes[ended + 1] == ("status", "b", "ended")
    assert ("b", 11) in [x[:2] for x in lanes[:ended]]  # every frame of b came out before its end
    # camera motion is on by default: every frame goes through a lane, its motion estimated in the motion lane
    assert busy.count("tracker") == 38 and busy.count("tracker-motion") == 38


def test_without_camera_motion_one_source_is_tracked_inline() -> None:
    busy: list[str] = []
    stage = TrackerStage(TrackerConfig(camera_motion="off"), workers=2, on_busy=lambda name, s, c: busy.append(name))
    out = run(stage, [result("a", 0), result("a", 1), result("b", 0), result("a", 2), result("b", 1)])
    assert [o[:2] for o in out] == [("a", 0), ("a", 1), ("b", 0), ("a", 2), ("b", 1)]
    assert busy == ["tracker"] * 3  # the first two frames (one source known) inline, the rest in lanes


def test_motion_estimated_ahead_tracks_a_panning_camera_as_the_tracker_alone() -> None:
    """One source, a camera panning 4 px per frame: the motion lane's estimates are those the tracker would
    make itself, so the stage's tracks equal a bare tracker's."""
    objects = [ToyObject((80, 100), (2, 0), (40, 60)), ToyObject((300, 200), (-1, 1), (50, 70), label=2)]
    scene = ToyScene(objects, pan=(4.0, 0.0), seed=5)
    frames = [FrameResult(scene.frame(i, "a"), scene.detections(i)) for i in range(15)]
    alone = MultiObjectTracker(TrackerConfig())
    expected, methods = [], []
    for item in frames:
        step = alone.step(item.frame, item.detections)
        methods.append(step.motion.method)
        expected.append(("a", item.frame.index, [(t.kind, t.track.track_id) for t in step.transitions],
                         [(t.track_id, t.box.tolist()) for t in step.tracks]))  # fmt: skip
    assert "flow" in methods  # the camera motion really is estimated and applied
    busy: list[str] = []
    stage = TrackerStage(TrackerConfig(), workers=1, on_busy=lambda name, s, c: busy.append(name))
    fresh = [FrameResult(scene.frame(i, "a"), scene.detections(i)) for i in range(15)]
    assert run(stage, fresh) == expected
    assert busy.count("tracker-motion") == 15


def test_a_failure_in_a_lane_becomes_its_sources_error_status() -> None:
    stage = TrackerStage(workers=2)
    bad = result("b", 1)
    bad.detections = None  # type: ignore[assignment]  # the tracker fails on it
    out = run(stage, [result("a", 0), result("b", 0), result("a", 1), bad, result("a", 2)])
    statuses = [o for o in out if isinstance(o, tuple) and o[0] == "status"]
    assert statuses == [("status", "b", "error")]
    assert [o[:2] for o in out if isinstance(o, tuple) and o[0] in "ab"] == [("a", 0), ("b", 0), ("a", 1), ("a", 2)]
