"""Several runs side by side (two commits, two machines): one column per run label and metric.

Rows are matched by (network, tables, N, estimator) after each run is aggregated on
its own. A row that one run lacks has empty cells in that run's columns. With
exactly two runs, a ratio column (second / first) follows each metric.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from bnbench.report.peers import REFERENCE, peer_rows
from bnbench.report.sources import Run
from bnbench.report.tables import COLUMNS_BY_KEY, KEY_HEADERS, aggregate, format_table, format_value, sort_key

DEFAULT_METRICS = ("kl", "tv", "fit_s", "conditional_s", "generate_rows_per_s")


def check_metrics(metrics: Sequence[str]) -> None:
    unknown = [m for m in metrics if m not in COLUMNS_BY_KEY]
    if unknown:
        raise ValueError(f"unknown metrics {unknown} for --compare; valid metrics: {list(COLUMNS_BY_KEY)}")


def render_comparison(runs: Sequence[Run], metrics: Sequence[str] = DEFAULT_METRICS, table_format: str = "github") -> str:
    """Render the side-by-side table of ``metrics``, leaving out metrics that no run has."""
    check_metrics(metrics)
    if not runs:
        raise ValueError("no runs to compare; pass at least one result file")
    aggregated = {run.label: {_key(row): row for row in aggregate(run.records)} for run in runs}
    keys = _union_in_order(aggregated.values())
    present = [m for m in metrics if any(row[m] is not None for rows in aggregated.values() for row in rows.values())]
    with_ratio = len(runs) == 2

    headers = [*KEY_HEADERS[:5]]
    for metric in present:
        header = COLUMNS_BY_KEY[metric].header
        headers += [f"{header} [{run.label}]" for run in runs]
        if with_ratio:
            headers.append(f"{_short(header)} {runs[1].label}/{runs[0].label}")

    body = []
    for key in keys:
        line = ["" if part is None else str(part) for part in key]
        for metric in present:
            column = COLUMNS_BY_KEY[metric]
            values = []
            for run in runs:
                row = aggregated[run.label].get(key)
                values.append(None if row is None else row[metric])
                missing = "" if row is None else row["mark"]
                line.append(format_value(values[-1], column, table_format, missing=missing))
            if with_ratio:
                line.append(_ratio(values[0], values[1], table_format))
        body.append(line)
    return format_table(headers, body, table_format)


def render_peer_comparison(runs: Sequence[Run], table_format: str = "github") -> str:
    """Render peer ratios (peer median / bnbench median) per run; return an empty string without peer benchmarks."""
    per_run = {run.label: {(r["operation"], r["network"], r["rows"]): r for r in peer_rows(run.records)} for run in runs}
    keys = []
    for rows in per_run.values():
        keys += [k for k in rows if k not in keys]
    if not keys:
        return ""
    peers = sorted({name for rows in per_run.values() for row in rows.values() for name in row["ratios"]})
    headers = ["operation", "network", "rows"]
    headers += [f"{name} / {REFERENCE} (x) [{run.label}]" for name in peers for run in runs]
    body = []
    for key in sorted(keys, key=lambda k: (k[0], k[1], k[2] if isinstance(k[2], int) else -1)):
        line = [key[0], key[1], "" if key[2] is None else str(key[2])]
        for name in peers:
            for run in runs:
                row = per_run[run.label].get(key)
                value = None if row is None else row["ratios"].get(name)
                line.append(_ratio_text(value, table_format))
        body.append(line)
    return format_table(headers, body, table_format)


def _key(row: dict[str, Any]) -> tuple:
    return (row["network"], row["tables"], row["task"], row["N"], row["estimator"])


def _union_in_order(row_maps) -> list[tuple]:
    keys: dict[tuple, dict[str, Any]] = {}
    for rows in row_maps:
        for key, row in rows.items():
            keys.setdefault(key, row)
    return [key for key, _ in sorted(keys.items(), key=lambda item: sort_key(item[1]))]


def _short(header: str) -> str:
    """Strip the unit from a header, for ratio columns (a ratio has no unit)."""
    return header.split(" (")[0]


def _ratio_text(value: float | None, table_format: str) -> str:
    if value is None:
        return ""
    return repr(value) if table_format == "csv" else f"{value:.1f}"


def _ratio(first: float | None, second: float | None, table_format: str) -> str:
    if first is None or second is None or first == 0 or not (math.isfinite(first) and math.isfinite(second)):
        return ""
    value = second / first
    return repr(value) if table_format == "csv" else f"{value:.3g}"
