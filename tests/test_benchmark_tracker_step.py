"""benchmarks/tracker_step.py runs end to end on a tiny clip, and the pipeline ceiling runs with both
camera-motion configurations (the bug that crashed it on main: the stand-in detector had no `info`)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import pipeline_ceiling, tracker_step


def test_tracker_step_reports_both_configurations_with_the_same_results_on_a_static_clip(tmp_path: Path) -> None:
    out = tmp_path / "step.json"
    argv = ["--sizes", "320x192", "--objects", "5", "--frames", "12", "--repeat", "1", "--json", str(out)]
    assert tracker_step.main(argv) == 0
    cases = json.loads(out.read_text())["cases"]
    assert [c["camera_motion"] for c in cases] == ["auto", "off"]
    assert all(c["total_ms"] > 0 for c in cases)
    assert cases[0]["digest"] == cases[1]["digest"]  # the clip's camera is static: the same tracks either way
    assert cases[0]["motion_ms"] > cases[1]["motion_ms"]  # `off` estimates nothing


def test_pipeline_ceiling_runs_both_camera_motion_configurations(tmp_path: Path) -> None:
    out = tmp_path / "ceiling.json"
    argv = ["--sizes", "320x192", "--objects", "5", "--sources", "1", "--seconds", "0.4", "--sink", "jsonl"]
    assert pipeline_ceiling.main([*argv, "--camera-motion", "auto", "off", "--json", str(out)]) == 0
    cases = json.loads(out.read_text())["cases"]
    assert [c["camera_motion"] for c in cases] == ["auto", "off"]
    assert all(c["frames"] == 12 and c["pipeline_fps"] > 0 for c in cases)
    assert "tracker-motion" in cases[0]["busy"] and "tracker-motion" not in cases[1]["busy"]
