"""The one GPU check runs end to end on the CPU (`gpu_check.sh --smoke`: host kernel build, tiny sizes), so the
single run on a GPU machine does not fail on a bug in the script; and it never passes a wrong result silently."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

TABLE_HEADERS = [
    "| head | batch | dtype | pass | torchvision | ours | speed-up |",
    "| precision | batch | torchvision pooler | ours | speed-up | frames/s (ours) | detections tv / ours | matched |",
    "| model | precision | sources | batch size / realised | frames | pipeline fps | inference ms/batch | "
    "masks ms/frame | events |",
]


def test_smoke_run_prints_every_table_and_passes_every_check(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path)}
    done = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh", "--smoke"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    for header in TABLE_HEADERS:
        assert header in output
    assert "[FAIL]" not in output and "all checks passed" in output
    results = json.loads((tmp_path / "gpu_check.json").read_text())
    checks = results["checks"]
    passed = {check["name"] for check in checks if check["ok"] is True}
    assert len(passed) >= 25
    for name in (
        "forward at scale vs torchvision",
        "backward at scale vs torchvision autograd",
        "worker thread (own stream) gives the same result",
        "detect fp32 batch 2: same detections with either pooler",
        "detect bf16 batch 2: same detections with either pooler",
        "pipeline r50 x4 sources: every frame through, events out",
    ):
        assert name in passed
    assert all(check["ok"] is not False for check in checks)
    skipped = [check["name"] for check in checks if check["ok"] is None]
    assert skipped == ["non-default stream gives the same result"]  # only what a CPU cannot do
    assert {row["dtype"] for row in results["poolers"]} == {"float32", "float16", "bfloat16"}
    assert {row["precision"] for row in results["detector"]} == {"fp32", "bf16"}
    assert all(row["detections_torchvision"] > 0 and row["matched"] > 0 for row in results["detector"])
    pipeline = results["pipeline"]
    assert [(row["sources"], row["frames"] == row["expected_frames"]) for row in pipeline] == [
        (1, True),
        (4, True),
        (4, True),
    ]
    assert all(row["realised_batch"] > 0 and row["masks_ms_per_frame"] > 0 for row in pipeline)
    assert (tmp_path / "gpu_check.log").read_text().count("[PASS]") == sum(c["ok"] is True for c in checks)


def test_a_wrong_pooler_result_fails_the_run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    sys.path.insert(0, str(ROOT))
    from benchmarks import gpu_check

    class OffByALittle(gpu_check.MultiScaleRoIAlign):
        def forward(self, *args: object, **kwargs: object) -> torch.Tensor:
            return super().forward(*args, **kwargs) + 1e-3

    monkeypatch.setattr(gpu_check, "MultiScaleRoIAlign", OffByALittle)
    assert gpu_check.main(["--smoke", "--only", "scale"]) == 1
    output = capsys.readouterr().out
    assert "[FAIL] forward at scale vs torchvision" in output
    assert "FAILED checks:" in output


def test_without_cuda_the_full_run_refuses_instead_of_measuring_the_cpu(capsys: pytest.CaptureFixture) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the full run would start")
    sys.path.insert(0, str(ROOT))
    from benchmarks import gpu_check

    assert gpu_check.main([]) == 2
    assert "no CUDA device" in capsys.readouterr().err


# On the GPU image (its package list, /work/.library/device/KINDS.md); gpu_check.sh checks them before it starts.
# charset_normalizer: numpy.f2py's optional import, on the image too.
GPU_IMAGE = {"torch", "torchvision", "numpy", "cupy", "scipy", "cv2", "charset_normalizer"}


def wheel_modules() -> set[str]:
    """Top-level modules of the packages benchmarks/device_wheels.sh downloads."""
    script = (ROOT / "benchmarks" / "device_wheels.sh").read_text()
    listed = script.split("PACKAGES=(")[1].split(")")[0].split()
    names = {spec.split("==")[0].lower().replace("-", "_") for spec in listed}
    renamed = {"pyyaml": "yaml"}
    return {renamed.get(name, name) for name in names}


def test_everything_the_gpu_check_imports_is_on_the_gpu_image_or_carried_as_a_wheel() -> None:
    """Third-party modules loaded by the GPU check beyond what `import torch, torchvision` loads itself must be
    on the GPU image or in device_wheels.sh's list, or the one GPU run dies on an ImportError."""
    probe = (
        "import sys, sysconfig, json\n"
        "site = sysconfig.get_paths()['purelib']\n"
        "def third_party():\n"
        "    return {n.split('.')[0] for n, m in list(sys.modules.items())\n"
        "            if (getattr(m, '__file__', None) or '').startswith(site)}\n"
        "import torch, torchvision\n"
        "base = third_party()\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "import benchmarks.gpu_check, benchmarks.gpu_check_pipeline\n"
        "print(json.dumps(sorted(third_party() - base)))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    extra = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert extra, "the probe found nothing: it no longer sees the pipeline's imports"
    ours = {path.name for path in ROOT.iterdir() if (path / "__init__.py").exists()}  # travels with the repo
    missing = {name for name in extra if not name.startswith("_")} - GPU_IMAGE - wheel_modules() - ours
    assert not missing, f"add to benchmarks/device_wheels.sh: {sorted(missing)}"
