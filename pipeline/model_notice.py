"""Say which model runs, and warn once when the bundled (synthetic-only) model meets real footage.

The bundled model was trained on maskstream's synthetic scenes only: on a real camera it misses and mislabels most
objects, and nothing else would tell the user why. Synthetic clips are recognised by the tag `synth` writes into
their container (`synth.marker`); a live source, a remote file or an untagged file counts as real footage.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.redact import redact_text

log = logging.getLogger("maskstream.model")

FETCH_COMMAND = "maskstream weights fetch resnet50_fpn_coco"


def model_label(info: dict[str, Any]) -> str:
    """`resnet50_fpn_coco (maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth)`, `slim_resnet_fpn_light (bundled)`."""
    arch = info.get("arch") or "unknown"
    if info.get("bundled"):
        return f"{arch} (bundled, synthetic scenes)"
    return f"{arch} ({info['weights']})" if info.get("weights") else arch


def warn_if_bundled_on_real_footage(info: dict[str, Any], sources: Sequence[tuple[str, list[str] | None]]) -> bool:
    """`sources`: (id, local files) per source; None for a live one. Logs one warning line; True if it did."""
    if not info.get("bundled"):
        return False
    from synth.marker import is_synthetic_clip

    for source_id, files in sources:
        if files is None or not all(Path(file).is_file() and is_synthetic_clip(file) for file in files):
            log.warning(
                "the bundled model was trained on synthetic scenes only: on real footage (source %r) it misses and "
                "mislabels most objects; for COCO weights run `%s` (model.weights: auto then uses them)",
                redact_text(source_id),
                FETCH_COMMAND,
            )
            return True
    return False
