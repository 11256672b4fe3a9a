"""`make demo`'s driver: private redis-server or REDIS_URL, synthetic clip, summary, annotated video.

The bundled model is replaced by the tiny test model (the demo's logic is under test, not the model's accuracy).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import pipeline.runner
from pipeline.demo import run_demo
from tests.pipeline_helpers import tiny_detector
from tests.servers import RedisServer


@pytest.fixture(autouse=True)
def tiny_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline.runner, "load_detector", lambda cfg: tiny_detector(max_detections=5))


def events_in_summary(out: str) -> int:
    return int(re.search(r"events\s+(\d+) in Redis stream maskstream:\{demo\}:events", out).group(1))


@pytest.mark.slow
def test_demo_with_its_own_redis_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert run_demo(tmp_path, frames=12, seed=1, device="cpu") == 0
    out = capsys.readouterr().out
    assert "(private, stopped afterwards)" in out and "frames        12 in" in out
    assert events_in_summary(out) >= 2  # stream.started and stream.ended at least
    assert (tmp_path / "annotated.mp4").stat().st_size > 0 and (tmp_path / "events.jsonl").exists()
    assert "maskstream tail --redis" in out


@pytest.mark.slow
def test_demo_with_redis_url_counts_only_its_own_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], redis_server: RedisServer
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    assert run_demo(tmp_path, frames=12, seed=1, device="cpu") == 0
    first = events_in_summary(capsys.readouterr().out)
    assert run_demo(tmp_path, frames=12, seed=1, device="cpu") == 0  # the clip is reused, the stream grows
    second = events_in_summary(capsys.readouterr().out)
    assert first == second and redis_server.client().xlen("maskstream:{demo}:events") == first + second
