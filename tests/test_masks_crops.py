"""Box-local masks: the crop RLE equals pycocotools' RLE of the full mask, the crop path's events equal the
full-frame path's byte for byte, and bad boxes or frame sizes never break the masks stage."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocotools import mask as mask_utils

from kernels.mask_paste import paste_masks
from pipeline.config import ModelConfig
from pipeline.config.tracker import TrackerConfig
from pipeline.events import EventBuilder, encode_event
from pipeline.items import Detections, Frame, FrameResult, RawDetections
from pipeline.rle import crop_rles
from stages.masks import batch_detections, frame_detections
from stages.tracker import TrackerStage


def reference_rle(full: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(full.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


@st.composite
def crops(draw: st.DrawFn) -> tuple[np.ndarray, tuple[int, int, int, int], tuple[int, int]]:
    """A random crop somewhere in a random frame (1-px frames, empty crops and crops on the edges included)."""
    height, width = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    w, h = draw(st.integers(0, width)), draw(st.integers(0, height))
    x0, y0 = draw(st.integers(0, width - w)), draw(st.integers(0, height - h))
    density = draw(st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0]))
    seed = draw(st.integers(0, 2**32 - 1))
    pixels = np.random.default_rng(seed).random((h, w)) < density
    return pixels, (x0, y0, w, h), (height, width)


@settings(max_examples=300, deadline=None)
@given(st.lists(crops(), min_size=0, max_size=6))
def test_crop_rle_equals_pycocotools_rle_of_the_full_mask(items: list) -> None:
    flat = [pixels.T.reshape(-1) for pixels, _, _ in items]  # column-major, as the masks stage stores them
    offsets = np.concatenate([[0], np.cumsum([len(f) for f in flat])]).astype(np.int64)
    windows = np.array([window for _, window, _ in items], np.int64).reshape(-1, 4)
    sizes = np.array([size for _, _, size in items], np.int64).reshape(-1, 2)
    got = crop_rles(np.concatenate(flat) if flat else np.zeros(0, bool), offsets, windows, sizes)
    assert len(got) == len(items)
    for rle, (pixels, (x0, y0, w, h), (height, width)) in zip(got, items, strict=True):
        full = np.zeros((height, width), bool)
        full[y0 : y0 + h, x0 : x0 + w] = pixels
        assert rle == reference_rle(full)


def test_full_height_and_full_frame_crops_join_their_columns() -> None:
    """Columns that touch (crop as high as the frame) must not split a run where both sides are set."""
    full = np.ones((5, 7), bool)
    full[2, 3] = False
    dets = Detections.from_full_masks(np.array([[0, 0, 7, 5]]), np.ones(1), np.ones(1), full[None])
    assert dets.rles == [reference_rle(full)]
    column = np.zeros((5, 7), bool)
    column[:, 2:4] = True
    dets = Detections.from_full_masks(np.array([[2, 0, 4, 5]]), np.ones(1), np.ones(1), column[None])
    assert tuple(dets.windows[0]) == (2, 0, 2, 5) and dets.rles == [reference_rle(column)]


def blob_probs(n: int, seed: int, m: int = 28) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, m), torch.linspace(-1, 1, m), indexing="ij")
    centres = torch.rand(n, 2, generator=gen) * 0.8 - 0.4
    radius = torch.rand(n, generator=gen) * 0.4 + 0.4
    dist = ((xx[None] - centres[:, 0, None, None]) ** 2 + (yy[None] - centres[:, 1, None, None]) ** 2).sqrt()
    return torch.sigmoid(10 * (radius[:, None, None] - dist))[:, None]


def full_frame_detections(frame: Frame, raw: RawDetections, threshold: float = 0.5) -> Detections:
    """The path the crops replaced, as the oracle: full-frame paste, pycocotools RLE of the full masks."""
    height, width = frame.size
    masks = paste_masks(raw.mask_probs, raw.boxes, height, width, threshold).numpy().transpose(0, 2, 1)
    rles = [reference_rle(m) for m in masks]
    return Detections.from_full_masks(raw.boxes.numpy(), raw.scores.numpy(), raw.labels.numpy(), masks, rles)


@pytest.mark.parametrize("seed", range(4))
def test_crops_of_a_mixed_batch_have_the_full_frame_paste_bits(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    frames, raws = [], []
    for k, (height, width) in enumerate([(180, 320), (240, 200), (1, 1), (97, 131)]):
        n = [0, 25, 3, 60][(k + seed) % 4]
        xy = torch.rand(n, 2, generator=gen) * torch.tensor([width + 40.0, height + 40.0]) - 30
        wh = torch.rand(n, 2, generator=gen) * torch.tensor([width * 0.6, height * 0.6]) + 0.5
        boxes = torch.cat([xy, xy + wh], 1)
        frames.append(Frame("cam", k, None, 0.0, np.zeros((height, width, 3), np.uint8)))
        raws.append(
            RawDetections(
                boxes, torch.rand(n, generator=gen), torch.ones(n, dtype=torch.int64), blob_probs(n, seed + k)
            )
        )
    for frame, raw, dets in zip(frames, raws, batch_detections(frames, raws, 0.5), strict=True):
        oracle = full_frame_detections(frame, raw)
        assert len(dets) == len(oracle) == len(raw.scores)
        np.testing.assert_array_equal(dets.full_masks(), oracle.full_masks())
        assert dets.rles == oracle.rles
        for n in range(len(dets)):  # each mask kept exactly in its window: nothing outside it
            assert dets.mask(n).sum() == oracle.full_mask(n).sum()


def synth_frames(count: int) -> list[Frame]:
    import synth

    frames = []
    for index, (rgb, _instances) in enumerate(synth.iter_frames("surveillance", 3, count, (640, 360))):
        frames.append(Frame("cam", index, index / 30.0, 1000.0 + index / 30.0, rgb))
    return frames


def events_of(results: list[FrameResult]) -> list[str]:
    tracker = TrackerStage(TrackerConfig())
    builder = EventBuilder(["background", "person", "car"], frame_summary=True)
    lines = []
    for result in results:
        lines += [encode_event(e) for e in builder.for_frame(tracker.track(result))]
    lines += [encode_event(e) for e in builder.for_ended_tracks("cam", tracker.end_source("cam"))]
    return lines


def test_events_of_the_bundled_model_are_byte_identical_to_the_full_frame_path() -> None:
    from stages.inference import load_detector

    detector = load_detector(ModelConfig(device="cpu"))
    frames = synth_frames(16)
    raws = []
    for frame in frames:
        raws += detector.detect([torch.from_numpy(frame.image).permute(2, 0, 1).float().div_(255.0)])
    assert sum(len(r.scores) for r in raws) > 0
    oracle = [FrameResult(f, full_frame_detections(f, r)) for f, r in zip(frames, raws, strict=True)]
    crops = []
    for a in range(0, len(frames), 4):  # batches of 4, as the pipeline pastes them
        crops += [
            FrameResult(f, d)
            for f, d in zip(frames[a : a + 4], batch_detections(frames[a : a + 4], raws[a : a + 4], 0.5), strict=True)
        ]
    expected, got = events_of(oracle), events_of(crops)
    assert any('"mask":{' in line for line in expected) and any("track.started" in line for line in expected)
    assert got == expected


H, W = 120, 160


@pytest.mark.parametrize(
    "box",
    [
        [float("nan"), 10, 50, 60],
        [10, 10, float("inf"), 60],
        [40, 40, 40, 80],  # zero width
        [60, 50, 20, 10],  # negative size
        [-500, -400, -300, -200],  # far outside
        [150, 100, 400, 300],  # partly outside: clipped
        [-1e30, -1e30, 1e30, 1e30],  # absurd
    ],
)
def test_a_bad_box_gives_an_empty_or_clipped_mask_never_an_exception(box: list[float]) -> None:
    good = [10.0, 10.0, 60.0, 50.0]
    raw = RawDetections(torch.tensor([good, box]), torch.tensor([0.9, 0.8]), torch.tensor([1, 2]), blob_probs(2, 0))
    frame = Frame("cam", 0, 0.0, 0.0, np.zeros((H, W, 3), np.uint8))
    dets = frame_detections(frame, raw, 0.5)
    finite = bool(np.isfinite(box).all())
    assert len(dets) == (2 if finite else 1)  # a NaN/inf box has no place in the frame: dropped
    assert (
        dets.rles[0]
        == full_frame_detections(
            frame, RawDetections(*(t[:1] for t in (raw.boxes, raw.scores, raw.labels, raw.mask_probs)))
        ).rles[0]
    )
    if finite:
        mask = dets.full_mask(1)
        x0, y0, w, h = dets.windows[1]
        assert x0 >= 0 and x0 + w <= W and y0 >= 0 and y0 + h <= H
        assert reference_rle(mask) == dets.rles[1]
    events = events_of([FrameResult(frame, dets)])  # the tracker and the events take it too
    assert all(line.startswith("{") for line in events)


def test_a_frame_size_change_mid_stream_keeps_working() -> None:
    """An RTSP camera switching resolution: batches mixing both sizes, the tracker restarts, masks fit each frame."""
    sizes = [(120, 160)] * 3 + [(240, 320)] * 3 + [(90, 200)] * 2
    frames = [Frame("cam", i, i / 10, 100 + i / 10, np.zeros((h, w, 3), np.uint8)) for i, (h, w) in enumerate(sizes)]
    raws = []
    for h, w in sizes:
        boxes = torch.tensor([[w * 0.2, h * 0.2, w * 0.6, h * 0.7], [w * 0.5, h * 0.1, w * 0.9, h * 0.5]])
        raws.append(RawDetections(boxes, torch.tensor([0.9, 0.9]), torch.tensor([1, 2]), blob_probs(2, 1)))
    results = []
    for a in range(0, len(frames), 4):
        dets = batch_detections(frames[a : a + 4], raws[a : a + 4], 0.5)
        results += [FrameResult(f, d) for f, d in zip(frames[a : a + 4], dets, strict=True)]
    for result in results:
        assert result.detections.frame_size == result.frame.size
        assert all(r["size"] == list(result.frame.size) for r in result.detections.rles)
        assert result.detections.rles == full_frame_detections(result.frame, raws[result.frame.index]).rles
    events = events_of(results)
    started = [line for line in events if '"track.started"' in line]
    assert len(started) >= 4  # tracks of the old size ended, new ones started at each new size


def test_annotated_frame_blends_each_crop_as_the_full_masks_would() -> None:
    from sinks.annotated_video import _ALPHA, draw_result

    rng = np.random.default_rng(5)
    image = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
    frame = Frame("cam", 0, 0.0, 0.0, image)
    boxes = torch.tensor([[10.0, 10.0, 90.0, 70.0], [50.0, 30.0, 150.0, 119.0], [-20.0, 80.0, 30.0, 200.0]])
    raw = RawDetections(boxes, torch.tensor([0.9, 0.5, 0.7]), torch.tensor([1, 2, 1]), blob_probs(3, 2))
    dets = frame_detections(frame, raw, 0.5)
    drawn = draw_result(FrameResult(frame, dets), ["background", "person", "car"])
    # the former full-frame blend, as the oracle (boxes and labels are drawn on top of the blend: compare inside
    # the masks, away from box outlines)
    masks = dets.full_masks()
    overlay = image.copy()
    for index in np.argsort(dets.scores):
        overlay[masks[index]] = (160, 160, 160)
    covered = masks.any(axis=0)
    expected = image.copy()
    expected[covered] = (image[covered] * (1 - _ALPHA) + overlay[covered] * _ALPHA).astype(np.uint8)
    drawn_on = np.zeros((H, W), bool)  # box outlines and label bands
    for x1, y1, x2, y2 in boxes.round().int().tolist():
        for xa, ya, xb, yb in [(x1, y1, x2, y1), (x1, y2, x2, y2), (x1, y1, x1, y2), (x2, y1, x2, y2)]:
            drawn_on[max(ya - 3, 0) : max(yb + 4, 0), max(xa - 3, 0) : max(xb + 4, 0)] = True
        drawn_on[max(y1 - 22, 0) : max(y1 + 3, 0), max(x1 - 3, 0) : max(x1 + 160, 0)] = True
    inner = covered & ~drawn_on
    assert inner.sum() > 1000
    np.testing.assert_array_equal(drawn[inner], expected[inner])


def test_subset_keeps_each_chosen_mask_with_its_own_pixels() -> None:
    rng = np.random.default_rng(3)
    masks = rng.random((4, 30, 40)) > 0.5
    boxes = np.array([[0, 0, 40, 30]] * 4, np.float32)
    dets = Detections.from_full_masks(boxes, np.ones(4, np.float32), np.arange(4), masks)
    picked = dets.subset([2, 0])
    assert len(picked) == 2 and list(picked.labels) == [2, 0]
    assert np.array_equal(picked.full_mask(0), masks[2]) and np.array_equal(picked.full_mask(1), masks[0])
    assert picked.rles == [dets.rles[2], dets.rles[0]]
    assert len(dets.subset([])) == 0
