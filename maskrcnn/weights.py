"""Reading and writing weights without ever unpickling untrusted data.

Our format: a safetensors file whose string metadata carries `maskstream` = JSON (architecture, class names,
input size, training recipe, dataset seeds, versions). torchvision's `.pth` files load with
`torch.load(weights_only=True)`, which refuses arbitrary pickled objects.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from pipeline.errors import WeightsError

METADATA_KEY = "maskstream"


def save_weights(path: str | Path, state_dict: dict[str, torch.Tensor], metadata: dict[str, Any]) -> Path:
    """Write a state dict and its metadata as safetensors (tensors made contiguous, shared storage split)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {name: tensor.detach().to("cpu").contiguous().clone() for name, tensor in state_dict.items()}
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(tensors, str(tmp), metadata={METADATA_KEY: json.dumps(metadata, sort_keys=True)})
    tmp.replace(path)  # atomic: a crash never leaves a half-written weights file behind
    return path


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata of one of our safetensors files ({} when it has none)."""
    from safetensors import safe_open

    path = _existing(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = (handle.metadata() or {}).get(METADATA_KEY)
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path}: not a readable safetensors file ({_describe(path)}): {exc}") from None
    if raw is None:
        return {}
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise WeightsError(f"{path}: corrupt maskstream metadata: {exc}") from None


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a `.safetensors` file, or of a torchvision-style `.pth`/`.pt` state dict (weights_only)."""
    path = _existing(path)
    if path.suffix in {".pth", ".pt"}:
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises several types for truncated or malicious files
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise WeightsError(f"{path}: cannot load as a weights-only state dict: {first_line}") from None
        if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
            state = state["model"]  # checkpoints that wrap the state dict
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise WeightsError(f"{path}: expected a state dict of tensors")
        return state
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path}: not a readable safetensors file ({_describe(path)}): {exc}") from None


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    return path


def _describe(path: Path) -> str:
    """Name the likely problem: a pickle (torch.save) renamed, or a truncated download."""
    with path.open("rb") as handle:
        head = handle.read(8)
    if head[:2] in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05") or zipfile.is_zipfile(path):
        return "it looks like a pickle/torch.save file; maskstream never unpickles — convert it to safetensors"
    if len(head) < 8:
        return "the file is truncated"
    return "the file is truncated or not safetensors"
