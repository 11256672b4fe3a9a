"""The zero-cost stand-in model reports what a Mask R-CNN would: K objects of realistic size, moving smoothly."""

from __future__ import annotations

import torch

from benchmarks.standin_model import MASK_SIZE, STANDIN_CLASSES, StandinDetector


def test_objects_have_realistic_sizes_stay_in_the_frame_and_move_smoothly() -> None:
    detector = StandinDetector.create(objects=50, device=torch.device("cpu"))
    height, width = 720, 1280
    frames = [result.boxes for _ in range(40) for result in detector.detect([torch.zeros(3, height, width)] * 5)]
    boxes = torch.stack(frames)  # (200 frames, 50 objects, 4)
    sides = torch.stack([(boxes[..., 2] - boxes[..., 0]) / width, (boxes[..., 3] - boxes[..., 1]) / height], -1)
    assert sides.min() >= 0.02 - 1e-6 and sides.max() <= 0.25 + 1e-6
    assert sides.max() > 0.15 and sides.min() < 0.03  # the whole range is used, small ones and large ones
    assert boxes[..., 0].min() >= 0 and boxes[..., 1].min() >= 0
    assert boxes[..., 2].max() <= width and boxes[..., 3].max() <= height
    step = (boxes[1:] - boxes[:-1]).abs().amax(-1) / width
    assert step.max() <= 0.02  # at most 1 % of the side per frame each way (a bounce included)
    assert (boxes[-1] - boxes[0]).abs().amax(-1).min() > 0  # every object moved


def test_detections_are_shaped_like_mask_rcnn_output() -> None:
    detector = StandinDetector.create(objects=7, device=torch.device("cpu"))
    (result,) = detector.detect([torch.zeros(3, 360, 640)])
    assert result.boxes.shape == (7, 4) and result.scores.shape == (7,) and result.labels.shape == (7,)
    assert result.mask_probs.shape == (7, 1, MASK_SIZE, MASK_SIZE)
    assert result.mask_probs.min() >= 0 and result.mask_probs.max() <= 1
    assert result.mask_probs[:, 0, MASK_SIZE // 2, MASK_SIZE // 2].min() > 0.9  # the object fills its centre
    assert result.mask_probs[:, 0, 0, 0].max() < 0.1  # and not the box corners
    assert set(result.labels.tolist()) <= set(range(1, len(STANDIN_CLASSES)))
    assert ((result.scores > 0.5) & (result.scores < 1)).all()


def test_warm_up_does_not_advance_the_motion() -> None:
    warmed = StandinDetector.create(objects=3, device=torch.device("cpu"))
    warmed.warm_up(4, (72, 128))
    fresh = StandinDetector.create(objects=3, device=torch.device("cpu"))
    image = [torch.zeros(3, 72, 128)]
    assert torch.equal(warmed.detect(image)[0].boxes, fresh.detect(image)[0].boxes)
