import logging

import numpy as np
import pytest

from bnbench.episodes import Context, sample_episodes
from bnbench.estimators import make_estimator
from bnbench.estimators.mle import CountMLE, all_family_counts, family_counts
from bnbench.network import BayesianNetwork
from bnbench.networks import load_network
from bnbench.structure import Structure

# A -> C <- B, all binary, with the three rows (A, B, C) = (0,0,1), (0,1,1), (1,0,0).
TINY = Structure.from_parents("tiny", {"A": [], "B": [], "C": ["A", "B"]}, {v: ["0", "1"] for v in "ABC"})
TINY_ROWS = np.array([[[0, 0, 1], [0, 1, 1], [1, 0, 0]]])


def _fit(policy="uniform", alpha=0.0, rows=TINY_ROWS, structure=TINY) -> CountMLE:
    return CountMLE(policy=policy, alpha=alpha).fit(Context(structure, rows))


def test_hand_computed_tables():
    mle = _fit()
    assert mle.cpts_[0][0].tolist() == [2 / 3, 1 / 3]
    assert mle.cpts_[1][0].tolist() == [2 / 3, 1 / 3]
    c = mle.cpts_[2][0]
    assert c[0, 0].tolist() == [0.0, 1.0]
    assert c[0, 1].tolist() == [0.0, 1.0]
    assert c[1, 0].tolist() == [1.0, 0.0]


def test_unseen_configuration_follows_policy():
    # A = 1, B = 1 never occurs.
    assert _fit("uniform").cpts_[2][0][1, 1].tolist() == [0.5, 0.5]
    # The marginal of C in the context: one 0 and two 1s.
    assert np.allclose(_fit("marginal").cpts_[2][0][1, 1], [1 / 3, 2 / 3])
    assert np.isnan(_fit("nan").cpts_[2][0][1, 1]).all()
    # Seen configurations are the same under every policy.
    for policy in ("marginal", "nan"):
        assert np.array_equal(_fit(policy).cpts_[2][0][0], _fit("uniform").cpts_[2][0][0])


def test_pseudo_counts():
    mle = _fit(alpha=1.0)
    # C | A=0, B=0: counts (0, 1) + 1 each -> (1, 2) / 3
    assert np.allclose(mle.cpts_[2][0][0, 0], [1 / 3, 2 / 3])
    # Unseen configuration under add-one smoothing is uniform as well.
    assert np.allclose(mle.cpts_[2][0][1, 1], [0.5, 0.5])
    # Marginal policy with alpha: (1 + 1, 2 + 1) / (3 + 2)
    assert np.allclose(_fit("marginal", alpha=1.0).cpts_[2][0][1, 1], [2 / 5, 3 / 5])


def test_declared_state_that_never_occurs_keeps_its_row():
    structure = Structure.from_parents("three", {"P": [], "X": ["P"]}, {"P": ["p0", "p1"], "X": ["x0", "x1", "x2"]})
    rows = np.array([[[0, 0], [0, 1], [1, 1]]])
    mle = _fit(rows=rows, structure=structure)
    table = mle.cpts_[1][0]
    assert table.shape == (2, 3)
    assert table[0].tolist() == [0.5, 0.5, 0.0]
    assert table[1].tolist() == [0.0, 1.0, 0.0]


def test_strongly_non_uniform_table_is_recovered():
    # Regression guard: all-zero counts normalized into a flat table would give 0.5 everywhere.
    structure = Structure.from_parents("pair", {"P": [], "X": ["P"]}, {"P": ["0", "1"], "X": ["0", "1"]})
    truth = BayesianNetwork(structure, {"P": np.array([0.5, 0.5]), "X": np.array([[0.95, 0.05], [0.1, 0.9]])})
    rows = truth.sample(5000, np.random.default_rng(1))[None]
    table = _fit(rows=rows, structure=structure).cpts_[1][0]
    # ~2500 rows per configuration: standard error < 0.007, tolerance 0.03 is > 4 sigma.
    assert np.abs(table - truth.cpt("X")).max() < 0.03
    assert table[0, 0] > 0.9


