"""The Dirichlet posterior model, NUTS and SVI against the closed form, and the pyro-posterior estimator.

The posterior of every table row is Dirichlet(alpha + counts). Its mean m is
(n + alpha) / (n(pa) + alpha * card), and its standard deviation is
sqrt(m (1 - m) / (n(pa) + alpha * card + 1)). Monte Carlo tolerances below are about
four standard errors of the estimates at the stated sample sizes.
"""

from __future__ import annotations

import numpy as np
import pyro
import pytest
import torch

from bnbench.episodes import Context
from bnbench.estimators import make_estimator
from bnbench.estimators.mle import estimate_tables, family_counts
from bnbench.inference.posterior import (
    ContextCounts,
    ContextData,
    InferenceSettings,
    TableGroups,
    make_dirichlet_model,
    posterior_predictive,
    sample_posterior,
)
from bnbench.network import BayesianNetwork
from bnbench.networks import load_network
from bnbench.structure import Structure


@pytest.fixture
def pair() -> BayesianNetwork:
    """A -> B with a binary A and a three-state B."""
    structure = Structure.from_parents("pair", {"A": [], "B": ["A"]}, {"A": ["0", "1"], "B": ["0", "1", "2"]})
    return BayesianNetwork(structure, [np.array([0.3, 0.7]), np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])])


