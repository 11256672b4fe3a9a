"""True zone/line events from the simulator (`synth --zones`) and their scoring (`eval-events`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from evaluation.events import group_scores, score_events
from pipeline.cli import main
from pipeline.config.zones import LineConfig, RegionsConfig, ZoneConfig
from pipeline.events import validate_event
from synth.frames import Instance
from synth.zone_truth import TRUTH_FILE, true_events


def walker(track_id: int, x: int, size: tuple[int, int] = (200, 100), ignore: bool = False) -> Instance:
    width, height = size
    mask = np.zeros((height, width), bool)
    mask[40:80, x : x + 10] = True
    return Instance(track_id, 1, mask, (x, 40, 10, 40), 400, 1.0, ignore)


def test_true_events_follow_the_exact_masks_and_end_unseen_tracks() -> None:
    regions = RegionsConfig(
        zones=[ZoneConfig(name="east", points=[[100, 0], [200, 0], [200, 100], [100, 100]], min_frames=2)],
        lines=[LineConfig(name="gate", points=[[100, 0], [100, 100]], min_frames=2)],
    )
    fps = 10.0
    # walks right 5 px a frame from x=60; hidden (flagged ignore) from frame 14 on, for longer than 1.5 s
    frames = [(i, [walker(7, 60 + 5 * i, ignore=i >= 14)]) for i in range(40)]
    events = true_events(regions, (200, 100), fps, frames)
    for event in events:
        validate_event(event)
    kinds = [(e["type"], e["frame_index"]) for e in events if e["type"] != "zone.occupancy"]
    # x = 60 + 5i: half of the 10 px walker is past x=100 from i = 7 (x=95): entry and crossing there
    assert kinds[:2] == [("zone.entered", 7), ("line.crossed", 7)]
    # looking down a downward line, its left on screen is east: walking east is towards in_side=left, "in"
    assert events[1]["direction"] == "in"
    # unseen from frame 14: the track ends at its last visible frame once 1.5 s have passed
    exited = [e for e in events if e["type"] == "zone.exited"]
    assert len(exited) == 1 and exited[0]["frame_index"] == 13 and exited[0]["dwell_s"] == pytest.approx(0.6)


def test_synth_cli_writes_true_events_beside_the_clip(tmp_path: Path) -> None:
    regions = tmp_path / "zones.yaml"
    regions.write_text(
        "zones:\n  - {name: all, units: fraction, points: [[0, 0], [1, 0], [1, 1], [0, 1]], min_frames: 1}\n"
        "lines:\n  - {name: mid, units: fraction, points: [[0.5, 0], [0.5, 1]], min_frames: 1}\n"
    )
    out = tmp_path / "clip"
    assert main(["synth", str(out), "--frames", "12", "--size", "160x90", "--zones", str(regions)]) == 0
    events = [json.loads(line) for line in (out / TRUTH_FILE).read_text().splitlines()]
    assert events, "every visible object starts inside a whole-frame zone"
    for event in events:
        validate_event(event)
    annotations = json.loads((out / "annotations.json").read_text())
    visible = {a["track_id"] for a in annotations["annotations"] if not a["iscrowd"]}
    assert {e["track_id"] for e in events if e["type"] == "zone.entered"} <= visible


def test_synth_cli_rejects_a_bad_zones_file_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    regions = tmp_path / "zones.yaml"
    regions.write_text("zones:\n  - {name: a, points: [[0, 0], [10, 10], [10, 0], [0, 10]]}\n")
    assert main(["synth", str(tmp_path / "clip"), "--frames", "2", "--zones", str(regions)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"{regions}: zones[0].points: edges 0-1 and 2-3 intersect" in err


def event(kind: str, t: float, region: str = "gate", direction: str | None = None, cls: str = "person") -> dict:
    out = {"type": kind, "pts": t, "capture_time": 1000 + t, "class_name": cls}
    out["line" if kind == "line.crossed" else "zone"] = region
    if direction:
        out["direction"] = direction
    return out


def test_scoring_matches_within_the_tolerance_by_type_region_direction_and_class() -> None:
    truth = [
        event("line.crossed", 1.0, direction="in"),
        event("line.crossed", 2.0, direction="in"),
        event("line.crossed", 3.0, direction="out"),
        event("zone.entered", 1.0, "door"),
        event("zone.exited", 4.0, "door"),
    ]
    predicted = [
        event("line.crossed", 1.2, direction="in"),  # match, 0.2 s late
        event("line.crossed", 2.6, direction="in"),  # 0.6 s off: no match (FP, and 2.0 is missed)
        event("line.crossed", 3.0, direction="in"),  # wrong direction: FP in, FN out
        event("zone.entered", 0.9, "door"),  # match
        event("zone.exited", 4.1, "door", cls="car"),  # wrong class: FP + FN
        event("zone.occupancy", 4.1, "door"),  # not scored
    ]
    groups = group_scores(score_events(predicted, truth, 0.5))
    crossings = groups["crossings"]
    assert (crossings.tp, crossings.fp, crossings.fn) == (1, 2, 2)
    assert crossings.errors == [pytest.approx(0.2)]
    assert (groups["crossings out"].tp, groups["crossings out"].fn) == (0, 1)
    assert (groups["entries"].tp, groups["exits"].fp, groups["exits"].fn) == (1, 1, 1)
    assert groups["entries+exits"].f1 == pytest.approx(0.5)
    loose = group_scores(score_events(predicted, truth, 0.5, same_class=False))
    assert loose["exits"].tp == 1


def test_eval_events_cli_prints_the_table_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    truth_dir = tmp_path / "clip"
    truth_dir.mkdir()
    (truth_dir / TRUTH_FILE).write_text(json.dumps(event("line.crossed", 1.0, direction="in")) + "\n")
    run = tmp_path / "run.jsonl"
    run.write_text(json.dumps(event("line.crossed", 1.3, direction="in")) + "\n")
    report = tmp_path / "scores.json"
    assert main(["eval-events", str(run), str(truth_dir), "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "| line.crossed gate in | 1 | 0 | 0 | 1.000 | 1.000 | 1.000 | 0.300 / 0.300 |" in out
    assert json.loads(report.read_text())["groups"]["crossings"]["f1"] == 1.0
    assert main(["eval-events", str(run), str(tmp_path / "missing.jsonl")]) == 2


def test_synth_run_and_eval_events_chain_with_the_bundled_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The documented loop: a clip with its true events, a real run with the same zones, the score."""
    regions = tmp_path / "zones.yaml"
    regions.write_text(
        "zones:\n  - {name: half, units: fraction, points: [[0, 0.3], [0.5, 0.3], [0.5, 1], [0, 1]]}\n"
        "lines:\n  - {name: mid, units: fraction, points: [[0.5, 0.3], [0.5, 1]]}\n"
    )
    clip = tmp_path / "clip"
    assert main(["synth", str(clip), "--seed", "903", "--frames", "10", "--fps", "10", "--zones", str(regions)]) == 0
    run = tmp_path / "run.jsonl"
    lines = "[{name: mid, units: fraction, points: [[0.5, 0.3], [0.5, 1]]}]"
    zones = "[{name: half, units: fraction, points: [[0, 0.3], [0.5, 0.3], [0.5, 1], [0, 1]]}]"
    code = main(["run", "--source", f"clip={clip / 'video.mp4'}", "--jsonl", str(run), "--device", "cpu",
                 "--no-progress", "--set", f"sources[0].lines={lines}", "--set", f"sources[0].zones={zones}"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    events = [json.loads(line) for line in run.read_text().splitlines()]
    for event in events:
        validate_event(event)
    started = {e["track_id"] for e in events if e["type"] == "track.started"}
    assert {e["track_id"] for e in events if e["type"].startswith(("zone.e", "line."))} <= started
    scores = tmp_path / "scores.json"
    capsys.readouterr()
    assert main(["eval-events", str(run), str(clip), "--json", str(scores)]) == 0
    truth = [json.loads(line) for line in (clip / TRUTH_FILE).read_text().splitlines()]
    groups = json.loads(scores.read_text())["groups"]
    true_entries = sum(e["type"] == "zone.entered" for e in truth)
    assert groups["entries"]["tp"] + groups["entries"]["fn"] == true_entries
    assert "entries+exits" in capsys.readouterr().out
