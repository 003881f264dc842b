"""JSON Lines result records: atomic appends, resumable runs, strict JSON.

Each line is one cell's record. Non-finite floats are written as the strings
``"inf"``, ``"-inf"`` and ``"nan"`` so that every line is strict JSON; `read_records`
turns them back into floats.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: Version of the record layout; bump it when a field changes meaning.
SCHEMA_VERSION = 1
FINISHED_STATUSES = ("ok", "skipped")
_NON_FINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def encode(value: Any) -> Any:
    """Replace non-finite floats (and numpy scalars) by JSON-safe values, recursively."""
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def decode(value: Any) -> Any:
    """Inverse of `encode` for the strings it writes."""
    if isinstance(value, dict):
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    if isinstance(value, str) and value in _NON_FINITE:
        return _NON_FINITE[value]
    return value


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Append one record as a single ``write`` to a file opened for appending, then fsync.

    A crash can leave at most a partial last line, which `read_records` skips; lines
    already written are never rewritten.
    """
    line = (json.dumps(encode(record), allow_nan=False, sort_keys=True) + "\n").encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(descriptor, line)
        if written != len(line):
            raise OSError(f"short write to {path}: {written} of {len(line)} bytes")
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def read_records(paths: Path | str | Iterable[Path | str]) -> list[dict[str, Any]]:
    """Read every complete record from one or more JSON Lines files; skip and log broken lines."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    records = []
    for path in paths:
        records.extend(_read_one(Path(path)))
    return records


def _read_one(path: Path) -> Iterator[dict[str, Any]]:
    if not path.is_file():
        raise FileNotFoundError(f"results file {str(path)!r} not found; run 'bnbench run --output {path}' first")
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                logger.warning("%s:%d is not a complete JSON record (an interrupted write?); skipped", path, number)
                continue
            if not isinstance(record, dict):
                logger.warning("%s:%d is not a JSON object; skipped", path, number)
                continue
            yield decode(record)


def finished_cells(path: Path) -> set[str]:
    """Cell ids already recorded as ok or skipped in ``path`` (empty when the file is absent)."""
    if not path.is_file():
        return set()
    return {r["cell"] for r in read_records(path) if r.get("status") in FINISHED_STATUSES and "cell" in r}


def latest_per_cell(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep the last record of each cell, in first-seen order (a rerun replaces a failed attempt)."""
    latest: dict[str, dict[str, Any]] = {}
    for record in records:
        latest[record.get("cell", id(record))] = record
    return list(latest.values())
