"""`maskstream weights list` and `maskstream weights fetch NAME [--to DIR]`: real COCO weights in one command.

`list` shows every architecture, where its weights are looked for, whether they are there and intact, and which
model `maskstream run` would use now (`model.weights: auto`); it exits 1 when a cached file fails its checksum.
`fetch` downloads torchvision's official checkpoint into torch.hub's cache (or `--to DIR`), verified before it lands.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pipeline.errors import WeightsError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "weights",
        help="list and fetch model weights (torchvision's COCO checkpoints)",
        description="List the registered architectures and their weights; download torchvision's COCO checkpoints.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="architectures, where their weights are, which one `run` would use")
    listing.set_defaults(func=list_weights)
    fetch = actions.add_parser("fetch", help="download an architecture's official checkpoint (resumable, verified)")
    fetch.add_argument("name", metavar="NAME", help="architecture, e.g. resnet50_fpn_coco (see `weights list`)")
    fetch.add_argument("--to", type=Path, metavar="DIR", help="download here instead of torch.hub's cache")
    fetch.add_argument("--no-progress", action="store_true", help="no progress bar")
    fetch.set_defaults(func=fetch_weights)


def list_weights(args: argparse.Namespace) -> int:
    from maskrcnn.architectures import ARCHITECTURES
    from maskrcnn.checkpoints import cache_dir, cached_state, checkpoint_for
    from maskrcnn.factory import BUNDLED_WEIGHTS, resolve_weights

    corrupt = 0
    print(f"cache: {cache_dir()}  (torch.hub; set TORCH_HOME to move it)")
    for name in sorted(ARCHITECTURES):
        spec = ARCHITECTURES[name]
        print(f"{name}: {spec.description}")
        checkpoint = checkpoint_for(name)
        if checkpoint is None:
            state = "present" if BUNDLED_WEIGHTS.is_file() else "MISSING"
            print(f"  bundled  {BUNDLED_WEIGHTS}  {state}, {_megabytes(BUNDLED_WEIGHTS)}")
            continue
        print(f"  source   {checkpoint.url}")
        state = cached_state(checkpoint)
        if not state.present:
            print(f"  cached   {state.path}  not present (maskstream weights fetch {name})")
        elif state.checksum_ok:
            print(f"  cached   {state.path}  present, {state.size / 1e6:.1f} MB, checksum ok")
        else:
            corrupt += 1
            print(
                f"  cached   {state.path}  present, {state.size / 1e6:.1f} MB, CHECKSUM MISMATCH "
                f"(expected sha256 {checkpoint.sha256_prefix}...; `run` refuses it: fetch it again)"
            )
    try:
        path, arch = resolve_weights("auto", None)
        print(f"`maskstream run` (model.weights: auto) would use: {arch} ({path})")
    except WeightsError as exc:
        print(f"`maskstream run` (model.weights: auto) would refuse to start: {exc}")
    return 1 if corrupt else 0


def fetch_weights(args: argparse.Namespace) -> int:
    from maskrcnn.checkpoints import checkpoint_for, sha256_of
    from maskrcnn.download import download
    from maskrcnn.factory import BUNDLED_WEIGHTS, get_architecture

    get_architecture(args.name)  # unknown name: one line listing the known ones
    checkpoint = checkpoint_for(args.name)
    if checkpoint is None:
        print(f"{args.name} is the bundled model ({BUNDLED_WEIGHTS}): nothing to fetch")
        return 0
    target = (args.to / checkpoint.file_name) if args.to is not None else checkpoint.cached_path()
    if target.is_file() and sha256_of(target).startswith(checkpoint.sha256_prefix):
        print(f"already present and intact: {target}")
    else:
        print(f"fetching {checkpoint.url}\n      to {target}", flush=True)
        download(checkpoint.url, target, checkpoint.sha256_prefix, progress=not args.no_progress)
        print(f"saved {target} ({target.stat().st_size / 1e6:.1f} MB, sha256 {checkpoint.sha256_prefix}... ok)")
    if args.to is None:
        print("`maskstream run` picks it up (model.weights: auto); `maskstream weights list` shows which model it uses")
    else:
        print(f"use it with: maskstream run CONFIG --weights {target}")
    return 0


def _megabytes(path: Path) -> str:
    return f"{path.stat().st_size / 1e6:.1f} MB" if path.is_file() else "-"
