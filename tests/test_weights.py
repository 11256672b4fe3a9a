"""`maskstream weights list|fetch`, `model.weights: auto`, and the bundled model's warning on real footage.

Downloads go to a real local HTTP server (tests/http_files.py) serving a checkpoint-shaped file: random weights of
torchvision's R50-FPN Mask R-CNN saved with torch.save, named with its own SHA-256 prefix as torchvision names its
files. `MASKSTREAM_CHECKPOINT_URLS` points the catalogue at it; `TORCH_HOME` at a fresh cache per test.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from maskrcnn import build_model
from maskrcnn.factory import BUNDLED_WEIGHTS, resolve_weights
from pipeline.cli import main
from pipeline.errors import WeightsError
from tests.http_files import FileServer

ROOT = Path(__file__).resolve().parents[1]
V1, V2 = "resnet50_fpn_coco", "resnet50_fpn_v2_coco"


def _named_by_hash(path: Path, stem: str) -> Path:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return path.rename(path.with_name(f"{stem}-{digest[:8]}.pth"))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random weights of the real R50-FPN architecture (~170 MB), as torch.save writes torchvision's checkpoints."""
    torch.manual_seed(0)
    raw = tmp_path_factory.mktemp("served") / "raw.pth"
    torch.save(build_model(V1).state_dict(), raw)
    return _named_by_hash(raw, "maskrcnn_resnet50_fpn_coco")


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh torch.hub cache; returns its checkpoints folder (not created)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


@pytest.fixture
def server(checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FileServer]:
    with FileServer({checkpoint.name: checkpoint}) as running:
        monkeypatch.setenv("MASKSTREAM_CHECKPOINT_URLS", json.dumps({V1: running.url(checkpoint.name)}))
        yield running


def fetch(*args: str) -> int:
    return main(["weights", "fetch", *args, "--no-progress"])