def episodes_of(network: BayesianNetwork, num_episodes: int, num_rows: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([network.sample(num_rows, rng) for _ in range(num_episodes)])  # (B, N, M)


def closed_form(structure: Structure, rows: np.ndarray, alpha: float) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Posterior means and standard deviations of every table, ``(B, *parent_cards, K)``."""
    means, sds = [], []
    for j in range(structure.num_variables):
        concentration = family_counts(structure, rows, j) + alpha
        total = concentration.sum(axis=-1, keepdims=True)
        mean = concentration / total
        means.append(mean)
        sds.append(np.sqrt(mean * (1 - mean) / (total + 1)))
    return means, sds


def test_groups_split_join_round_trip():
    structure = load_network("child").structure  # cardinalities 2 to 6
    groups = TableGroups.from_structure(structure)
    rng = np.random.default_rng(0)
    tables = [rng.random((3, *structure.table_shape(j))) for j in range(structure.num_variables)]
    for original, recovered in zip(tables, groups.split(groups.join(tables))):
        assert np.array_equal(original, recovered)
    assert sum(groups.sizes[k] * (k - 1) for k in groups.cardinalities) == structure.num_free_parameters


@pytest.mark.parametrize("observed", [ContextData, ContextCounts], ids=["rows", "counts"])
def test_model_likelihood_equals_table_likelihood(pair, observed):
    """With tables fixed, the context sites score log P(rows): duplicates by their weights, or counts times log tables."""
    structure = pair.structure
    rows = episodes_of(pair, 2, 30, seed=1)
    groups = TableGroups.from_structure(structure)
    tables = [np.stack([t, t[::-1] if t.ndim > 1 else t[::-1]]) for t in pair.cpts]  # (2, ...) different per episode
    fixed = {groups.site(k): torch.as_tensor(v) for k, v in groups.join(tables).items()}
    model = pyro.condition(make_dirichlet_model(structure, 1.0), data=fixed)
    trace = pyro.poutine.trace(model).get_trace(2, observed.from_rows(groups, rows))
    trace.compute_log_prob()
    total = sum(trace.nodes[f"context_card{k}"]["log_prob_sum"] for k in groups.cardinalities)
    expected = sum(BayesianNetwork(structure, [t[b] for t in tables]).log_prob(rows[b]).sum() for b in range(2))
    assert float(total) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("likelihood", ["rows", "counts"])
def test_nuts_matches_closed_form(pair, likelihood):
    rows = episodes_of(pair, 2, 20, seed=2)
    settings = InferenceSettings(method="nuts", num_samples=300, warmup_steps=100, max_tree_depth=5, likelihood=likelihood)
    posterior = sample_posterior(pair.structure, rows, 1.0, settings, seed=0)
    means, sds = closed_form(pair.structure, rows, 1.0)
    for samples, mean, sd in zip(posterior.tables, means, sds):
        assert samples.shape == (300, *mean.shape)
        # Posterior sds are at most 0.29 here; 300 correlated draws (effective size over 100)
        # give standard errors below 0.03. Seeds 0 and 1 gave errors of 0.015 and 0.018.
        assert np.abs(samples.mean(axis=0) - mean).max() < 0.05
        assert np.abs(samples.std(axis=0) - sd).max() < 0.04
    assert posterior.diagnostics["divergences"] == 0


@pytest.mark.parametrize("likelihood", ["rows", "counts"])
def test_svi_matches_closed_form(pair, likelihood):
    rows = episodes_of(pair, 2, 20, seed=3)
    settings = InferenceSettings(method="svi", num_samples=4000, num_steps=1500, learning_rate=0.1, likelihood=likelihood)
    posterior = sample_posterior(pair.structure, rows, 1.0, settings, seed=0)
    means, sds = closed_form(pair.structure, rows, 1.0)
    for samples, mean, sd in zip(posterior.tables, means, sds):
        # The guide family contains the posterior; the residual is optimization noise plus
        # the error of 4000 independent guide draws (standard error below 0.005).
        assert np.abs(samples.mean(axis=0) - mean).max() < 0.03
        assert np.abs(samples.std(axis=0) - sd).max() < 0.02


def test_posterior_mean_approaches_mle_as_alpha_shrinks(pair):
    """With every cell observed, the posterior mean at alpha = 0.001 is the MLE up to Monte Carlo error."""
    rows = episodes_of(pair, 1, 400, seed=4)
    mle, counts = estimate_tables(pair.structure, rows)
    assert all((c > 0).all() for c in counts)
    distances = {}
    for alpha in (0.001, 20.0):
        settings = InferenceSettings(method="nuts", num_samples=150, warmup_steps=80, max_tree_depth=5)
        posterior = sample_posterior(pair.structure, rows, alpha, settings, seed=1)
        distances[alpha] = max(np.abs(m - t).max() for m, t in zip(posterior.mean_tables(), mle))
    # Posterior sds are below 0.04 at 400 rows, so the Monte Carlo error of 150 draws is below 0.01.
    assert distances[0.001] < 0.02
    # alpha = 20 pulls rows of about 100 observations towards uniform by about 0.1.
    assert distances[20.0] > 0.05


def test_predictive_rows_follow_posterior_mean(pair):
    rows = episodes_of(pair, 2, 50, seed=5)
    posterior = sample_posterior(pair.structure, rows, 1.0, InferenceSettings(num_samples=40, warmup_steps=40), seed=2)
    generated = posterior_predictive(pair.structure, posterior, 20_000, seed=3)
    assert generated.shape == (2, 20_000, 2)
    predictive = posterior.mean_tables()
    joint = predictive[0][..., :, None] * predictive[1]  # (B, 2, 3): one row's predictive is the mean-table network
    empirical = np.stack([np.bincount(g[:, 0] * 3 + g[:, 1], minlength=6) for g in generated]).reshape(2, 2, 3) / 20_000
    # Standard error at most 0.0035 per cell at 20000 rows.
    assert np.abs(empirical - joint).max() < 0.015


def test_bad_settings_rejected():
    with pytest.raises(ValueError, match="unknown inference method 'hmc'"):
        InferenceSettings(method="hmc")
    with pytest.raises(ValueError, match="num_samples is 0"):
        InferenceSettings(num_samples=0)
    with pytest.raises(ValueError, match="alpha must be positive"):
        make_estimator("pyro-posterior", alpha=0)
    with pytest.raises(ValueError, match=r"unknown likelihood 'rowz'; valid likelihoods: \['rows', 'counts'\]"):
        make_estimator("pyro-posterior:likelihood=rowz")


# The estimator.


def test_method_resolution_names_faster_setting():
    estimator = make_estimator("pyro-posterior")
    alarm = load_network("alarm").structure
    assert estimator.resolve_method(load_network("asia").structure) == "nuts"
    assert estimator.resolve_method(alarm) == "svi"
    with pytest.raises(ValueError, match=r"NUTS on network 'alarm' \(509 free parameters.*'pyro-posterior:method=svi'"):
        make_estimator("pyro-posterior:method='nuts'").resolve_method(alarm)
    assert make_estimator("pyro-posterior", method="nuts", max_nuts_parameters=600).resolve_method(alarm) == "nuts"


def test_nuts_refused_before_any_work():
    alarm = load_network("alarm")
    rows = episodes_of(alarm, 1, 5, seed=6)
    with pytest.raises(ValueError, match="use the faster 'pyro-posterior:method=svi'"):
        make_estimator("pyro-posterior", method="nuts").fit(Context(alarm.structure, rows))


def test_estimator_conditionals_are_posterior_means(pair):
    rows = episodes_of(pair, 2, 40, seed=7)
    estimator = make_estimator("pyro-posterior", num_samples=60, warmup_steps=60, seed=3).fit(Context(pair.structure, rows))
    assert estimator.method_ == "nuts"
    means, _ = closed_form(pair.structure, rows, 1.0)
    for j in range(2):
        table = estimator.conditional_table(j)
        assert np.allclose(table, estimator.samples_.mean_tables()[j])
        assert np.allclose(table.sum(axis=-1), 1.0)
        assert np.abs(table - means[j]).max() < 0.12  # 60 draws of rows with sds up to 0.29


def test_estimator_generation_is_seeded_and_shuffled(pair):
    rows = episodes_of(pair, 2, 40, seed=8)
    estimator = make_estimator("pyro-posterior", num_samples=20, warmup_steps=20).fit(Context(pair.structure, rows))
    first = estimator.generate(50, np.random.default_rng(9))
    second = estimator.generate(50, np.random.default_rng(9))
    other = estimator.generate(50, np.random.default_rng(10))
    assert first.shape == (2, 50, 2)
    assert np.array_equal(first, second)
    assert not np.array_equal(first, other)


def test_estimator_generate_given_keeps_evidence(pair):
    rows = episodes_of(pair, 2, 40, seed=11)
    estimator = make_estimator("pyro-posterior", num_samples=20, warmup_steps=20).fit(Context(pair.structure, rows))
    queries = np.zeros((2, 300, 2), dtype=np.int64)
    queries[..., 1] = 2
    generated = estimator.generate_given(queries, np.array([False, True]), np.random.default_rng(12))
    assert (generated[..., 1] == 2).all()
    table_a, table_b = estimator.conditional_table(0), estimator.conditional_table(1)
    expected = table_a * table_b[..., 2] / (table_a * table_b[..., 2]).sum(axis=-1, keepdims=True)  # P(A | B = 2)
    frequencies = generated[..., 0].mean(axis=1)
    # Standard error at most 0.029 at 300 draws.
    assert np.abs(frequencies - expected[:, 1]).max() < 0.12
