"""Tracker behaviour: lifecycle transitions, identities through crossings and camera motion, robustness."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from pydantic import ValidationError

from pipeline.config.tracker import TrackerConfig
from pipeline.items import Detections, Frame, FrameResult
from stages.tracker import TrackerStage
from tests.toyscene import ToyObject, ToyScene
from tracking.association import CroppedMask, assign, box_iou, similarity
from tracking.track import Phase
from tracking.tracker import MultiObjectTracker

FPS = 30.0


def make_frame(index: int, size: tuple[int, int] = (120, 160), source: str = "cam") -> Frame:
    return Frame(source, index, index / FPS, 1000.0 + index / FPS, np.zeros((*size, 3), np.uint8))


def box_dets(boxes: list[list[float]], size: tuple[int, int] = (120, 160), score: float = 0.9) -> Detections:
    arr = np.asarray(boxes, np.float32).reshape(-1, 4)
    masks = np.zeros((len(arr), *size), bool)
    for i, b in enumerate(arr.astype(int)):
        masks[i, b[1] : b[3], b[0] : b[2]] = True
    return Detections.from_full_masks(arr, np.full(len(arr), score, np.float32), np.ones(len(arr), np.int64), masks, [])


def static_cfg(**overrides) -> TrackerConfig:
    base = {"camera_motion": "off", "updated_interval_s": 0.0, "emit_lost": True}
    return TrackerConfig(**(base | overrides))


BOX = [40.0, 30.0, 70.0, 90.0]


def run(tracker: MultiObjectTracker, frames: list[list[list[float]]], start: int = 0, size=(120, 160)):
    """Feed frames of boxes; return per-frame lists of (kind, id) and the last step."""
    events = []
    step = None
    for k, boxes in enumerate(frames):
        step = tracker.step(make_frame(start + k, size), box_dets(boxes, size) if boxes else Detections.empty(*size))
        events.append([(tr.kind, tr.track.track_id) for tr in step.transitions])
    return events, step


def test_tentative_track_is_confirmed_after_confirm_hits_and_gets_first_seen_fields():
    tracker = MultiObjectTracker(static_cfg(confirm_hits=3))
    events, step = run(tracker, [[BOX], [BOX]])
    assert events == [[], []]
    assert step.tracks == []  # tentative tracks are not published
    assert tracker.tracks[0].phase is Phase.TENTATIVE
    events, step = run(tracker, [[BOX]], start=2)
    assert events == [[("started", 1)]]
    started = step.transitions[0].track
    assert (started.first_frame, started.hits, started.last_frame) == (0, 3, 2)
    assert started.first_time == pytest.approx(1000.0)
    assert [t.track_id for t in step.tracks] == [1]


def test_tentative_track_dropped_silently_at_first_miss():
    tracker = MultiObjectTracker(static_cfg(confirm_hits=3))
    events, _ = run(tracker, [[BOX], [BOX], [], [BOX], [BOX], [BOX]])
    assert [e for frame in events for e in frame] == [("started", 1)]  # the first attempt never published anything


def test_single_miss_does_not_demote_a_confirmed_track():
    tracker = MultiObjectTracker(static_cfg(lost_after_s=0.0))
    run(tracker, [[BOX], [BOX], [BOX]])
    events, step = run(tracker, [[]], start=3)
    assert events == [[]]
    assert tracker.tracks[0].phase is Phase.CONFIRMED
    coasting = step.tracks[0]
    assert coasting.detection_index is None and coasting.track_id == 1
    events, _ = run(tracker, [[]], start=4)
    assert events == [[("lost", 1)]]
    assert tracker.tracks[0].phase is Phase.LOST


def test_lost_track_refound_keeps_its_id_and_emits_updated():
    tracker = MultiObjectTracker(static_cfg(updated_interval_s=None))
    run(tracker, [[BOX]] * 3)
    events, _ = run(tracker, [[]] * 6, start=3)
    assert ("lost", 1) in [e for f in events for e in f]
    events, step = run(tracker, [[BOX]], start=9)
    assert events == [[("updated", 1)]]  # re-found: consumers learn it is back even with periodic updates off
    assert tracker.tracks[0].phase is Phase.CONFIRMED
    assert step.tracks[0].detection_index == 0


def test_lost_track_removed_after_max_lost_s_and_forgotten():
    tracker = MultiObjectTracker(static_cfg(max_lost_s=0.5))
    run(tracker, [[BOX]] * 3)
    events, _ = run(tracker, [[]] * 20, start=3)
    flat = [(k, e) for k, f in enumerate(events) for e in f]
    ended = [k for k, e in flat if e == ("ended", 1)]
    assert len(ended) == 1
    # removed on the first frame more than 0.5 s after the last observation (frame 2)
    assert (3 + ended[0] - 2) / FPS > 0.5 >= (3 + ended[0] - 3) / FPS
    assert tracker.tracks == []


def test_ages_are_in_seconds_not_frames():
    """The same 0.5 s gap removes a track at 10 fps and at 60 fps after the same time, not the same frame count."""
    removed_after = {}
    for fps in (10.0, 60.0):
        tracker = MultiObjectTracker(static_cfg(max_lost_s=0.5))
        t = 0.0
        for i in range(200):
            boxes = [BOX] if i < 3 else []
            frame = Frame("cam", i, i / fps, 0.0, np.zeros((120, 160, 3), np.uint8))
            step = tracker.step(frame, box_dets(boxes) if boxes else Detections.empty(120, 160))
            if any(tr.kind == "ended" for tr in step.transitions):
                t = i / fps - 2 / fps
                break
        removed_after[fps] = t
    assert removed_after[10.0] == pytest.approx(0.6, abs=1e-6)
    assert removed_after[60.0] == pytest.approx(0.5 + 1 / 60, abs=1e-6)


def test_events_in_order_per_track_and_finish_ends_every_live_track():
    stage = TrackerStage(static_cfg(updated_interval_s=0.1))
    scene = ToyScene([ToyObject((40, 60), (2, 0), (30, 50)), ToyObject((120, 60), (-1, 1), (30, 50), label=2)])
    history = defaultdict(list)
    for i in range(40):
        result = stage.track(FrameResult(scene.frame(i, "cam"), scene.detections(i)))
        for tr in result.transitions:
            history[tr.track.track_id].append(tr.kind)
    for tr in stage.end_source("cam"):
        history[tr.track.track_id].append(tr.kind)
    assert set(history) == {1, 2}
    for kinds in history.values():
        assert kinds[0] == "started" and kinds[-1] == "ended"
        assert kinds.count("updated") >= 10 and set(kinds[1:-1]) == {"updated"}
    assert stage.source_ids == []


def crossing_scene(pan=(0.0, 0.0)) -> ToyScene:
    # Two same-class objects cross head-on (boxes overlap for several frames), a third passes between them.
    objects = [
        ToyObject((120, 160), (6, 0), (50, 90)),
        ToyObject((520, 170), (-6, 0), (50, 90)),
        ToyObject((320, 40), (0, 4), (40, 40)),
    ]
    return ToyScene(objects, pan=pan, seed=3)


def identity_switches(scene: ToyScene, cfg: TrackerConfig, frames: int, **det_kwargs) -> tuple[int, int]:
    """Count (gt -> id changes, frames where some gt had no track) matching tracks to gt by IoU."""
    from tracking.association import box_iou

    tracker = MultiObjectTracker(cfg)
    last_id: dict[int, int] = {}
    switches = missing = 0
    for i in range(frames):
        step = tracker.step(scene.frame(i), scene.detections(i, **det_kwargs))
        gt = scene.gt_boxes(i)
        if not step.tracks:
            missing += i >= 2
            continue
        ious = box_iou(gt, np.stack([t.box for t in step.tracks]))
        for g in range(len(gt)):
            best = int(np.argmax(ious[g]))
            if ious[g, best] < 0.3:
                missing += i >= 2
                continue
            tid = step.tracks[best].track_id
            switches += g in last_id and last_id[g] != tid
            last_id[g] = tid
    return switches, missing


def test_crossing_objects_swap_no_identities():
    switches, _ = identity_switches(crossing_scene(), static_cfg(), 70, jitter_px=1.5)
    assert switches == 0


def test_crossing_with_dropouts_through_occlusion_keeps_identities():
    switches, _ = identity_switches(crossing_scene(), static_cfg(), 70, jitter_px=1.0, drop=0.25)
    assert switches == 0


def test_camera_motion_compensation_keeps_tracks_on_a_shaking_camera():
    # The camera swings +-40 px (up to 16 px per frame, changing direction): a constant-velocity filter without
    # compensation cannot follow small objects, with compensation nothing is lost.
    objects = [ToyObject((120 + 70 * k, 100 + 50 * (k % 3)), (0.5, 0), (24, 24)) for k in range(6)]
    scene = ToyScene(objects, shake=40.0, seed=1)
    compensated = identity_switches(scene, TrackerConfig(updated_interval_s=None), 40)
    uncompensated = identity_switches(scene, TrackerConfig(updated_interval_s=None, camera_motion="off"), 40)
    assert compensated == (0, 0)
    assert uncompensated[1] > 20  # the baseline really is hard: tracks are lost without compensation


def test_empty_frames_and_frames_without_masks():
    tracker = MultiObjectTracker(TrackerConfig())
    for i in range(5):
        step = tracker.step(make_frame(i), Detections.empty(120, 160))
        assert step.tracks == [] and step.transitions == []
    dets = box_dets([BOX])
    no_masks = Detections.from_full_masks(dets.boxes, dets.scores, dets.labels, np.zeros((0, 120, 160), bool), [])
    for i in range(5, 9):
        step = tracker.step(make_frame(i), no_masks)
    assert [t.track_id for t in step.tracks] == [1]


def test_frame_size_change_ends_tracks_and_never_reuses_ids():
    tracker = MultiObjectTracker(TrackerConfig())
    events, _ = run(tracker, [[BOX]] * 3)
    events, step = run(tracker, [[BOX]] * 3, start=3, size=(240, 320))
    flat = [e for f in events for e in f]
    assert flat[0] == ("ended", 1)
    assert ("started", 2) in flat
    assert [t.track_id for t in step.tracks] == [2]


def test_ids_never_reused_and_memory_bounded_over_many_appearances():
    tracker = MultiObjectTracker(static_cfg(max_lost_s=0.2, updated_interval_s=None))
    seen: list[int] = []
    sizes = []
    for i in range(900):
        # a new object every 30 frames, each visible for 20 frames, at a new place
        boxes = []
        if i % 30 < 20:
            x = 10 + (i // 30) % 5 * 25
            boxes = [[x, 20, x + 20, 60]]
        step = tracker.step(make_frame(i), box_dets(boxes) if boxes else Detections.empty(120, 160))
        seen += [tr.track.track_id for tr in step.transitions if tr.kind == "started"]
        sizes.append(len(tracker.tracks))
    assert seen == list(range(1, 31))
    assert max(sizes) <= 2


def test_stage_keeps_sources_apart():
    stage = TrackerStage(static_cfg())
    for i in range(3):
        for source in ("a", "b"):
            frame = make_frame(i, source=source)
            result = stage.track(FrameResult(frame, box_dets([BOX])))
    assert [t.track_id for t in result.tracks] == [1]  # b's ids start at 1 too: ids are per source
    assert sorted(stage.source_ids) == ["a", "b"]
    assert [tr.kind for tr in stage.end_source("a")] == ["ended"]
    assert stage.end_source("a") == []


def test_disabled_tracker_passes_frames_through():
    stage = TrackerStage(TrackerConfig(enabled=False))
    result = stage.track(FrameResult(make_frame(0), box_dets([BOX])))
    assert result.tracks == [] and result.transitions == []


def test_class_penalty_forbids_or_tolerates_a_class_flip():
    dets = box_dets([BOX])
    other = Detections.from_full_masks(dets.boxes, dets.scores, np.array([7]), dets.full_masks(), [])
    strict = MultiObjectTracker(static_cfg(class_penalty=1.0))
    tolerant = MultiObjectTracker(static_cfg())  # default 0.3: a detector's class flicker does not break a track
    for tracker in (strict, tolerant):
        for i in range(3):
            tracker.step(make_frame(i), dets)
    assert strict.step(make_frame(3), other).tracks[0].detection_index is None
    step = tolerant.step(make_frame(3), other)
    assert step.tracks[0].detection_index == 0
    assert step.tracks[0].label == 1  # the majority vote keeps the class the track has mostly been seen as


def test_low_score_detections_keep_a_track_alive_but_do_not_start_one():
    tracker = MultiObjectTracker(static_cfg())
    run(tracker, [[BOX]] * 3)
    for i in range(3, 10):
        step = tracker.step(make_frame(i), box_dets([BOX, [100, 10, 130, 60]], score=0.3))
    assert [(t.track_id, t.detection_index) for t in step.tracks] == [(1, 0)]
    assert len(tracker.tracks) == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [("low_score", 0.9), ("new_track_score", 0.1), ("lost_after_s", 5.0), ("camera_motion", "gyro"), ("bogus", 1)],
)
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ValidationError, match=field):
        TrackerConfig(**{field: value})


def test_buffered_iou_refinds_a_small_object_that_drifted_during_a_gap():
    # A small object seen for 4 frames, hidden for 6, reappears a box width off its predicted path (no overlap).
    small = [40.0, 40.0, 50.0, 60.0]
    moved = [50.0, 40.0, 60.0, 60.0]
    ids = {}
    for growth in (0.0, 3.0):
        cfg = static_cfg(lost_box_growth=growth, recover_from_last_observation=False, mask_weight=0.0)
        tracker = MultiObjectTracker(cfg)
        run(tracker, [[small]] * 4)
        run(tracker, [[]] * 6, start=4)
        _, step = run(tracker, [[moved]] * 2, start=10)
        ids[growth] = sorted(t.track_id for t in step.tracks if t.detection_index is not None)
    assert ids[3.0] == [1]  # widened boxes overlap: the same track
    assert ids[0.0] == [2]  # plain IoU is 0: a new identity


def test_mask_weight_fades_for_tiny_masks():
    from tracking.association import CroppedMask, similarity

    ious = np.array([[0.6]])
    tiny = CroppedMask(np.ones((4, 5), bool), (0, 0, 5, 4))  # 20 px
    other = CroppedMask(np.ones((4, 5), bool), (10, 0, 15, 4))  # 20 px elsewhere: mask IoU 0
    labels = np.array([1])
    full = similarity(ious, [tiny], [other], labels, labels, 0.5, 0.0)
    faded = similarity(ious, [tiny], [other], labels, labels, 0.5, 0.0, mask_full_weight_area=200.0)
    assert full[0, 0] == pytest.approx(0.3)  # half box IoU, half mask IoU (0)
    assert faded[0, 0] == pytest.approx(0.6 * 0.95)  # weight 0.5 * 20/200 = 0.05


def random_masks(rng: np.random.Generator, n: int, height: int = 80, width: int = 100) -> list[CroppedMask]:
    out = []
    for _ in range(n):
        x1, y1 = int(rng.integers(0, width - 5)), int(rng.integers(0, height - 5))
        box = (x1, y1, int(rng.integers(x1 + 1, width + 1)), int(rng.integers(y1 + 1, height + 1)))
        pixels = rng.random((box[3] - box[1], box[2] - box[0])) < rng.uniform(0.2, 1.0)
        out.append(CroppedMask(pixels, box))
    return out


@pytest.mark.parametrize("full_weight_area", [0.0, 400.0])
def test_similarity_floor_changes_no_assignment(full_weight_area: float) -> None:
    """Pairs that cannot reach the match threshold skip their pixel work; every pair at or above it keeps its
    exact similarity, every pair below stays below, so the assignment is the same."""
    rng = np.random.default_rng(11)
    for _ in range(60):
        tracks, dets = random_masks(rng, int(rng.integers(1, 12))), random_masks(rng, int(rng.integers(1, 12)))
        ious = box_iou(np.array([m.box for m in tracks], float), np.array([m.box for m in dets], float))
        t_labels, d_labels = rng.integers(0, 2, len(tracks)), rng.integers(0, 2, len(dets))
        args = (ious, tracks, dets, t_labels, d_labels, 0.5, 0.3, full_weight_area)
        threshold = float(rng.choice([0.2, 0.3, 0.5]))
        exact, bounded = similarity(*args), similarity(*args, floor=threshold)
        reach = exact >= threshold
        assert np.array_equal(reach, bounded >= threshold)
        assert np.array_equal(exact[reach], bounded[reach])
        assert assign(exact, threshold) == assign(bounded, threshold)