def test_fetch_puts_the_verified_checkpoint_where_auto_finds_it(
    hub: Path, server: FileServer, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert fetch(V1) == 0
    cached = hub / checkpoint.name
    assert cached.read_bytes() == checkpoint.read_bytes()
    assert sorted(p.name for p in hub.iterdir()) == [checkpoint.name]  # no .part left behind
    assert resolve_weights("auto", None) == (cached, V1)
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert f"{cached}  present" in out and "checksum ok" in out
    assert f"would use: {V1} ({cached})" in out
    # a second fetch sees the intact file and downloads nothing
    requests = len(server.behaviour.requests)
    assert fetch(V1) == 0 and len(server.behaviour.requests) == requests
    assert "already present and intact" in capsys.readouterr().out


def test_auto_loads_the_fetched_checkpoint_into_the_model(hub: Path, server: FileServer, checkpoint: Path) -> None:
    from maskrcnn import load_model

    assert fetch(V1) == 0
    loaded = load_model("auto", min_size=128, max_size=224)
    assert loaded.arch == V1 and loaded.weights == hub / checkpoint.name and not loaded.bundled
    expected = torch.load(checkpoint, weights_only=True)
    name = "roi_heads.mask_predictor.mask_fcn_logits.weight"
    assert torch.equal(loaded.model.state_dict()[name], expected[name])
    assert loaded.describe() == {"arch": V1, "weights": checkpoint.name, "bundled": False}


def test_fetch_resumes_after_a_cut_connection_with_a_range_request(
    hub: Path, server: FileServer, checkpoint: Path
) -> None:
    size = checkpoint.stat().st_size
    server.behaviour.cut_after, server.behaviour.cuts = size // 3, 2  # two drops, each after a third of the file
    assert fetch(V1) == 0
    assert (hub / checkpoint.name).read_bytes() == checkpoint.read_bytes()
    ranges = [header for _, header in server.behaviour.requests]
    assert ranges[0] is None and len(ranges) == 3
    assert ranges[1] == f"bytes={size // 3}-" and ranges[2] == f"bytes={2 * (size // 3)}-"


def test_an_interrupted_fetch_keeps_its_part_file_and_the_next_one_resumes(
    hub: Path, server: FileServer, checkpoint: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import maskrcnn.download

    monkeypatch.setattr(maskrcnn.download, "RESUMES", 0)  # give up at the first cut
    server.behaviour.cut_after, server.behaviour.cuts = 1000, 1
    assert fetch(V1) == 2
    err = capsys.readouterr().err
    part = hub / (checkpoint.name + ".part")
    assert "run the command again to resume (1000 bytes kept in" in err and part.stat().st_size == 1000
    assert not (hub / checkpoint.name).exists()  # never a partial file where the loader looks
    assert fetch(V1) == 0
    assert server.behaviour.requests[-1][1] == "bytes=1000-"
    assert (hub / checkpoint.name).read_bytes() == checkpoint.read_bytes() and not part.exists()


def test_a_wrong_checksum_leaves_nothing_in_the_cache(
    hub: Path, checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    liar = tmp_path / "maskrcnn_resnet50_fpn_coco-0123abcd.pth"  # a name whose prefix the content does not match
    liar.write_bytes(checkpoint.read_bytes()[:100_000])
    with FileServer({liar.name: liar}) as running:
        monkeypatch.setenv("MASKSTREAM_CHECKPOINT_URLS", json.dumps({V1: running.url(liar.name)}))
        assert fetch(V1) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "checksum mismatch" in err and "expected 0123abcd" in err
    assert not hub.exists() or list(hub.iterdir()) == []


@pytest.mark.parametrize("status", [404, 500])
def test_http_errors_are_one_line_and_leave_nothing(
    hub: Path, server: FileServer, status: int, capsys: pytest.CaptureFixture[str]
) -> None:
    server.behaviour.status = status
    assert fetch(V1) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("maskstream weights: error: http://127.0.0.1") and f"HTTP {status}" in err
    assert err.count("\n") == 0 and "Traceback" not in err
    assert not hub.exists() or list(hub.iterdir()) == []


def test_no_network_route_is_one_line(
    hub: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/models/maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth"
    monkeypatch.setenv("MASKSTREAM_CHECKPOINT_URLS", json.dumps({V1: url}))
    for name in ("http_proxy", "HTTP_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert fetch(V1) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"maskstream weights: error: cannot reach 127.0.0.1:{port}: connection refused "
        "(offline? behind a proxy? set https_proxy)"
    )
    assert not hub.exists() or list(hub.iterdir()) == []


def test_the_proxy_variables_are_honoured(hub: Path, checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"http://weights.invalid/models/{checkpoint.name}"  # unresolvable: only the proxy can answer it
    monkeypatch.setenv("MASKSTREAM_CHECKPOINT_URLS", json.dumps({V1: url}))
    with FileServer({checkpoint.name: checkpoint}) as proxy:
        monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{proxy.port}")
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        assert fetch(V1) == 0
    assert proxy.behaviour.requests[0][0] == url  # the proxy got the absolute URL
    assert (hub / checkpoint.name).read_bytes() == checkpoint.read_bytes()


def test_an_unwritable_target_is_one_line(
    server: FileServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    assert fetch(V1, "--to", str(blocker / "models")) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"maskstream weights: error: cannot write to {blocker / 'models'}: Not a directory"
    assert server.behaviour.requests == []  # checked before any transfer


@contextlib.contextmanager
def _tiny_tmpfs(path: Path) -> Iterator[bool]:
    """A 1 MiB tmpfs at `path` when this process may mount one (root); yields whether it did."""
    path.mkdir()
    mounted = (
        os.geteuid() == 0
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(path)], capture_output=True
        ).returncode
        == 0
    )
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", str(path)], check=True)


def test_a_disk_filling_mid_download_removes_the_partial_file_and_names_it(
    server: FileServer, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "small-disk"
    part = target / (checkpoint.name + ".part")
    with _tiny_tmpfs(target) as mounted:
        if mounted:  # a real full filesystem: ENOSPC after 1 MiB
            assert fetch(V1, "--to", str(target)) == 2
            err = capsys.readouterr().err.strip()
            assert err == (
                f"maskstream weights: error: {part}: write failed: No space left on device; "
                "the partial download was removed"
            )
        else:  # no mount allowed: the same write failure through a 1 MiB file-size limit in a child process
            code = (
                "import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
                "resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20)); "
                "from pipeline.cli import main; sys.exit(main(sys.argv[1:]))"
            )
            done = subprocess.run(
                [sys.executable, "-c", code, "weights", "fetch", V1, "--to", str(target), "--no-progress"],
                capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
            )  # fmt: skip
            assert done.returncode == 2, done.stderr
            assert f"error: {part}: write failed: File too large; the partial download was removed" in done.stderr
        assert list(target.iterdir()) == []


def test_unknown_architecture_lists_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert fetch("resnet51") == 2
    assert capsys.readouterr().err.strip() == (
        "maskstream weights: error: unknown architecture 'resnet51'; choose one of: "
        "resnet50_fpn_coco, resnet50_fpn_v2_coco, slim_resnet_fpn_light"
    )


# --- auto, and a corrupt cached file ---------------------------------------------------------------------------
def _place(hub: Path, stem: str, content: bytes, monkeypatch: pytest.MonkeyPatch, arch: str) -> Path:
    """A cache file named with its content's true SHA-256 prefix, registered as `arch`'s checkpoint."""
    hub.mkdir(parents=True, exist_ok=True)
    raw = hub / "raw"
    raw.write_bytes(content)
    path = _named_by_hash(raw, stem)
    urls = json.loads(os.environ.get("MASKSTREAM_CHECKPOINT_URLS", "{}"))
    urls[arch] = f"http://unused.invalid/{path.name}"
    monkeypatch.setenv("MASKSTREAM_CHECKPOINT_URLS", json.dumps(urls))
    return path


def test_auto_prefers_v2_then_v1_then_the_bundled_model(hub: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_weights("auto", None) == (BUNDLED_WEIGHTS, "slim_resnet_fpn_light")
    v1 = _place(hub, "maskrcnn_resnet50_fpn_coco", b"v1 weights", monkeypatch, V1)
    assert resolve_weights("auto", None) == (v1, V1)
    v2 = _place(hub, "maskrcnn_resnet50_fpn_v2_coco", b"v2 weights", monkeypatch, V2)
    assert resolve_weights("auto", None) == (v2, V2)
    assert resolve_weights("auto", V1) == (v1, V1)  # an explicit architecture wins
    assert resolve_weights("bundled", None) == (BUNDLED_WEIGHTS, "slim_resnet_fpn_light")
    assert resolve_weights(str(v1), None) == (v1, V1)  # a file keeping torchvision's name needs no arch


def test_auto_with_an_architecture_that_is_not_fetched_names_the_command(hub: Path) -> None:
    with pytest.raises(WeightsError, match=f"run `maskstream weights fetch {V2}`"):
        resolve_weights("auto", V2)


def test_a_corrupt_cached_file_is_reported_by_list_and_refused_by_run(
    hub: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.pipeline_helpers import write_clip

    v1 = _place(hub, "maskrcnn_resnet50_fpn_coco", b"intact bytes", monkeypatch, V1)
    v1.write_bytes(b"bytes flipped on disk")  # same name, other content
    with pytest.raises(WeightsError, match="checksum mismatch"):  # also when passed as a file keeping its name
        resolve_weights(str(v1), None)
    assert main(["weights", "list"]) == 1
    out = capsys.readouterr().out
    assert f"{v1}  present, 0.0 MB, CHECKSUM MISMATCH" in out and "would refuse to start" in out
    clip = write_clip(tmp_path / "cam.mp4", frames=2)
    code = main(["run", "--source", str(clip), "--jsonl", str(tmp_path / "e.jsonl"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0
    assert (
        err.startswith(f"maskstream run: error: {v1}: checksum mismatch") and "weights fetch resnet50_fpn_coco" in err
    )


# --- the bundled model meets real footage ----------------------------------------------------------------------
def _run_bundled(source: Path, events: Path, caplog: pytest.LogCaptureFixture) -> tuple[list[dict], list[str]]:
    caplog.clear()
    args = ["run", "--source", f"cam={source}", "--jsonl", str(events), "--weights", "bundled", "--device", "cpu"]
    assert main([*args, "--no-progress"]) == 0
    warnings = [r.getMessage() for r in caplog.records if r.name == "maskstream.model" and r.levelname == "WARNING"]
    return [json.loads(line) for line in events.read_text().splitlines()], warnings


def test_the_bundled_model_warns_once_on_real_footage_and_names_itself(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from synth import render_clip
    from synth.marker import is_synthetic_clip
    from tests.pipeline_helpers import write_clip

    real = write_clip(tmp_path / "real.mp4", frames=6)  # any video not written by synth counts as real
    synthetic = render_clip(tmp_path / "synth", seed=3, frames=6, size=(320, 180)) / "video.mp4"
    assert is_synthetic_clip(synthetic) and not is_synthetic_clip(real) and not is_synthetic_clip(tmp_path / "nope")

    events, warnings = _run_bundled(real, tmp_path / "real.jsonl", caplog)
    assert len(warnings) == 1
    assert (
        "trained on synthetic scenes only" in warnings[0]
        and "maskstream weights fetch resnet50_fpn_coco" in warnings[0]
    )
    started = [e for e in events if e["type"] == "stream.started"]
    assert len(started) == 1 and started[0]["info"]["model"] == {
        "arch": "slim_resnet_fpn_light",
        "weights": BUNDLED_WEIGHTS.name,
        "bundled": True,
    }
    assert events[-1]["type"] == "stream.ended"  # and it still ran to the end

    events, warnings = _run_bundled(synthetic, tmp_path / "synth.jsonl", caplog)
    assert warnings == [] and events[0]["info"]["model"]["arch"] == "slim_resnet_fpn_light"


def test_the_status_line_names_the_model() -> None:
    from pipeline.model_notice import model_label
    from pipeline.run_command import status_line
    from pipeline.stats import RunStats

    stats = RunStats()
    stats.add_source("cam", live=True)
    stats.model = model_label({"arch": V1, "weights": "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth", "bundled": False})
    assert "] model resnet50_fpn_coco (maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth) | cam opening" in status_line(stats)


def test_a_live_camera_counts_as_real_footage(caplog: pytest.LogCaptureFixture) -> None:
    from pipeline.model_notice import warn_if_bundled_on_real_footage

    bundled = {"arch": "slim_resnet_fpn_light", "weights": BUNDLED_WEIGHTS.name, "bundled": True}
    assert warn_if_bundled_on_real_footage(bundled, [("door", None)])  # None: a live source
    assert not warn_if_bundled_on_real_footage({**bundled, "bundled": False}, [("door", None)])
    assert len([r for r in caplog.records if r.name == "maskstream.model"]) == 1


def test_the_input_size_knobs_reach_the_model() -> None:
    from pipeline.config import ModelConfig
    from stages.inference import load_detector

    detector = load_detector(ModelConfig(weights="bundled", device="cpu", min_size=240, max_size=400))
    assert detector.model.transform.min_size == (240,) and detector.model.transform.max_size == 400
    assert detector.info["bundled"] and detector.arch == "slim_resnet_fpn_light"
