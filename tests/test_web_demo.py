"""`make demo` serves the live page: it prints the address, and with `--hold` keeps the page up after the clip
ended until Ctrl-C. The bundled model is replaced by the tiny test model (the page is under test, not the model)."""

from __future__ import annotations

import json
import signal
import threading
import urllib.request
from pathlib import Path

import pytest

import pipeline.demo
import pipeline.runner
from pipeline.demo import run_demo
from tests.live_helpers import wait_for
from tests.pipeline_helpers import tiny_detector
from tests.servers import free_port

pytestmark = pytest.mark.timeout(180)


def test_demo_prints_the_page_and_holds_it_until_ctrl_c(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(pipeline.runner, "load_detector", lambda cfg: tiny_detector(max_detections=5))
    monkeypatch.delenv("REDIS_URL", raising=False)
    port = free_port()
    seen: dict[str, object] = {}
    holding = threading.Event()
    hold = pipeline.demo._hold

    def note_the_hold(port: int) -> None:
        holding.set()
        hold(port)

    monkeypatch.setattr(pipeline.demo, "_hold", note_the_hold)

    def visit_then_ctrl_c() -> None:
        def ended() -> dict | None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/sources/demo", timeout=5) as response:
                    source = json.load(response)
            except OSError:
                return None
            return source if source["state"] == "ended" else None

        try:
            seen["source"] = wait_for(ended, 90, interval=0.3, message="the demo's source ended")
            assert holding.wait(60), "the demo did not hold"
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                seen["page"] = response.status
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/sources/demo/frame.jpg", timeout=5) as r:
                seen["jpeg"] = r.read()[:3]
        finally:
            signal.raise_signal(signal.SIGINT)  # the operator's Ctrl-C ends the hold

    visitor = threading.Thread(target=visit_then_ctrl_c)
    visitor.start()
    assert run_demo(tmp_path, frames=12, seed=1, device="cpu", port=port, hold=True) == 0
    visitor.join(10)
    out = capsys.readouterr().out
    assert f"live page at http://127.0.0.1:{port}/" in out and "until Ctrl-C" in out
    assert seen["page"] == 200 and seen["jpeg"] == b"\xff\xd8\xff"
    assert seen["source"]["frames"] == 12  # type: ignore[index]
