"""Inference stage: the model run part by part gives exactly what torchvision's forward gives."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from pipeline.config import ModelConfig
from pipeline.errors import ConfigError
from pipeline.items import Frame
from stages.inference import Detector, resolve_device
from stages.masks import frame_detections
from tests.pipeline_helpers import TINY_CLASSES, tiny_maskrcnn


def images(seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.rand(3, 180, 320, generator=gen), torch.rand(3, 240, 200, generator=gen)]


@pytest.mark.slow
def test_part_by_part_inference_equals_torchvision_forward_with_batched_masks() -> None:
    model = tiny_maskrcnn(min_size=120, max_size=200)  # frames are resized: boxes must come back to frame pixels
    detector = Detector.from_model(model, TINY_CLASSES, ModelConfig(device="cpu", score_threshold=0.2))
    batch = images()
    with torch.inference_mode():
        expected = model(batch)
    ours = detector.detect(batch)
    for image, reference, raw in zip(batch, expected, ours, strict=True):
        assert len(raw.scores) > 0
        torch.testing.assert_close(raw.boxes, reference["boxes"])
        torch.testing.assert_close(raw.scores, reference["scores"])
        assert torch.equal(raw.labels, reference["labels"])
        height, width = image.shape[-2:]
        frame = Frame("t", 0, None, 0.0, np.zeros((height, width, 3), np.uint8))
        det = frame_detections(frame, raw, 0.5, clip_to_box=False)
        torch_masks = (reference["masks"][:, 0] > 0.5).numpy()
        masks = det.full_masks()
        assert masks.shape == torch_masks.shape
        inter = (masks & torch_masks).reshape(len(det), -1).sum(1)
        union = (masks | torch_masks).reshape(len(det), -1).sum(1)
        assert np.all(inter[union > 0] / union[union > 0] >= 0.99)


def test_class_filter_keeps_only_the_named_classes() -> None:
    cfg = ModelConfig(device="cpu", score_threshold=0.0, classes=["person"])
    detector = Detector.from_model(tiny_maskrcnn(), TINY_CLASSES, cfg)
    results = detector.detect(images())
    assert all(set(r.labels.tolist()) <= {TINY_CLASSES.index("person")} for r in results)
    assert sum(len(r.labels) for r in results) > 0


def test_unknown_class_names_are_a_config_error_listing_the_model_classes() -> None:
    with pytest.raises(
        ConfigError, match=r"model.classes: 'dog' not among the model's classes \(background, person, car\)"
    ):
        Detector.from_model(tiny_maskrcnn(), TINY_CLASSES, ModelConfig(classes=["person", "dog"]))


def test_score_threshold_and_cap_apply_inside_the_model() -> None:
    detector = Detector.from_model(tiny_maskrcnn(), TINY_CLASSES, ModelConfig(score_threshold=0.34, max_detections=3))
    for raw in detector.detect(images()):
        assert len(raw.scores) <= 3 and bool((raw.scores >= 0.34).all())


def test_fp16_on_the_cpu_falls_back_to_fp32_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        detector = Detector.from_model(tiny_maskrcnn(), TINY_CLASSES, ModelConfig(device="cpu", precision="fp16"))
    assert detector.precision == "fp32" and "fp16 needs CUDA" in caplog.text


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_asking_for_cuda_without_cuda_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"model\.device: CUDA is not available on this machine"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"
