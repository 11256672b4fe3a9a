"""The host build of roi_align.cu against torchvision's CPU op: forward bit-exact, backward within 1e-5.

The host build runs the same CUDA source and the same launch plans as the GPU backend (see kernels/launch.py),
so these tests check the kernel's arithmetic, not just a re-implementation.
"""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
import torchvision
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernels import MultiScaleRoIAlign, roi_align

OUTPUT_SIZES = [(7, 7), (14, 14), (3, 5)]


def random_rois(generator: torch.Generator, count: int, batch: int, extent: float) -> torch.Tensor:
    """RoIs inside, across and beyond the border of an `extent`-sized image, plus degenerate ones."""
    xy = torch.rand(count, 2, generator=generator) * extent * 1.4 - extent * 0.2
    wh = torch.rand(count, 2, generator=generator) * extent * 0.6
    boxes = torch.cat([xy, xy + wh], dim=1)
    boxes[0::7, 2:] = boxes[0::7, :2]  # zero-size
    boxes[1::7, 2] = boxes[1::7, 0] - 3.0  # inverted width
    boxes[2::7] = torch.tensor([-50.0, -50.0, -10.0, -20.0])  # entirely outside
    boxes[3::7, 2:] = boxes[3::7, :2] + 0.3  # smaller than a pixel
    ids = torch.randint(0, batch, (count, 1), generator=generator).float()
    return torch.cat([ids, boxes], dim=1)


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 0, 2])
@pytest.mark.parametrize("spatial_scale", [1.0, 1 / 4, 1 / 32])
def test_forward_is_bit_exact_against_torchvision(aligned: bool, sampling_ratio: int, spatial_scale: float) -> None:
    generator = torch.Generator().manual_seed(int(spatial_scale * 1000) + sampling_ratio + 10 * aligned)
    features = torch.randn(3, 4, 13, 17, generator=generator)
    extent = 17 / spatial_scale
    rois = random_rois(generator, 40, batch=3, extent=extent)
    for output_size in OUTPUT_SIZES:
        expected = torchvision.ops.roi_align(features, rois, output_size, spatial_scale, sampling_ratio, aligned)
        actual = roi_align(features, rois, output_size, spatial_scale, sampling_ratio, aligned, backend="host")
        assert torch.equal(actual, expected), f"output_size={output_size}"


def test_list_of_boxes_form_matches_tensor_form() -> None:
    generator = torch.Generator().manual_seed(1)
    features = torch.randn(2, 3, 10, 10, generator=generator)
    boxes = [torch.tensor([[1.0, 1.0, 6.0, 8.0]]), torch.tensor([[0.0, 2.0, 9.0, 9.5], [3.0, 3.0, 4.0, 4.0]])]
    expected = torchvision.ops.roi_align(features, boxes, 4, 1.0, 2)
    assert torch.equal(roi_align(features, boxes, 4, 1.0, 2, backend="host"), expected)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    height=st.integers(1, 12),
    width=st.integers(1, 12),
    coords=st.lists(
        st.tuples(*[st.floats(-20.0, 60.0, allow_nan=False, width=32)] * 4, st.integers(0, 1)),
        min_size=0,
        max_size=12,
    ),
    pooled=st.tuples(st.integers(1, 5), st.integers(1, 5)),
    sampling_ratio=st.integers(-1, 3),
    aligned=st.booleans(),
    scale=st.sampled_from([1.0, 0.5, 0.25, 0.125]),
)
def test_forward_exact_on_arbitrary_boxes(height, width, coords, pooled, sampling_ratio, aligned, scale) -> None:
    features = torch.randn(2, 2, height, width, generator=torch.Generator().manual_seed(height * 31 + width))
    rois = torch.tensor([[b, x1, y1, x2, y2] for x1, y1, x2, y2, b in coords], dtype=torch.float32).reshape(-1, 5)
    expected = torchvision_reference(features, rois, pooled, scale, sampling_ratio, aligned)
    actual = roi_align(features, rois, pooled, scale, sampling_ratio, aligned, backend="host")
    assert torch.equal(actual, expected)


