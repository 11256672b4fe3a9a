"""The whole pipeline on real clips into a real redis-server: ordering, masks, several sources, bad sources, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from pipeline.config import build_config
from pipeline.errors import MaskstreamError
from pipeline.events import from_stream_fields, validate_event
from pipeline.metrics import FRAMES_PROCESSED
from pipeline.runner import Pipeline
from tests.pipeline_helpers import tiny_detector, write_clip
from tests.servers import RedisServer, free_port

ROOT = Path(__file__).resolve().parents[1]

# the tiny random model scores ~0.34: let its detections make tracks
TRACKER = {"camera_motion": "off", "high_score": 0.3, "new_track_score": 0.3, "low_score": 0.1, "updated_interval_s": 0}


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clips") / "clip.mp4", frames=30)


def config(sources: list[dict[str, Any]], redis_url: str | None = None, **extra: Any):
    tree: dict[str, Any] = {"sources": sources, "model": {"device": "cpu"}, "tracker": TRACKER, **extra}
    if redis_url:
        tree["redis"] = {"url": redis_url}
    return build_config(tree)


def stream_events(server: RedisServer, source_id: str) -> list[dict[str, Any]]:
    client = server.client()
    events = [from_stream_fields(fields) for _, fields in client.xrange(f"maskstream:{{{source_id}}}:events")]
    client.close()
    for event in events:
        validate_event(event)
    return events


def check_track_lifecycle(events: list[dict[str, Any]]) -> int:
    """Every track: one started, then its updates, one ended last. Returns the number of tracks."""
    per_track: dict[int, list[str]] = defaultdict(list)
    for event in events:
        if event["type"].startswith("track."):
            per_track[event["track_id"]].append(event["type"])
    for track_id, kinds in per_track.items():
        assert kinds[0] == "track.started", (track_id, kinds)
        assert kinds[-1] == "track.ended", (track_id, kinds)
        assert kinds.count("track.started") == 1 and kinds.count("track.ended") == 1, (track_id, kinds)
    return len(per_track)


@pytest.mark.slow
def test_a_file_becomes_ordered_events_in_redis_with_masks_inside_their_boxes(
    clip: Path, redis_server: RedisServer, tmp_path: Path
) -> None:
    annotated = tmp_path / "annotated.mp4"
    cfg = config([{"id": "cam1", "url": str(clip)}], redis_server.url, sinks={"annotate": str(annotated)})
    processed_before = FRAMES_PROCESSED.labels(source="cam1")._value.get()
    pipeline = Pipeline(cfg, detector=tiny_detector(max_detections=10))
    report = pipeline.run()

    assert report.exit_code == 0 and report.frames == 30
    assert FRAMES_PROCESSED.labels(source="cam1")._value.get() - processed_before == 30
    assert pipeline.healthy() and pipeline.ready() == (True, "ready")
    events = stream_events(redis_server, "cam1")
    assert events[0]["type"] == "stream.started" and events[-1]["type"] == "stream.ended"
    assert check_track_lifecycle(events) > 0
    frame_indices = [e["frame_index"] for e in events if e["type"] in ("track.started", "track.updated")]
    assert frame_indices == sorted(frame_indices)  # frames of a file stay in order
    assert sum(report.events_by_type().values()) == len(events)

    height, width = events[0]["info"]["height"], events[0]["info"]["width"]
    masks_checked = 0
    for event in events:
        if event["type"] in ("track.started", "track.updated") and event["mask"] is not None:
            rle = {"size": event["mask"]["size"], "counts": event["mask"]["counts"].encode()}
            mask = mask_utils.decode(rle)
            assert mask.shape == (height, width)
            ys, xs = np.nonzero(mask)
            if len(xs):
                x1, y1, x2, y2 = event["bbox"]
                assert xs.min() >= np.floor(x1) - 1 and xs.max() <= np.ceil(x2) + 1
                assert ys.min() >= np.floor(y1) - 1 and ys.max() <= np.ceil(y2) + 1
                masks_checked += 1
    assert masks_checked > 10

    with av.open(str(annotated)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 30


def test_several_sources_share_batches_and_keep_their_own_order(
    clip: Path, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stages.inference import InferenceStage

    mixes: list[set[str]] = []
    original = InferenceStage.process

    def recording(self: InferenceStage, item: Any) -> Any:  # which sources each batch mixed
        mixes.append({f.source_id for f in item.frames})
        return original(self, item)

    monkeypatch.setattr(InferenceStage, "process", recording)
    cfg = config(
        [{"id": "a", "url": str(clip)}, {"id": "b", "url": str(clip)}, {"id": "c", "url": str(clip), "fps_cap": 5}],
        redis_server.url,
        batcher={"batch_size": 3, "max_wait_ms": 200},
    )
    report = Pipeline(cfg, detector=tiny_detector(max_detections=5)).run()
    assert report.exit_code == 0
    assert report.sources["a"].frames_done == 30 and report.sources["b"].frames_done == 30
    assert 0 < report.sources["c"].frames_done < 30  # fps cap 5 on a 15 fps clip
    assert any(len(mix) > 1 for mix in mixes), mixes  # batches mixed sources
    for source_id in ("a", "b", "c"):
        events = stream_events(redis_server, source_id)
        assert events[0]["type"] == "stream.started" and events[-1]["type"] == "stream.ended"
        check_track_lifecycle(events)
        indices = [e["frame_index"] for e in events if e["type"] in ("track.started", "track.updated")]
        assert indices == sorted(indices)


def test_frame_summary_events_only_when_the_config_turns_them_on(clip: Path, tmp_path: Path) -> None:
    counts = {}
    for enabled in (False, True):
        jsonl = tmp_path / f"events-{enabled}.jsonl"
        cfg = config([{"id": "a", "url": str(clip)}], sinks={"jsonl": str(jsonl), "frame_summary": enabled})
        assert Pipeline(cfg, detector=tiny_detector(max_detections=5)).run().exit_code == 0
        types = [json.loads(line)["type"] for line in jsonl.read_text().splitlines()]
        counts[enabled] = types.count("frame.summary")
    assert counts == {False: 0, True: 30}


def test_a_bad_source_is_reported_and_the_others_complete(
    clip: Path, redis_server: RedisServer, tmp_path: Path
) -> None:
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(os.urandom(20_000))
    cfg = config(
        [
            {"id": "good", "url": str(clip)},
            {"id": "missing", "url": str(tmp_path / "nope.mp4")},
            {"id": "corrupt", "url": str(corrupt)},
        ],
        redis_server.url,
    )
    report = Pipeline(cfg, detector=tiny_detector(max_detections=5)).run()
    assert report.exit_code == 1
    assert report.sources["good"].frames_done == 30 and not report.sources["good"].failed
    assert {s.source_id for s in report.failed} == {"missing", "corrupt"}
    assert "file not found" in report.sources["missing"].errors[0]
    assert "corrupt.mp4" in report.sources["corrupt"].errors[0]
    (error,) = stream_events(redis_server, "missing")
    assert error["type"] == "stream.error" and "nope.mp4" in error["reason"]


def test_a_run_where_every_source_fails_raises_one_line(tmp_path: Path) -> None:
    cfg = config([{"id": "x", "url": str(tmp_path / "missing.mp4")}])
    with pytest.raises(MaskstreamError) as info:
        Pipeline(cfg, detector=tiny_detector()).run()
    assert str(info.value) == f"source 'x': file not found: {tmp_path / 'missing.mp4'}"


def test_redis_unreachable_at_start_is_one_line_before_the_model_loads(clip: Path) -> None:
    cfg = config([{"id": "x", "url": str(clip)}], f"redis://:pw@127.0.0.1:{free_port()}/0")
    pipeline = Pipeline(cfg)  # no detector given: the model would load after the sinks
    with pytest.raises(MaskstreamError) as info:
        pipeline.run()
    message = str(info.value)
    assert "\n" not in message and "127.0.0.1" in message and "pw" not in message.replace("pw@", "")
    assert not pipeline.model_ready.is_set()


def test_cli_reports_bad_input_in_one_line_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.cli import main

    def run_cli(*args: str) -> tuple[int, str]:
        code = main(["run", *args])
        return code, capsys.readouterr().err.strip()

    code, err = run_cli("--source", str(tmp_path / "nope.mp4"), "--no-progress")
    assert code == 2
    assert err.splitlines()[-1] == f"maskstream run: error: source 'nope': file not found: {tmp_path / 'nope.mp4'}"
    code, err = run_cli("--source", "ftp://host/x.mp4")
    assert code == 2 and "unsupported URL scheme 'ftp'" in err
    code, err = run_cli("--source", "a.mp4", "--set", "batcher.batch_size=0")
    assert (code, err) == (
        2,
        "maskstream run: error: config error: batcher.batch_size: must be greater than or equal to 1 (got 0)",
    )


SIGTERM_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pipeline.config import build_config
    from pipeline.run_command import _install_signal_handlers
    from pipeline.runner import Pipeline
    from tests.pipeline_helpers import tiny_detector

    class Slow:  # ~20 fps, so the run is still going when SIGTERM arrives
        def __init__(self):
            self.inner = tiny_detector(max_detections=5)
        def __getattr__(self, name):
            return getattr(self.inner, name)
        def detect(self, images):
            time.sleep(0.05 * len(images))
            return self.inner.detect(images)

    tracker = {"camera_motion": "off", "high_score": 0.3, "new_track_score": 0.3, "low_score": 0.1}
    cfg = build_config({"sources": [{"id": "s", "url": sys.argv[1]}], "redis": {"url": sys.argv[2]},
                        "model": {"device": "cpu"}, "tracker": tracker, "batcher": {"batch_size": 1}})
    pipeline = Pipeline(cfg, detector=Slow())
    _install_signal_handlers(pipeline)
    print("READY", flush=True)
    report = pipeline.run()
    print("FRAMES", report.frames, "STOPPED", report.stopped, flush=True)
    sys.exit(report.exit_code)
    """
)


