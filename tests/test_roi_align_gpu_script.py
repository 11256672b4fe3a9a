"""The GPU check/benchmark script runs end to end on the CPU (--smoke: host backend, tiny sizes), so the one
GPU run it is written for does not fail on a bug in the script itself."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "roi_align_gpu.py"


def test_gpu_script_smoke_run_passes_its_checks_and_writes_results(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("roi_align_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "results.json"
    assert module.main(["--smoke", "--skip-model", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    assert results["checks"] and all(check["ok"] for check in results["checks"])
    combos = {(r["head"], r["batch"], r["dtype"], r["pass"]) for r in results["poolers"]}
    assert len(combos) == 16  # 2 heads x 2 batches x 2 dtypes x (forward, forward+backward)


def test_gpu_script_imports_nothing_the_gpu_machine_lacks() -> None:
    """The GPU machine has torch, torchvision and CuPy only: no av, redis or pycocotools."""
    probe = (
        "import sys, runpy; sys.argv = ['x', '--help']\n"
        f"try:\n    runpy.run_path({str(SCRIPT)!r}, run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "bad = sorted(m for m in ('av', 'redis', 'pycocotools', 'cv2') if m in sys.modules)\n"
        "print('UNAVAILABLE-IMPORTS:' + ','.join(bad))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "UNAVAILABLE-IMPORTS:"
