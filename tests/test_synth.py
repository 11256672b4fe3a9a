"""The scene simulator: determinism, ground-truth consistency, file formats and argument errors."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from pipeline.cli import main as cli_main
from pipeline.errors import ConfigError, MaskstreamError
from synth import iter_frames, render_clip, render_dataset
from synth.annotations import MOTS_IGNORE_ID, mots_id
from synth.categories import NAMES

SIZE = (160, 96)
FRAMES = 16


@pytest.fixture(scope="module", params=["surveillance", "drone"])
def clip(request, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp(f"clip_{request.param}")
    return render_clip(out / "clip", mode=request.param, seed=7, frames=FRAMES, size=SIZE, fps=25)


def _load(clip_dir: Path) -> dict:
    return json.loads((clip_dir / "annotations.json").read_text())


def _decode(video: Path) -> list[np.ndarray]:
    with av.open(str(video)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def test_video_has_every_frame_at_the_requested_size_and_rate(clip):
    frames = _decode(clip / "video.mp4")
    assert len(frames) == FRAMES
    assert frames[0].shape == (SIZE[1], SIZE[0], 3)
    with av.open(str(clip / "video.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert float(stream.average_rate) == pytest.approx(25.0)
    # not a blank video: the scene has texture and content
    assert np.std(frames[0]) > 10


def test_coco_file_has_the_documented_fields(clip):
    coco = _load(clip)
    assert [c["id"] for c in coco["categories"]] == list(NAMES)
    assert {c["name"] for c in coco["categories"]} >= {"person", "bicycle", "car", "truck"}
    assert coco["info"]["frames"] == FRAMES and coco["info"]["size"] == list(SIZE) and coco["info"]["fps"] == 25
    assert [img["frame_index"] for img in coco["images"]] == list(range(FRAMES))
    assert coco["images"][3]["file_name"] == "video.mp4#000003"
    assert coco["annotations"], "a clip with nobody in it tests nothing"
    for ann in coco["annotations"]:
        assert set(ann) >= {"id", "image_id", "category_id", "segmentation", "bbox", "area", "iscrowd", "track_id"}
        assert isinstance(ann["segmentation"]["counts"], str)
    COCO(str(clip / "annotations.json"))  # loads with the reference API


def test_rle_decodes_to_frame_size_and_matches_bbox_and_area(clip):
    coco = _load(clip)
    for ann in coco["annotations"]:
        rle = dict(ann["segmentation"], counts=ann["segmentation"]["counts"].encode())
        mask = mask_utils.decode(rle)
        assert mask.shape == (SIZE[1], SIZE[0])
        assert int(mask.sum()) == ann["area"] > 0
        ys, xs = np.nonzero(mask)
        assert ann["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        assert list(mask_utils.toBbox(rle)) == ann["bbox"]


def test_visible_masks_of_different_instances_never_overlap(clip):
    coco = _load(clip)
    cover: dict[int, np.ndarray] = {}
    for ann in coco["annotations"]:
        rle = dict(ann["segmentation"], counts=ann["segmentation"]["counts"].encode())
        mask = mask_utils.decode(rle).astype(bool)
        seen = cover.setdefault(ann["image_id"], np.zeros_like(mask))
        assert not (seen & mask).any()
        seen |= mask


def test_track_ids_are_unique_per_frame_and_keep_their_class(clip):
    coco = _load(clip)
    per_frame: dict[int, list[int]] = {}
    category_of: dict[int, int] = {}
    for ann in coco["annotations"]:
        per_frame.setdefault(ann["image_id"], []).append(ann["track_id"])
        assert category_of.setdefault(ann["track_id"], ann["category_id"]) == ann["category_id"]
    for ids in per_frame.values():
        assert len(ids) == len(set(ids))
    # objects persist: most tracks of frame 1 are still there in frame 2
    first, second = set(per_frame.get(1, [])), set(per_frame.get(2, []))
    assert len(first & second) >= 0.7 * len(first)


def test_mot_and_mots_files_agree_with_coco(clip):
    coco = _load(clip)
    frame_of = {img["id"]: img["frame_index"] + 1 for img in coco["images"]}
    expected_mot = set()
    expected_mots = {}
    for ann in coco["annotations"]:
        x, y, w, h = (int(v) for v in ann["bbox"])
        frame = frame_of[ann["image_id"]]
        conf = 0 if ann["iscrowd"] else 1
        expected_mot.add((frame, ann["track_id"], x, y, w, h, conf, ann["category_id"]))
        if not ann["iscrowd"]:
            expected_mots[(frame, mots_id(ann["category_id"], ann["track_id"]))] = ann["segmentation"]["counts"]
    mot = set()
    for line in (clip / "gt" / "gt.txt").read_text().splitlines():
        fields = line.split(",")
        assert len(fields) == 9
        assert 0.0 <= float(fields[8]) <= 1.0
        mot.add(tuple(int(v) for v in fields[:8]))
    assert mot == expected_mot
    mots = {}
    for line in (clip / "gt" / "gt_masks.txt").read_text().splitlines():
        frame, ident, cls, h, w, rle = line.split(" ")
        assert (int(h), int(w)) == (SIZE[1], SIZE[0])
        if int(ident) == MOTS_IGNORE_ID:
            assert int(cls) == 10
            continue
        assert int(ident) // 1000 == int(cls)
        mots[(int(frame), int(ident))] = rle
    assert mots == expected_mots


def test_same_seed_gives_identical_files_and_frames(tmp_path, clip):
    info = _load(clip)["info"]
    again = render_clip(tmp_path / "again", mode=info["mode"], seed=7, frames=FRAMES, size=SIZE, fps=25)
    assert (again / "annotations.json").read_bytes() == (clip / "annotations.json").read_bytes()
    assert (again / "gt" / "gt_masks.txt").read_bytes() == (clip / "gt" / "gt_masks.txt").read_bytes()
    for a, b in zip(_decode(again / "video.mp4"), _decode(clip / "video.mp4"), strict=True):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("mode", ["surveillance", "drone"])
def test_different_seeds_give_different_scenes(mode):
    first = next(iter(iter_frames(mode, 1, 1, SIZE)))
    second = next(iter(iter_frames(mode, 2, 1, SIZE)))
    assert not np.array_equal(first[0], second[0])


def test_iter_frames_yields_what_render_clip_writes(clip):
    coco = _load(clip)
    info = coco["info"]
    frames = list(iter_frames(info["mode"], 7, 3, SIZE, fps=25))
    first_frame = [a for a in coco["annotations"] if a["image_id"] == 1]
    assert [inst.track_id for inst in frames[0][1]] == [a["track_id"] for a in first_frame]
    for inst in frames[0][1]:
        assert inst.mask.dtype == bool and inst.mask.shape == (SIZE[1], SIZE[0])
        assert inst.area == int(inst.mask.sum())


def test_ignored_instances_are_the_tiny_or_hidden_ones(clip):
    coco = _load(clip)
    rule = coco["info"]["ignore_rule"]
    for ann in coco["annotations"]:
        tiny = ann["area"] < rule["min_area"] or ann["visibility"] < rule["min_visibility"]
        assert bool(ann["iscrowd"]) == tiny


def test_dataset_mode_writes_n_images_loadable_by_pycocotools(tmp_path):
    out = render_dataset(tmp_path / "ds", images=7, mode="both", seed=3, size=SIZE)
    images = sorted((out / "images").glob("*.jpg"))
    assert len(images) == 7
    coco = COCO(str(out / "annotations.json"))
    assert len(coco.getImgIds()) == 7
    assert {img["mode"] for img in coco.dataset["images"]} == {"surveillance", "drone"}
    for img in coco.dataset["images"]:
        assert (out / img["file_name"]).is_file()
    assert len(coco.getAnnIds()) > 0
    assert not (out / "gt").exists()


def test_dataset_scenes_never_reuse_clip_seeds():
    from synth.params import clip_seed_sequence, dataset_scene_seed

    clip_states = {
        clip_seed_sequence(mode, s).generate_state(4).tobytes() for mode in ("surveillance", "drone") for s in range(50)
    }
    dataset_states = {dataset_scene_seed(s, k).generate_state(4).tobytes() for s in range(10) for k in range(50)}
    assert not clip_states & dataset_states


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--size", "abc"], "WIDTHxHEIGHT"),
        (["--size", "161x96"], "even"),
        (["--size", "10x10"], "out of range"),
        (["--frames", "0"], "frames must be an integer in 1.."),
        (["--mode", "underwater"], "mode 'underwater' is unknown"),
        (["--seed", "-1"], "seed"),
        (["--mode", "both"], "--dataset"),
        (["--images", "5"], "--images is for --dataset"),
        (["--dataset", "--images", "0"], "images must be an integer in 1.."),
        (["--dataset", "--frames", "10"], "--frames and --fps describe a clip"),
    ],
)
def test_bad_arguments_give_one_clear_line(tmp_path, capsys, argv, message):
    code = cli_main(["synth", str(tmp_path / "out"), "--size", "160x96", *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and message in err


def test_non_empty_output_directory_needs_force(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    with pytest.raises(ConfigError, match="not empty"):
        render_clip(out, frames=1, size=SIZE)
    render_clip(out, frames=1, size=SIZE, force=True)
    assert (out / "keep.txt").read_text() == "user data"
    assert (out / "annotations.json").is_file()


def test_cli_renders_a_clip(tmp_path, capsys):
    assert (
        cli_main(["synth", str(tmp_path / "c"), "--mode", "drone", "--seed", "5", "--frames", "3", "--size", "160x96"])
        == 0
    )
    assert "wrote 3 frames" in capsys.readouterr().out
    assert len(_load(tmp_path / "c")["images"]) == 3


def test_api_rejects_bad_values_with_maskstream_errors(tmp_path):
    with pytest.raises(MaskstreamError):
        render_clip(tmp_path / "x", frames=5, size=(100, 0))
    with pytest.raises(MaskstreamError):
        list(iter_frames("surveillance", 0, 2, (160, 96), fps=0))


def test_forced_dataset_rewrite_leaves_no_stale_stills(tmp_path):
    out = render_dataset(tmp_path / "ds", images=4, mode="surveillance", seed=1, size=SIZE)
    render_dataset(out, images=2, mode="drone", seed=1, size=SIZE, force=True)
    assert sorted(p.name for p in (out / "images").glob("*.jpg")) == ["0000001.jpg", "0000002.jpg"]
    assert len(json.loads((out / "annotations.json").read_text())["images"]) == 2


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["surveillance", "drone"])
def test_many_random_scenes_render_with_consistent_instances(mode):
    for seed in range(100, 112):
        rgb, instances = next(iter(iter_frames(mode, seed, 1, (96, 64))))
        assert rgb.shape == (64, 96, 3)
        for inst in instances:
            assert inst.area == int(inst.mask.sum()) > 0
            assert 0.0 < inst.visibility <= 1.0


def test_dataset_is_deterministic_by_seed(tmp_path):
    first = render_dataset(tmp_path / "a", images=3, mode="both", seed=8, size=SIZE)
    second = render_dataset(tmp_path / "b", images=3, mode="both", seed=8, size=SIZE)
    other = render_dataset(tmp_path / "c", images=3, mode="both", seed=9, size=SIZE)
    assert (first / "annotations.json").read_bytes() == (second / "annotations.json").read_bytes()
    for name in ("0000001.jpg", "0000003.jpg"):
        assert (first / "images" / name).read_bytes() == (second / "images" / name).read_bytes()
    assert (first / "images" / "0000001.jpg").read_bytes() != (other / "images" / "0000001.jpg").read_bytes()
