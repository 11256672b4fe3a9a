"""Output paths, checked before the first frame: a run that cannot write its outputs fails at once (exit 2, one
line naming the option), not after decoding the whole clip. Light on purpose (no av, cv2, sqlite3): the CLI calls
it right after the config is validated."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import config_error

if TYPE_CHECKING:
    from pipeline.config import PipelineConfig

# containers that take our H.264 (or MPEG-4 part 2) stream; tests/test_sink_paths.py writes each for real
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mkv", ".mov", ".avi")


def annotated_video_path(template: str, source_id: str, several_sources: bool) -> Path:
    """`{source_id}` in the template is replaced; else, with several sources, the id is appended to the stem."""
    if "{source_id}" in template:
        return Path(template.format(source_id=source_id))
    path = Path(template)
    return path.with_name(f"{path.stem}-{source_id}{path.suffix}") if several_sources else path


def check_output_paths(cfg: PipelineConfig) -> None:
    """Raise a one-line ConfigError for the first output (JSON Lines, annotated video, MOT folder, Redis spool)
    that cannot be written. Creates nothing."""
    if cfg.sinks.jsonl is not None:
        check_writable_file("sinks.jsonl", Path(cfg.sinks.jsonl))
    if cfg.sinks.annotate:
        for source in cfg.sources:
            path = annotated_video_path(cfg.sinks.annotate, source.id, len(cfg.sources) > 1)
            if path.suffix.lower() not in VIDEO_EXTENSIONS:
                raise config_error(
                    "sinks.annotate",
                    f"{path}: unknown video file extension {path.suffix or '(none)'!r}; "
                    f"use one of {', '.join(VIDEO_EXTENSIONS)}",
                )
            check_writable_file("sinks.annotate", path)
    if cfg.sinks.mot_out is not None:
        check_writable_dir("sinks.mot_out", Path(cfg.sinks.mot_out))
    if cfg.redis is not None and cfg.redis.spool_path is not None:
        check_writable_file("redis.spool_path", Path(cfg.redis.spool_path))


def check_writable_file(option: str, path: Path) -> None:
    if path.is_dir():
        raise config_error(option, f"{path}: is a directory, not a file")
    if path.exists():
        if not os.access(path, os.W_OK):
            raise config_error(option, f"{path}: not writable (permission denied)")
        return
    _check_creatable(option, path.parent, path)


def check_writable_dir(option: str, path: Path) -> None:
    if path.exists():
        if not path.is_dir():
            raise config_error(option, f"{path}: exists and is not a directory")
        if not os.access(path, os.W_OK | os.X_OK):
            raise config_error(option, f"{path}: not writable (permission denied)")
        return
    _check_creatable(option, path.parent, path)


def _check_creatable(option: str, folder: Path, target: Path) -> None:
    """`target` does not exist: its nearest existing ancestor must be a folder we may create entries in."""
    ancestor = folder.absolute()
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise config_error(option, f"{target}: cannot be created ({ancestor} is not a directory)")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise config_error(option, f"{target}: cannot be created in {ancestor} (permission denied)")
