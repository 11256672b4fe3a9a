"""Masks stage: a batch's raw detections (on the model's device) → one `FrameResult` per frame, masks box-local.

All detections of the batch are pasted at once into their crop windows on the model's device and come to the
host in one copy (`kernels.mask_paste.paste_crops`); their full-frame COCO RLEs are computed from the crops
(`pipeline.rle.crop_rles`), in numpy passes that release the GIL. No full-frame mask is ever made.

Bad input never raises: a box with a NaN/inf coordinate has no place in the frame, so the detection is dropped
(counted in `maskstream_detections_dropped_total`); a degenerate (zero or negative size) or out-of-frame box
gets an empty or clipped mask.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
import torch

from kernels.mask_paste import PastedCrops, paste_crops, paste_masks
from pipeline.items import Detections, Frame, FrameResult, InferenceBatch, RawDetections
from pipeline.metrics import DETECTIONS_DROPPED, FRAMES_PROCESSED
from pipeline.rle import crop_rles
from pipeline.stage import Stage

log = logging.getLogger(__name__)

__all__ = ["MasksStage", "batch_detections", "frame_detections", "paste_masks"]  # paste_masks: its old home


def batch_detections(
    frames: list[Frame], raws: list[RawDetections], mask_threshold: float, clip_to_box: bool = True
) -> list[Detections]:
    """Raw model output of a batch of frames → `Detections` per frame (numpy on the CPU, masks as crops)."""
    counts = [len(raw.scores) for raw in raws]
    sizes = np.repeat(np.array([frame.size for frame in frames], np.int64).reshape(-1, 2), counts, axis=0)
    if sum(counts) == 0:
        return [Detections.empty(*frame.size) for frame in frames]

    present = [raw for raw in raws if len(raw.scores)]

    def cat(parts: list[torch.Tensor]) -> torch.Tensor:
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    pasted = paste_crops(
        cat([raw.boxes.reshape(-1, 4) for raw in present]),
        cat([raw.scores.reshape(-1) for raw in present]),
        cat([raw.labels.reshape(-1) for raw in present]),
        cat([raw.mask_probs[:, 0] if raw.mask_probs.dim() == 4 else raw.mask_probs for raw in present]),
        sizes,
        mask_threshold,
        clip_to_box,
    )
    rles = crop_rles(pasted.pixels, pasted.offsets, pasted.windows, sizes)
    results = []
    start = 0
    for frame, count in zip(frames, counts, strict=True):
        results.append(_frame_slice(frame, pasted, rles, start, start + count))
        start += count
    return results


def _frame_slice(frame: Frame, pasted: PastedCrops, rles: list, a: int, b: int) -> Detections:
    """One frame's detections: views of the batch's arrays (no copy), less those without a finite box."""
    keep = pasted.finite[a:b]
    offsets = pasted.offsets[a : b + 1]
    dets = Detections(
        boxes=pasted.boxes[a:b],
        scores=pasted.scores[a:b],
        labels=pasted.labels[a:b],
        windows=pasted.windows[a:b],
        mask_offsets=offsets - offsets[0],
        mask_pixels=pasted.pixels[offsets[0] : offsets[-1]],
        rles=rles[a:b],
        frame_size=frame.size,
    )
    if keep.all():
        return dets
    dropped = int((~keep).sum())
    DETECTIONS_DROPPED.labels(source=frame.source_id, reason="non_finite_box").inc(dropped)
    log.warning("%s frame %d: dropped %d detection(s) without a finite box", frame.source_id, frame.index, dropped)
    index = np.flatnonzero(keep)
    # crops of dropped detections are empty, so the kept crops' offsets are those of the kept rows
    kept_offsets = np.concatenate([dets.mask_offsets[index], dets.mask_offsets[-1:]])
    return Detections(
        boxes=dets.boxes[index],
        scores=dets.scores[index],
        labels=dets.labels[index],
        windows=dets.windows[index],
        mask_offsets=kept_offsets,
        mask_pixels=dets.mask_pixels,
        rles=[dets.rles[i] for i in index],
        frame_size=frame.size,
    )


def frame_detections(frame: Frame, raw: RawDetections, mask_threshold: float, clip_to_box: bool = True) -> Detections:
    """Raw model output of one frame → `Detections` (a batch of one)."""
    return batch_detections([frame], [raw], mask_threshold, clip_to_box)[0]


class MasksStage(Stage):
    """`InferenceBatch` → one `FrameResult` per frame, in order."""

    name = "masks"

    def __init__(self, mask_threshold: float = 0.5, clip_to_box: bool = True) -> None:
        self.mask_threshold = mask_threshold
        self.clip_to_box = clip_to_box

    def process(self, item: InferenceBatch) -> Iterable[FrameResult]:
        detections = batch_detections(item.frames, item.detections, self.mask_threshold, self.clip_to_box)
        results = []
        for frame, dets in zip(item.frames, detections, strict=True):
            results.append(FrameResult(frame, dets))
            FRAMES_PROCESSED.labels(source=frame.source_id).inc()
        return results
