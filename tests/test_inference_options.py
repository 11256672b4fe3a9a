"""Inference stage options: warm-up before the first frame, cudnn.benchmark defaults, bf16, realised batch size."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

import synth
from pipeline.config import BatcherConfig, ModelConfig, PipelineConfig, SourceConfig, build_config
from pipeline.errors import ConfigError
from pipeline.items import Batch, Frame
from pipeline.run_command import status_line
from pipeline.runner import Pipeline
from pipeline.stats import RunStats
from stages.inference import InferenceStage, load_detector, wants_cudnn_benchmark, wants_warmup
from tests.pipeline_helpers import tiny_detector, write_clip

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def record_detect_calls(detector: object) -> list[list[tuple[int, ...]]]:
    """Wrap `detector.detect`: each call's image shapes, in order."""
    calls: list[list[tuple[int, ...]]] = []
    detect = detector.detect  # type: ignore[attr-defined]

    def recording(images: list[torch.Tensor]) -> object:
        calls.append([tuple(image.shape) for image in images])
        return detect(images)

    detector.detect = recording  # type: ignore[attr-defined]
    return calls


def test_warm_up_runs_one_dummy_batch_with_detections_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    detector = tiny_detector()
    threshold = detector.model.roi_heads.score_thresh
    outputs: list[int] = []
    detect = detector.detect
    detector.detect = lambda images: outputs.append(sum(len(r.scores) for r in detect(images))) or []  # type: ignore[method-assign]
    stage = InferenceStage(detector, warmup_batch=3, warmup_size=(64, 96))
    with caplog.at_level(logging.INFO, logger="stages.inference"):
        stage.start()
    assert len(outputs) == 1 and outputs[0] > 0  # one batch, and the mask head ran (detections were forced)
    assert detector.model.roi_heads.score_thresh == threshold  # the configured threshold is back
    assert "warming up the model: one dummy batch of 3 frames 96x64 on cpu (fp32)" in caplog.text
    assert "warm-up done in" in caplog.text


def test_no_warm_up_when_the_batch_is_zero() -> None:
    detector = tiny_detector()
    calls = record_detect_calls(detector)
    InferenceStage(detector, warmup_batch=0).start()
    assert calls == []


def test_warm_up_and_cudnn_benchmark_defaults() -> None:
    assert not wants_warmup(ModelConfig(), CPU)  # nothing to compile or tune on the CPU
    assert wants_warmup(ModelConfig(), CUDA)
    assert wants_warmup(ModelConfig(warmup=True), CPU) and not wants_warmup(ModelConfig(warmup=False), CUDA)
    one_file = SourceConfig(id="a", url="a.mp4")
    camera = SourceConfig(id="b", url="rtsp://camera/1")  # may switch resolution mid-stream
    several_files = [SourceConfig(id="c", url=["a.mp4", "b.mp4"]), SourceConfig(id="d", url="footage/*.mp4")]
    assert wants_cudnn_benchmark(ModelConfig(), CUDA, [one_file, one_file.model_copy(update={"id": "e"})])
    assert not wants_cudnn_benchmark(ModelConfig(), CUDA, [one_file, camera])
    for source in several_files:  # files played back to back may differ in size
        assert not wants_cudnn_benchmark(ModelConfig(), CUDA, [source])
    assert wants_cudnn_benchmark(ModelConfig(cudnn_benchmark=True), CUDA, [camera])
    assert not wants_cudnn_benchmark(ModelConfig(cudnn_benchmark=True), CPU, [one_file])


def test_a_tiny_warm_up_size_is_a_config_error_naming_the_field() -> None:
    tree = {"sources": [{"id": "a", "url": "a.mp4"}], "model": {"warmup_size": [8, 640]}}
    with pytest.raises(ConfigError, match=r"model.warmup_size"):
        build_config(tree)


