"""HTTP sources against a real HTTP server on a free port: a video file over HTTP (every frame), and an HTTP
stream treated as live (the server closing the response is a disconnect: the source reconnects)."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.config.sources import SourceConfig
from pipeline.errors import SourceError
from pipeline.items import Frame, StreamStatus
from sources.open import open_source
from tests.test_source_files import FPS, N, collect, write_clip

pytestmark = pytest.mark.timeout(30)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        if not self.path.startswith("/trickle/"):
            return super().do_GET()
        # Like a camera: the bytes of the file at about real time (60 KB/s), not all at once.
        data = (Path(self.directory) / self.path.removeprefix("/trickle/")).read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "video/mp2t")
        self.end_headers()
        try:
            for start in range(0, len(data), 6000):
                self.wfile.write(data[start : start + 6000])
                self.wfile.flush()
                time.sleep(0.1)
        except (BrokenPipeError, ConnectionResetError):
            pass


def write_video_then_audio_only(path: Path, video_s: float = 1.0, total_s: float = 10.0, fps: int = 30) -> None:
    """MPEG-TS whose video stops after `video_s` while its audio goes on: a camera whose video encoder died."""
    with av.open(str(path), "w", format="mpegts") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = 160, 120, "yuv420p"
        audio = container.add_stream("mp2", rate=48000)
        audio.layout = "mono"
        video_frames, samples = int(video_s * fps), 1152
        sent_video, sent_audio = 0, 0
        while sent_audio * samples / 48000 < total_s:
            while sent_video < video_frames and sent_video / fps <= sent_audio * samples / 48000:
                frame = av.VideoFrame.from_ndarray(np.full((120, 160, 3), 5 * sent_video % 256, np.uint8), "rgb24")
                frame.pts = sent_video
                for packet in video.encode(frame):
                    container.mux(packet)
                sent_video += 1
            chunk = av.AudioFrame.from_ndarray(np.zeros((1, samples), np.int16), format="s16", layout="mono")
            chunk.sample_rate, chunk.pts = 48000, sent_audio * samples
            for packet in audio.encode(chunk):
                container.mux(packet)
            sent_audio += 1
        for stream in (video, audio):
            for packet in stream.encode():
                container.mux(packet)


@pytest.fixture(scope="module")
def http_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("http")
    write_clip(root / "clip.mp4", options={"movflags": "+faststart"})
    write_clip(root / "clip.ts", fmt="mpegts")
    write_video_then_audio_only(root / "video_dies.ts")
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


def test_stall_watchdog_fires_when_video_stops_but_audio_goes_on(http_root):
    """Data keeps arriving (audio), so no read times out: only the watchdog notices that no picture comes."""
    base, _ = http_root
    cfg = SourceConfig(
        id="stalling",
        url=f"{base}/trickle/video_dies.ts",
        read_timeout_s=3.0,
        open_timeout_s=3.0,
        stall_timeout_s=1.0,
        reconnect={"enabled": False},
    )
    source = open_source(cfg)
    began = time.monotonic()
    frames, statuses = collect(source)
    assert 20 <= len(frames) <= 30  # the second of video there is
    assert [s.kind for s in statuses] == ["started", "connected", "disconnected", "ended"]
    assert statuses[2].reason == "stalled: no frame for 1 s"
    assert time.monotonic() - began < 5  # not the 10 s the audio goes on for
