"""Training and COCO evaluation of the registered Mask R-CNN architectures."""