def test_pipeline_warms_up_before_the_first_frame_and_reports_the_realised_batch_size(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clip = write_clip(tmp_path / "clip.mp4", frames=10, size=(320, 180))
    cfg = PipelineConfig(
        sources=[SourceConfig(id="cam", url=str(clip))],
        model=ModelConfig(device="cpu", warmup=True, warmup_size=(64, 96)),
        batcher=BatcherConfig(batch_size=4, max_wait_ms=1000),
    )
    detector = tiny_detector()
    calls = record_detect_calls(detector)
    pipeline = Pipeline(cfg, detector=detector, event_sinks=[], frame_sinks=[])
    with caplog.at_level(logging.INFO, logger="stages.inference"):
        report = pipeline.run()
    assert report.frames == 10
    assert calls[0] == [(3, 64, 96)] * 4  # the dummy batch, of the configured batch size, came first
    real = calls[1:]
    assert all(shape == (3, 180, 320) for call in real for shape in call)
    assert sum(len(call) for call in real) == 10
    mean = pipeline.stats.mean_batch_size()
    assert mean == pytest.approx(10 / len(real))
    assert f"batch {mean:.1f}" in status_line(pipeline.stats)
    assert "warming up the model" in caplog.text


def test_status_line_shows_the_mean_realised_batch_size() -> None:
    stats = RunStats()
    stats.add_source("cam", live=True)
    assert "batch" not in status_line(stats)  # no batch yet
    for frames in (4, 4, 2, 1):
        stats.batch_done(frames)
    assert status_line(stats).endswith("| batch 2.8")


def test_inference_stage_counts_each_batch_in_the_run_stats() -> None:
    stats = RunStats()
    stage = InferenceStage(tiny_detector(), stats=stats)
    frames = [Frame("cam", i, None, 0.0, np.zeros((90, 160, 3), np.uint8)) for i in range(3)]
    images = [torch.zeros(3, 90, 160) for _ in frames]
    list(stage.process(Batch(frames, images, 0.0)))
    assert stats.mean_batch_size() == 3


def test_bf16_on_the_cpu_finds_what_fp32_finds_with_the_bundled_model() -> None:
    image, _ = next(iter(synth.iter_frames("surveillance", seed=1, frames=1, size=(640, 360))))
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255
    results = {}
    for precision in ("fp32", "bf16"):
        detector = load_detector(ModelConfig(device="cpu", precision=precision))
        assert detector.precision == precision
        results[precision] = detector.detect([tensor])[0]
    fp32, bf16 = results["fp32"], results["bf16"]
    assert len(fp32.scores) > 0
    assert abs(len(bf16.scores) - len(fp32.scores)) <= max(1, len(fp32.scores) // 5)
    iou = torchvision.ops.box_iou(fp32.boxes, bf16.boxes.float())
    confident = fp32.scores > 0.8
    same_label = fp32.labels[:, None] == bf16.labels[None, :]
    best = (iou * same_label).max(dim=1).values
    # bf16 keeps 8 bits of mantissa through the whole network: boxes move by a few pixels (IoU ~0.9 with fp32's)
    # but every confident object is still found, at the same place
    assert bool((best[confident] >= 0.5).all()), best
    assert best[confident].median() >= 0.85, best
    assert bf16.mask_probs.shape[1:] == fp32.mask_probs.shape[1:]


def test_the_stage_says_ready_only_once_its_warm_up_is_done() -> None:
    # /readyz follows this event: an orchestrator must not route frames to a model still compiling/tuning
    detector = tiny_detector()
    ready = threading.Event()
    ready_during_warm_up: list[bool] = []
    detect = detector.detect

    def spy(images: list[torch.Tensor]) -> list:
        ready_during_warm_up.append(ready.is_set())
        return detect(images)

    detector.detect = spy  # type: ignore[method-assign]
    stage = InferenceStage(detector, warmup_batch=1, warmup_size=(64, 96), ready=ready)
    assert not ready.is_set()
    stage.start()
    assert ready_during_warm_up == [False] and ready.is_set()
    no_warm_up = threading.Event()
    InferenceStage(tiny_detector(), warmup_batch=0, ready=no_warm_up).start()
    assert no_warm_up.is_set()
