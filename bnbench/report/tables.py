"""Aggregate records and render them as tables (github, latex, csv, or any tabulate format).

One row per (network, tables, N, estimator), sorted by network, tables and N, and
by estimator within them. Metrics are means over every record of the row (seeds,
and the fit, conditional and generate benchmarks of a pytest-benchmark case). A
mean that includes an infinite value is infinite. A metric no record of the row
has is an empty cell. Failed and skipped cells keep their row, with the reason in
the last column.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tabulate import tabulate

from bnbench.harness.records import latest_per_cell


@dataclass(frozen=True)
class Column:
    """A metric column: record key, header with its unit, scale from stored units, number format."""

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
    Column("mle_max_abs_diff", "max abs(q - MLE)"),
    Column("generated_family_tv", "gen. family TV"),
    Column("generated_joint_tv", "gen. joint TV"),
    Column("evidence_marginal_tv", "evid. marginal TV"),
    Column("evidence_marginal_tv_floor", "evid. marginal TV floor"),
    Column("evidence_joint_tv", "evid. joint TV"),
    Column("evidence_joint_tv_floor", "evid. joint TV floor"),
    Column("fit_s", "fit (ms)", 1e3),
    Column("fit_iqr_s", "fit IQR (ms)", 1e3),
    Column("conditional_s", "per cond. (us)", 1e6),
    Column("conditional_iqr_s", "per cond. IQR (us)", 1e6),
    Column("generate_s", "gen. call (ms)", 1e3),
    Column("generate_iqr_s", "gen. call IQR (ms)", 1e3),
    Column("generate_rows_per_s", "gen. (rows/s)"),
    Column("time_s", "time (ms)", 1e3),
    Column("peak_memory_mb", "peak mem (MiB)"),
)
COLUMNS_BY_KEY = {column.key: column for column in COLUMNS}
KEY_HEADERS = ("network", "tables", "task", "N", "estimator", "seeds ok")
FORMATS = ("github", "latex", "csv")


def aggregate(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean of each metric per (network, tables, N, estimator); peer benchmarks are left out."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for record in latest_per_cell(records):
        if record.get("library") is not None:
            continue
        groups[row_key(record)].append(record)

    rows = []
    for (network, tables, task, size, estimator), members in groups.items():
        ok = [r for r in members if r.get("status") == "ok"]
        row: dict[str, Any] = {
            "network": network,
            "tables": tables,
            "task": task,
            "N": size,
            "estimator": estimator,
            "seeds ok": _seed_count(ok, members),
            "schema": "/".join(sorted({str(r.get("schema")) for r in members if r.get("schema") is not None})),
            "mark": _missing_mark(ok, members),
        }
        units = measurement_units(ok)
        for column in COLUMNS:
            row[column.key] = mean_metric(units, column.key)
        row["note"] = _note(members)
        rows.append(row)
    rows.sort(key=sort_key)
    return rows


def row_key(record: dict[str, Any]) -> tuple:
    """(network, tables, task, N, estimator); a record without a task (older records, benchmarks) is ``generate``."""
    task = record.get("task") or "generate"
    return (record.get("network"), record.get("tables"), task, record.get("context_size"), record.get("estimator"))


def sort_key(row: dict[str, Any]) -> tuple:
    """Network, tables, task, N (rows without N first), then estimator; None sorts as empty text."""
    size = row["N"]
    return (
        str(row["network"] or ""),
        str(row["tables"] or ""),
        str(row["task"] or ""),
        size if isinstance(size, int) else -1,
        str(row["estimator"] or ""),
    )


def measurement_units(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge the records of one measured case into one unit, so that each case counts once in means.

    The fit, conditional and generate benchmarks of a pytest-benchmark case carry the
    same fidelity figures. A harness record is its own unit, and benchmark records
    group by file and ``case``.
    """
    units: dict[Any, dict[str, Any]] = {}
    for record in records:
        case = record.get("case")
        unit = (record.get("source_file"), case) if case is not None else id(record)
        merged = units.setdefault(unit, {"metrics": {}})
        merged["metrics"].update(_metrics(record))
    return list(units.values())


