"""Live sources against a real RTSP server (gst-rtsp-server in a subprocess): reading, server kills, freezes and
restarts, silent servers, wrong paths, credentials, slow consumers, and no thread or fd leak after reconnects."""

from __future__ import annotations

import itertools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipeline.config.sources import SourceConfig
from pipeline.errors import SourceError
from pipeline.items import Frame, StreamStatus
from pipeline.metrics import FRAMES_DROPPED, RECONNECTS, SOURCE_UP
from sources.live import LiveSource
from sources.open import open_source
from tests.rtsp_server import RtspServer, free_port, make_self_signed_pem, rtsp_server_available

pytestmark = [
    pytest.mark.rtsp,
    pytest.mark.timeout(45),
    pytest.mark.skipif(not rtsp_server_available(), reason="gst-rtsp-server not installed (see .ci/run)"),
]

# Short timeouts so every failure mode shows up within seconds.
FAST = {
    "open_timeout_s": 2.0,
    "read_timeout_s": 1.0,
    "stall_timeout_s": 2.0,
    "reconnect": {"initial_backoff_s": 0.2, "max_backoff_s": 0.5, "jitter": 0.1},
}


def live_config(url: str, source_id: str = "cam", **overrides) -> SourceConfig:
    fields = {**FAST, **overrides}
    return SourceConfig(id=source_id, url=url, **fields)


@pytest.fixture
def rtsp_server() -> Iterator[RtspServer]:
    server = RtspServer().start()
    try:
        yield server
    finally:
        server.stop()


