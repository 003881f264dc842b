"""Exact inference under evidence: Pyro enumeration, variable elimination, likelihood weighting and pyro-enum."""

from __future__ import annotations

import numpy as np
import pytest

from bnbench.episodes import Context
from bnbench.estimators import make_estimator
from bnbench.inference import enumeration, weighting
from bnbench.inference import evidence as exact
from bnbench.inference.enumeration import EnumerationLimitError, marginals_given, plan_enumeration, sample_given
from bnbench.inference.evidence import EvidenceError, ImpossibleEvidenceError, encode_evidence
from bnbench.network import BayesianNetwork
from bnbench.networks import load_network
from bnbench.structure import Structure

from helpers import brute_force_joint

OIL_POSTERIOR = np.array([0.3, 0.4, 0.4]) / 1.1


@pytest.fixture
def oil() -> BayesianNetwork:
    """oil ~ uniform over three states; seismic | oil with rows (.1,.3,.6), (.3,.4,.3), (.5,.4,.1)."""
    structure = Structure.from_parents(
        "oil", {"oil": [], "seismic": ["oil"]}, {"oil": ["dry", "wet", "soaking"], "seismic": ["closed", "open", "diffuse"]}
    )
    seismic = np.array([[0.1, 0.3, 0.6], [0.3, 0.4, 0.3], [0.5, 0.4, 0.1]])
    return BayesianNetwork(structure, [np.full(3, 1 / 3), seismic])


@pytest.fixture
def cycle() -> BayesianNetwork:
    """r ~ Bernoulli(1/2), a = r, b = r, s = a + b: an undirected cycle r - a - s - b - r."""
    structure = Structure.from_parents(
        "sum", {"r": [], "a": ["r"], "b": ["r"], "s": ["a", "b"]}, {"r": ["0", "1"], "a": ["0", "1"], "b": ["0", "1"], "s": ["0", "1", "2"]}
    )
    s_table = np.zeros((2, 2, 3))
    for a in (0, 1):
        for b in (0, 1):
            s_table[a, b, a + b] = 1.0
    return BayesianNetwork(structure, [np.array([0.5, 0.5]), np.eye(2), np.eye(2), s_table])


