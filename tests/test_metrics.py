import math

import numpy as np
import pytest

from bnbench.episodes import Context, sample_episodes
from bnbench.estimators import make_estimator
from bnbench.estimators.mle import estimate_tables
from bnbench.harness.evaluate import EvaluationSettings, Reference, evaluate
from bnbench.metrics import fidelity, samples
from bnbench.metrics.truth import compute_truth
from bnbench.network import BayesianNetwork

from helpers import brute_force_joint


def _episodes(network, size, seed=0, episodes=1, test=400):
    return sample_episodes(network, num_episodes=episodes, context_size=size, num_test_rows=test, seed=seed)


def _evaluate(spec, batch, generated=0):
    truth = compute_truth(batch)
    tables, counts = estimate_tables(batch.structure, batch.context)
    settings = EvaluationSettings(num_generated_rows=generated, measure_memory=False)
    return evaluate(make_estimator(spec), batch, truth, Reference(tables, counts), settings, seed=0)


def test_decomposed_kl_equals_joint_kl_by_enumeration(collider):
    batch = _episodes(collider, 30)
    metrics = _evaluate("mle:alpha=0.5", batch)
    fitted = make_estimator("mle:alpha=0.5").fit(batch.context_for())
    estimate = BayesianNetwork(collider.structure, [t[0] for t in fitted.cpts_])
    p, q = brute_force_joint(collider), brute_force_joint(estimate)
    mask = p > 0
    expected = float((p[mask] * np.log(p[mask] / q[mask])).sum())
    assert metrics["kl"] == pytest.approx(expected, rel=1e-10)
    assert metrics["divergence_exact"] is True


def test_conditional_tv_equals_enumeration(collider):
    batch = _episodes(collider, 12)
    metrics = _evaluate("mle", batch)
    fitted = make_estimator("mle").fit(batch.context_for())
    joint = brute_force_joint(collider)
    parent_weight = joint.sum(axis=2)  # P(A, B)
    expected_c = (parent_weight * 0.5 * np.abs(collider.cpt("C") - fitted.cpts_[2][0]).sum(-1)).sum()
    expected_a = 0.5 * np.abs(collider.cpt("A") - fitted.cpts_[0][0]).sum()
    expected_b = 0.5 * np.abs(collider.cpt("B") - fitted.cpts_[1][0]).sum()
    assert metrics["tv_by_variable"]["C"] == pytest.approx(expected_c, abs=1e-14)
    assert metrics["tv"] == pytest.approx((expected_a + expected_b + expected_c) / 3, abs=1e-14)


def test_zero_estimate_of_a_possible_state_gives_infinite_kl():
    p = np.array([[0.5, 0.5]])
    q = np.array([[1.0, 0.0]])
    assert fidelity.table_kl(p, q, p)[0] == math.inf
    finite = fidelity.table_kl(p, fidelity.smooth(q), p)[0]
    assert math.isfinite(finite)
    assert finite == pytest.approx(0.5 * math.log(0.5 / (0.999 + 0.0005)) + 0.5 * math.log(0.5 / 0.0005))


def test_infinite_kl_is_reported_not_dropped(collider):
    # Three rows cannot show every state, so the plain MLE puts zero mass on possible ones.
    metrics = _evaluate("mle", _episodes(collider, 3))
    assert metrics["kl"] == math.inf
    assert metrics["infinite_kl_fraction"] == 1.0
    assert math.isfinite(metrics["kl_smoothed"])
    assert metrics["heldout_ll"] == -math.inf
    assert math.isfinite(metrics["heldout_ll_smoothed"])


def test_oracle_scores(collider):
    batch = _episodes(collider, 10, episodes=2)
    metrics = _evaluate("oracle", batch)
    assert metrics["kl"] == 0.0
    assert metrics["tv"] == 0.0
    assert metrics["heldout_ll"] == pytest.approx(collider.log_prob(batch.test).mean(), abs=1e-12)


def test_mle_agreement_is_zero_for_mle_itself(collider):
    metrics = _evaluate("mle", _episodes(collider, 25, episodes=3))
    assert metrics["mle_max_abs_diff"] == 0.0
    assert metrics["mle_mean_abs_diff"] == 0.0


