"""Mask R-CNN model factory: registered architectures, safetensors weights, the bundled model."""