class Reader:
    """Iterates a source in a thread (as the runtime does) and records what arrives, with arrival times."""

    def __init__(self, source: LiveSource, per_frame_delay: float = 0.0) -> None:
        self.source = source
        self.per_frame_delay = per_frame_delay
        self.items: list[tuple[float, Frame | StreamStatus]] = []
        self.ages: list[float] = []  # now - capture_time when the consumer got each frame
        self._cond = threading.Condition()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for item in self.source:
                if isinstance(item, Frame):
                    self.ages.append(time.time() - item.capture_time)
                with self._cond:
                    self.items.append((time.monotonic(), item))
                    self._cond.notify_all()
                if isinstance(item, Frame) and self.per_frame_delay:
                    time.sleep(self.per_frame_delay)
        finally:
            self.done.set()
            with self._cond:
                self._cond.notify_all()

    @property
    def frames(self) -> list[Frame]:
        return [item for _, item in self.items if isinstance(item, Frame)]

    @property
    def statuses(self) -> list[StreamStatus]:
        return [item for _, item in self.items if isinstance(item, StreamStatus)]

    def kinds(self) -> list[str]:
        return [s.kind for s in self.statuses]

    def wait_for(self, predicate: Callable[[Reader], bool], timeout: float, what: str) -> float:
        """Wait until predicate(self) holds; returns the monotonic time it did."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.done.is_set() and not predicate(self)):
                    raise AssertionError(f"timed out waiting for {what}; statuses: {self.describe()}")
                self._cond.wait(min(remaining, 0.1))
        return time.monotonic()

    def wait_frames(self, count: int, timeout: float = 10.0, after_status: int = 0) -> None:
        def enough(reader: Reader) -> bool:
            seen_status = 0
            frames = 0
            for _, item in reader.items:
                if isinstance(item, StreamStatus):
                    seen_status += 1
                elif seen_status >= after_status:
                    frames += 1
            return frames >= count

        self.wait_for(enough, timeout, f"{count} frames after status #{after_status}")

    def wait_status(self, kind: str, nth: int = 1, timeout: float = 10.0) -> StreamStatus:
        self.wait_for(lambda r: r.kinds().count(kind) >= nth, timeout, f"{kind} #{nth}")
        return [s for s in self.statuses if s.kind == kind][nth - 1]

    def stop(self, timeout: float = 5.0) -> None:
        self.source.stop()
        assert self.done.wait(timeout), "iteration did not end after stop()"
        self.thread.join(timeout)

    def describe(self) -> str:
        return "; ".join(f"{s.kind}({s.reason})" for s in self.statuses)


def metric(counter, **labels) -> float:
    return counter.labels(**labels)._value.get()


def test_reads_a_live_stream(rtsp_server):
    source = open_source(live_config(rtsp_server.url, "basic"))
    assert source.is_live
    reader = Reader(source)
    reader.wait_frames(30, timeout=15)
    assert metric(SOURCE_UP, source="basic") == 1
    reader.stop()
    assert reader.kinds()[:2] == ["started", "connected"] and reader.kinds()[-1] == "ended"
    assert reader.statuses[-1].reason == "stopped"
    started = reader.statuses[0]
    assert (started.info["width"], started.info["height"], started.info["codec"]) == (320, 240, "h264")
    assert started.info["url"] == rtsp_server.url
    frames = reader.frames
    assert [f.index for f in frames] == list(range(len(frames)))
    assert all(f.image.shape == (240, 320, 3) for f in frames)
    known_pts = [f.pts for f in frames if f.pts is not None]  # RTSP's first frame often has none
    assert len(known_pts) >= len(frames) - 1 and known_pts == sorted(known_pts)
    captures = [f.capture_time for f in frames]
    assert captures == sorted(captures)
    assert source.join(5), "reader thread still running after stop"
    assert metric(SOURCE_UP, source="basic") == 0


def test_server_killed_mid_stream_reconnects(rtsp_server):
    reconnects_before = metric(RECONNECTS, source="killed")
    reader = Reader(open_source(live_config(rtsp_server.url, "killed")))
    reader.wait_frames(10, timeout=15)
    rtsp_server.kill()
    # FFmpeg ends the read loop without an exception: for a camera that is a disconnect, not the end.
    down = reader.wait_status("disconnected", timeout=5)
    assert down.reason and "ended" not in reader.kinds()
    time.sleep(0.5)
    rtsp_server.start()
    reader.wait_status("connected", nth=2, timeout=15)
    reader.wait_frames(10, timeout=10, after_status=len(reader.statuses))
    reader.stop()
    indices = [f.index for f in reader.frames]
    assert indices == sorted(set(indices))  # indices keep growing across connections
    assert metric(RECONNECTS, source="killed") > reconnects_before


@pytest.mark.slow
@pytest.mark.parametrize("recovery", ["thaw", "restart"])
def test_frozen_server_is_detected_and_reconnected(rtsp_server, recovery):
    reader = Reader(open_source(live_config(rtsp_server.url, f"frozen-{recovery}")))
    reader.wait_frames(10, timeout=15)
    frozen_at = time.monotonic()
    rtsp_server.freeze()
    down = reader.wait_status("disconnected", timeout=6)
    detected_after = time.monotonic() - frozen_at
    # read timeout 1 s: FFmpeg notices in about twice that; the 2 s stall watchdog is the backstop.
    assert detected_after < 4.5, detected_after
    assert "timed out" in down.reason or "stalled" in down.reason
    time.sleep(1.0)  # still frozen: reconnect attempts fail (no answer) and back off
    if recovery == "thaw":
        rtsp_server.thaw()
    else:
        rtsp_server.restart()
    reader.wait_status("connected", nth=2, timeout=15)
    reader.wait_frames(10, timeout=10, after_status=len(reader.statuses))
    reader.stop()


def test_server_restarted_on_the_same_port_reconnects(rtsp_server):
    reader = Reader(open_source(live_config(rtsp_server.url, "restarted")))
    reader.wait_frames(5, timeout=15)
    port = rtsp_server.port
    rtsp_server.restart()
    assert rtsp_server.port == port
    reader.wait_status("connected", nth=2, timeout=15)
    reader.wait_frames(5, timeout=10, after_status=len(reader.statuses))
    reader.stop()
    assert reader.kinds().count("disconnected") >= 1


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server that accepts connections and never says a word (a hung camera firmware)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        for conn in accepted:
            conn.close()
        listener.close()


def test_silent_server_times_out_and_is_retried(silent_server):
    url = f"rtsp://127.0.0.1:{silent_server}/stream"
    cfg = live_config(url, "silent", reconnect={"initial_backoff_s": 0.1, "max_backoff_s": 0.2, "max_attempts": 2})
    began = time.monotonic()
    reader = Reader(open_source(cfg))
    ended = reader.wait_status("ended", timeout=15)
    elapsed = time.monotonic() - began
    assert reader.kinds() == ["started", "disconnected", "ended"]  # one disconnected, then quiet retries
    assert "no answer from the server" in reader.statuses[1].reason
    assert ended.reason.startswith("gave up after 2 failed attempts: no answer from the server")
    assert elapsed < 2 * 2.5 + 2, elapsed  # each attempt is bounded by the timeouts
    reader.stop()


def test_silent_server_without_reconnect_fails_at_open(silent_server):
    url = f"rtsp://127.0.0.1:{silent_server}/stream"
    began = time.monotonic()
    with pytest.raises(SourceError, match=r"source 'silent1': cannot connect to rtsp://.*: no answer from the server"):
        open_source(live_config(url, "silent1", reconnect={"enabled": False}))
    assert time.monotonic() - began < 3.0


def test_wrong_path_is_a_clear_error(rtsp_server):
    wrong = rtsp_server.url.replace("/stream", "/no-such-path")
    with pytest.raises(SourceError, match=r"cannot connect to rtsp://127\.0\.0\.1:\d+/no-such-path: .*404 Not Found"):
        open_source(live_config(wrong, "wrong", reconnect={"enabled": False}))
    # With reconnects on (a camera may publish that path later) it retries, then gives up as configured.
    reader = Reader(open_source(live_config(wrong, "wrong", reconnect={"initial_backoff_s": 0.05, "max_attempts": 3})))
    ended = reader.wait_status("ended", timeout=10)
    assert ended.reason == "gave up after 3 failed attempts: Server returned 404 Not Found"
    assert "404 Not Found" in reader.statuses[1].reason
    reader.stop()


def test_connection_refused_retries_forever_by_default_until_stopped():
    url = f"rtsp://127.0.0.1:{free_port()}/stream"
    reader = Reader(
        open_source(live_config(url, "refused", reconnect={"initial_backoff_s": 0.05, "max_backoff_s": 0.1}))
    )
    reader.wait_for(lambda r: r.source.reconnect_count >= 5, timeout=10, what="5 retries")
    assert reader.kinds() == ["started", "disconnected"]
    assert "Connection refused" in reader.statuses[1].reason
    reader.stop()
    assert reader.kinds()[-1] == "ended"


def test_unsupported_scheme_and_missing_host():
    with pytest.raises(SourceError, match="no host in rtsp:///stream"):
        open_source(live_config("rtsp:///stream", "nohost"))
    with pytest.raises(SourceError, match="unsupported URL scheme 'rtmp'"):
        open_source(SourceConfig(id="rtmp", url="rtmp://user:pw@host/live", live=True))


def test_credentials_never_reach_logs_statuses_or_errors(caplog, capfd):
    caplog.set_level(logging.DEBUG)
    secret = "s3cr3t-Pa55"
    server = RtspServer(user="admin", password=secret).start()
    try:
        # good credentials: frames flow; then the server dies and comes back (reconnect logs)
        reader = Reader(open_source(live_config(server.url_with_credentials(), "authcam")))
        reader.wait_frames(5, timeout=15)
        server.restart()
        reader.wait_status("connected", nth=2, timeout=15)
        reader.stop()
        # wrong password: the 401 is reported, the password is not
        with pytest.raises(SourceError) as err:
            open_source(
                live_config(server.url_with_credentials(password=secret + "x"), "auth2", reconnect={"enabled": False})
            )
        assert "401 Unauthorized" in str(err.value) and "admin:***@" in str(err.value)
        bad = Reader(
            open_source(
                live_config(server.url_with_credentials(password=secret + "x"), "auth3", reconnect={"max_attempts": 1})
            )
        )
        bad.wait_status("ended", timeout=10)
        bad.stop()
    finally:
        server.stop()
    captured = capfd.readouterr()  # anything FFmpeg itself might print goes to fd 1/2
    texts = [str(err.value), caplog.text, captured.out, captured.err]
    for status in reader.statuses + bad.statuses:
        texts += [str(status.reason), repr(status.info)]
    assert all(secret not in text for text in texts)
    assert "admin:***@127.0.0.1" in reader.statuses[0].info["url"]
    assert any("401 Unauthorized" in str(s.reason) for s in bad.statuses)


@pytest.mark.slow
def test_slow_consumer_gets_fresh_frames(rtsp_server):
    """A consumer slower than the camera (5 fps vs 30) still gets frames that are current, never a backlog."""
    stale_before = metric(FRAMES_DROPPED, source="slow", reason="stale")
    reader = Reader(open_source(live_config(rtsp_server.url, "slow")), per_frame_delay=0.2)
    reader.wait_frames(15, timeout=20)
    reader.stop()
    ages = reader.ages[3:]  # after the connection settled
    assert max(ages) < 0.45, ages  # at most a buffered frame or two, not seconds of backlog
    assert metric(FRAMES_DROPPED, source="slow", reason="stale") - stale_before > 30
    indices = [f.index for f in reader.frames]
    assert max(b - a for a, b in itertools.pairwise(indices)) >= 3  # the decoder kept pace


@pytest.mark.slow
def test_live_fps_cap(rtsp_server):
    capped_before = metric(FRAMES_DROPPED, source="capped", reason="fps_cap")
    reader = Reader(open_source(live_config(rtsp_server.url, "capped", fps_cap=5)))
    reader.wait_frames(2, timeout=15)
    time.sleep(3.0)
    got = len(reader.frames) - 2
    reader.stop()
    assert 12 <= got <= 18, got  # 5 fps for 3 s
    assert metric(FRAMES_DROPPED, source="capped", reason="fps_cap") - capped_before >= 50


def test_stop_returns_quickly_even_while_a_read_is_blocked(rtsp_server):
    source = open_source(live_config(rtsp_server.url, "stopfrozen", read_timeout_s=3.0, stall_timeout_s=10.0))
    reader = Reader(source)
    reader.wait_frames(5, timeout=15)
    rtsp_server.freeze()
    time.sleep(0.3)
    began = time.monotonic()
    reader.stop(timeout=2.0)
    assert time.monotonic() - began < 1.5
    assert reader.statuses[-1].kind == "ended" and reader.statuses[-1].reason == "stopped"
    rtsp_server.thaw()
    assert source.join(10), "the reader thread must leave its blocked read within the read timeout"


def thread_and_fd_counts() -> tuple[int, int, int]:
    return threading.active_count(), len(os.listdir("/proc/self/task")), len(os.listdir("/proc/self/fd"))


@pytest.mark.slow
def test_no_thread_or_fd_leak_after_many_reconnects(rtsp_server):
    # warm-up: FFmpeg and the metric registry allocate a few things once per process
    warm = Reader(open_source(live_config(rtsp_server.url, "warmup")))
    warm.wait_frames(3, timeout=15)
    warm.stop()
    assert warm.source.join(5)
    time.sleep(0.3)
    baseline = thread_and_fd_counts()

    # 40 quick failed attempts (refused) ...
    refused = Reader(
        open_source(
            live_config(
                f"rtsp://127.0.0.1:{free_port()}/x",
                "leak1",
                reconnect={"initial_backoff_s": 0.01, "max_backoff_s": 0.02, "max_attempts": 40},
            )
        )
    )
    refused.wait_status("ended", timeout=15)
    refused.stop()
    # ... and real reconnects to a server that is killed and restarted
    source = open_source(live_config(rtsp_server.url, "leak2"))
    reader = Reader(source)
    for cycle in range(4):
        reader.wait_frames(3, timeout=15, after_status=len(reader.statuses))
        rtsp_server.restart()
        reader.wait_status("connected", nth=cycle + 2, timeout=15)
    reader.wait_frames(3, timeout=15, after_status=len(reader.statuses))
    reader.stop()
    assert source.join(5) and refused.source.join(5)
    time.sleep(0.3)
    assert thread_and_fd_counts() == baseline
    assert source.reconnect_count >= 4 and refused.source.reconnect_count == 39


def test_udp_transport(rtsp_server):
    reader = Reader(open_source(live_config(rtsp_server.url, "udpcam", transport="udp")))
    reader.wait_frames(15, timeout=15)
    reader.stop()
    assert reader.kinds()[:2] == ["started", "connected"]
    assert all(f.image.shape == (240, 320, 3) for f in reader.frames)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(server PEM with key, its certificate) and an unrelated certificate, generated for this test run."""
    ours, other = tmp_path_factory.mktemp("tls"), tmp_path_factory.mktemp("tls-other")
    make_self_signed_pem(other)
    return make_self_signed_pem(ours), other / "cert.pem"


def test_rtsps_with_and_without_certificate_verification(certificates):
    server_pem, unrelated_cert = certificates
    server = RtspServer(tls_pem=server_pem, user="admin", password="tls-secret").start()
    try:
        url = server.url_with_credentials()
        assert url.startswith("rtsps://")
        trusted = str(server_pem.parent / "cert.pem")
        for extra in ({}, {"tls_verify": True, "tls_ca_file": trusted}):
            reader = Reader(open_source(live_config(url, "tlscam", **extra)))
            reader.wait_frames(5, timeout=15)
            reader.stop()
            assert reader.statuses[0].info["url"] == f"rtsps://admin:***@127.0.0.1:{server.port}/stream"
        with pytest.raises(SourceError) as err:
            open_source(
                live_config(
                    url, "tlsbad", tls_verify=True, tls_ca_file=str(unrelated_cert), reconnect={"enabled": False}
                )
            )
        assert "TLS handshake failed" in str(err.value) and "tls-secret" not in str(err.value)
    finally:
        server.stop()
