"""``bnbench run``: the benchmark grid, with its comparison table printed at the end."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from bnbench.harness.grid import TASKS, GridConfig
from bnbench.harness.records import read_records
from bnbench.harness.runner import run_grid
from bnbench.report.tables import FORMATS, render

logger = logging.getLogger(__name__)

DEFAULT_OUTPUT = Path("results") / "bnbench-run.jsonl"


def add_parser(subparsers) -> None:
    defaults = GridConfig()
    parser = subparsers.add_parser(
        "run",
        help="run a benchmark grid and print its table",
        description=(
            "Run networks x context sizes x estimators x seeds, append one JSON record per cell to "
            "--output, and print the comparison table. Rerunning the same command skips finished cells."
        ),
    )
    parser.add_argument("--network", "-n", dest="networks", action="append", metavar="SPEC",
                        help=f"network: bundled name, .bif path or family spec (repeatable; default {defaults.networks[0]})")
    parser.add_argument("--context-sizes", "-N", type=int, nargs="+", default=list(defaults.context_sizes), metavar="N",
                        help="context rows per episode (default: %(default)s)")
    parser.add_argument("--estimator", "-e", dest="estimators", action="append", metavar="SPEC",
                        help="estimator name or spec such as 'mle:alpha=1' (repeatable; default: every registered estimator)")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(defaults.seeds), metavar="SEED",
                        help="episode seeds (default: %(default)s)")
    parser.add_argument("--episodes", type=int, default=defaults.num_episodes, help="episodes per cell (default: %(default)s)")
    parser.add_argument("--test-rows", type=int, default=defaults.num_test_rows,
                        help="held-out true rows per episode (default: %(default)s)")
    parser.add_argument("--generated-rows", type=int, default=defaults.num_generated_rows,
                        help="rows each estimator generates per episode (default: %(default)s)")
    parser.add_argument("--table-prior", metavar="PRIOR",
                        help="draw fresh tables per episode from PRIOR ('dirichlet:1', 'uniform:0.1,0.9'); "
                             "default: the network's own tables")
    parser.add_argument("--task", choices=TASKS, default=defaults.task,
                        help="'generate': rows from scratch; 'evidence': the unobserved variables of rows given evidence "
                             "on a random subset of variables, scored against the exact conditionals (default: %(default)s)")
    parser.add_argument("--no-memory", action="store_true", help="skip the second pass that measures peak memory")
    parser.add_argument("--output", "-o", type=Path, default=DEFAULT_OUTPUT,
                        help="JSON Lines file the records are appended to (default: %(default)s)")
    parser.add_argument("--format", choices=FORMATS, default="github", help="table format (default: %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--torch-threads", type=int, default=1, metavar="T",
                        help="CPU threads for torch (default: %(default)s). bnbench's models are small, and more "
                             "threads mostly add synchronization, which is very slow when the cores are busy")
    parser.set_defaults(execute=execute)


def execute(args: argparse.Namespace) -> int:
    if args.torch_threads < 1:
        raise ValueError(f"--torch-threads is {args.torch_threads}; use 1 or more")
    _set_torch_threads(args.torch_threads)
    config = GridConfig(
        networks=tuple(args.networks or GridConfig().networks),
        context_sizes=tuple(args.context_sizes),
        estimators=tuple(args.estimators or ()),
        seeds=tuple(args.seeds),
        num_episodes=args.episodes,
        num_test_rows=args.test_rows,
        num_generated_rows=args.generated_rows,
        table_prior=args.table_prior,
        measure_memory=not args.no_memory,
        task=args.task,
    )
    statuses = run_grid(config, args.output, progress=not args.no_progress)

    cell_ids = {cell.id for cell in config.cells()}
    records = [r for r in read_records(args.output) if r.get("cell") in cell_ids]
    print(render(records, args.format))
    print(
        f"\n{statuses['ok']} cells ok, {statuses['failed']} failed, {statuses['skipped']} skipped, "
        f"{statuses['resumed']} already finished; records in {args.output}"
    )
    return 1 if statuses["failed"] else 0


def _set_torch_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
