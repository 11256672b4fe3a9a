"""`maskstream synth`: render a clip (video + COCO/MOT/MOTS ground truth) or a COCO training set of stills."""

from __future__ import annotations

import argparse
import time

from pipeline.errors import ConfigError
from synth.params import DATASET_MODES, MODES, parse_size


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="render synthetic clips or training stills with exact ground truth",
        description=(
            "Render a deterministic synthetic clip (OUT_DIR/video.mp4, annotations.json, gt/gt.txt, gt/gt_masks.txt) "
            "or, with --dataset, a COCO training set of stills (OUT_DIR/images/*.jpg, annotations.json)."
        ),
    )
    parser.add_argument("out_dir", metavar="OUT_DIR", help="output directory (created; must be empty unless --force)")
    parser.add_argument(
        "--mode",
        default=None,
        help=f"scene type: {', '.join(MODES)} ({', '.join(DATASET_MODES)} with --dataset; default surveillance, both with --dataset)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="random seed; same arguments give identical output (default 0)"
    )
    parser.add_argument("--frames", type=int, default=None, help="clip length in frames (default 300)")
    parser.add_argument("--size", default="640x360", help="frame size WIDTHxHEIGHT, even numbers (default 640x360)")
    parser.add_argument("--fps", type=float, default=None, help="clip frame rate (default 30)")
    parser.add_argument(
        "--dataset", action="store_true", help="write a COCO set of stills from many short scenes instead of one clip"
    )
    parser.add_argument("--images", type=int, default=None, help="number of stills with --dataset (default 1000)")
    parser.add_argument(
        "--force", action="store_true", help="write into a non-empty OUT_DIR, replacing earlier outputs"
    )
    parser.add_argument(
        "--zones",
        metavar="FILE",
        default=None,
        help="YAML of zones/lines (as under a source): also write the true zone/line events, events_gt.jsonl",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from synth.clip import render_clip
    from synth.dataset import render_dataset

    size = parse_size(args.size)
    started = time.perf_counter()
    if args.dataset:
        if args.zones:
            raise ConfigError("--zones writes a clip's true events; stills (--dataset) have none")
        if args.frames is not None or args.fps is not None:
            raise ConfigError("--frames and --fps describe a clip; with --dataset give --images")
        mode = args.mode or "both"
        images = 1000 if args.images is None else args.images
        out = render_dataset(
            args.out_dir, images=images, mode=mode, seed=args.seed, size=size, force=args.force, progress=True
        )
        count = f"{images} images"
    else:
        if args.images is not None:
            raise ConfigError("--images is for --dataset; a clip's length is --frames")
        from pipeline.config.zones import load_regions

        regions = load_regions(args.zones) if args.zones else None
        mode = args.mode or "surveillance"
        if mode == "both":
            raise ConfigError("mode 'both' is for --dataset; a clip is either surveillance or drone")
        frames = 300 if args.frames is None else args.frames
        fps = 30.0 if args.fps is None else args.fps
        out = render_clip(
            args.out_dir,
            mode=mode,
            seed=args.seed,
            frames=frames,
            size=size,
            fps=fps,
            force=args.force,
            regions=regions,
        )
        count = f"{frames} frames"
    print(f"wrote {count} ({mode}, seed {args.seed}) to {out} in {time.perf_counter() - started:.1f} s")
    return 0
