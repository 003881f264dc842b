import math

import numpy as np
import pytest

from bnbench.network import BayesianNetwork, TableError, TableRenormalizedWarning
from bnbench.structure import Structure

from helpers import brute_force_joint


def _pair() -> Structure:
    return Structure.from_parents("pair", {"p": [], "c": ["p"]}, {"p": ["lo", "hi"], "c": ["x", "y", "z"]})


def test_wrong_shape_names_expected_layout():
    with pytest.raises(TableError, match=r"table of 'c' has shape \(3, 2\); expected \(2, 3\)"):
        BayesianNetwork(_pair(), {"p": np.array([0.5, 0.5]), "c": np.full((3, 2), 1 / 2)})


def test_row_that_does_not_sum_to_one_names_parent_configuration():
    bad = np.array([[0.2, 0.3, 0.5], [0.5, 0.3, 0.1]])
    with pytest.raises(TableError, match=r"row at p=hi sums to 0\.9"):
        BayesianNetwork(_pair(), {"p": np.array([0.5, 0.5]), "c": bad})


def test_negative_and_nan_entries_are_rejected():
    negative = np.array([[0.2, 0.3, 0.5], [1.1, -0.1, 0.0]])
    with pytest.raises(TableError, match="negative entry at p=hi"):
        BayesianNetwork(_pair(), {"p": np.array([0.5, 0.5]), "c": negative})
    with pytest.raises(TableError, match="NaN at"):
        BayesianNetwork(_pair(), {"p": np.array([np.nan, 0.5]), "c": np.full((2, 3), 1 / 3)})


def test_rounded_rows_are_renormalized_with_a_warning():
    rounded = np.array([[0.3333, 0.3333, 0.3333], [0.2, 0.3, 0.5]])
    with pytest.warns(TableRenormalizedWarning, match="1 rows sum to 1 only within 0.0001"):
        network = BayesianNetwork(_pair(), {"p": np.array([0.5, 0.5]), "c": rounded})
    assert np.allclose(network.cpt("c")[0], [1 / 3, 1 / 3, 1 / 3], atol=1e-15)
    assert np.allclose(network.cpt("c").sum(-1), 1.0, atol=1e-15)


def test_float_noise_is_renormalized_silently(recwarn):
    noisy = np.array([[0.2, 0.3, 0.5 + 3e-7], [0.2, 0.3, 0.5]])
    network = BayesianNetwork(_pair(), {"p": np.array([0.5, 0.5]), "c": noisy})
    assert len(recwarn) == 0
    assert abs(network.cpt("c")[0].sum() - 1.0) < 1e-15


def test_missing_and_unknown_tables_are_named():
    with pytest.raises(TableError, match=r"no table for variables \['c'\]"):
        BayesianNetwork(_pair(), {"p": np.array([0.5, 0.5])})
    with pytest.raises(TableError, match=r"unknown variables \['q'\]"):
        BayesianNetwork(_pair(), {"p": np.array([0.5, 0.5]), "c": np.full((2, 3), 1 / 3), "q": np.ones(1)})


def test_log_prob_matches_hand_computation(collider):
    # P(A=a1) P(B=b0) P(C=c2 | a1, b0) = 0.4 * 0.5 * 0.4
    rows = np.array([[1, 0, 2], [0, 1, 1]])
    expected = [math.log(0.4 * 0.5 * 0.4), math.log(0.6 * 0.5 * 0.8)]
    assert np.allclose(collider.log_prob(rows), expected, rtol=0, atol=1e-12)


def test_log_prob_of_impossible_row_is_minus_infinity(sprinkler):
    # wet = wet is impossible when rain = no and sprinkler = off.
    assert sprinkler.log_prob(np.array([0, 0, 1])) == -np.inf


def test_sampler_matches_brute_force_joint(collider):
    rows = collider.sample(200_000, np.random.default_rng(7))
    assert rows.shape == (200_000, 3)
    assert rows.dtype == np.int64
    joint = brute_force_joint(collider)
    empirical = np.zeros_like(joint)
    np.add.at(empirical, tuple(rows.T), 1.0)
    empirical /= len(rows)
    # 12 cells, each with standard error at most sqrt(0.25 / 2e5) ~ 0.0011; 0.005 is > 4 sigma.
    assert np.abs(empirical - joint).max() < 0.005


def test_sampler_never_draws_zero_probability_states(sprinkler):
    rows = sprinkler.sample(50_000, np.random.default_rng(0))
    impossible = (rows[:, 0] == 0) & (rows[:, 1] == 0) & (rows[:, 2] == 1)
    assert not impossible.any()


def test_same_seed_same_rows(collider):
    first = collider.sample(100, np.random.default_rng(3))
    second = collider.sample(100, np.random.default_rng(3))
    assert np.array_equal(first, second)
