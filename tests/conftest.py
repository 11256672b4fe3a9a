"""Shared fixtures. Add new ones with targeted appends; keep each fixture's job obvious from its name."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.servers import RedisServer


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh real redis-server on a free port, for one test."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def shared_redis_server() -> Iterator[RedisServer]:
    """One real redis-server for tests that only add keys of their own (cheaper than one per test)."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.close()


# Skips that are legitimate anywhere: checks that only make sense with (or without) a GPU.
_HARDWARE_SKIPS = ("CUDA", "CuPy", "GPU")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With MASKSTREAM_STRICT_SKIPS=1 (set by .ci/run) a test skipped for a missing tool fails instead.

    CI installs redis-server, gst-rtsp-server, nvcc's peers and TrackEval, so such a skip there means a broken
    set-up, not a test that does not apply; it must not hide behind a green run.
    """
    outcome = yield
    report = outcome.get_result()
    if not (report.skipped and os.environ.get("MASKSTREAM_STRICT_SKIPS") == "1"):
        return
    reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if not any(word in reason for word in _HARDWARE_SKIPS):
        report.outcome = "failed"
        report.longrepr = f"skipped in strict mode (MASKSTREAM_STRICT_SKIPS=1): {reason}"


@pytest.fixture(autouse=True, scope="session")
def _empty_torch_hub_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """`model.weights: auto` picks COCO checkpoints from torch.hub's cache: keep a developer's cache out of tests."""
    previous = os.environ.get("TORCH_HOME")
    os.environ["TORCH_HOME"] = str(tmp_path_factory.mktemp("torch-home"))
    yield
    if previous is None:
        os.environ.pop("TORCH_HOME", None)
    else:
        os.environ["TORCH_HOME"] = previous
