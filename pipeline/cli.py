"""`maskstream` command line: one sub-command per job, each defined next to the code it drives.

The sub-commands are declared here as data (name, module, one-line help). `maskstream --help` needs only that
table, so it imports nothing heavy; the module of the chosen sub-command is imported to add its parser (its
`register(subparsers)` adds the parser and sets `func`, a callable taking the parsed namespace and returning an
exit code). Sub-command modules keep torch, av, cv2 and pycocotools out of their top level, so argument and
config errors are reported before any of those load.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from dataclasses import dataclass

from pipeline.errors import MaskstreamError


@dataclass(frozen=True)
class Command:
    name: str
    module: str  # exposes register(subparsers); may register several commands (train and eval)
    help: str


# in the order `--help` shows them
COMMANDS = (
    Command("run", "pipeline.run_command", "run the pipeline on files or cameras"),
    Command("tail", "pipeline.tail_command", "print events from Redis live"),
    Command("demo", "pipeline.demo", "a synthetic clip through the bundled model into Redis, with a summary"),
    Command("synth", "synth.cli", "render synthetic clips or training stills with exact ground truth"),
    Command("train", "training.cli", "train or fine-tune a Mask R-CNN on COCO-format data"),
    Command("eval", "training.cli", "COCO bbox and mask AP of a model or of a results file"),
    Command(
        "eval-tracking", "evaluation.tracking_cli", "score trackers on synthetic clips (HOTA, MOTA, IDF1, mask HOTA)"
    ),
    Command("weights", "maskrcnn.weights_cli", "list the model weights maskstream can use, or fetch COCO checkpoints"),
    Command("eval-events", "evaluation.events_cli", "score a run's zone and line events against a clip's true events"),
)


def _chosen_command(argv: list[str]) -> str | None:
    """The sub-command named on the command line (the first word that is not an option), if any."""
    names = {command.name for command in COMMANDS}
    for word in argv:
        if not word.startswith("-"):
            return word if word in names else None
    return None


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The full parser for the sub-command named in `argv`; the others get a placeholder with their help line."""
    chosen = _chosen_command(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="maskstream", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    registered: set[str] = set()
    for command in COMMANDS:
        if command.name in registered:
            continue
        if chosen is not None and command.module == next(c.module for c in COMMANDS if c.name == chosen):
            importlib.import_module(command.module).register(subparsers)
            registered.update(subparsers.choices)
        else:
            subparsers.add_parser(command.name, help=command.help)
            registered.add(command.name)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except MaskstreamError as exc:
        print(f"maskstream {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
