"""Photometric and geometric augmentation suited to video frames (camera noise, blur, lighting, mirroring)."""

from __future__ import annotations

import cv2
import numpy as np
import torch


def augment(
    image: torch.Tensor, target: dict[str, torch.Tensor], rng: np.random.Generator
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Random flip, brightness/contrast/colour drift, blur and sensor noise; boxes and masks follow the flip."""
    if rng.random() < 0.5:
        image = image.flip(-1)
        width = image.shape[-1]
        boxes = target["boxes"].clone()
        boxes[:, [0, 2]] = width - target["boxes"][:, [2, 0]]
        target = {**target, "boxes": boxes, "masks": target["masks"].flip(-1)}
    gain = torch.tensor(rng.uniform(0.75, 1.25, size=3), dtype=image.dtype).view(3, 1, 1)
    contrast = float(rng.uniform(0.8, 1.2))
    mean = image.mean()
    image = ((image - mean) * contrast + mean) * gain
    if rng.random() < 0.25:  # motion or defocus blur
        k = int(rng.choice([3, 5]))
        array = cv2.GaussianBlur(image.permute(1, 2, 0).numpy(), (k, k), 0)
        image = torch.from_numpy(array).permute(2, 0, 1)
    if rng.random() < 0.5:
        noise = torch.from_numpy(rng.normal(0.0, rng.uniform(0.005, 0.03), size=image.shape).astype(np.float32))
        image = image + noise
    return image.clamp_(0.0, 1.0).contiguous(), target


def random_crop(
    image: torch.Tensor, target: dict[str, torch.Tensor], size: int, rng: np.random.Generator, min_area: int = 12
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """A `size`x`size` window at native scale: objects keep the pixel size they have in the video.

    Cheaper steps than whole frames (training cost follows pixels), same object scales. Boxes are recomputed
    from the cropped masks so they stay exact; instances left with fewer than `min_area` pixels are dropped.
    """
    height, width = image.shape[-2:]
    if height <= size and width <= size:
        return image, target
    top = int(rng.integers(0, max(1, height - size + 1)))
    left = int(rng.integers(0, max(1, width - size + 1)))
    image = image[:, top : top + size, left : left + size].contiguous()
    masks = target["masks"][:, top : top + size, left : left + size]
    keep = masks.flatten(1).sum(1) >= min_area
    masks, labels = masks[keep].contiguous(), target["labels"][keep]
    return image, {"boxes": boxes_from_masks(masks), "labels": labels, "masks": masks}


def boxes_from_masks(masks: torch.Tensor) -> torch.Tensor:
    """Tight x1 y1 x2 y2 boxes (pixel edges) of non-empty (N, H, W) masks."""
    if len(masks) == 0:
        return torch.zeros((0, 4), dtype=torch.float32)
    rows, cols = masks.any(2), masks.any(1)
    height, width = masks.shape[-2:]
    y1 = rows.float().argmax(1)
    y2 = height - rows.flip(1).float().argmax(1)
    x1 = cols.float().argmax(1)
    x2 = width - cols.flip(1).float().argmax(1)
    return torch.stack([x1, y1, x2, y2], 1).float()
