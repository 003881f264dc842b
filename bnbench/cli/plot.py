"""``bnbench plot FILE...``: fidelity and time versus context size, as PNG figures."""

from __future__ import annotations

import argparse
from pathlib import Path

from bnbench.report.sources import load_runs


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "plot",
        help="draw fidelity and time versus context size",
        description=(
            "Write fidelity-NETWORK.png (KL with the MLE's d/(2N) line, smoothed KL, conditional TV) and "
            "time-NETWORK.png (fit, per-conditional and per-generated-row time) on log-log axes, one line per "
            "estimator, from JSON Lines records and pytest-benchmark JSON."
        ),
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="result file written by 'bnbench run' or --benchmark-json")
    parser.add_argument("--output-dir", "-o", type=Path, default=Path("plots"),
                        help="directory the PNG files are written to (default: %(default)s)")
    parser.set_defaults(execute=execute)


def execute(args: argparse.Namespace) -> int:
    from bnbench.report.plots import write_plots  # matplotlib loads only when this command runs

    records = [record for run in load_runs(args.files) for record in run.records]
    written = write_plots(records, args.output_dir)
    if not written:
        raise ValueError(
            f"no figure written: the records in {', '.join(args.files)} have no network with context sizes and metrics"
        )
    for path in written:
        print(f"wrote {path}")
    return 0
