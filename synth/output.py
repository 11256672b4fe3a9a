"""Where outputs go: refuse to mix a new clip or dataset into a directory that already holds something."""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import ConfigError


def prepare_out_dir(out_dir: str | Path, *, force: bool) -> Path:
    path = Path(out_dir)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"output {str(path)!r} exists and is not a directory")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise ConfigError(f"output directory {str(path)!r} is not empty (pass --force / force=True to overwrite)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create output directory {str(path)!r}: {exc.strerror}") from None
    return path
