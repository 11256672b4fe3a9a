"""`maskstream` command line: one sub-command per job, each defined next to the code it drives.

Every sub-command module exposes `register(subparsers)` which adds its parser and sets `func`
(a callable taking the parsed namespace and returning an exit code). Modules are imported only
when listed here, so `maskstream --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from pipeline.errors import MaskstreamError

# sub-command modules, in the order `--help` shows them
COMMAND_MODULES = (
    "pipeline.run_command",  # run
    "pipeline.tail_command",  # tail
    "synth.cli",  # synth
    "training.cli",  # train, eval
    "evaluation.tracking_cli",  # eval-tracking
    "evaluation.events_cli",  # eval-events
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maskstream", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
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
