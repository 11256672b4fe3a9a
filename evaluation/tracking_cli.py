"""`maskstream eval-tracking`: score our tracker against boxmot's on identical detections of synthetic clips."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from pipeline.errors import ConfigError

log = logging.getLogger(__name__)


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, got {text!r}") from exc
    return w, h


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval-tracking",
        help="score trackers on synthetic clips (HOTA, MOTA, IDF1, mask HOTA)",
        description=__doc__,
    )
    parser.add_argument(
        "--out", type=Path, default=Path("runs/tracking-eval"), help="clips, cached detections, results"
    )
    parser.add_argument("--modes", nargs="+", default=["surveillance", "drone"], help="synth modes")
    parser.add_argument("--seeds", type=int, nargs="+", default=[101, 102, 103, 104, 105], help="clip seeds")
    parser.add_argument("--frames", type=int, default=150, help="frames per clip")
    parser.add_argument("--size", type=_size, default=(640, 360), help="clip size WIDTHxHEIGHT")
    parser.add_argument(
        "--detections",
        choices=["model", "noisy-gt"],
        default="model",
        help="the bundled model's detections (run once, cached) or degraded ground truth (development stand-in)",
    )
    parser.add_argument("--rerender", action="store_true", help="render the clips again (new simulator version)")
    parser.add_argument("--no-boxmot", action="store_true", help="only our tracker and its ablations")
    parser.add_argument("--markdown", type=Path, help="also write the results table here")
    parser.add_argument(
        "--config", type=Path, help="model options for --detections model: this run config's `model` section"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a model option, e.g. --set model.tiling.grid=[2,2] (detections are cached per --out: "
        "use one --out per model setting)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from evaluation.tracking import markdown_table, run_evaluation

    if args.frames < 2:
        raise ConfigError(f"--frames must be at least 2, got {args.frames}")
    include_boxmot = not args.no_boxmot
    if include_boxmot:
        try:
            import boxmot  # noqa: F401
        except ImportError as exc:
            raise ConfigError(
                "boxmot is not installed (benchmark-only, AGPL): pip install --no-deps boxmot==25.0.0 "
                "and the bench extra, or pass --no-boxmot"
            ) from exc
    detector_factory = None
    if args.config is not None or args.set:
        from pipeline.config import load_model_config
        from stages.inference import load_detector

        # the default's low score threshold (for the low-score association stage) unless the options say otherwise
        overrides = ([] if args.config else ["model.score_threshold=0.1"]) + list(args.set)
        model_cfg = load_model_config(args.config, overrides=overrides)
        detector_factory = lambda: load_detector(model_cfg)  # noqa: E731
    result = run_evaluation(
        args.out,
        args.modes,
        args.seeds,
        args.frames,
        args.size,
        args.detections,
        include_boxmot=include_boxmot,
        detector_factory=detector_factory,
        rerender=args.rerender,
    )
    table = markdown_table(result)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"results.{args.detections}.json").write_text(json.dumps(result.to_json(), indent=1))
    if args.markdown:
        args.markdown.write_text(table)
    print(table)
    return 0
