"""Result files for reports: harness JSON Lines and pytest-benchmark JSON, each with a run label.

`load_runs` takes paths, optionally written ``LABEL=PATH``; the label names the run's
columns in side-by-side comparisons and defaults to the file name without suffix.
The kind of each file is detected from its content, not its suffix.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bnbench.harness.records import SCHEMA_VERSION, read_records
from bnbench.report.benchmark_json import describe_run, is_benchmark_json, benchmark_records

logger = logging.getLogger(__name__)

#: Version of the report layout (columns and their meaning), shown in every report.
REPORT_SCHEMA_VERSION = 1


class ResultFileError(ValueError):
    """Raised when a result file is missing, empty or in neither supported format."""


@dataclass
class Run:
    """The records of one result file.

    Attributes:
        label: Column label of this run in comparisons.
        path: The file read.
        kind: ``"jsonl"`` (harness records) or ``"pytest-benchmark"``.
        records: Harness records, or benchmark entries converted to records.
        description: Facts about the run (machine, commit, date) when the file has them.
    """

    label: str
    path: Path
    kind: str
    records: list[dict[str, Any]]
    description: dict[str, Any] = field(default_factory=dict)

    @property
    def schemas(self) -> list[str]:
        """Record schema versions present, as text (``"none"`` for records without one)."""
        return sorted({"none" if r.get("schema") is None else str(r.get("schema")) for r in self.records})


def load_runs(specs: Sequence[str | Path]) -> list[Run]:
    """Read each ``PATH`` or ``LABEL=PATH``; labels are made unique by appending ``#2``, ``#3``."""
    runs = []
    used: dict[str, int] = {}
    for spec in specs:
        label, path = split_label(str(spec))
        runs.append(read_run(path, label))
        count = used.get(runs[-1].label, 0) + 1
        used[runs[-1].label] = count
        if count > 1:
            runs[-1].label = f"{runs[-1].label}#{count}"
    return runs


def split_label(spec: str) -> tuple[str | None, Path]:
    """Split ``LABEL=PATH``; a spec that names an existing file is a path even if it contains ``=``."""
    if "=" in spec and not Path(spec).exists():
        label, _, path = spec.partition("=")
        if label:
            return label, Path(path)
    return None, Path(spec)


def read_run(path: Path, label: str | None = None) -> Run:
    """Read one result file of either kind."""
    if not path.is_file():
        raise ResultFileError(f"result file {str(path)!r} not found; pass a file written by 'bnbench run' or pytest --benchmark-json")
    label = label or path.name.split(".")[0] or str(path)
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise ResultFileError(f"result file {str(path)!r} is empty; it has no records to report")

    document = _whole_document(text)
    if is_benchmark_json(document):
        records = benchmark_records(document)
        run = Run(label, path, "pytest-benchmark", records, describe_run(document))
    elif isinstance(document, dict) or document is None:
        records = read_records(path)
        if not records:
            raise ResultFileError(
                f"{path} contains no JSON records; pass JSON Lines from 'bnbench run' or a pytest --benchmark-json file"
            )
        run = Run(label, path, "jsonl", records, _describe_records(records))
    else:
        raise ResultFileError(
            f"{path} is JSON but neither JSON Lines records nor a pytest-benchmark file "
            f"(top level is {type(document).__name__})"
        )
    for record in run.records:
        record["source_file"] = str(path)
    _warn_newer_schema(run)
    return run


def _whole_document(text: str) -> Any:
    """Parse the file as one JSON value; return None when it is not one (JSON Lines with several lines)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def _describe_records(records: list[dict[str, Any]]) -> dict[str, Any]:
    first = records[0]
    machine = first.get("machine") if isinstance(first.get("machine"), dict) else {}
    versions = first.get("versions") if isinstance(first.get("versions"), dict) else {}
    return {
        "kind": "jsonl",
        "datetime": first.get("started_at"),
        "cpu": machine.get("processor"),
        "cuda": machine.get("cuda"),
        "bnbench": versions.get("bnbench"),
    }


def _warn_newer_schema(run: Run) -> None:
    newer = [s for s in run.schemas if s.isdigit() and int(s) > SCHEMA_VERSION]
    if newer:
        logger.warning(
            "%s has records of schema %s, newer than this bnbench reads (%d); columns may be missing or misread",
            run.path, ", ".join(newer), SCHEMA_VERSION,
        )


def caption(runs: Sequence[Run]) -> str:
    """Build the report's first line: the report schema, and each file with its kind and record schemas."""
    parts = []
    for run in runs:
        facts = [run.kind, f"{len(run.records)} records", "record schema " + "/".join(run.schemas)]
        if run.description.get("commit"):
            facts.append(f"commit {str(run.description['commit'])[:10]}")
        parts.append(f"{run.label} = {run.path} ({', '.join(facts)})")
    return f"bnbench report, schema {REPORT_SCHEMA_VERSION}; " + "; ".join(parts)
