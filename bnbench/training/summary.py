"""Compare a trained transformer with the count MLE in harness records: TV ratio and mean |model - MLE|.

Usage: ``python -m bnbench.training.summary RESULTS.jsonl [...] [--model SPEC] [--reference SPEC] [--also SPEC ...]``.

For every (network, tables, N) where both estimators have records, it prints the mean
over seeds of each one's conditional TV and their ratio, model / reference. A ratio below
1.1 means within 10% of the reference. Then comes the model's mean absolute difference
from the MLE (``mle_mean_abs_diff``, measured on the test rows), and the mean TV of each
``--also`` estimator over the same seeds (blank where it has no record). The harness
computes the TV of a table estimator exactly from its tables, and the TV of a
prefix-conditioned model such as the trained transformer on the held-out test rows of the
same episodes.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from tabulate import tabulate

from bnbench.harness.records import latest_per_cell, read_records

HEADERS = ("network", "tables", "N", "seeds", "model TV", "MLE TV", "ratio", "mean abs(model - MLE)")


def summarize(
    records: Iterable[dict[str, Any]],
    model: str = "trained-transformer",
    reference: str = "mle",
    also: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Average each (network, tables, N) cell over the seeds where both estimators finished; one dict per cell.

    Each ``also`` estimator adds a ``"<spec> TV"`` entry: its mean TV over those seeds, or
    NaN when it lacks a record for one of them.
    """
    requested = {model, reference, *also}
    by_cell: dict[tuple, dict[str, dict[int, dict[str, Any]]]] = defaultdict(lambda: defaultdict(dict))
    for record in latest_per_cell(records):
        if record.get("status") != "ok" or record.get("estimator") not in requested:
            continue
        key = (record.get("network"), record.get("tables"), record.get("context_size"))
        by_cell[key][record["estimator"]][record.get("seed")] = record["metrics"]

    rows = []
    for (network, tables, size), estimators in by_cell.items():
        seeds = sorted(set(estimators.get(model, {})) & set(estimators.get(reference, {})), key=str)
        if not seeds:
            continue
        model_tv = _mean(estimators[model][s]["tv"] for s in seeds)
        reference_tv = _mean(estimators[reference][s]["tv"] for s in seeds)
        extra = {
            f"{spec} TV": _mean(estimators[spec][s]["tv"] for s in seeds)
            if all(s in estimators.get(spec, {}) for s in seeds)
            else float("nan")
            for spec in also
        }
        rows.append(
            {
                "network": network,
                "tables": tables,
                "N": size,
                "seeds": len(seeds),
                "model TV": model_tv,
                "MLE TV": reference_tv,
                "ratio": model_tv / reference_tv if reference_tv > 0 else float("nan"),
                "mean abs(model - MLE)": _mean(estimators[model][s].get("mle_mean_abs_diff", float("nan")) for s in seeds),
                **extra,
            }
        )
    rows.sort(key=lambda r: (str(r["network"]), str(r["tables"]), r["N"]))
    return rows


def render_summary(rows: Sequence[dict[str, Any]], table_format: str = "github") -> str:
    extra = [key for key in (rows[0] if rows else {}) if key not in HEADERS]
    body = [
        [r["network"], r["tables"], r["N"], r["seeds"], *(_number(r[h]) for h in (*HEADERS[4:], *extra))] for r in rows
    ]
    return tabulate(body, headers=(*HEADERS, *extra), tablefmt=table_format, disable_numparse=True)


def _number(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.4g}"


def _mean(values: Iterable[float]) -> float:
    numbers = [float(v) for v in values]
    return sum(numbers) / len(numbers)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bnbench.training.summary", description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", help="JSON Lines files written by 'bnbench run'")
    parser.add_argument("--model", default="trained-transformer", help="estimator spec of the model (default: %(default)s)")
    parser.add_argument("--reference", default="mle", help="estimator spec of the reference (default: %(default)s)")
    parser.add_argument("--also", nargs="+", default=[], metavar="SPEC",
                        help="estimator specs whose mean TV gets a column of its own, e.g. 'oracle mle:alpha=1'")
    parser.add_argument("--format", default="github", help="tabulate table format (default: %(default)s)")
    args = parser.parse_args(argv)
    rows = summarize(read_records(args.files), args.model, args.reference, args.also)
    if not rows:
        print(f"no (network, N) cell has ok records of both {args.model!r} and {args.reference!r}", file=sys.stderr)
        return 1
    print(render_summary(rows, args.format))
    return 0


if __name__ == "__main__":
    sys.exit(main())
