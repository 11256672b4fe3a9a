"""File sources: real clips written by PyAV (several containers and codecs), globs, lists, fps cap, start/end,
and the errors a user sees for missing, corrupt, truncated and unsupported inputs."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
from pydantic import ValidationError

from pipeline.config.sources import SourceConfig
from pipeline.errors import SourceError
from pipeline.items import Frame, StreamStatus
from pipeline.metrics import DECODE_ERRORS, FRAMES_DECODED, FRAMES_DROPPED
from sources.decode import RateLimiter
from sources.file import FileSource
from sources.open import open_source

pytestmark = pytest.mark.timeout(60)

W, H, FPS, N = 160, 120, 30, 60


def write_clip(path: Path, *, frames: int = N, fps: int = FPS, codec: str = "libx264", fmt: str | None = None,
               options: dict[str, str] | None = None, shade: int = 0) -> Path:  # fmt: skip
    """A clip whose frame i has green channel == i (so tests can tell frames apart) and a moving bar."""
    with av.open(str(path), "w", format=fmt, options=options or {}) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"g": "15"} if codec != "libx265" else {"x265-params": "keyint=15:log-level=none"}
        for i in range(frames):
            image = np.full((H, W, 3), shade, np.uint8)
            image[..., 1] = 4 * i % 256
            image[:, (3 * i) % (W - 8) : (3 * i) % (W - 8) + 8] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("clips")
    made = {
        "mp4": write_clip(root / "clip.mp4", options={"movflags": "+faststart"}),
        "mkv": write_clip(root / "clip.mkv"),
        "ts": write_clip(root / "clip.ts", fmt="mpegts"),
        "mov_hevc": write_clip(root / "clip_hevc.mov", codec="libx265"),
    }
    (root / "list").mkdir()
    for n in range(3):
        made[f"part{n}"] = write_clip(root / "list" / f"part_{n}.mp4", frames=30, shade=80 * n)
    return made


def collect(source) -> tuple[list[Frame], list[StreamStatus]]:
    frames: list[Frame] = []
    statuses: list[StreamStatus] = []
    for item in source:
        (frames if isinstance(item, Frame) else statuses).append(item)
    return frames, statuses


def metric(counter, **labels) -> float:
    return counter.labels(**labels)._value.get()


@pytest.mark.parametrize("kind", ["mp4", "mkv", "ts", "mov_hevc"])
def test_decodes_every_frame_with_index_pts_size_and_capture_time(clips, kind):
    before = metric(FRAMES_DECODED, source=f"f-{kind}")
    t0 = time.time()
    frames, statuses = collect(open_source(SourceConfig(id=f"f-{kind}", url=str(clips[kind]))))
    assert [f.index for f in frames] == list(range(N))
    pts = [f.pts for f in frames]
    assert pts[0] == pytest.approx(pts[0]) and all(p is not None for p in pts)
    assert np.allclose(np.diff(pts), 1 / FPS, atol=2e-3)
    assert all(f.image.shape == (H, W, 3) and f.image.dtype == np.uint8 and f.image.flags.c_contiguous for f in frames)
    assert all(f.source_id == f"f-{kind}" for f in frames)
    assert t0 <= frames[0].capture_time <= frames[-1].capture_time <= time.time()
    # frames come out in order: the green channel encodes the frame number (lossy codec: tolerance)
    greens = [float(np.median(f.image[:, :, 1][:, W // 2 :])) for f in frames[:20]]
    assert greens == sorted(greens)
    assert [s.kind for s in statuses] == ["started", "ended"]
    started = statuses[0]
    assert (started.info["width"], started.info["height"], started.info["fps"]) == (W, H, FPS)
    assert started.info["codec"] == ("hevc" if kind == "mov_hevc" else "h264")
    assert statuses[-1].reason == "end of input" and statuses[-1].frame_index == N - 1
    assert metric(FRAMES_DECODED, source=f"f-{kind}") - before == N


def test_list_plays_files_back_to_back_with_continuous_index_and_pts(clips):
    parts = [str(clips[f"part{n}"]) for n in (2, 0, 1)]  # the given order, not sorted
    frames, statuses = collect(open_source(SourceConfig(id="list", url=parts)))
    assert [f.index for f in frames] == list(range(90))
    assert np.allclose(np.diff([f.pts for f in frames]), 1 / FPS, atol=2e-3)
    # shade (red channel) tells which file a frame came from
    shades = [round(float(np.median(f.image[:, :, 0])) / 80) for f in frames[::30]]
    assert shades == [2, 0, 1]
    assert statuses[0].info["files"] == 3 and statuses[-1].kind == "ended"


def test_glob_is_sorted(clips):
    pattern = str(clips["part0"].parent / "part_*.mp4")
    source = open_source(SourceConfig(id="glob", url=pattern))
    assert isinstance(source, FileSource) and not source.is_live
    assert [Path(f).name for f in source.files] == ["part_0.mp4", "part_1.mp4", "part_2.mp4"]
    frames, _ = collect(source)
    assert len(frames) == 90


@pytest.mark.parametrize(("cap", "expected"), [(10, 20), (7, 14), (30, 60), (100, 60)])
def test_fps_cap_skips_frames_by_pts_and_counts_them(clips, cap, expected):
    sid = f"cap{cap}"
    dropped_before = metric(FRAMES_DROPPED, source=sid, reason="fps_cap")
    frames, _ = collect(open_source(SourceConfig(id=sid, url=str(clips["mp4"]), fps_cap=cap)))
    assert len(frames) == expected  # 2 s of video
    assert frames[-1].index <= N - 1  # indices keep counting skipped frames
    if cap < FPS:
        gaps = np.diff([f.pts for f in frames])
        assert gaps.min() >= 1 / cap - 1 / FPS - 1e-6
    assert metric(FRAMES_DROPPED, source=sid, reason="fps_cap") - dropped_before == N - expected


def test_start_and_end_times(clips):
    frames, statuses = collect(open_source(SourceConfig(id="cut", url=str(clips["mkv"]), start_s=0.5, end_s=1.5)))
    assert len(frames) == 30
    assert frames[0].pts == pytest.approx(0.5, abs=1e-3) and frames[-1].pts == pytest.approx(1.5 - 1 / FPS, abs=1e-3)
    assert frames[0].index == 0
    assert statuses[-1].reason == "reached end_s=1.5"


def test_start_time_on_a_list_skips_whole_files(clips):
    parts = [str(clips[f"part{n}"]) for n in range(3)]
    frames, _ = collect(open_source(SourceConfig(id="cutlist", url=parts, start_s=1.5)))
    assert len(frames) == 45
    assert frames[0].pts == pytest.approx(1.5, abs=1e-3)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("{root}/missing.mp4", "source 'bad': file not found: {root}/missing.mp4"),
        ("{root}/*.avi", "source 'bad': no file matches {root}/*.avi"),
        ("{root}", "source 'bad': {root} is a directory"),
        ("ftp://user:secret@host/x.mp4", "unsupported URL scheme 'ftp' in ftp://user:***@host/x.mp4"),
        ("{root}/notes.txt", "source 'bad': cannot read {root}/notes.txt: Invalid data found when processing input"),
        ("{root}/moov_at_end_truncated.mp4", "cannot read {root}/moov_at_end_truncated.mp4"),
    ],
)
def test_bad_inputs_raise_one_line_source_errors(tmp_path, url, message):
    (tmp_path / "notes.txt").write_bytes(np.random.default_rng(1).bytes(5000))
    clip = write_clip(tmp_path / "full.mp4")  # moov at the end: cut in half, it cannot be opened at all
    (tmp_path / "moov_at_end_truncated.mp4").write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    url = url.format(root=tmp_path)
    with pytest.raises(SourceError) as err:
        open_source(SourceConfig(id="bad", url=url))
    text = str(err.value)
    assert message.format(root=tmp_path) in text
    assert "\n" not in text and "secret" not in text


def test_missing_file_in_a_list_is_reported_before_anything_runs(clips, tmp_path):
    with pytest.raises(SourceError, match=r"file not found: .*nope\.mp4"):
        open_source(SourceConfig(id="l", url=[str(clips["part0"]), str(tmp_path / "nope.mp4")]))


def test_truncated_file_ends_the_stream_with_a_reason(clips, tmp_path):
    data = clips["mp4"].read_bytes()  # faststart: the index survives, the media data is cut off
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    errors_before = metric(DECODE_ERRORS, source="cut")
    frames, statuses = collect(open_source(SourceConfig(id="cut", url=str(cut))))
    assert 0 < len(frames) < N
    assert [f.index for f in frames] == list(range(len(frames)))
    ended = statuses[-1]
    assert ended.kind == "ended"
    assert f"only {len(frames)} of {N} frames could be decoded (truncated or damaged file)" in ended.reason
    assert metric(DECODE_ERRORS, source="cut") >= errors_before  # a half packet at the cut may count


def test_truncated_matroska_is_detected_from_its_duration(clips, tmp_path):
    data = clips["mkv"].read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    frames, statuses = collect(open_source(SourceConfig(id="cutmkv", url=str(cut))))
    assert 0 < len(frames) < N
    assert "ended early at" in statuses[-1].reason and "truncated or damaged" in statuses[-1].reason


def test_damaged_packets_are_skipped_and_counted(clips, tmp_path):
    data = bytearray(clips["mp4"].read_bytes())
    middle = len(data) // 2
    data[middle : middle + 2000] = np.random.default_rng(0).bytes(2000)
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    before = metric(DECODE_ERRORS, source="dmg")
    frames, statuses = collect(open_source(SourceConfig(id="dmg", url=str(damaged))))
    assert len(frames) >= N // 3  # frames on both sides of the damage come out
    assert frames[-1].pts > frames[0].pts
    assert statuses[-1].kind == "ended"
    source_errors = metric(DECODE_ERRORS, source="dmg") - before
    assert source_errors >= 1
    assert statuses[-1].info["decode_errors"] == source_errors


def test_corrupt_file_inside_a_list_reports_it_and_goes_on(clips, tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 5000)
    parts = [str(clips["part0"]), str(junk), str(clips["part1"])]
    frames, statuses = collect(open_source(SourceConfig(id="mixed", url=parts)))
    assert len(frames) == 60 and [f.index for f in frames] == list(range(60))
    errors = [s for s in statuses if s.kind == "error"]
    assert len(errors) == 1 and "junk.mp4" in errors[0].reason
    assert [s.kind for s in statuses] == ["started", "error", "ended"]


def test_stop_from_another_thread_ends_iteration_soon(clips):
    long_list = [str(clips["mkv"])] * 50
    source = open_source(SourceConfig(id="stopme", url=long_list))
    seen: list[Frame] = []
    statuses: list[StreamStatus] = []
    for item in source:
        if isinstance(item, Frame):
            seen.append(item)
            if len(seen) == 10:  # stop from another thread, and wait until it returned
                stopper = threading.Thread(target=source.stop)
                stopper.start()
                stopper.join()
        else:
            statuses.append(item)
    # the stop flag is checked between packets: at most the frames of the packet being decoded still come
    assert 10 <= len(seen) <= 12, len(seen)
    assert statuses[-1].kind == "ended" and statuses[-1].reason == "stopped"


def test_a_source_iterates_once(clips):
    source = open_source(SourceConfig(id="once", url=str(clips["part0"])))
    collect(source)
    with pytest.raises(RuntimeError, match="only once"):
        iter(source)


class TestConfig:
    def test_live_is_derived_from_the_scheme(self):
        assert SourceConfig(id="a", url="rtsp://cam/stream").live is True
        assert SourceConfig(id="a", url="rtsps://cam/stream").live is True
        assert SourceConfig(id="a", url="https://cam/live.m3u8").live is True
        assert SourceConfig(id="a", url="footage/*.mp4").live is False
        assert SourceConfig(id="a", url=["a.mp4", "b.mp4"]).live is False
        assert SourceConfig(id="a", url="https://host/file.mp4", live=False).live is False

    @pytest.mark.parametrize(
        ("fields", "problem"),
        [
            ({"url": "rtsp://cam/s", "start_s": 3}, "files only"),
            ({"url": "a.mp4", "start_s": 3, "end_s": 2}, "end_s (2.0) must be greater than start_s (3.0)"),
            ({"url": []}, "list of files is empty"),
            ({"url": "a.mp4", "fps_cap": 0}, "greater than 0"),
            ({"url": "a.mp4", "id": "bad id/with slash"}, "id"),
            ({"url": "a.mp4", "reconnect": {"initial_backoff_s": 5, "max_backoff_s": 1}}, "max_backoff_s"),
            ({"url": "a.mp4", "colour": "red"}, "colour"),
        ],
    )
    def test_invalid_values_name_the_problem(self, fields, problem):
        with pytest.raises(ValidationError, match=problem.replace("(", r"\(").replace(")", r"\)")):
            SourceConfig(**{"id": "a", **fields})

    def test_repr_and_dump_do_not_leak_the_password(self):
        cfg = SourceConfig(id="cam", url="rtsp://admin:hunter2@10.0.0.5/stream")
        assert "hunter2" not in repr(cfg) and "hunter2" not in str(cfg)
        assert cfg.url == "rtsp://admin:hunter2@10.0.0.5/stream"  # the real value is still there to connect with


class TestRateLimiter:
    def test_keeps_the_exact_average_rate(self):
        limiter = RateLimiter(7)
        kept = sum(limiter.keep(i / 30) for i in range(3000))
        assert kept == pytest.approx(700, abs=1)

    def test_gap_in_the_clock_does_not_burst(self):
        limiter = RateLimiter(10)
        kept = [t for t in (0.0, 0.1, 5.0, 5.033, 5.066, 5.1) if limiter.keep(t)]
        assert kept == [0.0, 0.1, 5.0, 5.1]

    def test_clock_going_back_restarts(self):
        limiter = RateLimiter(10)
        assert limiter.keep(100.0) and limiter.keep(0.0) and not limiter.keep(0.05) and limiter.keep(0.1)
