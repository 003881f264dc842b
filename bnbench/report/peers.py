"""Speed of bnbench beside peer libraries on the same data, as medians and ratios.

Peer benchmarks carry ``library`` (``bnbench``, ``pgmpy``, ...), ``operation``,
``network`` and ``context_size`` (the rows fitted or sampled) in ``extra_info``. One
table row per (operation, network, rows) shows each library's median time and the
ratio peer median / bnbench median: how many times faster bnbench is.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from bnbench.report.tables import format_table

REFERENCE = "bnbench"
#: bnbench's own count MLE and ancestral sampler should beat pgmpy by at least this factor.
TARGET_RATIO = 50.0


def peer_rows(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Median seconds per library and the ratios to bnbench, one row per task."""
    medians: dict[tuple, dict[str, float | None]] = defaultdict(dict)
    for record in records:
        library = record.get("library")
        if library is None:
            continue
        key = (str(record.get("operation") or ""), str(record.get("network") or ""), record.get("context_size"))
        timing = record.get("timing") if isinstance(record.get("timing"), dict) else {}
        medians[key][str(library)] = timing.get("median")

    rows = []
    for (operation, network, size), by_library in sorted(medians.items(), key=lambda item: _order(item[0])):
        reference = by_library.get(REFERENCE)
        row: dict[str, Any] = {"operation": operation, "network": network, "rows": size, "medians": by_library}
        row["ratios"] = {
            name: (median / reference if median is not None and reference else None)
            for name, median in by_library.items()
            if name != REFERENCE
        }
        rows.append(row)
    return rows


def render_peers(records: Iterable[dict[str, Any]], table_format: str = "github") -> str:
    """Render the peer table; return an empty string when there are no peer benchmarks."""
    rows = peer_rows(records)
    if not rows:
        return ""
    libraries = sorted({name for row in rows for name in row["medians"]}, key=lambda n: (n != REFERENCE, n))
    peers = [name for name in libraries if name != REFERENCE]
    headers = ["operation", "network", "rows", *(f"{name} median (ms)" for name in libraries)]
    headers += [f"{name} / {REFERENCE} (x)" for name in peers]
    headers.append(f"target >= {TARGET_RATIO:g}x")

    body = []
    for row in rows:
        line = [row["operation"], row["network"], "" if row["rows"] is None else str(row["rows"])]
        line += [_milliseconds(row["medians"].get(name), table_format) for name in libraries]
        ratios = [row["ratios"].get(name) for name in peers]
        line += [_ratio(value, table_format) for value in ratios]
        line.append(_verdict([value for value in ratios if value is not None]))
        body.append(line)
    return format_table(headers, body, table_format)


def _verdict(ratios: list[float]) -> str:
    """``met`` when bnbench beats every peer by `TARGET_RATIO`, ``missed`` otherwise, empty without ratios."""
    if not ratios:
        return ""
    return "met" if min(ratios) >= TARGET_RATIO else "missed"


def _order(key: tuple) -> tuple:
    operation, network, size = key
    return (operation, network, size if isinstance(size, int) else -1)


def _milliseconds(seconds: float | None, table_format: str) -> str:
    if seconds is None or not math.isfinite(seconds):
        return ""
    return repr(seconds * 1e3) if table_format == "csv" else f"{seconds * 1e3:.3g}"


def _ratio(value: float | None, table_format: str) -> str:
    if value is None:
        return ""
    return repr(value) if table_format == "csv" else f"{value:.1f}"
