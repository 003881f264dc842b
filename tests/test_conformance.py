"""Every registered estimator, and the count MLE's variants, against the conformance suite in bnbench.testing.

Estimators are read from the registry at collection time, so built-ins added later
and installed plug-ins are included. An estimator that is unavailable for the
suite's tiny networks declares it through ``unavailable_reason`` and is skipped
with that reason.
"""

from __future__ import annotations

import numpy as np
import pytest

from bnbench.estimators import estimator_names
from bnbench.estimators.mle import CountMLE, estimate_tables
from bnbench.testing import HAND_MLE, HAND_ROWS, HAND_STRUCTURE, CHECKS, CheckNotApplicable, EstimatorCase, check_estimator, run_check

# Exact answers on the hand-computed context (rows in bnbench.testing.data) of estimators
# whose answer is not the plain count MLE. Tables are indexed [episode, *parents, state].
ADD_ONE_TABLES = [
    # Episode 0 counts A = (2, 1), episode 1 counts (1, 2): (n + 1) / (3 + 2).
    np.array([[3 / 5, 2 / 5], [2 / 5, 3 / 5]]),
    # B: episode 0 counts (2, 1), episode 1 counts (0, 3).
    np.array([[3 / 5, 2 / 5], [1 / 5, 4 / 5]]),
    # C | A, B: one row gives (n + 1) / (1 + 2); two rows (1, 1) give 1/2; unseen rows stay uniform.
    np.array(
        [
            [[[1 / 3, 2 / 3], [1 / 3, 2 / 3]], [[2 / 3, 1 / 3], [0.5, 0.5]]],
            [[[0.5, 0.5], [2 / 3, 1 / 3]], [[0.5, 0.5], [0.5, 0.5]]],
        ]
    ),
]
MARGINAL_POLICY_TABLES = [
    np.array([[2 / 3, 1 / 3], [1 / 3, 2 / 3]]),
    np.array([[2 / 3, 1 / 3], [0.0, 1.0]]),
    # Unseen (A, B) rows take C's frequencies in the episode: (1/3, 2/3) in episode 0, (2/3, 1/3) in episode 1.
    np.array(
        [
            [[[0.0, 1.0], [0.0, 1.0]], [[1.0, 0.0], [1 / 3, 2 / 3]]],
            [[[2 / 3, 1 / 3], [1.0, 0.0]], [[2 / 3, 1 / 3], [0.5, 0.5]]],
        ]
    ),
]
# The example plug-in 'knn' (k = 1) conditions on the whole prefix, so its answers are
# conditionals at the eight query rows (A, B, C) in C order, shape (2 episodes, 8, 2).
_A0, _A1 = [0.5, 0.5], [1.0, 0.0]
KNN_CONDITIONALS = [
    # A has no earlier column: every row is at distance 0, so P(A) is the frequency of A.
    np.array([[[2 / 3, 1 / 3]] * 8, [[1 / 3, 2 / 3]] * 8]),
    # B | A: episode 0 keeps rows with A = 0 (B = 0, 1) or A = 1 (B = 0); episode 1 always has B = 1.
    np.array([[_A0] * 4 + [_A1] * 4, [[0.0, 1.0]] * 8]),
    # C | A, B: exact matches where they exist; (1, 1) in episode 0 keeps the two rows at distance 1
    # (C = 1, 0); (0, 0) in episode 1 keeps the row at distance 1 (C = 0) and (1, 0) the two rows
    # at distance 1 (C = 0, 1).
    np.array(
        [
            [[0.0, 1.0]] * 2 + [[0.0, 1.0]] * 2 + [[1.0, 0.0]] * 2 + [[0.5, 0.5]] * 2,
            [[1.0, 0.0]] * 2 + [[1.0, 0.0]] * 2 + [[0.5, 0.5]] * 2 + [[0.5, 0.5]] * 2,
        ]
    ),
]

#: Expectations of specific specs; every other registered name uses the class's declarations.
EXPECTATIONS = {
    "mle:alpha=1": {"reference": ADD_ONE_TABLES},
    "mle:policy='marginal'": {"reference": MARGINAL_POLICY_TABLES},
    "knn": {"reference": KNN_CONDITIONALS},
}


def _specs() -> list[str]:
    return [*estimator_names(), *(spec for spec in EXPECTATIONS if spec not in estimator_names())]


@pytest.mark.parametrize("check", list(CHECKS))
@pytest.mark.parametrize("spec", _specs())
def test_conformance(spec, check):
    run_check(check, EstimatorCase(spec, **EXPECTATIONS.get(spec, {})))


