"""How a maskstream synthetic clip says what it is: a `comment` tag in its MP4 container.

The writer (`synth.video`) stamps every clip it encodes; the pipeline reads the tag to tell our synthetic clips from
real footage (the bundled model was trained on synthetic scenes only, so it warns when it meets anything else). A
container tag travels with the file when it is copied or renamed, unlike a sidecar; a clip re-encoded by another
tool loses it, and is then treated as real footage (a warning too many, never one too few).
"""

from __future__ import annotations

from pathlib import Path

MARKER_PREFIX = "maskstream-synth"


def marker_text(generator_version: str) -> str:
    return f"{MARKER_PREFIX} {generator_version}"


def is_synthetic_clip(path: str | Path) -> bool:
    """True when `path` is a video file stamped by `synth.video` (False for anything unreadable or untagged)."""
    import av

    try:
        with av.open(str(path), mode="r") as container:
            return str(container.metadata.get("comment", "")).startswith(MARKER_PREFIX)
    except (av.error.FFmpegError, OSError, ValueError):
        return False
