"""The GPU check/benchmark script runs end to end on the CPU (--smoke: host backend, tiny sizes), so the one
GPU run it is written for does not fail on a bug in the script itself."""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "roi_align_gpu.py"


@pytest.mark.slow
def test_gpu_script_smoke_run_passes_its_checks_and_writes_results(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("roi_align_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "results.json"
    assert module.main(["--smoke", "--skip-model", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    assert results["checks"] and all(check["ok"] for check in results["checks"])
    combos = {(r["head"], r["batch"], r["dtype"], r["pass"]) for r in results["poolers"]}
    assert len(combos) == 24  # 2 heads x 2 batches x 3 dtypes x (forward, forward+backward)


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_gpu_script_imports_only_what_the_gpu_machine_has() -> None:
    """The GPU machine has torch, torchvision and CuPy only (no av, redis, pycocotools): the script and the
    kernels package it imports may use nothing else outside the standard library."""
    available = {"torch", "torchvision", "numpy", "cupy", "cuda", "kernels", "__future__"}
    for path in [SCRIPT, *sorted((SCRIPT.parents[1] / "kernels").glob("*.py"))]:
        outside = imported_modules(path) - available - set(sys.stdlib_module_names)
        assert not outside, f"{path.name} imports {sorted(outside)}"
