"""Read pytest-benchmark JSON files and turn each benchmark into a bnbench record.

pytest-benchmark (``--benchmark-json=FILE``) writes one entry per benchmark with its
timing statistics in ``stats`` (seconds) and whatever the test stored in
``extra_info``. bnbench's benchmarks store the case in ``extra_info`` (see
docs/records.md): ``network``, ``context_size``, ``estimator``, ``tables``, ``seed``,
``operation`` (``fit``, ``conditional`` or ``generate``), the work done in one call
(``queries`` or ``rows``) and the fidelity metrics of the same case. An
``implementation`` names a variant of the estimator and joins its name in the table
(``exact-transformer (batched)``). Peer-library benchmarks carry ``library`` instead
and go to the peer table.

Each entry becomes a record with the harness's keys, so that the tables merge both
sources: the median of a ``fit`` benchmark becomes ``fit_s``, a ``conditional``
median divided by ``queries`` becomes ``conditional_s`` and a ``generate`` benchmark
gives ``generate_s`` and ``generate_rows_per_s``. Entries that lack ``extra_info``
or ``params`` keep their timing under the benchmark's name, with empty case columns.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

#: Timing statistics kept from each entry (all in seconds except ``rounds``).
TIMING_KEYS = ("min", "max", "mean", "stddev", "median", "iqr", "q1", "q3", "rounds")
#: extra_info keys that describe the case, not a metric.
CASE_KEYS = (
    "schema", "network", "context_size", "estimator", "tables", "seed", "operation",
    "queries", "rows", "num_episodes", "target", "implementation", "library", "free_parameters",
)


class BenchmarkFileError(ValueError):
    """Raised when a file is not a pytest-benchmark JSON file."""


def is_benchmark_json(document: object) -> bool:
    """True for the top-level object that pytest-benchmark writes."""
    return isinstance(document, dict) and isinstance(document.get("benchmarks"), list)


def read_benchmark_json(path: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Return (records, description of the run) for one pytest-benchmark JSON file."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise BenchmarkFileError(f"{path} is not valid JSON ({error}); pass a file written by --benchmark-json") from None
    if not is_benchmark_json(document):
        raise BenchmarkFileError(f"{path} has no 'benchmarks' list; pass a file written by pytest --benchmark-json")
    return benchmark_records(document), describe_run(document)


def benchmark_records(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Convert every entry of a pytest-benchmark document; entries that are not objects are skipped."""
    return [benchmark_record(entry) for entry in document["benchmarks"] if isinstance(entry, dict)]


def benchmark_record(entry: dict[str, Any]) -> dict[str, Any]:
    """Convert one pytest-benchmark entry into a bnbench record (see the module docstring)."""
    extra = entry.get("extra_info") if isinstance(entry.get("extra_info"), dict) else {}
    params = entry.get("params") if isinstance(entry.get("params"), dict) else {}
    stats = entry.get("stats") if isinstance(entry.get("stats"), dict) else {}
    name = str(entry.get("name") or entry.get("fullname") or "unnamed benchmark")

    network = extra.get("network", params.get("network"))
    context_size = _integer(extra.get("context_size", params.get("n", params.get("context_size"))))
    estimator = extra.get("estimator", params.get("estimator"))
    operation = extra.get("operation", params.get("operation"))
    if estimator is None and network is None:
        estimator = name  # a benchmark from another suite: its name labels the row
    elif estimator is not None and extra.get("implementation") is not None:
        estimator = f"{estimator} ({extra['implementation']})"  # variants of one estimator get their own rows
    timing = {key: _number(stats.get(key)) for key in TIMING_KEYS}

    record: dict[str, Any] = {
        "schema": extra.get("schema"),
        "source": "pytest-benchmark",
        "cell": str(entry.get("fullname") or name),
        # The fit, conditional and generate benchmarks of one case share this key.
        "case": f"{network}|{context_size}|{estimator}|{extra.get('tables')}|seed={extra.get('seed')}" if network is not None else None,
        "benchmark": name,
        "group": entry.get("group"),
        "status": "ok" if timing["median"] is not None else "failed",
        "error": None if timing["median"] is not None else "no timing statistics in the benchmark entry",
        "network": network,
        "context_size": context_size,
        "estimator": estimator,
        "tables": extra.get("tables", "fixed" if network is not None else None),
        "seed": extra.get("seed"),
        "operation": operation,
        "library": extra.get("library"),
        "timing": timing,
        "metrics": {**_fidelity(extra), **_timing_metrics(operation, timing, extra)},
    }
    return record


def describe_run(document: dict[str, Any]) -> dict[str, Any]:
    """Machine, commit and version facts of a pytest-benchmark run, for captions."""
    machine = document.get("machine_info") if isinstance(document.get("machine_info"), dict) else {}
    commit = document.get("commit_info") if isinstance(document.get("commit_info"), dict) else {}
    cpu = machine.get("cpu") if isinstance(machine.get("cpu"), dict) else {}
    return {
        "kind": "pytest-benchmark",
        "pytest_benchmark_version": document.get("version"),
        "datetime": document.get("datetime"),
        "machine": machine.get("node"),
        "cpu": cpu.get("brand_raw") or machine.get("processor"),
        "python": machine.get("python_version"),
        "commit": commit.get("id"),
        "dirty": commit.get("dirty"),
    }


def _timing_metrics(operation: object, timing: dict[str, float | None], extra: dict[str, Any]) -> dict[str, float]:
    median, iqr = timing["median"], timing["iqr"]
    if median is None:
        return {}
    if operation == "fit":
        return _without_none({"fit_s": median, "fit_iqr_s": iqr})
    if operation == "conditional":
        queries = _number(extra.get("queries"))
        if not queries:
            return _without_none({"conditional_call_s": median})
        return _without_none({
            "conditional_s": median / queries,
            "conditional_iqr_s": None if iqr is None else iqr / queries,
        })
    if operation in ("generate", "sample"):
        rows = _number(extra.get("rows"))
        metrics = {"generate_s": median, "generate_iqr_s": iqr}
        if rows and median > 0:
            metrics["generate_rows_per_s"] = rows / median
        return _without_none(metrics)
    return _without_none({"time_s": median, "time_iqr_s": iqr})


def _fidelity(extra: dict[str, Any]) -> dict[str, Any]:
    """Numeric extra_info values that are not case descriptions (strings such as "inf" decoded)."""
    metrics = {}
    for key, value in extra.items():
        if key in CASE_KEYS:
            continue
        number = _number(value)
        if number is not None or isinstance(value, bool):
            metrics[key] = value if isinstance(value, bool) else number
    return metrics


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value in ("inf", "-inf", "nan"):
        return float(value)
    return None


def _integer(value: object) -> int | None:
    number = _number(value)
    if number is None or not math.isfinite(number):
        return None
    return int(number)


def _without_none(values: dict[str, float | None]) -> dict[str, float]:
    return {k: v for k, v in values.items() if v is not None}
