"""Aggregate harness records and render them as tables (github, latex, csv, or any tabulate format).

One row per (network, tables, N, estimator); metrics are means over seeds. A mean
that includes an infinite value is infinite. Failed and skipped cells keep their
row, with the reason in the last column.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tabulate import tabulate

from bnbench.harness.records import latest_per_cell


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    scale: float = 1.0
    format: str = ".3g"


COLUMNS = (
    Column("kl", "KL (nats)"),
    Column("kl_smoothed", "KL smoothed (nats)"),
    Column("tv", "cond. TV"),
    Column("heldout_ll", "held-out LL (nats/row)", format=".4g"),
    Column("heldout_ll_smoothed", "held-out LL smoothed (nats/row)", format=".4g"),
    Column("mle_max_abs_diff", "max |q - MLE|"),
    Column("generated_family_tv", "gen. family TV"),
    Column("generated_joint_tv", "gen. joint TV"),
    Column("fit_s", "fit (ms)", 1e3),
    Column("conditional_s", "per cond. (us)", 1e6),
    Column("generate_rows_per_s", "gen. (rows/s)", format=".3g"),
    Column("peak_memory_mb", "peak mem (MiB)"),
)
KEY_HEADERS = ("network", "tables", "N", "estimator", "seeds ok")
FORMATS = ("github", "latex", "csv")


def aggregate(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean of each metric over seeds, per (network, tables, N, estimator), in first-seen order."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for record in latest_per_cell(records):
        key = (record.get("network"), record.get("tables"), record.get("context_size"), record.get("estimator"))
        groups[key].append(record)

    rows = []
    for (network, tables, size, estimator), members in groups.items():
        ok = [r for r in members if r.get("status") == "ok"]
        row: dict[str, Any] = {
            "network": network,
            "tables": tables,
            "N": size,
            "estimator": estimator,
            "seeds ok": f"{len(ok)}/{len(members)}",
        }
        for column in COLUMNS:
            values = [r["metrics"][column.key] for r in ok if isinstance(r.get("metrics"), dict) and column.key in r["metrics"]]
            numbers = [float(v) for v in values if isinstance(v, (int, float))]
            row[column.key] = sum(numbers) / len(numbers) if numbers else None
        row["note"] = _note(members)
        rows.append(row)
    rows.sort(key=lambda r: (str(r["network"]), str(r["tables"]), r["N"] if isinstance(r["N"], int) else -1))
    return rows


def render(records: Iterable[dict[str, Any]], table_format: str = "github") -> str:
    """Render aggregated records; ``table_format`` is ``github``, ``latex``, ``csv`` or a tabulate format."""
    rows = aggregate(records)
    present = [c for c in COLUMNS if any(r[c.key] is not None for r in rows)]
    headers = [*KEY_HEADERS, *(c.header for c in present), "note"]
    body = [
        [*(r[h] for h in KEY_HEADERS), *(_cell(r[c.key], c, table_format) for c in present), r["note"] or ""]
        for r in rows
    ]
    if table_format == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(headers)
        writer.writerows(body)
        return buffer.getvalue()
    if table_format == "latex":
        table_format = "latex_booktabs"
    return tabulate(body, headers=headers, tablefmt=table_format, disable_numparse=True)


def _cell(value: float | None, column: Column, table_format: str) -> str:
    if value is None:
        return ""
    scaled = value * column.scale
    if math.isinf(scaled):
        return "inf" if scaled > 0 else "-inf"
    if math.isnan(scaled):
        return "nan"
    if table_format == "csv":
        return repr(scaled)
    return format(scaled, column.format)


def _note(members: list[dict[str, Any]]) -> str:
    notes = []
    failed = [r for r in members if r.get("status") == "failed"]
    if failed:
        notes.append(f"{len(failed)} failed: {failed[0].get('error')}")
    skipped = [r for r in members if r.get("status") == "skipped"]
    if skipped:
        notes.append(f"skipped: {skipped[0].get('note')}")
    ok = [r for r in members if r.get("status") == "ok"]
    if ok and not all(r.get("metrics", {}).get("exact", True) for r in ok):
        notes.append("estimated truth")
    return "; ".join(notes)