@pytest.mark.slow
def test_sigterm_drains_work_in_flight_and_flushes_every_event(tmp_path: Path, redis_server: RedisServer) -> None:
    long_clip = write_clip(tmp_path / "long.mp4", frames=400)
    process = subprocess.Popen(
        [sys.executable, "-c", SIGTERM_SCRIPT, str(long_clip), redis_server.url],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        client = redis_server.client()
        key = "maskstream:{s}:events"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and client.xlen(key) < 5:  # running and publishing
            time.sleep(0.05)
        assert client.xlen(key) >= 5
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    frames = int(out.split("FRAMES")[1].split()[0])
    assert 0 < frames < 400 and "STOPPED True" in out
    events = stream_events(redis_server, "s")
    assert events[-1]["type"] == "stream.ended" and events[-1]["reason"] == "stopped"
    check_track_lifecycle(events)
    # every frame that went through the model is accounted for: the last track event is of the last frame done
    last_frame = max(e["frame_index"] for e in events if e["type"] in ("track.started", "track.updated"))
    assert last_frame <= frames


@pytest.mark.slow
def test_cli_run_with_the_bundled_model_writes_events(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from pipeline.cli import main

    short = write_clip(tmp_path / "short.mp4", frames=8)
    events_file = tmp_path / "events.jsonl"
    code = main(["run", "--source", f"gate={short}", "--jsonl", str(events_file), "--device", "cpu", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "maskstream run: 8 frames from 1 source(s)" in err
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    assert events[0]["type"] == "stream.started" and events[-1]["type"] == "stream.ended"
    assert {e["source_id"] for e in events} == {"gate"}
