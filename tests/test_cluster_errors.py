"""`run --ray` with bad input: one line and exit 2, quickly, never a hang."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cluster_helpers import local_ray_cluster  # before Ray: token auth
from tests.pipeline_helpers import write_clip
from tests.servers import RedisServer, free_port

pytest.importorskip("ray")
pytestmark = pytest.mark.timeout(180)


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "run", *args], capture_output=True, text=True, timeout=timeout
    )


def test_an_unreachable_ray_address_is_one_line_at_once(tmp_path: Path, redis_server: RedisServer) -> None:
    clip = write_clip(tmp_path / "a.mp4", frames=2)
    started = time.monotonic()
    result = run_cli("--source", str(clip), "--redis", redis_server.url, "--ray", f"127.0.0.1:{free_port()}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("maskstream run: error: Ray unreachable at 127.0.0.1:")
    assert time.monotonic() - started < 30


def test_run_ray_needs_redis_for_the_fence(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "a.mp4", frames=2)
    result = run_cli("--source", str(clip), "--ray", "auto")
    assert result.returncode == 2 and "--ray needs redis" in result.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_a_cluster_without_slots_or_gpus_is_one_line(tmp_path: Path, redis_server: RedisServer) -> None:
    clip = write_clip(tmp_path / "a.mp4", frames=2)
    with local_ray_cluster(0) as cluster:  # a head node only: no maskstream_slot, no GPU
        result = run_cli("--source", str(clip), "--redis", redis_server.url, "--ray", cluster.address)
    assert result.returncode == 2
    assert "offers no maskstream_slot and no GPU" in result.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_a_wrong_ray_token_is_refused_in_one_line(tmp_path: Path, redis_server: RedisServer) -> None:
    clip = write_clip(tmp_path / "a.mp4", frames=2)
    with local_ray_cluster(1) as cluster:  # token auth on (tests.cluster_helpers), a token of this session
        env = dict(os.environ, RAY_AUTH_TOKEN="0" * 64)
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "pipeline.cli", "run", "--source", str(clip), "--redis", redis_server.url,
             "--ray", cluster.address],
            capture_output=True, text=True, timeout=150, env=env,
        )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("maskstream run: error: Ray at ") and "refused the connection" in last
    assert "0" * 64 not in result.stderr  # the token is never printed
    assert time.monotonic() - started < 120
