"""Reports: reading both result formats, merging timing with fidelity, side-by-side runs, peers, the CLI."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bnbench.cli import main
from bnbench.harness.records import SCHEMA_VERSION, append_record
from bnbench.report.benchmark_json import benchmark_record
from bnbench.report.compare import render_comparison
from bnbench.report.peers import peer_rows, render_peers
from bnbench.report.sources import REPORT_SCHEMA_VERSION, ResultFileError, caption, load_runs, read_run
from bnbench.report.tables import aggregate, render

REPOSITORY = Path(__file__).resolve().parents[1]


def harness_record(network="asia", n=100, estimator="mle", seed=0, status="ok", **metrics):
    return {
        "schema": SCHEMA_VERSION, "cell": f"{network}|n={n}|{estimator}|seed={seed}", "status": status,
        "network": network, "context_size": n, "estimator": estimator, "tables": "fixed", "seed": seed,
        "metrics": metrics, "error": "RuntimeError: boom" if status == "failed" else None, "note": None,
    }


def write_jsonl(path: Path, records) -> Path:
    for record in records:
        append_record(path, record)
    return path


def bench_entry(name, median, iqr=0.0, extra=None, params=None):
    entry = {"name": name, "fullname": f"benchmarks/test_x.py::{name}", "group": None,
             "stats": {"min": median, "max": median, "mean": median, "stddev": 0.0, "rounds": 5,
                       "median": median, "iqr": iqr, "q1": median, "q3": median}}
    if extra is not None:
        entry["extra_info"] = extra
    if params is not None:
        entry["params"] = params
    return entry


def case_info(operation, **more):
    return {"schema": 1, "network": "asia", "context_size": 100, "estimator": "mle", "tables": "fixed", "seed": 0,
            "operation": operation, "kl": "inf", "tv": 0.02, "exact": True, **more}


def write_benchmarks(path: Path, entries, commit="abc123") -> Path:
    document = {"machine_info": {"node": "host", "python_version": "3.11.7"}, "commit_info": {"id": commit, "dirty": False},
                "benchmarks": entries, "datetime": "2026-01-01T00:00:00", "version": "5.2.3"}
    path.write_text(json.dumps(document))
    return path


CASE_ENTRIES = [
    bench_entry("test_fit[mle-asia-n100]", 0.002, iqr=0.0004, extra=case_info("fit")),
    bench_entry("test_conditional[mle-asia-n100]", 0.004, extra=case_info("conditional", queries=4000)),
    bench_entry("test_generate[mle-asia-n100]", 0.008, extra=case_info("generate", rows=8000)),
]


# pytest-benchmark entries as records


def test_benchmark_fit_entry():
    record = benchmark_record(CASE_ENTRIES[0])
    assert record["status"] == "ok"
    assert (record["network"], record["context_size"], record["estimator"], record["tables"]) == ("asia", 100, "mle", "fixed")
    assert record["metrics"]["fit_s"] == 0.002
    assert record["metrics"]["fit_iqr_s"] == 0.0004
    assert record["metrics"]["kl"] == float("inf")
    assert record["metrics"]["tv"] == 0.02
    assert record["metrics"]["exact"] is True
    assert record["schema"] == 1


def test_benchmark_conditional_per_query():
    record = benchmark_record(CASE_ENTRIES[1])
    assert record["metrics"]["conditional_s"] == pytest.approx(0.004 / 4000)


def test_benchmark_generate_throughput():
    record = benchmark_record(CASE_ENTRIES[2])
    assert record["metrics"]["generate_s"] == 0.008
    assert record["metrics"]["generate_rows_per_s"] == pytest.approx(8000 / 0.008)


def test_benchmark_without_extra_info():
    record = benchmark_record(bench_entry("test_something_else", 0.5))
    assert record["network"] is None
    assert record["estimator"] == "test_something_else"
    assert record["metrics"] == {"time_s": 0.5, "time_iqr_s": 0.0}


def test_benchmark_implementation_labels_estimator():
    entry = bench_entry("t[x]", 0.1, extra=case_info("fit+conditionals", implementation="batched", estimator="exact-transformer"))
    record = benchmark_record(entry)
    assert record["estimator"] == "exact-transformer (batched)"
    assert record["library"] is None
    assert record["metrics"]["time_s"] == 0.1


def test_benchmark_params_stand_in_for_extra_info():
    record = benchmark_record(bench_entry("t[mle-asia-n10]", 0.1, params={"network": "asia", "n": 10, "estimator": "mle"}))
    assert (record["network"], record["context_size"], record["estimator"]) == ("asia", 10, "mle")


def test_benchmark_without_stats_is_failed():
    entry = bench_entry("test_fit[x]", 0.1, extra=case_info("fit"))
    del entry["stats"]
    record = benchmark_record(entry)
    assert record["status"] == "failed"
    assert "no timing statistics" in record["error"]


# Merging and rendering


def test_case_merges_into_one_row():
    (row,) = aggregate([benchmark_record(e) for e in CASE_ENTRIES])
    assert row["seeds ok"] == "1/1"
    assert row["fit_s"] == 0.002
    assert row["conditional_s"] == pytest.approx(1e-6)
    assert row["generate_rows_per_s"] == pytest.approx(1e6)
    assert row["kl"] == float("inf")


def test_harness_and_benchmark_share_row():
    records = [harness_record(kl=0.5, tv=0.04, fit_s=0.001, seed=1), *(benchmark_record(e) for e in CASE_ENTRIES)]
    (row,) = aggregate(records)
    assert row["seeds ok"] == "2/2"
    assert row["tv"] == pytest.approx(0.03)
    assert row["fit_s"] == pytest.approx(0.0015)
    assert row["kl"] == float("inf")


def test_render_units_and_missing_cells():
    records = [harness_record(kl=0.5, fit_s=0.001), harness_record(estimator="oracle", kl=0.0)]
    lines = render(records, "github").splitlines()
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header == ["network", "tables", "task", "N", "estimator", "seeds ok", "KL (nats)", "fit (ms)", "note"]
    cells = {line.split("|")[5].strip(): [c.strip() for c in line.strip("|").split("|")] for line in lines[2:]}
    assert cells["mle"][6:] == ["0.5", "1", ""]  # 0.001 s shown in ms
    assert cells["oracle"][6:] == ["0", "", ""]  # no fit time: an empty cell


def test_render_failed_row():
    records = [harness_record(status="failed"), harness_record(estimator="oracle", kl=0.0, fit_s=1e-5)]
    text = render(records, "csv")
    header, *rows = text.splitlines()
    failed = next(r for r in rows if ",mle," in r)
    assert failed.startswith("asia,fixed,generate,100,mle,0/1,failed,failed,")
    assert "1 failed: RuntimeError: boom" in failed
    assert header.endswith(",note,schema")
    assert failed.endswith(",1")


def test_render_skipped_row():
    skipped = {**harness_record(estimator="trained-transformer", status="skipped"), "note": "no checkpoint for asia"}
    text = render([skipped, harness_record(kl=0.1)], "csv")
    row = next(line for line in text.splitlines() if ",trained-transformer," in line)
    assert row.startswith("asia,fixed,generate,100,trained-transformer,0/1,skipped,")
    assert "skipped: no checkpoint for asia" in row


def test_render_github_escapes_pipes():
    # Skip notes and errors can quote cell ids, which contain "|"; unescaped, each adds a Markdown column.
    skipped = {**harness_record(estimator="trained-transformer", status="skipped"), "note": "cell asia|n=100 has no checkpoint"}
    lines = render([skipped, harness_record(kl=0.1)], "github").splitlines()
    columns = [len(re.findall(r"(?<!\\)\|", line)) for line in lines]
    assert len(set(columns)) == 1, columns
    assert "cell asia\\|n=100 has no checkpoint" in lines[-1] + lines[-2]


def test_render_latex_booktabs():
    assert "\\toprule" in render([harness_record(kl=0.1)], "latex")


def test_render_empty():
    assert render([], "github") == ""


def test_rows_sorted_by_network_size_estimator():
    records = [harness_record(n=1000, estimator="oracle"), harness_record(n=10), harness_record(network="alarm", n=100)]
    keys = [(r["network"], r["N"], r["estimator"]) for r in aggregate(records)]
    assert keys == [("alarm", 100, "mle"), ("asia", 10, "mle"), ("asia", 1000, "oracle")]


# Result files


def test_read_both_kinds(tmp_path):
    jsonl = write_jsonl(tmp_path / "run.jsonl", [harness_record(kl=0.1)])
    bench = write_benchmarks(tmp_path / "bench.json", CASE_ENTRIES)
    first, second = load_runs([str(jsonl), f"ci={bench}"])
    assert (first.label, first.kind, len(first.records)) == ("run", "jsonl", 1)
    assert (second.label, second.kind, len(second.records)) == ("ci", "pytest-benchmark", 3)
    assert second.description["commit"] == "abc123"
    text = caption([first, second])
    assert text.startswith(f"bnbench report, schema {REPORT_SCHEMA_VERSION}; ")
    assert "record schema 1" in text
    assert "commit abc123" in text


def test_single_line_jsonl(tmp_path):
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(harness_record(kl=0.1)) + "\n")
    assert read_run(path).kind == "jsonl"


def test_duplicate_labels_made_unique(tmp_path):
    a = write_jsonl(tmp_path / "a" / "run.jsonl", [harness_record()])
    b = write_jsonl(tmp_path / "b" / "run.jsonl", [harness_record()])
    assert [run.label for run in load_runs([a, b])] == ["run", "run#2"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty"),
        ("[1, 2]", "neither JSON Lines records nor a pytest-benchmark file"),
        ("not json at all\n", "contains no JSON records"),
    ],
    ids=["empty", "list", "text"],
)
def test_bad_result_file(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ResultFileError, match=message):
        read_run(path)


def test_missing_result_file(tmp_path):
    with pytest.raises(ResultFileError, match="not found"):
        read_run(tmp_path / "absent.json")


def test_newer_schema_warns(tmp_path, caplog):
    path = write_jsonl(tmp_path / "future.jsonl", [{**harness_record(), "schema": SCHEMA_VERSION + 1}])
    with caplog.at_level(logging.WARNING, logger="bnbench.report.sources"):
        run = read_run(path)
    assert run.schemas == [str(SCHEMA_VERSION + 1)]
    assert "newer than this bnbench reads" in caplog.text


# Side by side


def test_compare_two_runs(tmp_path):
    old = write_jsonl(tmp_path / "old.jsonl", [harness_record(fit_s=0.002, kl=0.4), harness_record(estimator="oracle", fit_s=1e-5)])
    new = write_jsonl(tmp_path / "new.jsonl", [harness_record(fit_s=0.001, kl=0.4)])
    text = render_comparison(load_runs([old, new]), ["fit_s", "kl"], "csv")
    header, *rows = text.splitlines()
    assert header == "network,tables,task,N,estimator,fit (ms) [old],fit (ms) [new],fit new/old,KL (nats) [old],KL (nats) [new],KL new/old"
    mle = next(r for r in rows if ",mle," in r).split(",")
    assert float(mle[5]) == pytest.approx(2.0)
    assert float(mle[6]) == pytest.approx(1.0)
    assert float(mle[7]) == pytest.approx(0.5)
    oracle = next(r for r in rows if ",oracle," in r).split(",")
    assert oracle[6] == ""  # the new run has no oracle row
    assert oracle[7] == ""


def test_compare_three_runs_no_ratio(tmp_path):
    paths = [write_jsonl(tmp_path / f"r{i}.jsonl", [harness_record(fit_s=0.001 * (i + 1))]) for i in range(3)]
    header = render_comparison(load_runs(paths), ["fit_s"], "csv").splitlines()[0]
    assert header == "network,tables,task,N,estimator,fit (ms) [r0],fit (ms) [r1],fit (ms) [r2]"


def test_compare_unknown_metric(tmp_path):
    path = write_jsonl(tmp_path / "r.jsonl", [harness_record()])
    with pytest.raises(ValueError, match="unknown metrics \\['speed'\\]"):
        render_comparison(load_runs([path]), ["speed"])


# Peers


def peer_entry(library, operation, rows, median):
    extra = {"schema": 1, "library": library, "operation": operation, "network": "alarm",
             "context_size": rows, "rows": rows, "tables": "fixed", "seed": 0}
    return benchmark_record(bench_entry(f"test_{operation}_peer[{library}-alarm-n{rows}]", median, extra=extra))


def test_peer_ratio():
    records = [peer_entry("bnbench", "fit", 10_000, 0.004), peer_entry("pgmpy", "fit", 10_000, 0.4),
               peer_entry("bnbench", "sample", 10_000, 0.05), peer_entry("pgmpy", "sample", 10_000, 0.5)]
    rows = {row["operation"]: row for row in peer_rows(records)}
    assert rows["fit"]["ratios"]["pgmpy"] == pytest.approx(100.0)
    assert rows["sample"]["ratios"]["pgmpy"] == pytest.approx(10.0)
    text = render_peers(records, "github")
    fit_line = next(line for line in text.splitlines() if "| fit" in line)
    assert "100.0" in fit_line
    assert "| met" in fit_line
    assert "| missed" in next(line for line in text.splitlines() if "| sample" in line)
    assert aggregate(records) == []  # peers stay out of the estimator table


def test_peer_missing_partner():
    text = render_peers([peer_entry("pgmpy", "fit", 10_000, 0.4)], "csv")
    header, row = text.splitlines()
    assert header == "operation,network,rows,pgmpy median (ms),pgmpy / bnbench (x),target >= 50x"
    assert row == "fit,alarm,10000,400.0,,"


# Command line


def test_cli_report_mixed_files(tmp_path, capsys):
    jsonl = write_jsonl(tmp_path / "run.jsonl", [harness_record(network="cancer", kl=0.1)])
    bench = write_benchmarks(tmp_path / "bench.json", [*CASE_ENTRIES, peer_entry_raw()])
    assert main(["report", str(jsonl), str(bench)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("bnbench report, schema 1;")
    assert "| asia" in printed
    assert "| cancer" in printed
    assert "Speed beside peer libraries" in printed
    assert "pgmpy median (ms)" in printed


def peer_entry_raw():
    extra = {"schema": 1, "library": "pgmpy", "operation": "fit", "network": "alarm", "context_size": 10, "rows": 10}
    return bench_entry("test_fit_peer[pgmpy-alarm-n10]", 0.3, extra=extra)


def test_cli_report_sections(tmp_path, capsys):
    bench = write_benchmarks(tmp_path / "bench.json", [peer_entry_raw()])
    assert main(["report", str(bench), "--section", "estimators"]) == 2
    assert "no estimator rows" in capsys.readouterr().err
    assert main(["report", str(bench), "--section", "peers", "--format", "csv"]) == 0
    assert capsys.readouterr().out.startswith("operation,network,rows,pgmpy median (ms)")


def test_cli_report_latex_caption(tmp_path, capsys):
    jsonl = write_jsonl(tmp_path / "run.jsonl", [harness_record(kl=0.1)])
    assert main(["report", str(jsonl), "--format", "latex"]) == 0
    assert capsys.readouterr().out.startswith("% bnbench report, schema 1;")


def test_cli_compare_and_plots(tmp_path, capsys):
    old = write_jsonl(tmp_path / "old.jsonl", [harness_record("chain:n=3", n, kl=1 / n, fit_s=1e-4) for n in (10, 100)])
    new = write_jsonl(tmp_path / "new.jsonl", [harness_record("chain:n=3", n, kl=1 / n, fit_s=2e-4) for n in (10, 100)])
    assert main(["report", f"before={old}", f"after={new}", "--compare", "--metrics", "fit_s", "--plots", str(tmp_path / "plots")]) == 0
    printed = capsys.readouterr().out
    assert "fit (ms) [before]" in printed
    assert "fit after/before" in printed
    assert "| 2 " in printed
    assert (tmp_path / "plots" / "fidelity-chain-n3.png").is_file()
    assert (tmp_path / "plots" / "time-chain-n3.png").is_file()


def test_cli_compare_unknown_metric(tmp_path, capsys):
    jsonl = write_jsonl(tmp_path / "run.jsonl", [harness_record()])
    assert main(["report", str(jsonl), "--compare", "--metrics", "speed"]) == 2
    assert "unknown metrics ['speed']" in capsys.readouterr().err


def test_benchmark_suite_json_end_to_end(tmp_path, capsys):
    """The benchmark suite's own JSON, for one case, reads back into one merged row."""
    output = tmp_path / "bench.json"
    command = [sys.executable, "-m", "pytest", "benchmarks/test_estimators.py", "-q", "-p", "no:cacheprovider",
               "--bnbench-networks", "chain:n=4", "--bnbench-sizes", "50", "--bnbench-estimators", "mle",
               "--benchmark-max-time=0.001", "--benchmark-min-rounds=1", f"--benchmark-json={output}"]
    completed = subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout + completed.stderr

    assert main(["report", str(output), "--format", "csv"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    columns = dict(zip(header.split(","), row.split(",")))
    assert columns["network"] == "chain:n=4"
    assert columns["N"] == "50"
    assert columns["seeds ok"] == "1/1"
    for name in ("KL smoothed (nats)", "cond. TV", "fit (ms)", "per cond. (us)", "gen. (rows/s)"):
        assert float(columns[name]) > 0, name
    assert columns["schema"] == "1"
