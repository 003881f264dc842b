"""``bnbench report FILE...``: comparison tables from JSON Lines records."""

from __future__ import annotations

import argparse
from pathlib import Path

from bnbench.harness.records import read_records
from bnbench.report.tables import FORMATS, render


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "report", help="render comparison tables from result files", description="Render comparison tables from result files."
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="JSON Lines files written by 'bnbench run'")
    parser.add_argument("--format", choices=FORMATS, default="github", help="table format (default: %(default)s)")
    parser.set_defaults(execute=execute)


def execute(args: argparse.Namespace) -> int:
    print(render(read_records(args.files), args.format))
    return 0
