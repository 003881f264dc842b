"""``bnbench report FILE...``: comparison tables from JSON Lines records and pytest-benchmark JSON."""

from __future__ import annotations

import argparse
from pathlib import Path

from bnbench.report.compare import DEFAULT_METRICS, check_metrics, render_comparison, render_peer_comparison
from bnbench.report.peers import render_peers
from bnbench.report.sources import caption, load_runs
from bnbench.report.tables import COLUMNS_BY_KEY, FORMATS, render

SECTIONS = ("all", "estimators", "peers")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "report",
        help="render comparison tables from result files",
        description=(
            "Render comparison tables from result files: JSON Lines written by 'bnbench run' and JSON written by "
            "'pytest benchmarks/ --benchmark-json=FILE', in any mix. Timing statistics and fidelity metrics of the "
            "same (network, tables, N, estimator) share one row. Write LABEL=FILE to name a run."
        ),
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="result file, or LABEL=FILE")
    parser.add_argument("--format", choices=FORMATS, default="github", help="table format (default: %(default)s)")
    parser.add_argument("--compare", action="store_true",
                        help="one column per file (run label) and metric instead of pooling the files")
    parser.add_argument("--metrics", nargs="+", default=list(DEFAULT_METRICS), metavar="METRIC",
                        help=f"metrics shown by --compare (default: %(default)s; valid: {', '.join(COLUMNS_BY_KEY)})")
    parser.add_argument("--section", choices=SECTIONS, default="all",
                        help="which tables to print: the estimator table, the peer-library table, or both (default: %(default)s)")
    parser.add_argument("--plots", type=Path, metavar="DIR", help="also write fidelity and time figures (PNG) to DIR")
    parser.set_defaults(execute=execute)


def execute(args: argparse.Namespace) -> int:
    if args.compare:
        check_metrics(args.metrics)
    runs = load_runs(args.files)
    records = [record for run in runs for record in run.records]

    if args.compare:
        main_table = render_comparison(runs, args.metrics, args.format)
        peer_table = render_peer_comparison(runs, args.format)
    else:
        main_table = render(records, args.format)
        peer_table = render_peers(records, args.format)

    tables = []
    if args.section in ("all", "estimators") and main_table:
        tables.append(main_table)
    if args.section in ("all", "peers") and peer_table:
        if args.format == "github":
            tables.append("Speed beside peer libraries: median time per call, and how many times faster bnbench is.")
        tables.append(peer_table)
    if not tables:
        wanted = "estimator or peer" if args.section == "all" else args.section.rstrip("s")
        raise ValueError(f"no {wanted} rows in {', '.join(args.files)}; check that the files hold bnbench results")

    if args.format == "latex":
        tables.insert(0, f"% {caption(runs)}")
    elif args.format != "csv":
        tables.insert(0, caption(runs))
    print("\n\n".join(table.rstrip("\n") for table in tables))

    if args.plots is not None:
        from bnbench.report.plots import write_plots  # matplotlib loads only when figures are asked for

        for path in write_plots(records, args.plots):
            print(f"wrote {path}")
    return 0
