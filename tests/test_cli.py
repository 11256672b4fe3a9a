"""The command line: `--help` and config/argument errors before any heavy import, overrides before `${ENV}`,
every output path checked before the first frame (exit 2, one line)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.cli import COMMANDS, build_parser, main
from pipeline.config import build_config
from pipeline.errors import ConfigError
from pipeline.run_command import config_from_args
from sinks.paths import VIDEO_EXTENSIONS, check_output_paths

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision", "av", "cv2", "pycocotools")

PROBE = """
import json, sys
from pipeline.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
print(json.dumps({"code": code, "heavy": [m for m in %r if m in sys.modules]}))
"""


def run_cli_subprocess(*args: str, cwd: Path = ROOT) -> tuple[dict, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("REDIS_PASSWORD", None)
    done = subprocess.run(
        [sys.executable, "-c", PROBE % (HEAVY,), *args], capture_output=True, text=True, timeout=60, env=env, cwd=cwd
    )
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr.strip()


def test_help_lists_every_command_without_heavy_imports() -> None:
    result, _ = run_cli_subprocess("--help")
    assert result == {"code": 0, "heavy": []}
    parser = build_parser([])
    assert set(parser._subparsers._group_actions[0].choices) == {c.name for c in COMMANDS}


@pytest.mark.parametrize("command", ["run", "tail", "demo", "synth", "eval-tracking"])
def test_sub_command_help_without_heavy_imports(command: str) -> None:
    assert run_cli_subprocess(command, "--help")[0] == {"code": 0, "heavy": []}


def test_a_config_error_is_one_line_before_heavy_imports(tmp_path: Path) -> None:
    config = tmp_path / "cam.yaml"
    config.write_text("sources: [{id: a, url: a.mp4, fps_cap: -1}]\n")
    result, err = run_cli_subprocess("run", str(config))
    assert result == {"code": 2, "heavy": []}
    assert err == f"maskstream run: error: config error: {config}: sources[0].fps_cap: must be greater than 0 (got -1)"


def test_unwritable_outputs_fail_before_heavy_imports(tmp_path: Path) -> None:
    result, err = run_cli_subprocess("run", "--source", "a.mp4", "--annotate", str(tmp_path / "out.xyz"))
    assert result == {"code": 2, "heavy": []}
    assert err == (
        f"maskstream run: error: config error: sinks.annotate: {tmp_path / 'out.xyz'}: unknown video file "
        f"extension '.xyz'; use one of {', '.join(VIDEO_EXTENSIONS)}"
    )


def test_cli_overrides_replace_values_before_env_interpolation() -> None:
    # the repro: the file's redis.url needs REDIS_PASSWORD, which --redis makes irrelevant
    argv = ["run", str(ROOT / "configs/rtsp.yaml"), "--source", "rtsp://x/y", "--redis", "redis://localhost:1/0"]
    saved = os.environ.pop("REDIS_PASSWORD", None)
    try:
        cfg = config_from_args(build_parser(argv).parse_args(argv))
    finally:
        if saved is not None:
            os.environ["REDIS_PASSWORD"] = saved
    assert cfg.redis is not None and cfg.redis.url == "redis://localhost:1/0"
    assert [(s.id, s.url) for s in cfg.sources] == [("x-y", "rtsp://x/y")]


@pytest.mark.parametrize(
    ("option", "make_bad", "expected"),
    [
        ("jsonl", lambda d: d / "dir", "is a directory, not a file"),
        ("jsonl", lambda d: d / "file" / "events.jsonl", "is not a directory"),
        ("annotate", lambda d: d / "out.xyz", "unknown video file extension '.xyz'"),
        ("annotate", lambda d: d / "out", "unknown video file extension '(none)'"),
        ("annotate", lambda d: d / "file" / "a.mp4", "is not a directory"),
        ("mot_out", lambda d: d / "file", "exists and is not a directory"),
        ("spool_path", lambda d: d / "dir", "is a directory, not a file"),
    ],
)
def test_each_output_path_is_checked(tmp_path: Path, option: str, make_bad, expected: str) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("x")
    tree: dict = {"sources": [{"id": "a", "url": "a.mp4"}]}
    if option == "spool_path":
        tree["redis"] = {"spool_path": str(make_bad(tmp_path))}
        where = "redis.spool_path"
    else:
        tree["sinks"] = {option: str(make_bad(tmp_path))}
        where = f"sinks.{option}"
    with pytest.raises(ConfigError) as info:
        check_output_paths(build_config(tree))
    message = str(info.value)
    assert message.startswith(f"config error: {where}: ") and expected in message and "\n" not in message


def test_good_output_paths_pass_and_nothing_is_created(tmp_path: Path) -> None:
    tree = {
        "sources": [{"id": "a", "url": "a.mp4"}, {"id": "b", "url": "b.mp4"}],
        "sinks": {"jsonl": str(tmp_path / "new/e.jsonl"), "annotate": str(tmp_path / "v/{source_id}.mkv")},
        "redis": {"spool_path": str(tmp_path / "spool.sqlite")},
    }
    tree["sinks"]["mot_out"] = str(tmp_path / "mot")
    check_output_paths(build_config(tree))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("extension", VIDEO_EXTENSIONS)
def test_every_accepted_video_extension_really_writes(tmp_path: Path, extension: str) -> None:
    from sinks.annotated_video import _Writer

    path = tmp_path / f"out{extension}"
    writer = _Writer(path, 64, 48, 10.0)
    for value in (0, 128, 255):
        writer.write(np.full((48, 64, 3), value, np.uint8))
    writer.close()
    with av.open(str(path)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 3


def test_demo_is_a_sub_command_and_reads_its_config_from_the_package() -> None:
    from importlib import resources

    assert (resources.files("configs") / "demo.yaml").is_file()
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--frames", "not-a-number"])
    assert exit_info.value.code == 2
