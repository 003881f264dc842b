"""The ``bnbench`` command. Each subcommand lives in its own module with ``add_parser`` and ``execute``."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import warnings

#: Subcommand name -> module under bnbench.cli.
COMMANDS = {
    "run": "bnbench.cli.run",
    "list": "bnbench.cli.listing",
    "report": "bnbench.cli.report",
    "train": "bnbench.cli.train",
    "plot": "bnbench.cli.plot",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bnbench",
        description="Benchmark in-context estimators and generators of discrete Bayesian networks.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (-v info, -vv debug)")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        importlib.import_module(module_name).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.captureWarnings(True)
    # pgmpy 1.x announces its own renames at import; they are not the user's concern.
    for category in (FutureWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=category, module="pgmpy")
    try:
        return int(args.execute(args) or 0)
    except KeyboardInterrupt:
        print("interrupted; finished cells are kept and a rerun resumes after them", file=sys.stderr)
        return 130
    except (ValueError, KeyError, FileNotFoundError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"bnbench {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
