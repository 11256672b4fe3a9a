"""HTTP sources against a real HTTP server on a free port: a video file over HTTP (every frame), and an HTTP
stream treated as live (the server closing the response is a disconnect: the source reconnects)."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipeline.errors import SourceError
from pipeline.frames import Frame, StreamStatus
from stages.source import SourceConfig, open_source
from tests.test_source_files import FPS, N, collect, write_clip

pytestmark = pytest.mark.timeout(30)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass


@pytest.fixture(scope="module")
def http_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("http")
    write_clip(root / "clip.mp4", options={"movflags": "+faststart"})
    write_clip(root / "clip.ts", fmt="mpegts")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_video_file_over_http_is_read_completely(http_root):
    base, _ = http_root
    source = open_source(SourceConfig(id="httpfile", url=f"{base}/clip.mp4", live=False))
    assert not source.is_live
    frames, statuses = collect(source)
    assert [f.index for f in frames] == list(range(N))
    assert frames[1].pts - frames[0].pts == pytest.approx(1 / FPS, abs=1e-3)
    assert [s.kind for s in statuses] == ["started", "ended"]


def test_missing_http_file_is_a_clear_error(http_root):
    base, _ = http_root
    with pytest.raises(SourceError, match=r"source 'h404': cannot read http://127\.0\.0\.1:\d+/nope\.mp4: .*404"):
        open_source(SourceConfig(id="h404", url=f"{base}/nope.mp4", live=False))


def test_http_stream_that_closes_is_reconnected(http_root):
    base, _ = http_root
    cfg = SourceConfig(
        id="httplive",
        url=f"{base}/clip.ts",
        read_timeout_s=1.0,
        open_timeout_s=2.0,
        reconnect={"initial_backoff_s": 0.05, "max_backoff_s": 0.1},
    )
    source = open_source(cfg)
    assert source.is_live
    kinds: list[str] = []
    frames: list[Frame] = []
    began = time.monotonic()
    for item in source:
        if isinstance(item, StreamStatus):
            kinds.append(item.kind)
            if item.kind == "disconnected":
                assert item.reason == "stream ended by the server (connection closed)"
            if kinds.count("connected") == 3:
                source.stop()
        else:
            frames.append(item)
        assert time.monotonic() - began < 20
    assert kinds[:3] == ["started", "connected", "disconnected"]
    assert kinds.count("connected") == 3 and kinds[-1] == "ended"
    indices = [f.index for f in frames]
    assert indices == sorted(set(indices)) and frames  # indices keep growing across connections
    assert source.join(5)