def torchvision_reference(features, rois, pooled, scale, sampling_ratio, aligned) -> torch.Tensor:
    """torchvision's CPU op, row by row where it refuses a row: an inverted box with aligned=True and an adaptive
    grid has a negative sample count, which the CPU op cannot allocate and the CUDA op pools to zero."""
    try:
        return torchvision.ops.roi_align(features, rois, pooled, scale, sampling_ratio, aligned)
    except ValueError:
        rows = []
        for roi in rois:
            try:
                rows.append(torchvision.ops.roi_align(features, roi[None], pooled, scale, sampling_ratio, aligned))
            except ValueError:
                assert aligned and sampling_ratio <= 0
                rows.append(features.new_zeros((1, features.shape[1], *_pair(pooled))))
        return torch.cat(rows)


def _pair(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else tuple(size)


def test_inverted_aligned_box_with_adaptive_grid_pools_zero_like_torchvision_cuda() -> None:
    features = torch.ones(1, 1, 4, 4)
    rois = torch.tensor([[0.0, 3.0, 1.0, 1.0, 3.0]])  # x2 < x1
    out = roi_align(features, rois, 2, 1.0, 0, True, backend="host")
    assert torch.equal(out, torch.zeros(1, 1, 2, 2))


def assert_close_relative(actual: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-5) -> None:
    scale = expected.abs().max().clamp_min(1e-12)
    assert ((actual - expected).abs().max() / scale).item() <= rtol


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 2])
def test_backward_matches_torchvision_autograd(aligned: bool, sampling_ratio: int) -> None:
    generator = torch.Generator().manual_seed(7 + sampling_ratio)
    base = torch.randn(2, 3, 11, 9, generator=generator)
    rois = random_rois(generator, 25, batch=2, extent=18.0)
    grad = torch.randn(25, 3, 5, 4, generator=generator)
    grads = []
    for backend in ("torchvision", "host"):
        features = base.clone().requires_grad_(True)
        out = roi_align(features, rois, (5, 4), 0.5, sampling_ratio, aligned, backend=backend)
        out.backward(grad)
        grads.append(features.grad)
    assert_close_relative(grads[1], grads[0])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_rounds_the_fp32_result_once(dtype: torch.dtype) -> None:
    """fp16/bf16 inputs are accumulated in fp32: the output is torchvision's fp32 result rounded once."""
    generator = torch.Generator().manual_seed(3)
    features = torch.randn(2, 4, 12, 12, generator=generator).to(dtype)
    rois = random_rois(generator, 30, batch=2, extent=48.0)
    expected = torchvision.ops.roi_align(features.float(), rois, 7, 0.25, -1, True).to(dtype)
    actual = roi_align(features, rois, 7, 0.25, -1, True, backend="host")
    assert actual.dtype == dtype
    assert torch.equal(actual, expected)

    features.requires_grad_(True)
    roi_align(features, rois, 7, 0.25, -1, True, backend="host").float().sum().backward()
    reference = features.detach().float().requires_grad_(True)
    torchvision.ops.roi_align(reference, rois, 7, 0.25, -1, True).sum().backward()
    assert features.grad.dtype == dtype
    # Summation order differs from torchvision's, so allow the dtype's own rounding, nothing more.
    torch.testing.assert_close(features.grad, reference.grad.to(dtype))


def test_zero_rois_give_an_empty_output_and_zero_gradient() -> None:
    features = torch.randn(1, 3, 8, 8, requires_grad=True)
    out = roi_align(features, torch.zeros(0, 5), 7, backend="host")
    assert out.shape == (0, 3, 7, 7)
    out.sum().backward()
    assert torch.equal(features.grad, torch.zeros_like(features))


