"""Model factory and weights: the COCO path, the light model, and clear errors for bad weights."""

from __future__ import annotations

import pytest
import torch
from torchvision.models.detection import maskrcnn_resnet50_fpn

from maskrcnn import build_model, list_architectures, load_model, read_metadata, save_weights
from maskrcnn.categories import COCO_CATEGORY_NAMES, SYNTH_CLASS_NAMES
from pipeline.errors import WeightsError

# keeps R50-FPN fast enough for CI: small input, few proposals and detections
SMALL = {"min_size": 96, "max_size": 128, "rpn_post_nms_top_n_test": 50, "box_detections_per_img": 8}


def _scene() -> torch.Tensor:
    """A frame with a few bright blobs, so random-weight models still return some detections."""
    generator = torch.Generator().manual_seed(3)
    image = torch.rand(3, 120, 160, generator=generator) * 0.2
    image[:, 20:70, 30:60] = 0.9
    image[0, 60:100, 90:150] = 1.0
    return image


def test_registry_lists_coco_and_light_architectures():
    assert {"resnet50_fpn_coco", "resnet50_fpn_v2_coco", "slim_resnet_fpn_light"} <= set(list_architectures())


@pytest.mark.slow
def test_coco_checkpoint_saved_like_torchvision_gives_torchvision_detections(tmp_path):
    torch.manual_seed(0)
    reference = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91, **SMALL).eval()
    reference.roi_heads.score_thresh = 0.0  # random weights: compare every detection, not just confident ones
    # not torchvision's file name: a file keeping that name is checked against the SHA-256 prefix in it
    path = tmp_path / "random_maskrcnn_resnet50_fpn_coco.pth"
    torch.save(reference.state_dict(), path)  # exactly how torchvision's checkpoint files are stored

    loaded = load_model(path, arch="resnet50_fpn_coco", **SMALL)
    loaded.model.roi_heads.score_thresh = 0.0
    assert loaded.class_names == COCO_CATEGORY_NAMES
    with torch.inference_mode():
        expected = reference([_scene()])[0]
        actual = loaded.model([_scene()])[0]
    assert len(expected["boxes"]) > 0
    for key in ("boxes", "scores", "labels", "masks"):
        torch.testing.assert_close(actual[key], expected[key], rtol=0, atol=0)


@pytest.mark.slow
def test_safetensors_round_trip_keeps_metadata_and_outputs(tmp_path):
    torch.manual_seed(1)
    model = build_model("slim_resnet_fpn_light").eval()
    path = save_weights(
        tmp_path / "m.safetensors",
        model.state_dict(),
        {"arch": "slim_resnet_fpn_light", "class_names": list(SYNTH_CLASS_NAMES), "recipe": {"steps": 1}},
    )
    assert read_metadata(path)["recipe"] == {"steps": 1}
    loaded = load_model(path)
    assert loaded.arch == "slim_resnet_fpn_light"
    assert loaded.class_names == SYNTH_CLASS_NAMES
    with torch.inference_mode():
        a = model.backbone(torch.ones(1, 3, 64, 64))
        b = loaded.model.backbone(torch.ones(1, 3, 64, 64))
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0)


def test_unknown_architecture_is_named():
    with pytest.raises(WeightsError, match=r"unknown architecture 'resnet9000'.*choose one of"):
        build_model("resnet9000")


@pytest.mark.slow
def test_weights_of_another_architecture_are_refused(tmp_path):
    light = build_model("slim_resnet_fpn_light")
    path = tmp_path / "light.pth"
    torch.save(light.state_dict(), path)
    with pytest.raises(WeightsError, match="not weights of architecture 'resnet50_fpn_coco'"):
        load_model(path, arch="resnet50_fpn_coco", **SMALL)


def test_metadata_architecture_must_match_the_requested_one(tmp_path):
    light = build_model("slim_resnet_fpn_light")
    path = save_weights(tmp_path / "l.safetensors", light.state_dict(), {"arch": "slim_resnet_fpn_light"})
    with pytest.raises(WeightsError, match="weights are for architecture 'slim_resnet_fpn_light'"):
        load_model(path, arch="resnet50_fpn_coco")


def test_weights_for_another_class_count_are_refused(tmp_path):
    wrong = build_model("slim_resnet_fpn_light", num_classes=9)
    path = save_weights(
        tmp_path / "w.safetensors",
        wrong.state_dict(),
        {"arch": "slim_resnet_fpn_light", "class_names": list(SYNTH_CLASS_NAMES)},
    )
    with pytest.raises(WeightsError, match=r"expects .*another class count"):
        load_model(path)


def test_a_pickle_where_safetensors_is_expected_is_refused_unread(tmp_path):
    path = tmp_path / "model.safetensors"
    torch.save(build_model("slim_resnet_fpn_light").state_dict(), path)
    with pytest.raises(WeightsError, match="looks like a pickle"):
        load_model(path)


def test_truncated_weights_are_refused(tmp_path):
    model = build_model("slim_resnet_fpn_light")
    path = save_weights(tmp_path / "t.safetensors", model.state_dict(), {"arch": "slim_resnet_fpn_light"})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="not a readable safetensors file"):
        load_model(path)


def test_pth_holding_arbitrary_objects_is_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pth"
    torch.save({"x": Payload()}, path)
    with pytest.raises(WeightsError, match="cannot load as a weights-only state dict"):
        load_model(path, arch="resnet50_fpn_coco")


def test_missing_weights_file_is_named(tmp_path):
    with pytest.raises(WeightsError, match="weights file not found"):
        load_model(tmp_path / "nope.safetensors")


def test_unknown_roi_align_backend_is_refused():
    with pytest.raises(WeightsError, match="roi_align must be one of"):
        load_model(roi_align="fast")
