"""`maskstream eval-events`: score a run's zone/line events against a synthetic clip's true events."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval-events",
        help="score zone/line events against a clip's true events",
        description=(
            "Precision, recall, F1 and timing error of line crossings (per direction) and zone entries/exits of "
            "EVENTS (a run's JSON Lines) against TRUTH (events_gt.jsonl written by `maskstream synth --zones`, or "
            "the clip directory holding it)."
        ),
    )
    parser.add_argument("events", metavar="EVENTS", help="the run's events, JSON Lines (sinks.jsonl)")
    parser.add_argument("truth", metavar="TRUTH", help="events_gt.jsonl, or the clip directory that holds it")
    parser.add_argument("--tolerance", type=float, default=0.5, help="seconds within which events match (0.5)")
    parser.add_argument("--any-class", action="store_true", help="match events whatever their classes")
    parser.add_argument("--json", metavar="FILE", default=None, help="also write the scores as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from evaluation.events import group_scores, load_events, markdown, score_events
    from pipeline.errors import ConfigError
    from synth.zone_truth import TRUTH_FILE

    if args.tolerance <= 0:
        raise ConfigError(f"--tolerance must be greater than 0 (got {args.tolerance})")
    truth_path = Path(args.truth)
    if truth_path.is_dir():
        truth_path = truth_path / TRUTH_FILE
    scores = score_events(
        load_events(args.events), load_events(truth_path), args.tolerance, same_class=not args.any_class
    )
    print(markdown(scores), end="")
    if args.json:
        report = {
            "tolerance_s": args.tolerance,
            "rows": [
                {"type": k, "region": r, "direction": d or None, **s.as_dict()} for (k, r, d), s in scores.items()
            ],
            "groups": {name: s.as_dict() for name, s in group_scores(scores).items()},
        }
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0
