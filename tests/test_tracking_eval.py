"""Tracking metrics (TrackEval in memory) on hand-computed cases, and the evaluation harness on a toy clip."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from evaluation.clips import load_clip
from evaluation.detections import DetectionSet, noisy_gt_detections
from evaluation.tracking import run_evaluation
from tests.toyscene import ToyObject, ToyScene, write_toy_clip
from tracking.metrics import evaluate
from tracking.mot_io import FrameObjects

# TrackEval is a benchmark dependency (installed with --no-deps, docs/TRACKING.md): scoring tests need it.
needs_trackeval = pytest.mark.skipif(
    importlib.util.find_spec("trackeval") is None, reason="TrackEval not installed (benchmark extra)"
)

A = [0, 0, 10, 10]
B = [20, 0, 30, 10]


def objects(ids, boxes, classes=None) -> FrameObjects:
    return FrameObjects(
        np.array(ids),
        np.array(boxes, float).reshape(-1, 4),
        np.array(classes or [1] * len(ids)),
        np.ones(len(ids)),
    )


GT = {f: objects([1, 2], [A, B]) for f in range(4)}


@needs_trackeval
def test_ground_truth_as_tracker_scores_100():
    result = evaluate(GT, GT, range(4))
    for key in ("HOTA", "DetA", "AssA", "MOTA", "IDF1"):
        assert result[key] == pytest.approx(100.0)
    assert result["IDSW"] == 0


@needs_trackeval
def test_hand_computed_identity_switch():
    # Object 1 is tracked as id 7 for two frames, then as id 9: one switch out of 8 ground-truth boxes.
    tracks = {
        0: objects([7, 8], [A, B]),
        1: objects([7, 8], [A, B]),
        2: objects([9, 8], [A, B]),
        3: objects([9, 8], [A, B]),
    }
    result = evaluate(GT, tracks, range(4))
    assert result["IDSW"] == 1
    assert result["MOTA"] == pytest.approx(100 * (1 - 1 / 8))
    assert result["IDF1"] == pytest.approx(100 * 2 * 6 / 16)  # IDTP = 2 (object 1) + 4 (object 2)
    # AssA: object 1's four matches each see A = 2 / 4, object 2's see A = 1 -> 0.75; DetA = 1.
    assert result["AssA"] == pytest.approx(75.0)
    assert result["HOTA"] == pytest.approx(100 * np.sqrt(0.75))


@needs_trackeval
def test_hand_computed_misses_and_wrong_class():
    # Frame 3: object 2 missed; object 1 reported with the wrong class -> neither credited.
    tracks = {f: objects([7, 8], [A, B]) for f in range(3)}
    tracks[3] = objects([7], [A], classes=[5])
    result = evaluate(GT, tracks, range(4))
    assert result["CLR_FN"] == 2 and result["CLR_FP"] == 1
    assert result["MOTA"] == pytest.approx(100 * (1 - 3 / 8))
    assert result["DetA"] == pytest.approx(100 * 6 / (6 + 2 + 1))


@needs_trackeval
def test_harness_on_a_toy_clip(tmp_path):
    scene = ToyScene(
        [ToyObject((40, 40), (2, 0), (20, 30)), ToyObject((120, 50), (-2, 0), (20, 30), label=2)], size=(96, 160)
    )
    write_toy_clip(tmp_path / "clips" / "toy-7", scene, 20, mode="toy", seed=7)
    clip = load_clip(tmp_path / "clips" / "toy-7")
    assert clip.num_frames == 20 and clip.size == (96, 160) and clip.category_names == {1: "class1", 2: "class2"}

    dets = noisy_gt_detections(clip, seed=7)
    dets.save(tmp_path / "d.npz")
    again = DetectionSet.load(tmp_path / "d.npz")
    assert [len(f.scores) for f in again.frames] == [len(f.scores) for f in dets.frames]
    assert again.frames[5].rles == dets.frames[5].rles

    result = run_evaluation(tmp_path, ["toy"], [7], 20, (160, 96), "noisy-gt", include_boxmot=False)
    check = result.per_clip["ground truth (check)"]["toy-7"]
    assert check["HOTA"] == pytest.approx(100.0) and check["mask HOTA"] == pytest.approx(100.0)
    ours = result.per_clip["maskstream"]["toy-7"]
    assert ours["IDSW"] == 0 and ours["HOTA"] > 50
    assert (tmp_path / "detections" / "toy-7.noisy-gt.npz").exists()  # cached for the next run


def test_model_detections_of_a_clip_with_a_tiny_real_maskrcnn(tmp_path):
    from pycocotools import mask as mask_utils

    from evaluation.detections import model_detections
    from tests.pipeline_helpers import tiny_detector

    scene = ToyScene(
        [ToyObject((60, 60), (3, 0), (40, 50)), ToyObject((200, 100), (-2, 1), (50, 40), label=3)], size=(180, 320)
    )
    write_toy_clip(tmp_path / "clip", scene, 2, names={1: "person", 3: "car"})
    clip = load_clip(tmp_path / "clip")
    detector = tiny_detector()
    detector.model.roi_heads.score_thresh = 0.0  # random weights: keep whatever it finds
    detector.model.roi_heads.detections_per_img = 5
    dets = model_detections(clip, detector)
    assert len(dets.frames) == 2 and dets.source == "model"
    found = [f for f in dets.frames if len(f.scores)]
    assert found, "the tiny model should report something at score threshold 0"
    for f in found:
        # the model's "person"/"car" labels become the clip's category ids 1 and 3 (by name)
        assert set(f.classes.tolist()) <= {1, 3}
        assert len(f.rles) == len(f.scores) == len(f.boxes)
        decoded = mask_utils.decode([{"size": r["size"], "counts": r["counts"].encode()} for r in f.rles])
        assert decoded.shape[:2] == (180, 320)


def test_eval_tracking_cli_rejects_bad_arguments_in_one_line(capsys):
    from pipeline.cli import main

    assert main(["eval-tracking", "--frames", "1", "--no-boxmot"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "maskstream eval-tracking: error: --frames must be at least 2, got 1"


def test_eval_tracking_model_options_are_checked_like_run_in_one_line(capsys, tmp_path):
    from pipeline.cli import main

    argv = ["eval-tracking", "--out", str(tmp_path), "--no-boxmot", "--set", "model.tiling.overlap=1.5"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "model.tiling" in err and "overlap" in err and "\n" not in err
    assert not any(tmp_path.iterdir())  # refused before rendering or running anything