def evidence_rows(network: BayesianNetwork, values: dict[str, int], num_rows: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``(1, num_rows, M)`` and mask ``(M,)`` with ``values`` (codes) observed."""
    structure = network.structure
    rows = np.zeros((1, num_rows, structure.num_variables), dtype=np.int64)
    observed = np.zeros(structure.num_variables, dtype=bool)
    for name, code in values.items():
        rows[..., structure.index(name)] = code
        observed[structure.index(name)] = True
    return rows, observed


# Exact answers.


def test_oil_posterior_exact(oil):
    rows, observed = evidence_rows(oil, {"seismic": 1})
    for marginal in (
        marginals_given(oil.structure, oil.batched_cpts, rows, observed)[0],
        exact.conditional_marginals(oil.structure, oil.batched_cpts, rows, observed)[0],
    ):
        assert marginal.shape == (1, 1, 3)
        assert np.allclose(marginal[0, 0], OIL_POSTERIOR, atol=1e-12)


def test_oil_samples_match_exact(oil):
    rows, observed = evidence_rows(oil, {"seismic": 1}, num_rows=20_000)
    samples = sample_given(oil.structure, oil.batched_cpts, rows, observed, np.random.default_rng(0))
    assert (samples[..., 1] == 1).all()
    frequencies = np.bincount(samples[0, :, 0], minlength=3) / 20_000
    # Standard error sqrt(p (1 - p) / 20000) <= 0.0035; 0.015 is over 4 sigma.
    assert np.abs(frequencies - OIL_POSTERIOR).max() < 0.015


def test_empty_sample_rejected(oil):
    rows = np.zeros((1, 0, 2), dtype=np.int64)
    with pytest.raises(EvidenceError, match="at least one episode and one row"):
        sample_given(oil.structure, oil.batched_cpts, rows, np.array([False, True]), np.random.default_rng(0))


def test_cycle_sum_marginal(cycle):
    rows, observed = evidence_rows(cycle, {})
    s_marginal = marginals_given(cycle.structure, cycle.batched_cpts, rows, observed)[3][0, 0]
    assert np.allclose(s_marginal, [0.5, 0.0, 0.5], atol=1e-12)


def test_cycle_sum_under_evidence(cycle):
    rows, observed = evidence_rows(cycle, {"s": 2}, num_rows=200)
    marginals = marginals_given(cycle.structure, cycle.batched_cpts, rows, observed)
    assert np.allclose(marginals[0][0, 0], [0.0, 1.0], atol=1e-12)
    samples = sample_given(cycle.structure, cycle.batched_cpts, rows, observed, np.random.default_rng(1))
    assert (samples[0] == [1, 1, 1, 2]).all()


def test_cycle_samples_never_sum_one(cycle):
    rows, observed = evidence_rows(cycle, {"a": 1}, num_rows=500)
    observed = observed.copy()
    samples = sample_given(cycle.structure, cycle.batched_cpts, rows, observed, np.random.default_rng(2))
    assert (samples[0, :, 3] == 2).all()  # a = 1 forces r = 1, hence b = 1 and s = 2


@pytest.mark.parametrize("declared", ["rain-first", "sprinkler-first"])
def test_rain_given_wet_matches_brute_force(sprinkler, declared):
    """P(rain | wet) is the same whichever order wet's parents are declared in."""
    network = sprinkler
    if declared == "sprinkler-first":
        structure = Structure.from_parents(
            "sprinkler-swapped",
            {"rain": [], "sprinkler": ["rain"], "wet": ["sprinkler", "rain"]},
            {v: list(s) for v, s in zip(sprinkler.structure.variables, sprinkler.structure.state_names)},
        )
        network = BayesianNetwork(structure, [sprinkler.cpts[0], sprinkler.cpts[1], np.swapaxes(sprinkler.cpts[2], 0, 1)])
    joint = brute_force_joint(sprinkler)  # axes: rain, sprinkler, wet
    for wet in (0, 1):
        expected = joint[:, :, wet].sum(axis=1) / joint[:, :, wet].sum()
        rows, observed = evidence_rows(network, {"wet": wet})
        assert np.allclose(marginals_given(network.structure, network.batched_cpts, rows, observed)[0][0, 0], expected, atol=1e-12)
        assert np.allclose(exact.conditional_marginals(network.structure, network.batched_cpts, rows, observed)[0][0, 0], expected, atol=1e-12)


def test_plates_of_size_one_match_larger(sprinkler):
    """A batch of one episode and one row gives the same marginals as the same row inside a larger batch."""
    structure = sprinkler.structure
    rows = np.array([[[0, 0, 1], [1, 0, 0], [0, 1, 1]]])
    observed = np.array([[[False, False, True], [True, False, False], [False, True, True]]])
    large = marginals_given(structure, sprinkler.batched_cpts, rows, observed)
    for q in range(3):
        small = marginals_given(structure, sprinkler.batched_cpts, rows[:, q : q + 1], observed[:, q : q + 1])
        for j in range(3):
            assert small[j].shape == (1, 1, 2)
            assert np.allclose(small[j][0, 0], large[j][0, q], atol=1e-12)
    samples = sample_given(structure, sprinkler.batched_cpts, rows[:, :1], observed[:, :1], np.random.default_rng(3))
    assert samples.shape == (1, 1, 3)
    assert samples[0, 0, 2] == 1


def test_integer_state_labels_map_by_label():
    """States named 1 and 2: evidence X = 2 selects the second state, and Y = X follows it."""
    structure = Structure.from_parents("labels", {"X": [], "Y": ["X"]}, {"X": ["1", "2"], "Y": ["1", "2"]})
    network = BayesianNetwork(structure, [np.array([0.5, 0.5]), np.eye(2)])
    row, observed = encode_evidence(structure, {"X": 2})
    assert row.tolist() == [1, 0]
    assert observed.tolist() == [True, False]
    rows = np.broadcast_to(row, (1, 300, 2)).copy()
    samples = sample_given(structure, network.batched_cpts, rows, observed, np.random.default_rng(4))
    labels = {structure.state_names[1][code] for code in samples[0, :, 1]}
    assert labels == {"2"}


def test_encode_evidence_rejects_unknown():
    structure = Structure.from_parents("labels", {"X": [], "Y": ["X"]}, {"X": ["1", "2"], "Y": ["1", "2"]})
    with pytest.raises(EvidenceError, match=r"no state 3; its states are \['1', '2'\]"):
        encode_evidence(structure, {"X": 3})
    with pytest.raises(KeyError, match="variable 'Z' is not in network"):
        encode_evidence(structure, {"Z": 1})


# Agreement between methods, per-row evidence, limits and fallbacks.


def test_asia_per_row_evidence_matches_elimination():
    asia = load_network("asia")
    structure = asia.structure
    rng = np.random.default_rng(5)
    rows = np.stack([asia.sample(40, rng) for _ in range(2)])  # (2, 40, 8)
    observed = rng.random(rows.shape) < 0.4
    cpts = [np.stack([t, t ** 0.5 / (t ** 0.5).sum(-1, keepdims=True)]) for t in asia.cpts]  # two episodes, different tables
    by_pyro = marginals_given(structure, cpts, rows, observed)
    by_elimination = exact.conditional_marginals(structure, cpts, rows, observed)
    for pyro_marginal, eliminated in zip(by_pyro, by_elimination):
        assert np.allclose(pyro_marginal, eliminated, atol=1e-10)


def test_asia_samples_follow_exact_conditionals():
    asia = load_network("asia")
    structure = asia.structure
    row, observed = encode_evidence(structure, {"dysp": "yes", "asia": "yes"})
    rows = np.broadcast_to(row, (1, 8000, 8)).copy()
    samples = sample_given(structure, asia.batched_cpts, rows, observed, np.random.default_rng(6))
    expected = exact.conditional_marginals(structure, asia.batched_cpts, rows[:, :1], observed)
    for j in range(structure.num_variables):
        frequencies = np.bincount(samples[0, :, j], minlength=2) / 8000
        # Standard error <= 0.0056 at 8000 draws; 0.025 is over 4 sigma.
        assert np.abs(frequencies - expected[j][0, 0]).max() < 0.025, structure.variables[j]


def test_same_rng_same_samples(sprinkler):
    rows, observed = evidence_rows(sprinkler, {"wet": 1}, num_rows=50)
    first = sample_given(sprinkler.structure, sprinkler.batched_cpts, rows, observed, np.random.default_rng(7))
    second = sample_given(sprinkler.structure, sprinkler.batched_cpts, rows, observed, np.random.default_rng(7))
    other = sample_given(sprinkler.structure, sprinkler.batched_cpts, rows, observed, np.random.default_rng(8))
    assert np.array_equal(first, second)
    assert not np.array_equal(first, other)


def test_only_ancestors_of_evidence_are_enumerated():
    asia = load_network("asia")
    structure = asia.structure
    observed = np.zeros((1, 1, 8), dtype=bool)
    observed[..., structure.index("tub")] = True
    plan = plan_enumeration(structure, observed)
    assert [structure.variables[j] for j in plan.variables] == ["asia", "tub"]
    assert [structure.variables[j] for j in plan.enumerated] == ["asia"]


def chain(length: int) -> BayesianNetwork:
    structure = Structure.from_cardinalities(f"chain{length}", [[j - 1] if j else [] for j in range(length)], [2] * length)
    step = np.array([[0.9, 0.1], [0.2, 0.8]])
    return BayesianNetwork(structure, [np.array([0.5, 0.5])] + [step] * (length - 1))


def test_too_many_sites_detected_before_running():
    network = chain(70)
    rows = np.zeros((1, 4, 70), dtype=np.int64)
    observed = np.zeros(70, dtype=bool)
    observed[-1] = True
    plan = plan_enumeration(network.structure, np.broadcast_to(observed, rows.shape))
    assert "69 enumerated variables" in plan.limit_reason(2**30)
    with pytest.raises(EnumerationLimitError, match=r"network 'chain70' needs 69 enumerated variables.*limit of 61"):
        sample_given(network.structure, network.batched_cpts, rows, observed, np.random.default_rng(9), fallback="error")


def test_fallbacks_agree_with_elimination():
    network = chain(70)
    structure = network.structure
    rows = np.zeros((1, 2000, 70), dtype=np.int64)
    observed = np.zeros(70, dtype=bool)
    observed[[0, -1]] = True  # x0 = 0 and x69 = 0
    expected = exact.conditional_marginals(structure, network.batched_cpts, rows[:, :1], observed)
    assert np.allclose(marginals_given(structure, network.batched_cpts, rows[:, :1], observed)[35], expected[35], atol=1e-12)

    eliminated = sample_given(structure, network.batched_cpts, rows[:, :400], observed, np.random.default_rng(10))
    weighted = sample_given(
        structure, network.batched_cpts, rows, observed, np.random.default_rng(11), fallback="likelihood-weighting", num_particles=100
    )
    for samples, tolerance in ((eliminated, 0.1), (weighted, 0.05)):
        assert (samples[..., [0, -1]] == 0).all()
        frequency = samples[0, :, 35].mean()
        # 400 and 2000 draws: standard errors about 0.024 and 0.011.
        assert abs(frequency - expected[35][0, 0, 1]) < tolerance


def test_memory_budget_chunks_without_changing_marginals():
    asia = load_network("asia")
    rng = np.random.default_rng(12)
    rows = asia.sample(30, rng)[None]
    observed = rng.random(rows.shape) < 0.5
    plan = plan_enumeration(asia.structure, observed, range(8))
    budget = plan.bytes_per_cell * 4 * 7  # compute_marginals uses a quarter of the budget: 7 rows per chunk
    assert len(plan.chunks(1, 30, budget / 4)) == 5
    chunked = marginals_given(asia.structure, asia.batched_cpts, rows, observed, max_memory=budget)
    whole = marginals_given(asia.structure, asia.batched_cpts, rows, observed)
    for a, b in zip(chunked, whole):
        assert np.allclose(a, b, atol=1e-12)


def test_tiny_memory_budget_falls_back(oil):
    rows, observed = evidence_rows(oil, {"seismic": 1})
    marginal = marginals_given(oil.structure, oil.batched_cpts, rows, observed, max_memory=1)[0]
    assert np.allclose(marginal[0, 0], OIL_POSTERIOR, atol=1e-12)
    with pytest.raises(EnumerationLimitError, match="above the memory budget"):
        marginals_given(oil.structure, oil.batched_cpts, rows, observed, max_memory=1, fallback="error")


def test_likelihood_weighting_marginals(oil):
    rows, observed = evidence_rows(oil, {"seismic": 1})
    marginals, effective = weighting.marginals_given(oil.structure, oil.batched_cpts, rows, observed, np.random.default_rng(13), 20_000)
    assert np.abs(marginals[0][0, 0] - OIL_POSTERIOR).max() < 0.02
    assert 10_000 < effective[0, 0] <= 20_000


def test_impossible_evidence_raises(sprinkler):
    """wet = 1 is impossible when it never rains and the sprinkler is off."""
    tables = [np.array([1.0, 0.0]), np.array([[1.0, 0.0], [1.0, 0.0]]), sprinkler.cpts[2]]
    network = BayesianNetwork(sprinkler.structure, tables)
    rows, observed = evidence_rows(network, {"wet": 1})
    with pytest.raises(ImpossibleEvidenceError, match="row 0 in episode 0 has probability 0"):
        sample_given(network.structure, network.batched_cpts, rows, observed, np.random.default_rng(14))
    with pytest.raises(ImpossibleEvidenceError, match="row 0 in episode 0 has probability 0"):
        marginals_given(network.structure, network.batched_cpts, rows, observed)
    with pytest.raises(ImpossibleEvidenceError, match="row 0 in episode 0 has probability 0"):
        exact.conditional_marginals(network.structure, network.batched_cpts, rows, observed)


@pytest.mark.parametrize(
    ("rows", "observed", "message"),
    [
        (np.zeros((4, 3), dtype=np.int64), np.ones(3, dtype=bool), r"expected \(episodes, rows, 3\)"),
        (np.zeros((1, 4, 3), dtype=np.int64), np.ones(2, dtype=bool), r"the observed mask has shape \(2,\)"),
        (np.zeros((1, 4, 3), dtype=np.int64), np.ones(3), "expected booleans"),
        (np.full((1, 4, 3), 2), np.ones(3, dtype=bool), "code 2 for variable 'rain'"),
        (np.zeros((1, 4, 3)), np.ones(3, dtype=bool), "expected integer state codes"),
    ],
    ids=["two-dimensional", "mask-shape", "mask-dtype", "bad-code", "float-rows"],
)
def test_invalid_evidence_rejected(sprinkler, rows, observed, message):
    with pytest.raises(EvidenceError, match=message):
        sample_given(sprinkler.structure, sprinkler.batched_cpts, rows, observed, np.random.default_rng(0))


def test_unobserved_entries_ignored(sprinkler):
    rows = np.array([[[-1, -1, 1]]])
    samples = sample_given(sprinkler.structure, sprinkler.batched_cpts, rows, np.array([False, False, True]), np.random.default_rng(0))
    assert (samples >= 0).all()


def test_unknown_fallback_rejected(oil):
    rows, observed = evidence_rows(oil, {"seismic": 1})
    with pytest.raises(ValueError, match="unknown fallback 'guess'"):
        sample_given(oil.structure, oil.batched_cpts, rows, observed, np.random.default_rng(0), fallback="guess")


def test_conditional_joint_matches_brute_force(sprinkler):
    rows, observed = evidence_rows(sprinkler, {"wet": 1})
    joint = brute_force_joint(sprinkler)
    expected = np.where(np.arange(2)[None, None, :] == 1, joint, 0.0)
    expected /= expected.sum()
    assert np.allclose(exact.conditional_joint(sprinkler.structure, sprinkler.batched_cpts, rows, observed)[0, 0], expected, atol=1e-12)


def test_memory_estimate_grows_with_enumerated_family():
    alarm = load_network("alarm")
    none = np.zeros((1, 1, 37), dtype=bool)
    some = none.copy()
    some[..., alarm.structure.index("BP")] = True
    assert plan_enumeration(alarm.structure, none).bytes_per_cell == 0
    assert plan_enumeration(alarm.structure, some).bytes_per_cell > 0
    assert enumeration.memory_budget(2**20) <= 2**20


# The estimator.


def hand_context(network: BayesianNetwork, num_rows: int, seed: int) -> Context:
    rng = np.random.default_rng(seed)
    return Context(network.structure, np.stack([network.sample(num_rows, rng) for _ in range(2)]))


def test_pyro_enum_tables(sprinkler):
    from bnbench.estimators.mle import estimate_tables

    context = hand_context(sprinkler, 30, 15)
    for alpha in (0.0, 1.0):
        fitted = make_estimator("pyro-enum", alpha=alpha).fit(context)
        expected, _ = estimate_tables(sprinkler.structure, context.rows, "uniform", alpha)
        for table, reference in zip(fitted.conditional_table(0), expected[0]):
            assert np.allclose(table, reference)


def test_pyro_enum_generate_given_keeps_evidence(sprinkler):
    estimator = make_estimator("pyro-enum").fit(hand_context(sprinkler, 50, 16))
    rows = np.zeros((2, 100, 3), dtype=np.int64)
    rows[..., 2] = 1
    observed = np.zeros((2, 100, 3), dtype=bool)
    observed[:, ::2, 2] = True  # evidence on every other row only
    generated = estimator.generate_given(rows, observed, np.random.default_rng(17))
    assert generated.shape == (2, 100, 3)
    assert (generated[:, ::2, 2] == 1).all()
    assert (generated[:, 1::2, 2] == 0).any()
    marginals = estimator.conditional_marginals(rows[:, :1], observed[:, :1])
    assert np.allclose(marginals[2][:, 0], [0.0, 1.0])


def test_pyro_enum_rejects_bad_settings():
    with pytest.raises(ValueError, match="unknown fallback 'magic'"):
        make_estimator("pyro-enum", fallback="magic")
    with pytest.raises(ValueError, match="alpha must be 0 or more"):
        make_estimator("pyro-enum", alpha=-1)
