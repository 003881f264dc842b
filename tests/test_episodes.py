import numpy as np
import pytest

from bnbench.episodes import Context, ContextError, derive_seed, sample_episodes
from bnbench.networks.synthetic import general
from bnbench.priors import DirichletPrior


def test_same_seed_same_episodes(collider):
    first = sample_episodes(collider, num_episodes=3, context_size=20, num_test_rows=5, seed=11)
    second = sample_episodes(collider, num_episodes=3, context_size=20, num_test_rows=5, seed=11)
    other = sample_episodes(collider, num_episodes=3, context_size=20, num_test_rows=5, seed=12)
    assert np.array_equal(first.context, second.context)
    assert np.array_equal(first.test, second.test)
    assert not np.array_equal(first.context, other.context)


def test_fixed_tables_are_shared_by_every_episode(collider):
    batch = sample_episodes(collider, num_episodes=4, context_size=10, num_test_rows=0, seed=0)
    assert batch.fixed_tables
    assert batch.cpts[2].shape == (4, 2, 2, 3)
    for b in range(4):
        assert np.array_equal(batch.cpts[2][b], collider.cpt("C"))
    assert batch.context.shape == (4, 10, 3)
    assert batch.test.shape == (4, 0, 3)


def test_fresh_tables_differ_per_episode_and_match_across_sizes():
    structure = general()
    small = sample_episodes(structure, num_episodes=5, context_size=3, num_test_rows=7, seed=2, prior=DirichletPrior())
    large = sample_episodes(structure, num_episodes=5, context_size=300, num_test_rows=7, seed=2, prior=DirichletPrior())
    assert not small.fixed_tables
    assert small.table_prior == "dirichlet:1"
    assert not np.allclose(small.cpts[2][0], small.cpts[2][1])
    # Tables and test rows come from their own streams, so N does not change them.
    for a, b in zip(small.cpts, large.cpts):
        assert np.array_equal(a, b)
    assert np.array_equal(small.test, large.test)


def test_fresh_tables_generate_matching_rows():
    structure = general()
    batch = sample_episodes(structure, num_episodes=2, context_size=40_000, num_test_rows=0, seed=5, prior=DirichletPrior())
    for b in range(2):
        frequency = np.bincount(batch.context[b, :, 0], minlength=2) / 40_000
        # Standard error ~ 0.0025; 0.015 is 6 sigma.
        assert np.abs(frequency - batch.cpts[0][b]).max() < 0.015


def test_structure_without_tables_needs_a_prior():
    with pytest.raises(ValueError, match="pass a BayesianNetwork or a table prior"):
        sample_episodes(general(), num_episodes=1, context_size=1, num_test_rows=0, seed=0)


def test_zero_context_rows_are_rejected(collider):
    with pytest.raises(ContextError, match="context_size must be at least 1"):
        sample_episodes(collider, num_episodes=1, context_size=0, num_test_rows=0, seed=0)
    with pytest.raises(ContextError, match="zero rows"):
        Context(collider.structure, np.zeros((1, 0, 3), dtype=np.int64))


def test_context_shape_and_code_checks(collider):
    with pytest.raises(ContextError, match=r"Wrap a single episode as rows\[None\]"):
        Context(collider.structure, np.zeros((4, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="code 3 for variable 'C'"):
        Context(collider.structure, np.array([[[0, 0, 3]]]))


def test_derive_seed_is_stable():
    assert derive_seed(0, "asia", "fixed") == derive_seed(0, "asia", "fixed")
    assert derive_seed(0, "asia", "fixed") != derive_seed(1, "asia", "fixed")
    assert 0 <= derive_seed(5, "x") < 2**63
