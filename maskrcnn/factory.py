"""Build a registered architecture and load its weights: the one entry point the rest of the project uses."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torchvision.models.detection import MaskRCNN

from maskrcnn.architectures import ARCHITECTURES, Architecture
from maskrcnn.weights import load_state_dict, read_metadata
from pipeline.errors import WeightsError

log = logging.getLogger(__name__)

BUNDLED_WEIGHTS = Path(__file__).parent / "weights" / "maskstream-light-synth.safetensors"
ROI_ALIGN_BACKENDS = ("auto", "torchvision", "cupy", "host")


@dataclass
class LoadedModel:
    model: MaskRCNN  # eval mode, on its device
    arch: str
    class_names: tuple[str, ...]  # label id -> name; 0 is the background
    metadata: dict[str, Any] = field(default_factory=dict)
    weights: Path | None = None
    roi_align: str = "torchvision"  # the RoIAlign backend actually in use

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def list_architectures() -> list[str]:
    return sorted(ARCHITECTURES)


def get_architecture(arch: str) -> Architecture:
    try:
        return ARCHITECTURES[arch]
    except KeyError:
        raise WeightsError(f"unknown architecture {arch!r}; choose one of: {', '.join(list_architectures())}") from None


def build_model(arch: str, num_classes: int | None = None, **options: Any) -> MaskRCNN:
    """A registered architecture with random weights (`num_classes` counts the background)."""
    spec = get_architecture(arch)
    return spec.build(num_classes or len(spec.default_classes), **options)


def find_hub_weights(arch: str) -> Path | None:
    """torchvision's checkpoint for `arch` in torch.hub's cache, if the user has it (we never download)."""
    spec = get_architecture(arch)
    if spec.hub_file is None:
        return None
    path = Path(torch.hub.get_dir()) / "checkpoints" / spec.hub_file
    return path if path.is_file() else None


def load_model(
    weights: str | Path | None = None,
    arch: str | None = None,
    device: str | torch.device = "cpu",
    roi_align: str = "auto",
    **options: Any,
) -> LoadedModel:
    """Load a model for inference.

    weights: our safetensors file (architecture and classes come from its metadata), a torchvision `.pth`
    (needs `arch`), or None — the bundled model, or with `arch` torchvision's checkpoint from the hub cache.
    `options` go to the architecture's builder (e.g. `min_size`).
    """
    if roi_align not in ROI_ALIGN_BACKENDS:
        raise WeightsError(f"roi_align must be one of {', '.join(ROI_ALIGN_BACKENDS)} (got {roi_align!r})")
    path = _resolve_weights(weights, arch)
    metadata = read_metadata(path) if path.suffix == ".safetensors" else {}
    file_arch = metadata.get("arch")
    if arch and file_arch and arch != file_arch:
        raise WeightsError(f"{path}: weights are for architecture {file_arch!r}, not {arch!r}")
    arch = arch or file_arch
    if arch is None:
        raise WeightsError(f"{path}: no architecture in the file's metadata; pass arch= (e.g. resnet50_fpn_coco)")
    spec = get_architecture(arch)
    class_names = tuple(metadata.get("class_names") or spec.default_classes)

    model = build_model(arch, len(class_names), **options)
    _load_into(model, load_state_dict(path), path, arch)
    model.eval().to(device)
    backend = _apply_roi_align(model, roi_align)
    return LoadedModel(model, arch, class_names, metadata, path, backend)


def _resolve_weights(weights: str | Path | None, arch: str | None) -> Path:
    if weights is not None:
        return Path(weights)
    if arch is None or arch == "slim_resnet_fpn_light":
        if not BUNDLED_WEIGHTS.is_file():
            raise WeightsError(f"the bundled model is missing: {BUNDLED_WEIGHTS}")
        return BUNDLED_WEIGHTS
    hub = find_hub_weights(arch)
    if hub is None:
        expected = Path(torch.hub.get_dir()) / "checkpoints" / (get_architecture(arch).hub_file or "?")
        raise WeightsError(f"no weights for {arch!r}: pass a file, or place torchvision's checkpoint at {expected}")
    return hub


def _load_into(model: MaskRCNN, state: dict[str, torch.Tensor], path: Path, arch: str) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        sample = ", ".join((missing or unexpected)[:3])
        raise WeightsError(
            f"{path}: not weights of architecture {arch!r} "
            f"({len(missing)} missing, {len(unexpected)} unexpected tensors, e.g. {sample})"
        )
    for name, tensor in state.items():
        if tensor.shape != expected[name].shape:
            hint = " (another class count?)" if "predictor" in name else ""
            raise WeightsError(
                f"{path}: tensor {name} has shape {tuple(tensor.shape)}, "
                f"architecture {arch!r} expects {tuple(expected[name].shape)}{hint}"
            )
    model.load_state_dict(state)


def _apply_roi_align(model: MaskRCNN, backend: str) -> str:
    on_cuda = next(model.parameters()).is_cuda
    if backend == "auto":
        if not on_cuda:
            return "torchvision"
        try:
            import cupy  # noqa: F401
        except ImportError:
            log.info("CuPy not installed: using torchvision's RoIAlign on CUDA")
            return "torchvision"
        backend = "cupy"
    if backend == "torchvision":
        return backend
    from kernels import swap_poolers  # lazy: CuPy/host build only when asked for

    swap_poolers(model, backend=backend)
    return backend