def fpn_features(generator: torch.Generator, batch: int, channels: int, image: tuple[int, int]) -> OrderedDict:
    height, width = image
    x = OrderedDict()
    for level in range(4):  # P2..P5, strides 4..32, rounded up like a padded FPN
        stride = 4 * 2**level
        x[str(level)] = torch.randn(batch, channels, -(-height // stride), -(-width // stride), generator=generator)
    x["pool"] = torch.randn(batch, channels, 2, 2, generator=generator)  # filtered out by featmap_names
    return x


def fpn_boxes(generator: torch.Generator, counts: list[int], image: tuple[int, int]) -> list[torch.Tensor]:
    height, width = image
    boxes = []
    for count in counts:
        rois = random_rois(generator, count, batch=1, extent=float(max(height, width)))
        # Box sizes spread over every level: sqrt(area) from ~8 to ~600 pixels.
        size = 8 * 2 ** (torch.rand(count, 1, generator=generator) * 6.3)
        b = rois[:, 1:].clone()
        b[4::5, 2:] = b[4::5, :2] + size[4::5]
        boxes.append(b)
    return boxes


@pytest.mark.parametrize(("output_size", "sampling_ratio"), [(7, 2), (14, 2), ((7, 7), -1)])
def test_multiscale_matches_torchvision_module(output_size, sampling_ratio) -> None:
    generator = torch.Generator().manual_seed(11)
    image = (180, 260)
    x = fpn_features(generator, batch=3, channels=4, image=image)
    boxes = fpn_boxes(generator, [40, 0, 25], image)
    names = ["0", "1", "2", "3"]
    expected = torchvision.ops.MultiScaleRoIAlign(names, output_size, sampling_ratio)(x, boxes, [image] * 3)
    actual = MultiScaleRoIAlign(names, output_size, sampling_ratio, backend="host")(x, boxes, [image] * 3)
    assert torch.equal(actual, expected)


def test_multiscale_aligned_matches_torchvision_per_level_loop() -> None:
    generator = torch.Generator().manual_seed(12)
    image = (128, 96)
    x = fpn_features(generator, batch=2, channels=3, image=image)
    boxes = fpn_boxes(generator, [30, 30], image)
    names = ["0", "1", "2", "3"]
    module = MultiScaleRoIAlign(names, 7, 0, aligned=True, backend="torchvision")
    expected = module(x, boxes, [image] * 2)
    module.backend = "host"
    assert torch.equal(module(x, boxes, [image] * 2), expected)


def test_multiscale_single_feature_map_uses_its_scale() -> None:
    generator = torch.Generator().manual_seed(13)
    image = (64, 64)
    x = fpn_features(generator, batch=1, channels=2, image=image)
    boxes = fpn_boxes(generator, [15], image)
    expected = torchvision.ops.MultiScaleRoIAlign(["1"], 5, 2)(x, boxes, [image])
    assert torch.equal(MultiScaleRoIAlign(["1"], 5, 2, backend="host")(x, boxes, [image]), expected)


def test_multiscale_backward_matches_torchvision_autograd() -> None:
    generator = torch.Generator().manual_seed(14)
    image = (160, 120)
    base = fpn_features(generator, batch=2, channels=3, image=image)
    boxes = fpn_boxes(generator, [30, 20], image)
    names = ["0", "1", "2", "3"]
    grad = torch.randn(50, 3, 7, 7, generator=generator)
    results = []
    for module in (
        torchvision.ops.MultiScaleRoIAlign(names, 7, 2),
        MultiScaleRoIAlign(names, 7, 2, backend="host"),
    ):
        x = OrderedDict((k, v.clone().requires_grad_(k in names)) for k, v in base.items())
        module(x, boxes, [image] * 2).backward(grad)
        results.append([x[k].grad for k in names])
    for expected, actual in zip(*results, strict=True):
        assert_close_relative(actual, expected)


def test_level_mapping_matches_torchvision_at_level_boundaries() -> None:
    """Boxes whose sqrt(area) sits on, and a few ulps either side of, every level boundary (and its 1e-6
    eps shift) land on the same level in the fused kernel as in torchvision's LevelMapper."""
    sides = []
    for k in range(-3, 5):
        boundary = 224.0 * 2.0**k
        for shift in (1.0, 2.0 ** (-1e-6)):
            centre = torch.tensor(boundary * shift, dtype=torch.float32)
            side = centre.clone()
            for _ in range(6):  # walk outwards one ulp at a time in both directions
                sides += [side.item()]
                side = torch.nextafter(side, torch.tensor(float("inf")))
            side = centre.clone()
            for _ in range(6):
                side = torch.nextafter(side, torch.tensor(0.0))
                sides += [side.item()]
    sides_t = torch.tensor(sides, dtype=torch.float32)
    boxes = torch.stack([torch.zeros_like(sides_t), torch.zeros_like(sides_t), sides_t, sides_t], dim=1)
    # Each level's feature map is constant (its level number), so a pooled value reveals the chosen level.
    image = (4096, 4096)
    x = OrderedDict((str(i), torch.full((1, 1, 4096 // 4 // 2**i, 4096 // 4 // 2**i), float(i))) for i in range(4))
    pooled = MultiScaleRoIAlign(list(x), 1, 1, backend="host")(x, [boxes], [image])
    chosen = pooled.flatten().round().to(torch.int64)
    mapper = torchvision.ops.poolers.LevelMapper(2, 5)
    assert torch.equal(chosen, mapper([boxes]))
    assert set(chosen.tolist()) == {0, 1, 2, 3}


def test_nan_level_rois_pool_zero_like_torchvision() -> None:
    """A box with negative area has a NaN level: torchvision pools it from no level (zeros), so do we."""
    generator = torch.Generator().manual_seed(15)
    image = (64, 64)
    x = fpn_features(generator, batch=1, channels=2, image=image)
    boxes = [torch.tensor([[10.0, 10.0, 5.0, 30.0], [5.0, 5.0, 40.0, 40.0]])]
    names = ["0", "1", "2", "3"]
    expected = torchvision.ops.MultiScaleRoIAlign(names, 3, 2)(x, boxes, [image])
    actual = MultiScaleRoIAlign(names, 3, 2, backend="host")(x, boxes, [image])
    assert torch.equal(actual, expected)
    assert actual[0].abs().sum() == 0


def test_scale_inference_matches_torchvision() -> None:
    from kernels.poolers import level_mapping

    generator = torch.Generator().manual_seed(16)
    for image in [(800, 1333), (180, 260), (64, 64), (513, 1025)]:
        x = fpn_features(generator, batch=1, channels=1, image=image)
        features = [x[k] for k in ["0", "1", "2", "3"]]
        scales, mapper = torchvision.ops.poolers._setup_scales(features, [image], 224, 4)
        mapping = level_mapping(features, [image], 224, 4)
        assert list(mapping.scales) == scales
        assert (mapping.k_min, mapping.k_max) == (mapper.k_min, mapper.k_max)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    boxes=st.lists(
        st.tuples(*[st.floats(-100.0, 900.0, allow_nan=False, width=32)] * 4),
        min_size=0,
        max_size=20,
    ),
    sampling_ratio=st.integers(-1, 2),
    output_size=st.sampled_from([1, 3, 7]),
)
def test_multiscale_exact_on_arbitrary_boxes(boxes, sampling_ratio, output_size) -> None:
    """Any boxes, including inverted, degenerate and off-image ones, over a 4-level pyramid."""
    image = (256, 320)
    x = fpn_features(torch.Generator().manual_seed(17), batch=1, channels=2, image=image)
    box_tensor = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    names = ["0", "1", "2", "3"]
    expected = torchvision.ops.MultiScaleRoIAlign(names, output_size, sampling_ratio)(x, [box_tensor], [image])
    actual = MultiScaleRoIAlign(names, output_size, sampling_ratio, backend="host")(x, [box_tensor], [image])
    assert torch.equal(actual, expected)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_conversions_are_exact_over_every_bit_pattern(dtype: torch.dtype) -> None:
    """The host shim's fp16/bf16 conversions (the device uses PTX cvt.rn) round like torch on every finite
    16-bit pattern, subnormals included: each pattern is pooled alone (a round trip) and averaged with a random
    partner (a rounding of a new fp32 value)."""
    patterns = torch.arange(-(2**15), 2**15, dtype=torch.int32).to(torch.int16).view(dtype)
    patterns = patterns[torch.isfinite(patterns)]
    features = patterns.reshape(1, -1, 1, 1)
    partners = patterns[torch.randperm(len(patterns), generator=torch.Generator().manual_seed(0))]
    pairs = torch.stack([patterns, partners], dim=1).reshape(1, -1, 1, 2)
    for inputs, box, sampling_ratio in ((features, [1.0, 1.0], 1), (pairs, [2.0, 1.0], 2)):
        rois = torch.tensor([[0.0, 0.0, 0.0, *box]])
        expected = torchvision.ops.roi_align(inputs.float(), rois, 1, 1.0, sampling_ratio, False).to(dtype)
        actual = roi_align(inputs, rois, 1, 1.0, sampling_ratio, False, backend="host")
        # Bit patterns, so signed zeros count too (-0 pools to +0: the sum starts at +0, as in torchvision).
        assert torch.equal(actual.view(torch.int16), expected.view(torch.int16))
    # Not vacuous: the weighted means of random partners are new values, most of which needed rounding.
    assert (actual.flatten() != partners).float().mean() > 0.5
