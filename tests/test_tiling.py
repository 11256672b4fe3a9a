"""Sliced inference: tile plans, merging detections across tiles, config errors, the detector's tiled path."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from maskrcnn import build_model
from maskrcnn.tiling import Window, greedy_groups, intersection_over_smaller, merge, plan_windows, resample_masks
from pipeline.config import load_config
from pipeline.config.model import ModelConfig, TilingConfig
from pipeline.errors import ConfigError
from pipeline.items import RawDetections
from stages.inference import Detector
from stages.masks import paste_masks


@settings(max_examples=60, deadline=None)
@given(
    width=st.integers(32, 4000),
    height=st.integers(32, 2500),
    tile=st.tuples(st.integers(32, 2000), st.integers(32, 2000)),
    overlap=st.floats(0.0, 0.9),
    full=st.booleans(),
)
def test_tiles_cover_the_frame_stay_inside_it_and_overlap_as_asked(width, height, tile, overlap, full):
    cfg = TilingConfig(tile_size=tile, overlap=overlap, full_frame=full)
    windows = plan_windows(width, height, cfg)
    whole = Window(0, 0, width, height)
    tiles = windows[:-1] if (full and windows != [whole]) else windows
    covered = np.zeros((height, width), bool)
    for w in tiles:
        assert 0 <= w.x0 < w.x1 <= width and 0 <= w.y0 < w.y1 <= height
        assert w.x1 - w.x0 == min(tile[0], width) and w.y1 - w.y0 == min(tile[1], height)
        covered[w.y0 : w.y1, w.x0 : w.x1] = True
    assert covered.all()
    if full and windows != [whole]:
        assert windows[-1] == whole
    xs = sorted({w.x0 for w in tiles})
    for a, b in itertools.pairwise(xs):  # neighbours share at least `overlap` of a tile (rounding: 1 px)
        assert (a + min(tile[0], width)) - b >= overlap * min(tile[0], width) - 1


def test_a_grid_gives_columns_by_rows_tiles_plus_the_whole_frame():
    windows = plan_windows(1920, 1080, TilingConfig(grid=(3, 2), overlap=0.2))
    assert len(windows) == 3 * 2 + 1 and windows[-1] == Window(0, 0, 1920, 1080)
    assert {w.x1 - w.x0 for w in windows[:-1]} == {739}  # 1920 / (3 - 2 * 0.2), rounded up
    assert sorted({w.x0 for w in windows[:-1]}) == [0, 590, 1181]


@settings(max_examples=60, deadline=None)
@given(
    width=st.integers(64, 4000),
    height=st.integers(64, 2500),
    grid=st.tuples(st.integers(1, 8), st.integers(1, 8)),
    overlap=st.floats(0.0, 0.9),
)
def test_a_grid_gives_exactly_its_tiles_covering_the_frame(width, height, grid, overlap):
    windows = plan_windows(width, height, TilingConfig(grid=grid, overlap=overlap, full_frame=False))
    covered = np.zeros((height, width), bool)
    for w in windows:
        covered[w.y0 : w.y1, w.x0 : w.x1] = True
    assert covered.all()
    if len(windows) > 1:
        columns = len({w.x0 for w in windows})
        rows = len({w.y0 for w in windows})
        assert columns <= grid[0] and rows <= grid[1] and columns * rows == len(windows)


def test_a_tile_larger_than_the_frame_is_the_frame_run_once():
    assert plan_windows(640, 360, TilingConfig(tile_size=(1280, 720))) == [Window(0, 0, 640, 360)]
    assert plan_windows(100, 60, TilingConfig(grid=(1, 1))) == [Window(0, 0, 100, 60)]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.tiling={tile_size: [640, 360], overlap: 1.0}", "model.tiling.overlap"),
        ("model.tiling={grid: [2, 2], overlap: -0.1}", "model.tiling.overlap"),
        ("model.tiling={tile_size: [640, 360], grid: [2, 2]}", "exactly one of tile_size"),
        ("model.tiling={overlap: 0.2}", "exactly one of tile_size"),
        ("model.tiling={tile_size: [16, 360]}", "at least 32 px"),
        ("model.tiling={grid: [0, 2]}", "at least 1"),
    ],
)
def test_bad_tiling_is_one_config_line_naming_the_field(override, message):
    with pytest.raises(ConfigError) as info:
        load_config(None, overrides=[override])
    text = str(info.value)
    assert "\n" not in text and message in text and "model.tiling" in text


def test_intersection_over_smaller_sees_a_cut_object_inside_the_whole_one():
    boxes = np.array([[0, 0, 100, 100], [60, 10, 100, 50], [200, 200, 210, 210]], np.float32)
    ios = intersection_over_smaller(boxes)
    assert ios[0, 1] == pytest.approx(1.0) and ios[1, 0] == pytest.approx(1.0)
    assert ios[0, 2] == 0.0
    groups = greedy_groups(boxes, np.array([0.9, 0.8, 0.7]), np.array([1, 1, 1]), 0.5)
    assert groups == [[0, 1], [2]]
    assert greedy_groups(boxes, np.array([0.9, 0.8, 0.7]), np.array([1, 2, 1]), 0.5) == [[0], [1], [2]]


def test_resampling_a_mask_onto_its_own_box_keeps_it():
    probs = torch.rand(3, 1, 28, 28)
    boxes = torch.tensor([[0.0, 0, 50, 80], [10, 10, 20, 30], [5, 7, 305, 107]])
    again = resample_masks(probs, boxes, boxes)
    assert torch.allclose(again, probs, atol=1e-5)


def test_an_object_split_on_a_tile_border_becomes_one_box_and_one_mask():
    # a 60x40 solid object at x 70..130, y 20..60; the border at x = 100 cuts it into two detections
    m = 28
    left = RawDetections(
        torch.tensor([[70.0, 20, 100, 60]]), torch.tensor([0.9]), torch.tensor([1]), torch.ones(1, 1, m, m)
    )
    right = RawDetections(
        torch.tensor([[100.0, 20, 130, 60]]), torch.tensor([0.8]), torch.tensor([1]), torch.ones(1, 1, m, m)
    )
    whole_other = RawDetections(  # another object of another class nearby, left alone
        torch.tensor([[0.0, 0, 40, 40]]), torch.tensor([0.7]), torch.tensor([2]), torch.ones(1, 1, m, m)
    )
    # the merge is by overlap of the smaller box, so pad each half a little into the other (tile overlap)
    left.boxes[0, 2] = 106.0
    right.boxes[0, 0] = 94.0
    raw = RawDetections(
        torch.cat([left.boxes, right.boxes, whole_other.boxes]),
        torch.cat([left.scores, right.scores, whole_other.scores]),
        torch.cat([left.labels, right.labels, whole_other.labels]),
        torch.cat([left.mask_probs, right.mask_probs, whole_other.mask_probs]),
    )
    merged = merge(raw, threshold=0.15, max_detections=100)
    assert len(merged.scores) == 2
    assert merged.boxes[0].tolist() == [70.0, 20.0, 130.0, 60.0]
    assert merged.scores.tolist() == pytest.approx([0.9, 0.7])
    masks = paste_masks(merged.mask_probs, merged.boxes, 100, 160)  # (N, W, H)
    object_mask = masks[0].T
    assert object_mask[20:60, 71:129].all()  # one mask over both halves, no seam at the border
    assert object_mask.sum() <= 61 * 41


def test_merging_keeps_the_strongest_and_caps_the_count():
    boxes = torch.tensor([[10.0 * i, 0, 10.0 * i + 8, 8] for i in range(20)])
    raw = RawDetections(
        boxes, torch.linspace(0.1, 0.9, 20), torch.ones(20, dtype=torch.long), torch.rand(20, 1, 28, 28)
    )
    out = merge(raw, threshold=0.5, max_detections=5)
    assert len(out.scores) == 5 and out.scores.min() >= raw.scores.sort().values[-5]


@pytest.mark.parametrize("arch", ["slim_resnet_fpn_light", "resnet50_fpn_coco"])
def test_detector_runs_tiles_in_one_batch_and_returns_frame_coordinates(arch, monkeypatch):
    """Structural: any torchvision-style Mask R-CNN (our light model, COCO's R50-FPN) runs tiled."""
    torch.manual_seed(0)
    options = {"min_size": 160, "max_size": 288} if arch == "resnet50_fpn_coco" else {}
    model = build_model(arch, 5, **options)
    model.roi_heads.score_thresh = 0.0
    cfg = ModelConfig(device="cpu", score_threshold=0.0, max_detections=30, tiling={"grid": [2, 2]})
    detector = Detector.from_model(model, ["bg", "a", "b", "c", "d"], cfg, arch=arch)
    calls = []
    original = detector.detect_whole
    monkeypatch.setattr(detector, "detect_whole", lambda images: calls.append(len(images)) or original(images))
    frames = [torch.rand(3, 180, 320), torch.rand(3, 90, 160)]
    results = detector.detect(frames)
    assert calls == [10]  # 2 frames x (4 tiles + the whole frame), one model batch
    for frame, raw in zip(frames, results, strict=True):
        height, width = frame.shape[-2:]
        assert len(raw.scores) <= 30
        assert raw.mask_probs.shape[1:] == (1, 28, 28) and raw.boxes.shape == (len(raw.scores), 4)
        if len(raw.scores):
            assert raw.boxes[:, 0].min() >= 0 and raw.boxes[:, 2].max() <= width + 1e-3
            assert raw.boxes[:, 1].min() >= 0 and raw.boxes[:, 3].max() <= height + 1e-3


def test_a_frame_smaller_than_the_tile_runs_whole_and_warns_once(caplog):
    torch.manual_seed(0)
    model = build_model("slim_resnet_fpn_light", 5)
    cfg = ModelConfig(device="cpu", tiling={"tile_size": [640, 360]})
    detector = Detector.from_model(model, ["bg", "a", "b", "c", "d"], cfg)
    with caplog.at_level("WARNING"):
        for _ in range(2):
            (raw,) = detector.detect([torch.rand(3, 120, 200)])
            assert raw.boxes.shape[1] == 4
    warnings = [r for r in caplog.records if "larger than the 200x120 frame" in r.getMessage()]
    assert len(warnings) == 1


def test_detections_cut_by_an_inner_tile_edge_are_dropped_but_frame_edges_cut_nothing():
    from maskrcnn.tiling import drop_cut

    boxes = torch.tensor(
        [
            [0.0, 10, 20, 30],  # touches the tile's left edge, which is the frame's: kept
            [150.0, 10, 200, 30],  # touches the right edge, inside the frame: dropped
            [50.0, 50, 80, 70],  # inside: kept
            [60.0, 100, 90, 120],  # touches the bottom edge, inside the frame: dropped
        ]
    )
    raw = RawDetections(boxes, torch.rand(4), torch.ones(4, dtype=torch.long), torch.rand(4, 1, 28, 28))
    kept = drop_cut(raw, Window(0, 0, 200, 120), width=400, height=240)
    assert kept.boxes.tolist() == [boxes[0].tolist(), boxes[2].tolist()]
    whole_frame_tile = drop_cut(raw, Window(0, 0, 200, 120), width=200, height=120)
    assert len(whole_frame_tile.scores) == 4


def test_a_large_object_cut_into_four_tiles_is_one_detection_with_drop_cut():
    """Four pieces (one per tile) + the whole frame's detection: SAHI's greedy merge can leave duplicates."""
    from maskrcnn.tiling import concat, drop_cut, shift

    m = 28
    windows = plan_windows(200, 120, TilingConfig(grid=(2, 2), overlap=0.2))
    whole = windows[-1]
    obj = torch.tensor([60.0, 30, 140, 90])  # crosses both inner borders
    parts, pieces = [], []
    for w in windows:
        x0, y0 = max(obj[0].item(), w.x0), max(obj[1].item(), w.y0)
        x1, y1 = min(obj[2].item(), w.x1), min(obj[3].item(), w.y1)
        local = torch.tensor([[x0 - w.x0, y0 - w.y0, x1 - w.x0, y1 - w.y0]])
        score = torch.tensor([0.6 if w == whole else 0.9])  # the pieces score higher, as tiles often do
        raw = RawDetections(local, score, torch.ones(1, dtype=torch.long), torch.ones(1, 1, m, m))
        pieces.append(shift(raw, w))
        parts.append(shift(raw if w == whole else drop_cut(raw, w, 200, 120), w))
    merged = merge(concat(parts), 0.5, 100)
    assert len(merged.scores) == 1 and merged.boxes[0].tolist() == obj.tolist()
    # merge only (SAHI's rule): the top-left piece leads and takes the whole-frame box; the other three pieces
    # overlap it by less than half of themselves (IOS 0.46) and stay as duplicates
    assert len(merge(concat(pieces), 0.5, 100).scores) == 4
