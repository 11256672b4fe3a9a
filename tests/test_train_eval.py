"""`maskstream train` and `maskstream eval` on a tiny generated COCO dataset (real files, real pycocotools)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from maskrcnn import load_model, read_metadata
from pipeline.cli import main as cli_main
from pipeline.errors import DatasetError
from training.dataset import InstanceDataset, read_coco
from training.evaluate import evaluate
from training.train import TrainConfig, checkpoint_paths, train

# COCO's own ids on purpose (truck=8): the loader must map categories to model labels by name
CATEGORIES = [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}, {"id": 8, "name": "truck"}]


def write_dataset(root: Path, images: int = 4, size: tuple[int, int] = (96, 64)) -> Path:
    """Images with a few filled shapes, COCO RLE masks, and one iscrowd region per image."""
    rng = np.random.default_rng(7)
    width, height = size
    (root / "images").mkdir(parents=True)
    data = {"images": [], "annotations": [], "categories": CATEGORIES}
    for image_id in range(1, images + 1):
        rgb = np.full((height, width, 3), 40, np.uint8)
        shapes = []
        for category in (1, 3, 8):
            mask = np.zeros((height, width), np.uint8)
            x, y = int(rng.integers(4, width - 28)), int(rng.integers(4, height - 24))
            if category == 1:
                cv2.ellipse(mask, (x + 8, y + 10), (6, 10), 0, 0, 360, 1, -1)
            else:
                cv2.rectangle(mask, (x, y), (x + 20 + 4 * (category == 8), y + 12), 1, -1)
            rgb[mask > 0] = (200, 60, 60) if category == 1 else (60, 60, 200) if category == 3 else (60, 200, 60)
            shapes.append((category, mask, 0))
        crowd = np.zeros((height, width), np.uint8)
        crowd[:6, :10] = 1  # an ignore region (a crowd too small to label), scored as neither hit nor miss
        shapes.append((1, crowd, 1))
        name = f"images/{image_id:04d}.png"
        cv2.imwrite(str(root / name), rgb[:, :, ::-1])
        data["images"].append({"id": image_id, "file_name": name, "width": width, "height": height})
        for category, mask, iscrowd in shapes:
            rle = mask_utils.encode(np.asfortranarray(mask))
            x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
            data["annotations"].append(
                {
                    "id": len(data["annotations"]) + 1,
                    "image_id": image_id,
                    "category_id": category,
                    "bbox": [x, y, w, h],
                    "area": float(mask_utils.area(rle)),
                    "iscrowd": iscrowd,
                    "segmentation": {"size": rle["size"], "counts": rle["counts"].decode("ascii")},
                }
            )
    (root / "annotations.json").write_text(json.dumps(data))
    return root


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "data")


def ground_truth_as_predictions(root: Path) -> list[dict]:
    data = json.loads((root / "annotations.json").read_text())
    return [
        {k: ann[k] for k in ("image_id", "category_id", "bbox", "segmentation")} | {"score": 1.0}
        for ann in data["annotations"]
        if not ann["iscrowd"]
    ]


def test_dataset_maps_categories_by_name_and_skips_crowds(tiny_dataset):
    dataset = InstanceDataset(tiny_dataset, ("__background__", "person", "bicycle", "car", "truck"))
    image, target = dataset[0]
    assert image.shape == (3, 64, 96)
    assert sorted(target["labels"].tolist()) == [1, 3, 4]  # person, car, truck (COCO id 8) — the crowd is skipped
    assert target["masks"].shape == (3, 64, 96)


def test_ground_truth_as_predictions_scores_ap_one(tiny_dataset):
    result = evaluate(tiny_dataset, ground_truth_as_predictions(tiny_dataset))
    for key in ("bbox_AP", "bbox_AP50", "segm_AP", "segm_AP50"):
        assert result.overall[key] == pytest.approx(1.0)
    assert result.per_class["truck"]["segm_AP"] == pytest.approx(1.0)
    # every object here is COCO-small (< 32² px): the other area ranges have no ground truth, reported as NaN
    assert result.overall["segm_AP_small"] == pytest.approx(1.0)
    assert np.isnan(result.overall["segm_AP_medium"]) and np.isnan(result.overall["bbox_AP_large"])


def test_eval_cli_scores_a_results_file_as_json(tiny_dataset, tmp_path, capsys):
    predictions = tmp_path / "results.json"
    results = ground_truth_as_predictions(tiny_dataset)
    results = [r for r in results if r["category_id"] != 8]  # every truck missed
    predictions.write_text(json.dumps(results))
    assert cli_main(["eval", "--data", str(tiny_dataset), "--predictions", str(predictions), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["per_class"]["truck"]["segm_AP"] == 0.0
    assert scores["per_class"]["car"]["segm_AP"] == pytest.approx(1.0)
    assert scores["overall"]["segm_AP"] == pytest.approx(2 / 3)


def test_coco_file_missing_fields_is_named(tmp_path):
    root = tmp_path / "bad"
    root.mkdir()
    data = {"images": [{"id": 1, "width": 8, "height": 8, "file_name": "a.png"}], "categories": CATEGORIES}
    data["annotations"] = [{"id": 5, "image_id": 1, "bbox": [0, 0, 2, 2], "segmentation": []}]
    (root / "annotations.json").write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=r"annotation 5 lacks field.*category_id"):
        read_coco(root)


def test_empty_dataset_is_refused(tmp_path):
    root = tmp_path / "empty"
    root.mkdir()
    (root / "annotations.json").write_text(json.dumps({"images": [], "annotations": [], "categories": CATEGORIES}))
    with pytest.raises(DatasetError, match="empty"):
        read_coco(root)
    assert cli_main(["eval", "--data", str(root), "--predictions", str(root / "annotations.json")]) == 2


@pytest.mark.slow
def test_train_checkpoints_resumes_and_evaluates(tiny_dataset, tmp_path, capsys):
    torch.set_num_threads(2)
    out = tmp_path / "tiny.safetensors"
    cfg = TrainConfig(
        data=[tiny_dataset],
        arch="slim_resnet_fpn_light",
        out=out,
        epochs=1.0,  # 4 images, batches of 2: 2 steps
        batch_size=2,
        warmup_steps=1,
        workers=0,
        crop=None,
        train_sizes=(64,),
        seed=3,
    )
    train(cfg)
    weights_ckpt, state_ckpt = checkpoint_paths(out)
    assert read_metadata(out)["step"] == 2
    assert read_metadata(out)["recipe"]["seed"] == 3
    assert state_ckpt.is_file() and weights_ckpt.is_file()
    state = torch.load(state_ckpt, weights_only=True)
    assert state["step"] == 2

    cfg = replace(cfg, epochs=None, steps=3)  # resume: one more step from the checkpoint, not three from scratch
    train(cfg)
    assert read_metadata(out)["step"] == 3
    loaded = load_model(out)
    assert loaded.class_names == ("__background__", "person", "bicycle", "car", "truck")
    with torch.inference_mode():
        (output,) = loaded.model([torch.rand(3, 64, 96)])
    assert set(output) >= {"boxes", "scores", "labels", "masks"}

    # the trained weights through `maskstream eval`: runs the model, writes COCO results, scores them
    results = tmp_path / "results.json"
    assert cli_main(["eval", "--data", str(tiny_dataset), "--weights", str(out), "--out", str(results), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert 0.0 <= scores["overall"]["segm_AP"] <= 1.0 and set(scores["per_class"]) <= {
        "person",
        "bicycle",
        "car",
        "truck",
    }
    predictions = json.loads(results.read_text())
    dataset = json.loads((tiny_dataset / "annotations.json").read_text())
    images, categories = {i["id"] for i in dataset["images"]}, {c["id"] for c in dataset["categories"]}
    for prediction in predictions:  # COCO results format, on the dataset's images and classes
        assert set(prediction) >= {"image_id", "category_id", "bbox", "score", "segmentation"}
        assert prediction["image_id"] in images and prediction["category_id"] in categories
        assert len(prediction["bbox"]) == 4 and 0.0 <= prediction["score"] <= 1.0


@pytest.mark.parametrize("sizes", ["abc", "320,x", "16"])
def test_train_size_option_names_the_bad_value(sizes, tiny_dataset, tmp_path, capsys):
    argv = ["train", "--data", str(tiny_dataset), "--arch", "slim_resnet_fpn_light", "--out", str(tmp_path / "w")]
    with pytest.raises(SystemExit) as exit_info:
        cli_main([*argv, "--size", sizes])
    assert exit_info.value.code == 2
    assert f"--size {sizes!r}" in capsys.readouterr().err


def test_eval_scores_the_model_with_the_run_configs_model_options(tmp_path, capsys):
    """`eval --config` runs the model as `run CONFIG` would: thresholds, detection cap and tiling from the file."""
    from synth import render_clip

    clip = render_clip(tmp_path / "clip", mode="drone", seed=5, frames=3, size=(320, 180))
    config = tmp_path / "run.yaml"
    config.write_text(
        "sources: [{url: clip.mp4}]\n"
        "model: {device: cpu, score_threshold: 0.3, max_detections: 4, tiling: {grid: [2, 2], overlap: 0.25}}\n"
    )
    results = tmp_path / "results.json"
    assert cli_main(["eval", "--data", str(clip), "--config", str(config), "--out", str(results), "--json"]) == 0
    found = json.loads(results.read_text())
    assert found and min(r["score"] for r in found) >= 0.3
    per_image = {}
    for r in found:
        per_image[r["image_id"]] = per_image.get(r["image_id"], 0) + 1
    assert max(per_image.values()) <= 4
    assert "segm_AP" in json.loads(capsys.readouterr().out)["overall"]

    argv = ["eval", "--data", str(clip), "--config", str(config), "--out", str(results)]
    assert cli_main([*argv, "--set", "model.score_threshold=0.6"]) == 0
    assert all(r["score"] >= 0.6 for r in json.loads(results.read_text()))

    capsys.readouterr()
    assert cli_main([*argv, "--set", "model.tiling.overlap=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "model.tiling.overlap" in err and "\n" not in err
