"""The layout's rules, checked: which top-level package may import which, the consumer SDK's small footprint,
and modules small enough to read (≤ 400 lines outside synth/)."""

from __future__ import annotations

import ast
import functools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = (
    "pipeline",
    "sources",
    "sinks",
    "stages",
    "consumer",
    "kernels",
    "maskrcnn",
    "tracking",
    "synth",
    "training",
    "evaluation",
    "web",
    "analytics",
    "cluster",
    "configs",
)
# The glue that builds the graph and drives it from the command line: the only modules of `pipeline` allowed to
# import the packages that plug into it (stages, sources, sinks, the consumer SDK, the tools).
GLUE = {
    "pipeline/runner.py",
    "pipeline/graph.py",
    "pipeline/cli.py",
    "pipeline/run_command.py",
    "pipeline/tail_command.py",
    "pipeline/demo.py",
}
# Who may import whom at module level (besides the glue). `pipeline` is the core everything builds on.
ALLOWED = {
    "pipeline": set(),
    "consumer": {"pipeline"},
    "sources": {"pipeline"},
    "sinks": {"pipeline"},
    "tracking": {"pipeline"},
    "kernels": {"pipeline"},
    "maskrcnn": {"pipeline", "kernels"},
    "stages": {"pipeline", "sinks", "tracking", "maskrcnn", "kernels", "analytics"},
    "synth": {"pipeline", "analytics"},
    "training": {"pipeline", "maskrcnn", "kernels", "synth", "stages"},  # eval scores the model as run runs it
    "evaluation": {"pipeline", "tracking", "synth", "maskrcnn", "stages"},
    "web": {"pipeline", "sinks"},
    "analytics": {"pipeline"},
    "cluster": {"pipeline", "sinks", "stages", "sources"},
    "configs": set(),
}


def module_level_imports(path: Path) -> set[str]:
    """Top-level packages imported when the module loads (not inside functions, not under TYPE_CHECKING)."""
    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for inner in ast.walk(node) if isinstance(node, ast.If | ast.Try | ast.With) else [node]:
            if isinstance(inner, ast.Import):
                found.update(alias.name.split(".")[0] for alias in inner.names)
            elif isinstance(inner, ast.ImportFrom) and inner.level == 0 and inner.module:
                found.add(inner.module.split(".")[0])
    return found & set(PACKAGES)


@functools.cache
def package_imports() -> dict[str, dict[str, set[str]]]:
    """{package: {imported package: {importing files}}}, glue left out."""
    graph: dict[str, dict[str, set[str]]] = {package: {} for package in PACKAGES}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative in GLUE:
                continue
            for imported in module_level_imports(path) - {package}:
                graph[package].setdefault(imported, set()).add(relative)
    return graph


def test_packages_import_only_in_the_allowed_direction() -> None:
    wrong = [
        f"{file} imports {imported}"
        for package, imports in package_imports().items()
        for imported, files in imports.items()
        if imported not in ALLOWED[package]
        for file in sorted(files)
    ]
    assert wrong == []


def test_no_import_cycle_among_the_top_level_packages() -> None:
    graph = {package: set(imports) for package, imports in package_imports().items()}
    done: set[str] = set()

    def visit(package: str, path: tuple[str, ...]) -> None:
        assert package not in path, f"import cycle: {' -> '.join((*path, package))}"
        if package in done:
            return
        for imported in graph[package]:
            visit(imported, (*path, package))
        done.add(package)

    for package in PACKAGES:
        visit(package, ())


def modules_loaded_by(code: str) -> set[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    probe = code + "\nimport json, sys\nprint(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, env=env, check=True
    )
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_the_pipeline_core_loads_none_of_the_plug_in_packages() -> None:
    core = sorted(
        "pipeline." + path.relative_to(ROOT / "pipeline").with_suffix("").as_posix().replace("/", ".")
        for path in (ROOT / "pipeline").rglob("*.py")
        if path.relative_to(ROOT).as_posix() not in GLUE and path.name not in ("__init__.py", "__main__.py")
    )
    loaded = modules_loaded_by("\n".join(f"import {name}" for name in core))
    assert loaded & {"sources", "sinks", "stages", "consumer", "evaluation", "training", "synth", "torch"} == set()


def test_the_consumer_sdk_needs_only_redis_numpy_and_pycocotools() -> None:
    loaded = modules_loaded_by("import consumer\nfrom consumer import Event, EventConsumer, EventTail, StreamLag")
    assert "redis" in loaded and "numpy" in loaded
    assert loaded & {"pydantic", "torch", "sqlite3", "_sqlite3", "prometheus_client", "av", "cv2", "yaml"} == set()


@pytest.mark.parametrize("package", [p for p in PACKAGES if p != "synth"] + ["benchmarks"])
def test_modules_stay_small(package: str) -> None:
    long = {
        path.relative_to(ROOT).as_posix(): lines
        for path in (ROOT / package).rglob("*.py")
        if (lines := len(path.read_text().splitlines())) > 400
    }
    assert long == {}, "split these by job"


@pytest.mark.slow
def test_the_wheel_ships_the_configs_and_every_package(tmp_path: Path) -> None:
    """`maskstream demo` from an installed wheel reads configs/demo.yaml through importlib.resources."""
    import zipfile

    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("maskstream-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"configs/{name}.yaml" for name in ("demo", "file", "rtsp", "drone")} <= names
    assert {f"{package}/__init__.py" for package in PACKAGES} <= names
    assert not any(name.startswith("tests/") for name in names)


def test_the_docker_image_copies_every_package() -> None:
    copied = set(re.findall(r"^COPY (\w+) \1$", (ROOT / "Dockerfile").read_text(), re.M))
    assert copied == set(PACKAGES), "Dockerfile's COPY lines and the package list differ"
