"""Build checks of roi_align.cu (NVRTC for sm_80/sm_90, nvcc when present), the shared launch plans, the
host build's cache, bad-input errors and the model integration helper."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from kernels import MultiScaleRoIAlign, roi_align, swap_poolers
from kernels.cupy_backend import cupy_available
from kernels.host import build_host_library
from kernels.launch import (
    THREADS_PER_BLOCK,
    DevicePointer,
    LevelMapping,
    PoolGeometry,
    plan_backward,
    plan_forward,
    plan_multilevel_backward,
    plan_multilevel_forward,
)
from kernels.nvrtc import compile_for
from kernels.source import CUDA_SOURCE, HOST_SHIM, KERNEL_DIR, NVRTC_OPTIONS


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_nvrtc_compiles_without_errors_or_warnings(arch: str) -> None:
    pytest.importorskip("cuda.bindings.nvrtc", reason="cuda.bindings comes with torch's CUDA wheels")
    result = compile_for(arch)
    assert result.ok, result.log
    assert result.log == "", result.log
    assert result.cubin.startswith(b"\x7fELF")  # a cubin, as the CuPy backend loads it


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not installed")
def test_nvcc_compiles_for_sm90_without_warnings_or_spills(tmp_path: Path) -> None:
    options = [o for o in NVRTC_OPTIONS]
    result = subprocess.run(
        [
            "nvcc",
            "-arch=sm_90",
            "-c",
            "-x",
            "cu",
            str(CUDA_SOURCE),
            "-o",
            str(tmp_path / "roi_align.o"),
            *options,
            "-Xptxas",
            "--warn-on-spills",  # the launch bounds must not cost register spills
            "-Werror",
            "all-warnings",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def kernel_signatures() -> dict[str, list[str]]:
    """Every extern "C" entry point's parameter kinds ("ptr", "int", "float"), from the preprocessed source."""
    expanded = subprocess.run(
        ["g++", "-E", "-P", "-x", "c++", "-include", str(HOST_SHIM), str(CUDA_SOURCE)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    signatures = {}
    for name, params in re.findall(r'extern "C"\s+void\s+(roi_align_\w+)\s*\(([^)]*)\)', expanded):
        kinds = []
        for param in params.split(","):
            param = param.strip()
            kinds.append("ptr" if "*" in param else "float" if param.startswith("float") else "int")
        signatures[name] = kinds
    return signatures


def arg_kind(arg: object) -> str:
    if isinstance(arg, DevicePointer):
        return "ptr"
    if isinstance(arg, np.float32):
        return "float"
    assert isinstance(arg, np.int32), f"{arg!r} would be passed as 64 bits by CuPy"
    return "int"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_launch_plans_match_the_kernel_signatures(dtype: torch.dtype) -> None:
    """The one argument list both backends launch has the widths and order the CUDA entry points declare."""
    signatures = kernel_signatures()
    assert len(signatures) == 12
    features = torch.zeros(2, 3, 8, 8, dtype=dtype)
    rois = torch.zeros(4, 5)
    output = torch.zeros(4, 3, 7, 7, dtype=dtype)
    grad = torch.zeros(2, 3, 8, 8)
    geometry = PoolGeometry(7, 7, 2, False)
    mapping = LevelMapping((0.25, 0.125), 2, 3, 224.0, 4)
    plans = [
        plan_forward(features, rois, output, 0.25, geometry),
        plan_backward(output, rois, grad, 0.25, geometry),
        plan_multilevel_forward([features, features], rois, output, mapping, geometry),
        plan_multilevel_backward(output, rois, [grad, grad], mapping, geometry),
    ]
    for plan in plans:
        assert plan is not None
        assert [arg_kind(a) for a in plan.args] == signatures[plan.kernel], plan.kernel
        assert plan.block == (256, 1, 1)
        assert plan.grid[0] * plan.block[0] >= output.numel()


def test_launch_block_size_matches_the_kernels_launch_bounds() -> None:
    """A block larger than __launch_bounds__ allows would fail to launch on the GPU (not on the host)."""
    declared = re.search(r"#define MS_THREADS_PER_BLOCK (\d+)", CUDA_SOURCE.read_text())
    assert declared and int(declared.group(1)) == THREADS_PER_BLOCK


def test_zero_work_gives_no_launch() -> None:
    empty = torch.zeros(0, 3, 7, 7)
    assert plan_forward(torch.zeros(1, 3, 8, 8), torch.zeros(0, 5), empty, 1.0, PoolGeometry(7, 7, 2, False)) is None


@pytest.mark.slow
def test_host_library_is_cached_and_rebuilt_when_sources_change(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MASKSTREAM_KERNEL_BUILD_DIR", str(tmp_path))
    first = build_host_library()
    assert first.parent == tmp_path and first.exists()
    assert build_host_library() == first  # cached: same hash, no rebuild
    monkeypatch.setattr("kernels.host.HOST_CXXFLAGS", ("-O1", "-ffp-contract=off", "-std=c++17", "-shared", "-fPIC"))
    second = build_host_library()
    assert second != first  # different flags: a different build
    assert second.exists() and not first.exists()  # and the stale one is removed


def test_default_build_dir_is_git_ignored() -> None:
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", str(KERNEL_DIR / "_build" / "x.so")], cwd=KERNEL_DIR, check=False
    )
    assert ignored.returncode == 0


# --- bad input --------------------------------------------------------------------------------------------


def test_wrong_dtype_is_rejected_with_the_supported_list() -> None:
    with pytest.raises(TypeError, match=r"float64.*float32, float16, bfloat16"):
        roi_align(torch.zeros(1, 1, 4, 4, dtype=torch.float64), torch.zeros(1, 5), 2, backend="host")
    with pytest.raises(TypeError, match="boxes must be floating point"):
        roi_align(torch.zeros(1, 1, 4, 4), torch.zeros(1, 5, dtype=torch.int64), 2, backend="host")


def test_wrong_shapes_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"shape \(N, C, H, W\), got \(1, 4, 4\)"):
        roi_align(torch.zeros(1, 4, 4), torch.zeros(1, 5), 2, backend="host")
    with pytest.raises(ValueError, match=r"\(K, 5\).*got \(3, 4\)"):
        roi_align(torch.zeros(1, 1, 4, 4), torch.zeros(3, 4), 2, backend="host")
    with pytest.raises(ValueError, match=r"boxes\[1\] must be a \(Ki, 4\) tensor"):
        roi_align(torch.zeros(2, 1, 4, 4), [torch.zeros(1, 4), torch.zeros(1, 5)], 2, backend="host")
    with pytest.raises(ValueError, match="output_size"):
        roi_align(torch.zeros(1, 1, 4, 4), torch.zeros(1, 5), (0, 2), backend="host")


def test_wrong_device_or_backend_is_rejected() -> None:
    with pytest.raises(ValueError, match="backend 'cupy' needs CUDA tensors"):
        roi_align(torch.zeros(1, 1, 4, 4), torch.zeros(1, 5), 2, backend="cupy")
    with pytest.raises(ValueError, match="unknown backend 'gpu'"):
        roi_align(torch.zeros(1, 1, 4, 4), torch.zeros(1, 5), 2, backend="gpu")
    with pytest.raises(ValueError, match="unknown backend"):
        MultiScaleRoIAlign(["0"], 7, 2, backend="fast")


def test_non_contiguous_input_is_converted() -> None:
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(1, 6, 9, 9, generator=generator).transpose(2, 3)  # a non-contiguous view
    rois = torch.tensor([[0.0, 1.0, 1.0, 7.0, 6.0], [0.0, 2.0, 0.5, 8.0, 3.0]]).t().contiguous().t()
    assert not features.is_contiguous() and not rois.is_contiguous()
    expected = torchvision.ops.roi_align(features.contiguous(), rois.contiguous(), 3, 1.0, 2)
    assert torch.equal(roi_align(features, rois, 3, 1.0, 2, backend="host"), expected)


def test_more_elements_than_int32_indexing_is_rejected_before_any_copy() -> None:
    huge = torch.zeros(1, 1, 1, 1).expand(2, 2**14, 2**9, 2**8)  # 2^32 elements, no memory behind them
    with pytest.raises(ValueError, match="32-bit ints"):
        roi_align(huge, torch.zeros(1, 5), 7, backend="host")
    rois = torch.zeros(1, 5).expand(2**20, 5)
    with pytest.raises(ValueError, match=r"the output has .* elements"):
        roi_align(torch.zeros(1, 2**8, 2, 2), rois, 7, backend="host")


def test_out_of_range_batch_index_pools_nan_instead_of_reading_garbage() -> None:
    rois = torch.tensor([[0.0, 0.0, 0.0, 3.0, 3.0], [5.0, 0.0, 0.0, 3.0, 3.0], [-1.0, 0.0, 0.0, 3.0, 3.0]])
    out = roi_align(torch.ones(2, 1, 4, 4), rois, 2, backend="host")
    assert torch.equal(out[0], torch.ones(1, 2, 2))
    assert out[1:].isnan().all()


def test_mismatched_feature_maps_are_rejected() -> None:
    x = OrderedDict([("0", torch.zeros(1, 4, 16, 16)), ("1", torch.zeros(1, 3, 8, 8))])
    with pytest.raises(ValueError, match=r"feature map '1'.*N, C and device must match"):
        MultiScaleRoIAlign(["0", "1"], 7, 2, backend="host")(x, [torch.zeros(1, 4)], [(64, 64)])
    with pytest.raises(ValueError, match="none of the feature maps"):
        MultiScaleRoIAlign(["p2"], 7, 2, backend="host")(x, [torch.zeros(1, 4)], [(64, 64)])


def test_levels_of_another_dtype_are_converted_to_the_first_levels() -> None:
    generator = torch.Generator().manual_seed(2)
    x = OrderedDict([("0", torch.randn(1, 2, 16, 16, generator=generator)), ("1", torch.randn(1, 2, 8, 8))])
    mixed = OrderedDict([("0", x["0"]), ("1", x["1"].half())])
    boxes = [torch.tensor([[0.0, 0.0, 60.0, 60.0], [1.0, 2.0, 9.0, 7.0]])]
    pool = MultiScaleRoIAlign(["0", "1"], 3, 2, backend="host")
    expected = pool(OrderedDict([("0", x["0"]), ("1", x["1"].half().float())]), boxes, [(64, 64)])
    actual = pool(mixed, boxes, [(64, 64)])
    assert actual.dtype == torch.float32
    assert torch.equal(actual, expected)


# --- integration --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_swap_poolers_replaces_both_poolers_keeping_their_settings() -> None:
    model = torchvision.models.detection.maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=3)
    swap_poolers(model, backend="host")
    box, mask = model.roi_heads.box_roi_pool, model.roi_heads.mask_roi_pool
    assert isinstance(box, MultiScaleRoIAlign) and isinstance(mask, MultiScaleRoIAlign)
    assert (box.output_size, box.sampling_ratio, box.featmap_names) == ((7, 7), 2, ["0", "1", "2", "3"])
    assert (mask.output_size, mask.backend) == ((14, 14), "host")
    swap_poolers(model, backend="host")  # idempotent
    assert model.roi_heads.box_roi_pool is box
    swap_poolers(model, backend="torchvision")  # torchvision's own modules back, same settings
    restored = model.roi_heads.mask_roi_pool
    assert type(restored) is torchvision.ops.MultiScaleRoIAlign
    assert (restored.output_size, restored.sampling_ratio, restored.featmap_names) == (
        (14, 14),
        2,
        ["0", "1", "2", "3"],
    )
    swap_poolers(model, backend="auto")  # a CPU model: auto keeps torchvision's
    assert type(model.roi_heads.box_roi_pool) is torchvision.ops.MultiScaleRoIAlign
    with pytest.raises(ValueError, match="unknown backend"):
        swap_poolers(model, backend="triton")


@pytest.mark.skipif(cupy_available(), reason="checks the error on machines without CuPy/GPU")
def test_swap_poolers_to_cupy_fails_early_without_cupy_or_gpu() -> None:
    model = torchvision.models.detection.maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=3)
    with pytest.raises((RuntimeError, ValueError), match=r"CuPy|CUDA"):
        swap_poolers(model, backend="cupy")
