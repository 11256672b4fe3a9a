"""torchvision's COCO checkpoints: where they come from, where they are cached, whether a cached file is intact.

The URL and the SHA-256 prefix come from torchvision's weights enums (`Architecture.torchvision_weights`): the
prefix is the part of the file name after the last `-` (`maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth`), the convention
torch.hub checks too. Files live in torch.hub's cache (`$TORCH_HOME/hub/checkpoints`), so torchvision itself finds
what `maskstream weights fetch` downloaded, and we find what torchvision downloaded.

`MASKSTREAM_CHECKPOINT_URLS` (JSON, `{"arch": "url", ...}`) replaces an architecture's URL — for an internal mirror,
and for the tests' local server. The file name of the replacement URL must carry its own SHA-256 prefix.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from maskrcnn.architectures import ARCHITECTURES
from pipeline.errors import WeightsError

URLS_ENV = "MASKSTREAM_CHECKPOINT_URLS"
# What `model.weights: auto` prefers, best first (COCO mask AP 41.8, then 34.6); else the bundled model.
AUTO_ORDER = ("resnet50_fpn_v2_coco", "resnet50_fpn_coco")
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{6,64})\.")  # torch.hub's convention (its HASH_REGEX, stricter length)


@dataclass(frozen=True)
class Checkpoint:
    arch: str
    url: str

    @property
    def file_name(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def sha256_prefix(self) -> str:
        match = _HASH_IN_NAME.search(self.file_name)
        if match is None:
            raise WeightsError(f"{self.url}: the file name carries no SHA-256 prefix (`name-<hex>.pth`)")
        return match.group(1)

    def cached_path(self) -> Path:
        return cache_dir() / self.file_name


@dataclass(frozen=True)
class CachedState:
    """What is on disk for one checkpoint."""

    path: Path
    present: bool
    size: int = 0
    checksum_ok: bool | None = None  # None: not checked (absent)


def cache_dir() -> Path:
    """torch.hub's checkpoint folder (honours TORCH_HOME and XDG_CACHE_HOME, as torchvision does)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def checkpoint_for(arch: str) -> Checkpoint | None:
    """The downloadable checkpoint of a registered architecture; None for ours (bundled, nothing to download)."""
    spec = ARCHITECTURES[arch]
    if spec.torchvision_weights is None:
        return None
    url = _url_overrides().get(arch, spec.torchvision_weights.url)
    return Checkpoint(arch, url)


def checkpoint_by_file_name(name: str) -> Checkpoint | None:
    """The checkpoint whose file this is (a copy fetched with `--to DIR` keeps its name), if any."""
    for arch in ARCHITECTURES:
        checkpoint = checkpoint_for(arch)
        if checkpoint is not None and checkpoint.file_name == name:
            return checkpoint
    return None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def cached_state(checkpoint: Checkpoint) -> CachedState:
    path = checkpoint.cached_path()
    if not path.is_file():
        return CachedState(path, present=False)
    return CachedState(path, True, path.stat().st_size, sha256_of(path).startswith(checkpoint.sha256_prefix))


def verify(path: Path, checkpoint: Checkpoint) -> None:
    """Refuse a file whose SHA-256 does not start with the prefix in its official name (truncated, tampered)."""
    digest = sha256_of(path)
    if not digest.startswith(checkpoint.sha256_prefix):
        raise WeightsError(
            f"{path}: checksum mismatch (sha256 {digest[:12]}..., expected {checkpoint.sha256_prefix}...): "
            f"delete it and run `maskstream weights fetch {checkpoint.arch}`"
        )


def best_present() -> Checkpoint | None:
    """The best COCO checkpoint in the cache (v2, then v1) — present, not yet verified."""
    for arch in AUTO_ORDER:
        checkpoint = checkpoint_for(arch)
        if checkpoint is not None and checkpoint.cached_path().is_file():
            return checkpoint
    return None


def _url_overrides() -> dict[str, str]:
    raw = os.environ.get(URLS_ENV)
    if not raw:
        return {}
    try:
        urls = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise WeightsError(f"{URLS_ENV}: not JSON ({exc.msg})") from None
    if not isinstance(urls, dict) or not all(isinstance(v, str) for v in urls.values()):
        raise WeightsError(f'{URLS_ENV}: expected {{"arch": "url", ...}}')
    unknown = sorted(set(urls) - set(ARCHITECTURES))
    if unknown:
        raise WeightsError(
            f"{URLS_ENV}: unknown architecture {unknown[0]!r}; known: {', '.join(sorted(ARCHITECTURES))}"
        )
    return urls
