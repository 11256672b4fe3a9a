"""Mask R-CNN model factory: registered architectures, safetensors weights, the bundled model."""

from maskrcnn.factory import (
    BUNDLED_WEIGHTS,
    LoadedModel,
    build_model,
    find_hub_weights,
    get_architecture,
    list_architectures,
    load_model,
)
from maskrcnn.weights import load_state_dict, read_metadata, save_weights

__all__ = [
    "BUNDLED_WEIGHTS",
    "LoadedModel",
    "build_model",
    "find_hub_weights",
    "get_architecture",
    "list_architectures",
    "load_model",
    "load_state_dict",
    "read_metadata",
    "save_weights",
]
