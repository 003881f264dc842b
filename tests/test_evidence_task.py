"""The evidence task: queries, scoring against the exact conditionals, grid ids, runner dispatch and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bnbench.cli import main
from bnbench.episodes import sample_episodes
from bnbench.estimators.mle import CountMLE
from bnbench.harness.evidence import EvidenceQueries, _checked_generation, _frequencies, make_queries, score_generation
from bnbench.harness.grid import Cell, GridConfig, GridError
from bnbench.harness.records import read_records
from bnbench.harness.runner import run_grid
from bnbench.harness.validation import EstimatorOutputError
from bnbench.inference import evidence as exact
from bnbench.networks import load_network


def asia_episodes(num_test_rows: int = 20):
    return sample_episodes(load_network("asia"), num_episodes=2, context_size=30, num_test_rows=num_test_rows, seed=0)


def test_queries_take_evidence_from_test_rows():
    episodes = asia_episodes()
    queries = make_queries(episodes, 1000, np.random.default_rng(0))
    assert queries.rows.shape == (2, 10, 8)
    assert np.array_equal(queries.rows, episodes.test[:, :10])
    sizes = queries.observed.sum(axis=-1)
    assert sizes.min() >= 1
    assert sizes.max() <= 7
    assert len(np.unique(queries.observed.reshape(20, 8), axis=0)) > 10  # subsets differ between sets
    assert queries.samples_per_set == 100
    again = make_queries(episodes, 1000, np.random.default_rng(0))
    assert np.array_equal(again.observed, queries.observed)


def test_queries_need_test_and_generated_rows():
    with pytest.raises(ValueError, match="use --test-rows 1 or more"):
        make_queries(asia_episodes(num_test_rows=0), 100, np.random.default_rng(0))
    with pytest.raises(ValueError, match="use --generated-rows 10 or more"):
        make_queries(asia_episodes(), 5, np.random.default_rng(0))


def exact_draws(episodes, queries: EvidenceQueries, rng: np.random.Generator) -> np.ndarray:
    """Rows ``(B, E * S, M)`` drawn from the exact conditional joint of each evidence set."""
    structure = episodes.structure
    joint = exact.conditional_joint(structure, episodes.cpts, queries.rows, queries.observed)
    flat = joint.reshape(*joint.shape[:2], -1)  # (B, E, states)
    cdf = np.cumsum(flat, axis=-1)
    draws = (cdf[:, :, None, :] <= rng.random((*flat.shape[:2], queries.samples_per_set, 1))).sum(axis=-1)
    codes = np.stack(np.unravel_index(draws.clip(max=flat.shape[-1] - 1), structure.cardinalities), axis=-1)  # (B, E, S, M)
    return codes.reshape(flat.shape[0], -1, structure.num_variables)


def test_exact_sampler_scores_at_the_floor():
    episodes = asia_episodes()
    queries = make_queries(episodes, 2000, np.random.default_rng(1))
    scores = score_generation(episodes, queries, exact_draws(episodes, queries, np.random.default_rng(2)), np.random.default_rng(3))
    assert scores["exact"] is True
    # Both are means of 80 to 160 noisy TVs of the same size; 0.01 is several standard errors.
    assert abs(scores["evidence_marginal_tv"] - scores["evidence_marginal_tv_floor"]) < 0.01
    assert abs(scores["evidence_joint_tv"] - scores["evidence_joint_tv_floor"]) < 0.03


def test_unconditional_sampler_scores_worse():
    """Rows drawn from the network without the evidence are far from the conditionals."""
    episodes = asia_episodes()
    queries = make_queries(episodes, 2000, np.random.default_rng(1))
    network = load_network("asia")
    rng = np.random.default_rng(4)
    rows, observed = queries.repeated()
    ignoring = np.stack([network.sample(rows.shape[1], rng) for _ in range(2)])
    ignoring = np.where(observed, rows, ignoring)
    scores = score_generation(episodes, queries, ignoring, np.random.default_rng(3))
    assert scores["evidence_marginal_tv"] > 2 * scores["evidence_marginal_tv_floor"]


def test_changed_evidence_is_a_contract_error():
    structure = load_network("asia").structure
    rows = np.zeros((1, 3, 8), dtype=np.int64)
    observed = np.zeros((1, 3, 8), dtype=bool)
    observed[0, 1, 2] = True
    changed = rows.copy()
    changed[0, 1, 2] = 1
    with pytest.raises(EstimatorOutputError, match="changed observed variable 'smoke' in row 1 of episode 0"):
        _checked_generation("broken", structure, changed, rows, observed)


def test_empty_sample_cannot_be_scored():
    with pytest.raises(ValueError, match="cannot score an empty sample"):
        _frequencies(np.zeros((2, 3, 0), dtype=np.int64), 2)


def test_cell_id_mentions_task_only_when_not_default():
    generate = Cell("asia", 10, "mle", 0, GridConfig())
    evidence = Cell("asia", 10, "mle", 0, GridConfig(task="evidence"))
    assert generate.id == "asia|n=10|mle|seed=0|tables=fixed|episodes=8|test=500|generated=1000"
    assert evidence.id == generate.id + "|task=evidence"
    assert evidence.episode_seed == generate.episode_seed


def test_unknown_task_rejected():
    with pytest.raises(GridError, match=r"unknown task 'impute'; valid tasks: \['generate', 'evidence'\]"):
        GridConfig(task="impute").check()


def test_runner_skips_estimators_without_evidence(tmp_path):
    config = GridConfig(
        networks=("cancer",),
        context_sizes=(50,),
        estimators=("mle", "pyro-enum"),
        seeds=(0,),
        num_episodes=2,
        num_test_rows=20,
        num_generated_rows=200,
        measure_memory=False,
        task="evidence",
    )
    statuses = run_grid(config, tmp_path / "records.jsonl", progress=False)
    assert statuses["ok"] == 1
    assert statuses["skipped"] == 1
    records = {r["estimator"]: r for r in read_records(tmp_path / "records.jsonl")}
    assert records["mle"]["status"] == "skipped"
    assert "cannot condition on arbitrary evidence" in records["mle"]["note"]
    metrics = records["pyro-enum"]["metrics"]
    assert records["pyro-enum"]["task"] == "evidence"
    assert 0 <= metrics["evidence_marginal_tv"] <= 1
    assert 0 <= metrics["evidence_joint_tv"] <= 1
    assert metrics["evidence_rows_per_set"] == 20


class Ignores(CountMLE):
    """Claims evidence support but draws rows without looking at the evidence."""

    supports_evidence = True

    def generate_given(self, rows, observed, rng):
        return self.generate(rows.shape[1], rng)


def test_runner_records_contract_breaking_generation(tmp_path):
    config = GridConfig(
        networks=("cancer",),
        context_sizes=(50,),
        estimators=(f"{__name__}:Ignores",),
        seeds=(0,),
        num_episodes=2,
        num_test_rows=20,
        num_generated_rows=200,
        measure_memory=False,
        task="evidence",
    )
    statuses = run_grid(config, tmp_path / "records.jsonl", progress=False)
    assert statuses["failed"] == 1
    (record,) = read_records(tmp_path / "records.jsonl")
    assert "generate_given must keep the evidence" in record["error"]


def test_cli_task_option(tmp_path, capsys):
    output = tmp_path / "records.jsonl"
    arguments = ["run", "-n", "cancer", "-N", "40", "--seeds", "0", "--episodes", "2", "--test-rows", "20",
                 "--generated-rows", "100", "-e", "pyro-enum", "-e", "mle", "--task", "evidence", "--no-memory",
                 "--no-progress", "-o", str(output)]
    assert main(arguments) == 0
    printed = capsys.readouterr().out
    assert "evid. marginal TV" in printed
    assert "skipped: estimator 'mle' cannot condition on arbitrary evidence" in printed
    cells = [json.loads(line)["cell"] for line in output.read_text().splitlines()]
    assert all(cell.endswith("|task=evidence") for cell in cells)