def test_vectorized_over_episodes_equals_one_by_one(collider):
    rows = np.stack([collider.sample(50, np.random.default_rng(s)) for s in range(6)])
    together = _fit(rows=rows, structure=collider.structure)
    for b in range(6):
        alone = _fit(rows=rows[b : b + 1], structure=collider.structure)
        for j in range(3):
            assert np.array_equal(together.cpts_[j][b], alone.cpts_[j][0])


def test_family_counts_shape_and_total(collider):
    rows = np.stack([collider.sample(40, np.random.default_rng(0))] * 2)
    counts = family_counts(collider.structure, rows, 2)
    assert counts.shape == (2, 2, 2, 3)
    assert counts.sum(axis=(1, 2, 3)).tolist() == [40.0, 40.0]


@pytest.mark.parametrize("max_bins", [1, 64, 2**14])
def test_packed_family_counts_equal_one_by_one(max_bins):
    # Mixed cardinalities and in-degrees; max_bins 1 counts family by family, larger values pack groups.
    network = load_network("random:n=9,max_in_degree=3,card=2-4,seed=5")
    structure = network.structure
    rows = np.stack([network.sample(300, np.random.default_rng(seed)) for seed in range(3)])
    packed = all_family_counts(structure, rows, max_bins)
    for j in range(structure.num_variables):
        assert np.array_equal(packed[j], family_counts(structure, rows, j)), structure.variables[j]


def test_pgmpy_peer_agrees_exactly(collider):
    # Three rows leave configurations and states unseen; 300 rows see most of them.
    for size in (3, 300):
        rows = np.stack([collider.sample(size, np.random.default_rng(seed)) for seed in range(2)])
        context = Context(collider.structure, rows)
        ours = make_estimator("mle").fit(context)
        theirs = make_estimator("pgmpy-mle").fit(context)
        for j in range(3):
            assert np.allclose(ours.cpts_[j], theirs.cpts_[j], atol=1e-12)


def test_pgmpy_peer_generation_uses_labels_and_seed(sprinkler):
    context = Context(sprinkler.structure, sprinkler.sample(500, np.random.default_rng(0))[None])
    peer = make_estimator("pgmpy-mle").fit(context)
    first = peer.generate(300, np.random.default_rng(4))
    second = peer.generate(300, np.random.default_rng(4))
    assert np.array_equal(first, second)
    # wet is impossible when it neither rains nor the sprinkler is on, in the data and so in the fit.
    impossible = (first[0, :, 0] == 0) & (first[0, :, 1] == 0) & (first[0, :, 2] == 1)
    assert not impossible.any()


def test_pgmpy_peer_generation_drops_rounding_warnings(caplog):
    # On this alarm context pgmpy warns once that a fitted row sums to 1 - 2.2e-16.
    episodes = sample_episodes(load_network("alarm"), num_episodes=1, context_size=100, num_test_rows=0, seed=0)
    peer = make_estimator("pgmpy-mle").fit(episodes.context_for())
    with caplog.at_level(logging.WARNING, logger="pgmpy"):
        peer.generate(200, np.random.default_rng(0))
    assert not [r for r in caplog.records if "exactly sum to 1" in r.getMessage()]
    assert not logging.getLogger("pgmpy").filters


def test_invalid_settings_are_rejected():
    with pytest.raises(ValueError, match=r"unknown unseen-configuration policy 'zero'.*\['uniform', 'marginal', 'nan'\]"):
        CountMLE(policy="zero")
    with pytest.raises(ValueError, match="alpha must be 0 or more"):
        CountMLE(alpha=-1)


def test_unfitted_estimator_says_how_to_fix():
    with pytest.raises(RuntimeError, match=r"call fit\(context\) first"):
        CountMLE().conditional_table(0)