def test_context_coverage_by_hand(collider):
    batch = _episodes(collider, 1)
    row = batch.context[0, 0]
    metrics = _evaluate("mle", batch)
    joint = brute_force_joint(collider)
    # Roots have one configuration, always seen; C's parent configuration is seen only for the row's (A, B).
    unseen_c = 1.0 - joint.sum(axis=2)[row[0], row[1]]
    assert metrics["unseen_parent_mass"] == pytest.approx(unseen_c / 3, abs=1e-14)
    # Reachable rows: 1 (A) + 1 (B) + 4 (C); unseen: 3 of C's.
    assert metrics["unidentified_fraction"] == pytest.approx(3 / 6)


def test_generated_family_and_joint_tv_by_hand(collider):
    rows = np.array([[[0, 0, 0], [0, 0, 0], [1, 1, 2], [0, 1, 1]]])
    joint = brute_force_joint(collider)[None]
    empirical = np.zeros((2, 2, 3))
    for r in rows[0]:
        empirical[tuple(r)] += 0.25
    assert samples.joint_tv(collider.structure, rows, joint)[0] == pytest.approx(0.5 * np.abs(empirical - joint[0]).sum())
    family = [joint[0].sum(axis=(1, 2))[None], joint[0].sum(axis=(0, 2))[None], joint]
    scores = samples.family_tv(collider.structure, rows, family)
    assert scores.shape == (1, 3)
    assert scores[0, 0] == pytest.approx(0.5 * (abs(0.75 - 0.6) + abs(0.25 - 0.4)))
    assert scores[0, 2] == pytest.approx(0.5 * np.abs(empirical - joint[0]).sum())


def test_generated_rows_of_the_oracle_are_close_to_truth(collider):
    metrics = _evaluate("oracle", _episodes(collider, 10, episodes=2), generated=50_000)
    # Expected TV of an empirical distribution over 12 cells from 5e4 rows is about 0.006.
    assert metrics["generated_joint_tv"] < 0.02
    assert metrics["generate_rows_per_s"] > 0


def test_prefix_estimator_scores_on_test_rows(collider):
    """An estimator declared as prefix-conditioned is scored by averaging over true test rows."""
    from bnbench.estimators.mle import CountMLE

    class PrefixMLE(CountMLE):
        name = "prefix-mle"
        conditions_on = "prefix"

    batch = _episodes(collider, 50, test=5000)
    truth = compute_truth(batch)
    tables, counts = estimate_tables(batch.structure, batch.context)
    settings = EvaluationSettings(num_generated_rows=0, measure_memory=False)
    prefix = evaluate(PrefixMLE(alpha=0.5), batch, truth, Reference(tables, counts), settings, seed=0)
    exact = _evaluate("mle:alpha=0.5", batch)
    assert prefix["divergence_exact"] is False
    # 5000 test rows: the Monte Carlo TV is within a few hundredths of the exact one.
    assert prefix["tv"] == pytest.approx(exact["tv"], abs=0.02)
    assert prefix["kl"] == pytest.approx(exact["kl"], rel=0.15)


def test_context_is_never_given_truth_unless_declared(collider):
    batch = _episodes(collider, 5)
    assert batch.context_for().true_cpts is None
    assert batch.context_for(reads_true_tables=True).true_cpts is not None
    with pytest.raises(ValueError, match="needs the true tables"):
        make_estimator("oracle").fit(Context(collider.structure, batch.context))


def test_truth_is_estimated_when_exact_marginals_are_too_large(collider, monkeypatch):
    from bnbench import exact

    monkeypatch.setattr(exact, "MAX_INTERMEDIATE_ENTRIES", 2)
    batch = _episodes(collider, 10, episodes=2)
    truth = compute_truth(batch, seed=0)
    assert truth.exact is False
    assert truth.estimation_rows >= 1000
    expected = brute_force_joint(collider)
    # At least 1e5 rows per episode: standard error per cell < 0.0016.
    assert np.abs(truth.family_marginals[2] - expected).max() < 0.01
    metrics = _evaluate("mle", batch)
    assert metrics["exact"] is False
