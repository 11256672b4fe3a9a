"""A torchvision Mask R-CNN with both poolers swapped for our kernel (host build) detects exactly the same."""

from __future__ import annotations

import pytest
import torch
import torchvision

from kernels import MultiScaleRoIAlign, swap_poolers


@pytest.mark.slow
def test_swapped_poolers_give_identical_detections() -> None:
    torch.manual_seed(0)
    model = torchvision.models.detection.maskrcnn_resnet50_fpn(
        weights=None,
        weights_backbone=None,
        num_classes=4,
        min_size=128,
        max_size=192,
        # Fewer proposals and detections keep the heads cheap on a CPU; both poolers still see every level.
        rpn_pre_nms_top_n_test=300,
        rpn_post_nms_top_n_test=150,
        box_detections_per_img=20,
    ).eval()
    images = [torch.rand(3, 150, 200), torch.rand(3, 120, 170)]
    with torch.inference_mode():
        expected = model(images)
        swap_poolers(model, backend="host")
        assert isinstance(model.roi_heads.box_roi_pool, MultiScaleRoIAlign)
        actual = model(images)
    assert sum(len(e["boxes"]) for e in expected) > 0, "a random-weight model should still emit detections"
    for e, a in zip(expected, actual, strict=True):
        assert e.keys() == a.keys()
        for key in e:
            assert torch.equal(e[key], a[key]), key
