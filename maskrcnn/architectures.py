"""Registered Mask R-CNN architectures: plain builder functions composing torchvision's parts.

Each builder returns a torchvision `MaskRCNN` (transform, backbone+FPN, RPN, RoI heads, poolers), so the rest of
the project — our RoIAlign kernel swap, the pipeline's batched mask pasting — works on every architecture alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from torch import nn
from torchvision.models import WeightsEnum
from torchvision.models.detection import (
    MaskRCNN,
    MaskRCNN_ResNet50_FPN_V2_Weights,
    MaskRCNN_ResNet50_FPN_Weights,
    maskrcnn_resnet50_fpn,
    maskrcnn_resnet50_fpn_v2,
)
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.resnet import BasicBlock
from torchvision.ops import MultiScaleRoIAlign

from maskrcnn.categories import COCO_CATEGORY_NAMES, SYNTH_CLASS_NAMES


@dataclass(frozen=True)
class Architecture:
    name: str
    build: Callable[..., MaskRCNN]  # build(num_classes, **options) -> MaskRCNN with random weights
    default_classes: tuple[str, ...]  # label id -> name, 0 = "__background__"
    input_size: tuple[int, int]  # (min_size, max_size) of the model's resize transform
    # torchvision's official checkpoint (its URL and the SHA-256 prefix in the file name), if one exists
    torchvision_weights: WeightsEnum | None = None
    description: str = ""

    @property
    def hub_file(self) -> str | None:
        """The checkpoint's file name, as torch.hub caches it (`<name>-<sha256 prefix>.pth`)."""
        return self.torchvision_weights.url.rsplit("/", 1)[-1] if self.torchvision_weights else None


def _resnet50_fpn(num_classes: int, *, v2: bool = False, **options: Any) -> MaskRCNN:
    """torchvision's builder; `options` are MaskRCNN's keyword arguments (min_size, box_detections_per_img, ...)."""
    builder = maskrcnn_resnet50_fpn_v2 if v2 else maskrcnn_resnet50_fpn
    # weights=None and weights_backbone=None: building never downloads; weights are loaded by our loader.
    return builder(weights=None, weights_backbone=None, num_classes=num_classes, **options)


def _residual_stage(in_channels: int, out_channels: int, blocks: int, stride: int) -> nn.Sequential:
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
        )
    layers = [BasicBlock(in_channels, out_channels, stride=stride, downsample=downsample)]
    layers += [BasicBlock(out_channels, out_channels) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


def _slim_resnet(widths: tuple[int, int, int, int], blocks: tuple[int, int, int, int]) -> nn.Sequential:
    """A narrow ResNet (torchvision's BasicBlock) with outputs at strides 4, 8, 16, 32.

    Dense 3x3 convolutions rather than depthwise ones: on CPUs they train ~10x faster per FLOP (PyTorch's
    depthwise backward is slow there) and run at a similar speed for the same accuracy on our scenes.
    """
    stem = nn.Sequential(
        nn.Conv2d(3, widths[0] // 2, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(widths[0] // 2),
        nn.ReLU(inplace=True),
        nn.Conv2d(widths[0] // 2, widths[0], 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(widths[0]),
        nn.ReLU(inplace=True),
    )
    stages = [_residual_stage(widths[0], widths[0], blocks[0], 1)]
    stages += [_residual_stage(widths[i - 1], widths[i], blocks[i], 2) for i in range(1, 4)]
    return nn.Sequential(stem, *stages)


def _light(
    num_classes: int,
    *,
    min_size: int = 360,
    max_size: int = 640,
    widths: tuple[int, int, int, int] = (32, 64, 128, 256),
    blocks: tuple[int, int, int, int] = (1, 2, 2, 2),
    fpn_channels: int = 48,
) -> MaskRCNN:
    """A slim ResNet + a narrow 4-level FPN (strides 4-32) for CPUs.

    Stride 4 is kept because our users' objects are small (far pedestrians, drone footage); the FPN, box head
    and mask head are narrow so the whole model call stays under ~125 ms at 640x360 on 2 cores. BatchNorm
    (not frozen) because no pretrained weights exist here: the model is trained from scratch.
    """
    backbone = BackboneWithFPN(
        _slim_resnet(widths, blocks),
        return_layers={"1": "0", "2": "1", "3": "2", "4": "3"},
        in_channels_list=list(widths),
        out_channels=fpn_channels,
    )
    names = ["0", "1", "2", "3"]
    anchors = AnchorGenerator(
        # one anchor set per FPN map (+ the max-pooled level the FPN adds); the RPN head is shared, so each
        # level must have the same number of anchors per location
        sizes=((8, 16), (24, 32), (48, 64), (96, 128), (192, 320)),
        aspect_ratios=((0.5, 1.0, 2.0),) * 5,
    )
    return MaskRCNN(
        backbone,
        num_classes=None,
        min_size=min_size,
        max_size=max_size,
        rpn_anchor_generator=anchors,
        rpn_pre_nms_top_n_train=600,
        rpn_post_nms_top_n_train=300,
        rpn_pre_nms_top_n_test=300,
        rpn_post_nms_top_n_test=150,
        box_roi_pool=MultiScaleRoIAlign(names, output_size=7, sampling_ratio=2),
        box_head=TwoMLPHead(fpn_channels * 7 * 7, 256),
        box_predictor=FastRCNNPredictor(256, num_classes),
        box_batch_size_per_image=128,
        box_detections_per_img=100,
        mask_roi_pool=MultiScaleRoIAlign(names, output_size=14, sampling_ratio=2),
        mask_head=MaskRCNNHeads(fpn_channels, [64, 64], dilation=1),
        mask_predictor=MaskRCNNPredictor(64, 64, num_classes),
    )


ARCHITECTURES: dict[str, Architecture] = {
    arch.name: arch
    for arch in (
        Architecture(
            "resnet50_fpn_coco",
            _resnet50_fpn,
            COCO_CATEGORY_NAMES,
            (800, 1333),
            torchvision_weights=MaskRCNN_ResNet50_FPN_Weights.COCO_V1,
            description="torchvision's Mask R-CNN R50-FPN (box 37.9 / mask 34.6 COCO AP with its weights)",
        ),
        Architecture(
            "resnet50_fpn_v2_coco",
            partial(_resnet50_fpn, v2=True),
            COCO_CATEGORY_NAMES,
            (800, 1333),
            torchvision_weights=MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1,
            description="torchvision's Mask R-CNN R50-FPN v2 (box 47.4 / mask 41.8 COCO AP with its weights)",
        ),
        Architecture(
            "slim_resnet_fpn_light",
            _light,
            SYNTH_CLASS_NAMES,
            (360, 640),
            description="slim ResNet (32-256 ch), 48-channel FPN at strides 4-32, slim heads; for CPUs",
        ),
    )
}


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