# The suite must catch estimators that break the contract.


class _Counting(CountMLE):
    def __init__(self):
        super().__init__()


class GlobalRandomness(_Counting):
    """Draws rows from numpy's global generator instead of the rng argument."""

    def generate(self, num_rows, rng):
        return super().generate(num_rows, np.random.default_rng(np.random.randint(2**31)))


class ReadsNonParent(_Counting):
    """Declares conditions_on = 'parents' but shifts its answer with column 0."""

    def conditionals(self, rows, target):
        probabilities = super().conditionals(rows, target)
        if target == 0:
            return probabilities
        weight = 0.5 + 0.4 * (rows[..., :1] == 0)  # (B, Q, 1)
        uniform = np.full_like(probabilities, 1.0 / probabilities.shape[-1])
        return weight * probabilities + (1 - weight) * uniform


class Unnormalized(_Counting):
    def conditionals(self, rows, target):
        return 2 * super().conditionals(rows, target)


class TransposedTable(_Counting):
    def conditional_table(self, target):
        return np.swapaxes(super().conditional_table(target), 0, -1)


class UniformRows(_Counting):
    """Generates uniform rows whatever it fitted."""

    def generate(self, num_rows, rng):
        context = self.fitted_context
        cards = np.asarray(context.structure.cardinalities)
        return (rng.random((context.num_episodes, num_rows, cards.size)) * cards).astype(np.int64)


class IgnoresData(_Counting):
    """Always answers uniformly, so it never approaches the truth."""

    def fit(self, context):
        super().fit(context)
        self.cpts_ = [np.full_like(t, 1.0 / t.shape[-1]) for t in self.cpts_]
        return self


class ForgetsToReturnSelf(_Counting):
    def fit(self, context):
        super().fit(context)


@pytest.mark.parametrize(
    ("cls", "check", "message"),
    [
        (GlobalRandomness, "same_seed", "different rows for the same rng seed"),
        (ReadsNonParent, "conditioning_set", "change when columns other than its parents"),
        (Unnormalized, "probability_rows", "row summing to 2"),
        (TransposedTable, "shapes_and_dtypes", "TransposedTable.conditional_table(1) has shape (2, 3, 3); expected (3, 3, 2)"),
        (UniformRows, "generation_matches_conditionals", "implied by its own conditionals"),
        (IgnoresData, "convergence", "error to the truth at N=3000"),
        (ForgetsToReturnSelf, "fit_contract", "fit must return self"),
        (CountMLE, "hand_computed", "P(A | nothing) in episode 0 is [0.6, 0.4]"),
    ],
    ids=lambda value: value.__name__ if isinstance(value, type) else None,
)
def test_suite_catches(cls, check, message):
    settings = {"alpha": 1.0} if cls is CountMLE else {}
    case = EstimatorCase(cls, settings=settings)
    with pytest.raises(AssertionError) as error:
        CHECKS[check](case)
    assert message in str(error.value)


def test_check_estimator_names_failing_check():
    with pytest.raises(AssertionError, match="conformance check 'probability_rows' failed for estimator 'Unnormalized'"):
        check_estimator(Unnormalized)


class GenerationOnly(_Counting):
    """Generates from the count MLE but offers no conditionals."""

    provides_probabilities = False

    def conditionals(self, rows, target):
        raise NotImplementedError("this estimator generates rows only")


def test_check_estimator_generation_only():
    outcomes = check_estimator(GenerationOnly)
    assert set(outcomes) == set(CHECKS)
    assert outcomes["hand_computed"] == "not applicable: estimator 'GenerationOnly' generates rows only; it has no conditionals"
    assert outcomes["convergence"] == "passed"
    assert outcomes["same_seed"] == "passed"


def test_class_declarations_are_read():
    class Declared(_Counting):
        conformance_settings = {}
        conformance_reference = None

    case = EstimatorCase(Declared)
    assert case.reference is None
    with pytest.raises(CheckNotApplicable, match="declares no closed-form answer"):
        CHECKS["hand_computed"](case)


def test_reference_shape_is_checked():
    case = EstimatorCase("mle", reference=[np.zeros(3)] * 3)
    with pytest.raises(ValueError, match="reference for variable 'A' has shape"):
        CHECKS["hand_computed"](case)


def test_hand_mle_matches_count_mle():
    # The hand-written tables and bnbench's counting agree (a check of the suite's own data).
    tables, _ = estimate_tables(HAND_STRUCTURE, HAND_ROWS)
    for table, expected in zip(tables, HAND_MLE):
        np.testing.assert_allclose(table, expected)
