"""training/device_train.sh --smoke: the GPU training call's every step (stills on all cores, fine-tune from the
bundled weights, held-out scoring of new and bundled weights) on the CPU with tiny sizes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors import safe_open

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_device_training_smoke_writes_weights_and_scores_both_models(tmp_path: Path) -> None:
    out, work = tmp_path / "out", tmp_path / "work"
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(out), "WORK": str(work)}
    done = subprocess.run(
        ["bash", str(ROOT / "training" / "device_train.sh"), "--smoke"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["device_train.log", "light-device.safetensors"]
    with safe_open(str(out / "light-device.safetensors"), "pt") as weights:
        assert len(list(weights.keys())) > 50  # a whole Mask R-CNN, not an empty file
    log = (out / "device_train.log").read_text()
    scored = [line for line in log.splitlines() if line.startswith("== ")]
    assert len(scored) == 8  # 2 weights x 4 held-out clips (2 seeds x 2 modes)
    assert log.count('"segm_AP"') >= 8
