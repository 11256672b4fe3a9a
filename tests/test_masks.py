"""Batched mask paste vs torchvision's per-detection paste, and COCO RLE encoding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocotools import mask as mask_utils
from torchvision.models.detection.roi_heads import paste_masks_in_image

from kernels.mask_paste import paste_masks
from pipeline.items import Frame, RawDetections
from stages.masks import frame_detections

H, W, M = 180, 320, 28


def blob_probs(n: int, seed: int) -> torch.Tensor:
    """Smooth blob-shaped mask probabilities, like a real mask head's (N, 1, M, M)."""
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, M), torch.linspace(-1, 1, M), indexing="ij")
    centres = torch.rand(n, 2, generator=gen) * 0.8 - 0.4
    radius = torch.rand(n, generator=gen) * 0.4 + 0.4
    dist = ((xx[None] - centres[:, 0, None, None]) ** 2 + (yy[None] - centres[:, 1, None, None]) ** 2).sqrt()
    return torch.sigmoid(10 * (radius[:, None, None] - dist))[:, None]


def random_boxes(n: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x1 = torch.rand(n, generator=gen) * (W + 40) - 30
    y1 = torch.rand(n, generator=gen) * (H + 40) - 30
    bw = torch.rand(n, generator=gen) * 150 + 12
    bh = torch.rand(n, generator=gen) * 120 + 12
    boxes = torch.stack([x1, y1, x1 + bw, y1 + bh], 1)
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, W)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, H)
    return boxes


def encode_rles(masks_nwh: np.ndarray) -> list[dict]:
    """The reference encoder: pycocotools on full-frame masks laid out (N, W, H), counts as str."""
    if masks_nwh.shape[0] == 0:
        return []
    rles = mask_utils.encode(masks_nwh.view(np.uint8).transpose(2, 1, 0))
    return [{"size": [int(s) for s in r["size"]], "counts": r["counts"].decode("ascii")} for r in rles]


def iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    inter = (a & b).flatten(1).sum(1).float()
    union = (a | b).flatten(1).sum(1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batched_paste_matches_torchvision_paste(seed: int) -> None:
    probs, boxes = blob_probs(40, seed), random_boxes(40, seed)
    reference = paste_masks_in_image(probs, boxes, (H, W))[:, 0] > 0.5
    ours = paste_masks(probs, boxes, H, W, 0.5, clip_to_box=False).transpose(1, 2)
    assert ours.shape == reference.shape == (40, H, W)
    assert iou(ours, reference).min() >= 0.99


@settings(max_examples=40, deadline=None)
@given(
    x1=st.floats(0, W - 1),
    y1=st.floats(0, H - 1),
    w=st.floats(0.5, 400),
    h=st.floats(0.5, 300),
    seed=st.integers(0, 1000),
)
@pytest.mark.slow
def test_paste_matches_torchvision_for_any_box(x1: float, y1: float, w: float, h: float, seed: int) -> None:
    # boxes as the model gives them: clipped to the frame
    box = torch.tensor([[x1, y1, min(x1 + w, W), min(y1 + h, H)]], dtype=torch.float32)
    probs = blob_probs(1, seed)
    reference = paste_masks_in_image(probs, box, (H, W))[:, 0] > 0.5
    ours = paste_masks(probs, box, H, W, 0.5, clip_to_box=False).transpose(1, 2)
    differing = (reference ^ ours).sum().item()
    # identical geometry: only float rounding at the 0.5 iso-line may flip a pixel
    assert differing <= max(2, 0.01 * reference.sum().item())


@pytest.mark.slow
def test_clipped_masks_stay_inside_their_boxes() -> None:
    probs = torch.ones(30, 1, M, M)  # full masks: the padding would spill one mask cell outside the box
    boxes = random_boxes(30, 7)
    masks = paste_masks(probs, boxes, H, W, 0.5, clip_to_box=True).transpose(1, 2)
    for mask, box in zip(masks, boxes, strict=True):
        ys, xs = torch.nonzero(mask, as_tuple=True)
        if len(xs):
            assert xs.min() >= box[0].floor() and xs.max() < box[2].ceil()
            assert ys.min() >= box[1].floor() and ys.max() < box[3].ceil()
    unclipped = paste_masks(probs, boxes, H, W, 0.5, clip_to_box=False)
    assert unclipped.sum() > masks.sum()  # the clip did something


def test_rles_decode_to_the_frame_size_and_the_same_pixels() -> None:
    masks_nwh = paste_masks(blob_probs(12, 3), random_boxes(12, 3), H, W).numpy()
    rles = encode_rles(masks_nwh)
    assert all(isinstance(r["counts"], str) and r["size"] == [H, W] for r in rles)
    decoded = mask_utils.decode([{"size": r["size"], "counts": r["counts"].encode()} for r in rles])
    assert decoded.shape == (H, W, 12)
    np.testing.assert_array_equal(decoded.transpose(2, 0, 1).astype(bool), masks_nwh.transpose(0, 2, 1))


def test_frame_detections_fills_every_field_and_handles_no_detections() -> None:
    frame = Frame("cam", 0, 0.0, 0.0, np.zeros((H, W, 3), np.uint8))
    raw = RawDetections(random_boxes(5, 1), torch.rand(5), torch.ones(5, dtype=torch.int64), blob_probs(5, 1))
    det = frame_detections(frame, raw, 0.5)
    assert det.full_masks().shape == (5, H, W) and det.mask_pixels.dtype == bool
    assert det.boxes.dtype == np.float32 and det.labels.dtype == np.int64 and len(det.rles) == 5
    empty = RawDetections(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.int64), torch.zeros(0, 1, M, M))
    det = frame_detections(frame, empty, 0.5)
    assert len(det) == 0 and det.full_masks().shape == (0, H, W) and det.rles == []
