"""Build a registered architecture and load its weights: the one entry point the rest of the project uses."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torchvision.models.detection import MaskRCNN

from maskrcnn.architectures import ARCHITECTURES, Architecture
from maskrcnn.checkpoints import best_present, checkpoint_by_file_name, checkpoint_for, verify
from maskrcnn.weights import load_state_dict, read_metadata
from pipeline.errors import WeightsError

log = logging.getLogger(__name__)

BUNDLED_WEIGHTS = Path(__file__).parent / "weights" / "maskstream-light-synth.safetensors"
BUNDLED_ARCH = "slim_resnet_fpn_light"
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

    @property
    def bundled(self) -> bool:
        return self.weights is not None and self.weights.resolve() == BUNDLED_WEIGHTS.resolve()

    def describe(self) -> dict[str, Any]:
        """What `stream.started` and the status line say about the model: architecture, weights file name."""
        return {"arch": self.arch, "weights": self.weights.name if self.weights else None, "bundled": self.bundled}


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
    """torchvision's checkpoint for `arch` in torch.hub's cache, if present (`maskstream weights fetch` puts it there)."""
    get_architecture(arch)
    checkpoint = checkpoint_for(arch)
    if checkpoint is None:
        return None
    path = checkpoint.cached_path()
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
    (needs `arch` unless it keeps torchvision's file name), "bundled", "auto" (see `resolve_weights`), or None —
    the bundled model, or with `arch` torchvision's checkpoint from the hub cache.
    `options` go to the architecture's builder (e.g. `min_size`).
    """
    if roi_align not in ROI_ALIGN_BACKENDS:
        raise WeightsError(f"roi_align must be one of {', '.join(ROI_ALIGN_BACKENDS)} (got {roi_align!r})")
    path, arch = resolve_weights(weights, arch)
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


def resolve_weights(weights: str | Path | None, arch: str | None) -> tuple[Path, str | None]:
    """(weights file, architecture or None = from the file's metadata) for `load_model`'s arguments.

    "auto": with `arch`, that architecture's weights; without, the best COCO checkpoint in the cache (v2, then v1),
    else the bundled model. A torchvision checkpoint (in the cache, or a file keeping its official name) is
    checked against the SHA-256 prefix in its name: a corrupt file is refused in one line, never loaded.
    """
    if arch is not None:
        get_architecture(arch)  # an unknown name fails first, listing the known ones
    if weights not in (None, "auto", "bundled"):
        return _weights_file(Path(weights), arch)
    if weights == "bundled" and arch not in (None, BUNDLED_ARCH):
        raise WeightsError(f"the bundled model is {BUNDLED_ARCH!r}, not {arch!r}")
    if weights == "auto" and arch is None:
        best = best_present()
        arch = best.arch if best is not None else BUNDLED_ARCH
    if weights == "bundled" or arch in (None, BUNDLED_ARCH):
        return _bundled(), BUNDLED_ARCH
    return _cached_checkpoint(arch), arch


def _weights_file(path: Path, arch: str | None) -> tuple[Path, str | None]:
    """A file given by path; one that keeps torchvision's official name is checked like a cached one."""
    known = checkpoint_by_file_name(path.name)
    if known is None or not path.is_file():
        return path, arch
    if arch is not None and arch != known.arch:
        raise WeightsError(f"{path}: torchvision's checkpoint of {known.arch!r}, not of {arch!r}")
    verify(path, known)
    return path, known.arch


def _cached_checkpoint(arch: str) -> Path:
    checkpoint = checkpoint_for(arch)
    if checkpoint is None:
        raise WeightsError(f"architecture {arch!r} has no downloadable weights: pass a weights file")
    path = checkpoint.cached_path()
    if not path.is_file():
        raise WeightsError(f"no weights for {arch!r} at {path}: run `maskstream weights fetch {arch}`")
    verify(path, checkpoint)
    return path


def _bundled() -> Path:
    if not BUNDLED_WEIGHTS.is_file():
        raise WeightsError(f"the bundled model is missing: {BUNDLED_WEIGHTS}")
    return BUNDLED_WEIGHTS


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