def mean_metric(records: Sequence[dict[str, Any]], key: str) -> float | None:
    """Mean of a numeric metric over the records that have it, or None when none has it."""
    numbers = []
    for record in records:
        metrics = record.get("metrics")
        value = metrics.get(key) if isinstance(metrics, dict) else None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            numbers.append(float(value))
    if not numbers:
        return None
    return sum(numbers) / len(numbers)


def render(records: Iterable[dict[str, Any]], table_format: str = "github") -> str:
    """Render aggregated records; ``table_format`` is ``github``, ``latex``, ``csv`` or a tabulate format.

    Returns an empty string when no record belongs to the estimator table (for
    example a file of peer benchmarks only).
    """
    rows = aggregate(records)
    if not rows:
        return ""
    present = [c for c in COLUMNS if any(r[c.key] is not None for r in rows)]
    headers = [*KEY_HEADERS, *(c.header for c in present), "note"]
    body = []
    for row in rows:
        keys = [_text(row[h]) for h in KEY_HEADERS]
        values = [format_value(row[c.key], c, table_format, missing=row["mark"]) for c in present]
        body.append([*keys, *values, row["note"] or ""])
    if table_format == "csv":
        headers.append("schema")
        body = [[*line, row["schema"]] for line, row in zip(body, rows)]
    return format_table(headers, body, table_format)


#: tabulate formats whose output is a Markdown table.
MARKDOWN_FORMATS = ("github", "pipe")


def format_table(headers: Sequence[str], body: Sequence[Sequence[str]], table_format: str) -> str:
    """Lay out already formatted cells; csv goes through the csv module, latex uses booktabs."""
    if table_format == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(headers)
        writer.writerows(body)
        return buffer.getvalue()
    if table_format == "latex":
        table_format = "latex_booktabs"
    if table_format in MARKDOWN_FORMATS:
        # tabulate leaves "|" as is, and in Markdown it would end the cell (cell ids and errors contain it).
        headers = [_escape_pipes(h) for h in headers]
        body = [[_escape_pipes(cell) for cell in line] for line in body]
    return tabulate(body, headers=list(headers), tablefmt=table_format, disable_numparse=True)


def _escape_pipes(cell: Any) -> Any:
    return cell.replace("|", "\\|") if isinstance(cell, str) else cell


def format_value(value: float | None, column: Column, table_format: str, missing: str = "") -> str:
    """Scale and format one metric; a missing value becomes ``missing`` (empty, ``failed`` or ``skipped``)."""
    if value is None:
        return missing
    scaled = value * column.scale
    if math.isinf(scaled):
        return "inf" if scaled > 0 else "-inf"
    if math.isnan(scaled):
        return "nan"
    if table_format == "csv":
        return repr(scaled)
    return format(scaled, column.format)


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _missing_mark(ok: list[dict[str, Any]], members: list[dict[str, Any]]) -> str:
    """Text for metric cells of a row where no record finished ok: its status; otherwise empty."""
    if ok:
        return ""
    statuses = {str(r.get("status")) for r in members}
    return "failed" if "failed" in statuses else "/".join(sorted(statuses))


def _seed_count(ok: list[dict[str, Any]], members: list[dict[str, Any]]) -> str:
    """Distinct seeds that finished ok over distinct seeds tried (records without a seed count once each)."""

    def distinct(records: list[dict[str, Any]]) -> int:
        seeds = {r.get("seed") for r in records if r.get("seed") is not None}
        return len(seeds) + sum(r.get("seed") is None for r in records)

    return f"{distinct(ok)}/{distinct(members)}"


def _note(members: list[dict[str, Any]]) -> str:
    notes = []
    failed = [r for r in members if r.get("status") == "failed"]
    if failed:
        notes.append(f"{len(failed)} failed: {failed[0].get('error')}")
    skipped = [r for r in members if r.get("status") == "skipped"]
    if skipped:
        notes.append(f"skipped: {skipped[0].get('note')}")
    ok = [r for r in members if r.get("status") == "ok"]
    if ok and not all(_metrics(r).get("exact", True) for r in ok):
        notes.append("estimated truth")
    return "; ".join(notes)


def _metrics(record: dict[str, Any]) -> dict[str, Any]:
    metrics = record.get("metrics")
    return metrics if isinstance(metrics, dict) else {}
