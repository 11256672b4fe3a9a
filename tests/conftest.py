"""Shared fixtures. Add new ones with targeted appends; keep each fixture's job obvious from its name."""

from __future__ import annotations

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
