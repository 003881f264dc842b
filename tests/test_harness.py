import json

import numpy as np
import pytest

from bnbench.estimators import register
from bnbench.estimators.mle import CountMLE
from bnbench.harness.grid import GridConfig, GridError
from bnbench.harness.records import append_record, finished_cells, read_records
from bnbench.harness.runner import run_grid


def _config(**overrides) -> GridConfig:
    settings = dict(
        networks=("cancer",),
        context_sizes=(5, 50),
        estimators=("mle", "oracle"),
        seeds=(0, 1),
        num_episodes=2,
        num_test_rows=50,
        num_generated_rows=100,
        measure_memory=False,
    )
    settings.update(overrides)
    return GridConfig(**settings)


class Exploding(CountMLE):
    def fit(self, context):
        raise RuntimeError("boom on purpose")


class WrongShape(CountMLE):
    def conditionals(self, rows, target):
        return super().conditionals(rows, target)[..., :1]


register("test-exploding", Exploding)
register("test-wrong-shape", WrongShape)


def test_grid_writes_one_record_per_cell(tmp_path):
    output = tmp_path / "run.jsonl"
    statuses = run_grid(_config(), output, progress=False)
    assert statuses["ok"] == 8
    records = read_records(output)
    assert len(records) == 8
    first = records[0]
    assert first["schema"] == 1
    assert first["status"] == "ok"
    assert first["versions"]["numpy"] == np.__version__
    assert "cpu_count" in first["machine"]
    assert {"kl", "tv", "heldout_ll", "fit_s", "conditional_s", "generate_rows_per_s"} <= set(first["metrics"])


def test_rerun_resumes_and_skips_finished_cells(tmp_path):
    output = tmp_path / "run.jsonl"
    run_grid(_config(seeds=(0,)), output, progress=False)
    statuses = run_grid(_config(seeds=(0, 1)), output, progress=False)
    assert statuses["resumed"] == 4
    assert statuses["ok"] == 4
    assert len(read_records(output)) == 8


def test_failing_cells_are_recorded_and_the_grid_goes_on(tmp_path):
    output = tmp_path / "run.jsonl"
    statuses = run_grid(_config(estimators=("test-exploding", "test-wrong-shape", "mle"), seeds=(0,)), output, progress=False)
    assert statuses["failed"] == 4
    assert statuses["ok"] == 2
    records = {(r["estimator"], r["context_size"]): r for r in read_records(output)}
    assert records[("test-exploding", 5)]["error"] == "RuntimeError: boom on purpose"
    assert "shape (2, 50, 1); expected (2, 50, 2)" in records[("test-wrong-shape", 5)]["error"]
    assert records[("mle", 50)]["status"] == "ok"
    # Failed cells are retried on the next run; ok cells are not.
    assert len(finished_cells(output)) == 2


def test_same_seed_same_numbers(tmp_path):
    run_grid(_config(seeds=(3,)), tmp_path / "a.jsonl", progress=False)
    run_grid(_config(seeds=(3,)), tmp_path / "b.jsonl", progress=False)
    for a, b in zip(read_records(tmp_path / "a.jsonl"), read_records(tmp_path / "b.jsonl")):
        timing = {"fit_s", "conditional_s", "generate_rows_per_s", "peak_memory_mb"}
        assert {k: v for k, v in a["metrics"].items() if k not in timing} == {
            k: v for k, v in b["metrics"].items() if k not in timing
        }


def test_estimators_share_episodes(tmp_path):
    output = tmp_path / "run.jsonl"
    run_grid(_config(estimators=("mle", "mle:alpha=0"), seeds=(0,), context_sizes=(20,)), output, progress=False)
    plain, explicit = read_records(output)
    assert plain["metrics"]["kl_smoothed"] == explicit["metrics"]["kl_smoothed"]
    assert plain["episode_seed"] == explicit["episode_seed"]


def test_invalid_grid_is_rejected_before_running(tmp_path):
    with pytest.raises(GridError, match=r"unknown estimator 'mlee'; valid names: \[.*'mle'"):
        run_grid(_config(estimators=("mlee",)), tmp_path / "x.jsonl", progress=False)
    with pytest.raises(GridError, match="unknown network 'nope'"):
        run_grid(_config(networks=("nope",)), tmp_path / "x.jsonl", progress=False)
    with pytest.raises(GridError, match="context size 0 is invalid"):
        run_grid(_config(context_sizes=(0,)), tmp_path / "x.jsonl", progress=False)
    assert not (tmp_path / "x.jsonl").exists()


def test_non_finite_values_round_trip_as_strict_json(tmp_path):
    path = tmp_path / "r.jsonl"
    append_record(path, {"cell": "c", "status": "ok", "metrics": {"kl": float("inf"), "ll": float("-inf"), "x": float("nan")}})
    line = path.read_text()
    assert '"kl": "inf"' in line
    json.loads(line)  # strict JSON
    record = read_records(path)[0]
    assert record["metrics"]["kl"] == float("inf")
    assert record["metrics"]["ll"] == float("-inf")
    assert np.isnan(record["metrics"]["x"])


def test_partial_last_line_is_skipped_and_earlier_records_kept(tmp_path):
    path = tmp_path / "r.jsonl"
    append_record(path, {"cell": "a", "status": "ok"})
    with path.open("a") as handle:
        handle.write('{"cell": "b", "stat')
    assert [r["cell"] for r in read_records(path)] == ["a"]
    assert finished_cells(path) == {"a"}


def test_fresh_tables_grid(tmp_path):
    output = tmp_path / "fresh.jsonl"
    config = _config(networks=("general",), table_prior="dirichlet:1", estimators=("mle",), seeds=(0,))
    run_grid(config, output, progress=False)
    records = read_records(output)
    assert {r["tables"] for r in records} == {"dirichlet:1"}
    assert all(r["status"] == "ok" for r in records)
