"""Helpers for the runtime's tests: a tiny real Mask R-CNN and tiny real video clips.

The model is torchvision's MaskRCNN with a two-layer backbone and slim heads (random weights, seeded): every part
of the real model runs (transform, RPN, RoI heads, mask head), in milliseconds per frame on a 2-core CPU.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import torch
from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops import MultiScaleRoIAlign

from pipeline.config import ModelConfig
from stages.inference import Detector

TINY_CLASSES = ["background", "person", "car"]


def tiny_maskrcnn(seed: int = 0, min_size: int = 180, max_size: int = 320) -> MaskRCNN:
    torch.manual_seed(seed)
    backbone = nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=4, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU()
    )
    backbone.out_channels = 32  # type: ignore[assignment]
    model = MaskRCNN(
        backbone,
        num_classes=None,
        min_size=min_size,
        max_size=max_size,
        rpn_anchor_generator=AnchorGenerator(sizes=((16, 32, 64),), aspect_ratios=((0.5, 1.0, 2.0),)),
        rpn_pre_nms_top_n_test=200,
        rpn_post_nms_top_n_test=50,
        box_roi_pool=MultiScaleRoIAlign(["0"], 7, 2),
        box_head=TwoMLPHead(32 * 7 * 7, 64),
        box_predictor=FastRCNNPredictor(64, len(TINY_CLASSES)),
        mask_roi_pool=MultiScaleRoIAlign(["0"], 14, 2),
        mask_head=MaskRCNNHeads(32, (32,), 1),
        mask_predictor=MaskRCNNPredictor(32, 32, len(TINY_CLASSES)),
    )
    return model.eval()


def tiny_detector(seed: int = 0, **model_cfg: object) -> Detector:
    cfg = ModelConfig(device="cpu", score_threshold=0.2, **model_cfg)  # type: ignore[arg-type]
    return Detector.from_model(tiny_maskrcnn(seed), TINY_CLASSES, cfg, device=torch.device("cpu"), arch="tiny-test")


def write_clip(path: Path, frames: int = 30, size: tuple[int, int] = (320, 180), fps: int = 15, seed: int = 0) -> Path:
    """A small H.264 (or MPEG-4) clip of bright shapes moving over a textured background."""
    width, height = size
    rng = np.random.default_rng(seed)
    background = (rng.integers(40, 90, (height, width, 3))).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(frames):
            image = background.copy()
            x = 10 + index * 4 % (width - 60)
            image[40:100, x : x + 40] = (230, 60, 60)
            y = 20 + index * 2 % (height - 60)
            image[y : y + 50, width - 90 : width - 30] = (60, 200, 240)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
