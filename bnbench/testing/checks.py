"""The conformance checks. Each takes an `EstimatorCase` and raises `AssertionError` on a violation.

A check that does not apply (a generation-only estimator has no conditionals to
compare, an estimator declares itself unavailable for the network) raises
`CheckNotApplicable` with the reason.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bnbench.episodes import Context
from bnbench.estimators.base import Estimator, NotFittedError
from bnbench.estimators.registry import get_estimator_class, split_spec
from bnbench.harness.validation import EstimatorOutputError, check_probabilities
from bnbench.network import BayesianNetwork
from bnbench.structure import Structure
from bnbench.testing.data import (
    HAND_NETWORK,
    HAND_QUERIES,
    HAND_STRUCTURE,
    MIXED_NETWORK,
    hand_context,
    hand_mle_conditionals,
    sampled_context,
    true_conditionals,
)

REFERENCES = ("mle", "truth")
_UNSET: Any = object()


class CheckNotApplicable(Exception):
    """Raised by a check that does not apply to the estimator; the message is the reason."""


@dataclass
class EstimatorCase:
    """An estimator under test and the expectations it is held to.

    Args:
        estimator: The class, a registry name, a ``package.module:Class`` path, or a
            spec with settings (``mle:alpha=1``).
        settings: Constructor settings. Default: the class attribute
            ``conformance_settings`` if it has one (fast settings for slow
            estimators), else none.
        reference: The exact answer on the hand-computed context: ``"mle"`` (the
            count MLE with uniform rows for unseen configurations), ``"truth"`` (the
            true tables, for estimators that read them), one array per variable
            (a table ``(2, *parent_cards, 2)``, or conditionals ``(2, 8, 2)`` at
            `HAND_QUERIES` for prefix estimators), or None when the estimator has no
            closed-form answer. Default: the class attribute
            ``conformance_reference`` if it has one, else ``"truth"`` for estimators
            that read the true tables and ``"mle"`` for the rest.
        atol: Absolute tolerance of exact comparisons.
        convergence_sizes: The small and the large context size of the convergence check.
        convergence_tolerance: Largest mean conditional TV to the truth at the large size.
        generated_rows: Rows generated per episode where generation is scored.
        generation_tolerance: Largest TV between generated rows and the distribution
            they should follow.
    """

    estimator: type[Estimator] | str
    settings: dict[str, Any] | None = None
    reference: Any = _UNSET
    atol: float = 1e-6
    convergence_sizes: tuple[int, int] = (30, 3000)
    convergence_tolerance: float = 0.03
    generated_rows: int = 20_000
    generation_tolerance: float = 0.03
    estimator_class: type[Estimator] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        spec_settings: dict[str, Any] = {}
        if isinstance(self.estimator, str):
            name, spec_settings = split_spec(self.estimator)
            self.estimator_class = get_estimator_class(name)
        elif isinstance(self.estimator, type) and issubclass(self.estimator, Estimator):
            self.estimator_class = self.estimator
        else:
            raise TypeError(f"cannot test {self.estimator!r}: pass an Estimator subclass, a registry name or a class path")
        if self.settings is None:
            self.settings = {**dict(getattr(self.estimator_class, "conformance_settings", {}) or {}), **spec_settings}
        if self.reference is _UNSET:
            default = "truth" if self.estimator_class.reads_true_tables else "mle"
            self.reference = getattr(self.estimator_class, "conformance_reference", default)
        if isinstance(self.reference, str) and self.reference not in REFERENCES:
            raise ValueError(f"unknown reference {self.reference!r}; valid: {list(REFERENCES)}, arrays, or None")

    @property
    def name(self) -> str:
        """The class's own registry name; a subclass that inherits one is named by its class name."""
        return vars(self.estimator_class).get("name") or self.estimator_class.__name__

    def make(self) -> Estimator:
        """Build a fresh, unfitted estimator with the case's settings."""
        return self.estimator_class(**(self.settings or {}))

    def fitted(self, context: Context) -> Estimator:
        estimator = self.make()
        returned = estimator.fit(context)
        assert returned is estimator, f"{self.name}.fit returned {returned!r}; fit must return self"
        return estimator

    def require(self, structure: Structure) -> None:
        """Raise `CheckNotApplicable` when the estimator declares itself unavailable for ``structure``."""
        # On an instance, so that settings such as a checkpoint path can decide.
        reason = self.make().unavailable_reason(structure)
        if reason is not None:
            raise CheckNotApplicable(f"estimator {self.name!r} is unavailable for network {structure.name!r}: {reason}")

    def require_probabilities(self) -> None:
        if not self.estimator_class.provides_probabilities:
            raise CheckNotApplicable(f"estimator {self.name!r} generates rows only; it has no conditionals")

    def context(self, network: BayesianNetwork, num_rows: int, num_episodes: int, seed: int) -> Context:
        return sampled_context(network, num_rows, num_episodes, seed, self.estimator_class.reads_true_tables)


def check_declared_attributes(case: EstimatorCase) -> None:
    """Check that capability attributes are valid, settings read back and unavailable_reason returns None or text."""
    cls = case.estimator_class
    assert isinstance(cls.name, str) and cls.name, f"{cls.__name__}.name must be a non-empty string (the registry name)"
    assert cls.conditions_on in ("parents", "prefix"), f"{case.name}.conditions_on is {cls.conditions_on!r}; use 'parents' or 'prefix'"
    for attribute in ("provides_probabilities", "supports_evidence", "reads_true_tables"):
        value = getattr(cls, attribute)
        assert isinstance(value, bool), f"{case.name}.{attribute} is {value!r}; it must be True or False"
    estimator = case.make()
    settings = estimator.get_settings()
    assert isinstance(settings, dict), f"{case.name}.get_settings() returned {type(settings).__name__}, not a dict"
    assert isinstance(repr(estimator), str)
    reason = cls.unavailable_reason(HAND_STRUCTURE)
    assert reason is None or isinstance(reason, str), f"{case.name}.unavailable_reason returned {reason!r}; return None or a string"
    if cls.supports_evidence:
        assert callable(getattr(estimator, "generate_given", None)), (
            f"{case.name} declares supports_evidence but has no generate_given method"
        )


def check_fit_contract(case: EstimatorCase) -> None:
    """Check that unfitted use raises NotFittedError, fit returns self and undeclared methods raise NotImplementedError."""
    case.require(HAND_STRUCTURE)
    cls = case.estimator_class
    estimator = case.make()
    _expect_raises(NotFittedError, lambda: estimator.generate(1, np.random.default_rng(0)), f"{case.name}.generate before fit")
    if cls.provides_probabilities:
        _expect_raises(NotFittedError, lambda: estimator.conditionals(HAND_QUERIES, 0), f"{case.name}.conditionals before fit")

    fitted = case.fitted(hand_context(cls.reads_true_tables))
    if not cls.provides_probabilities:
        _expect_raises(NotImplementedError, lambda: fitted.conditionals(HAND_QUERIES, 0), f"{case.name}.conditionals")
    if cls.conditions_on == "prefix":
        _expect_raises(NotImplementedError, lambda: fitted.conditional_table(0), f"{case.name}.conditional_table")


def check_shapes_and_dtypes(case: EstimatorCase) -> None:
    """Check the shapes and dtypes of conditionals ``(B, Q, card)``, tables ``(B, *parent_cards, card)`` and rows ``(B, R, M)``.

    Uses the mixed-cardinality network, and batches of one query and one row.
    """
    structure = MIXED_NETWORK.structure
    case.require(structure)
    context = case.context(MIXED_NETWORK, 20, 3, seed=1)
    estimator = case.fitted(context)
    queries = _query_rows(MIXED_NETWORK, 3, 16, seed=2)

    if case.estimator_class.provides_probabilities:
        for q in (queries, queries[:, :1]):
            for j in range(structure.num_variables):
                probabilities = np.asarray(estimator.conditionals(q, j))
                expected = (3, q.shape[1], structure.cardinalities[j])
                assert probabilities.shape == expected, f"{case.name}.conditionals(rows, {j}) has shape {probabilities.shape}; expected {expected}"
                assert np.issubdtype(probabilities.dtype, np.floating), f"{case.name}.conditionals returned dtype {probabilities.dtype}; expected floats"
        if case.estimator_class.conditions_on == "parents":
            for j in range(structure.num_variables):
                table = np.asarray(estimator.conditional_table(j))
                expected = (3, *structure.table_shape(j))
                assert table.shape == expected, f"{case.name}.conditional_table({j}) has shape {table.shape}; expected {expected}"

    for num_rows in (5, 1):
        rows = np.asarray(estimator.generate(num_rows, np.random.default_rng(3)))
        expected = (3, num_rows, structure.num_variables)
        assert rows.shape == expected, f"{case.name}.generate({num_rows}) has shape {rows.shape}; expected {expected}"
        assert np.issubdtype(rows.dtype, np.integer), f"{case.name}.generate returned dtype {rows.dtype}; expected integer codes"
        structure.validate_rows(rows, what=f"rows generated by {case.name!r}")


def check_probability_rows(case: EstimatorCase) -> None:
    """Check that every conditional and table row is non-negative and sums to 1, unseen parent configurations included.

    NaN rows are accepted only from an estimator whose ``may_return_nan`` is true.
    """
    case.require_probabilities()
    contexts = [(HAND_STRUCTURE, hand_context(case.estimator_class.reads_true_tables), HAND_QUERIES)]
    if case.make().unavailable_reason(MIXED_NETWORK.structure) is None:
        # Two rows per episode leave most parent configurations unseen.
        contexts.append((MIXED_NETWORK.structure, case.context(MIXED_NETWORK, 2, 2, seed=4), _query_rows(MIXED_NETWORK, 2, 64, seed=5)))
    case.require(HAND_STRUCTURE)

    for structure, context, queries in contexts:
        estimator = case.fitted(context)
        allow_nan = bool(getattr(estimator, "may_return_nan", False))
        for j in range(structure.num_variables):
            shape = (queries.shape[0], queries.shape[1], structure.cardinalities[j])
            _check_rows(case, f"conditionals of {structure.variables[j]!r} on {structure.name}", estimator.conditionals(queries, j), shape, allow_nan)
            if case.estimator_class.conditions_on == "parents":
                shape = (queries.shape[0], *structure.table_shape(j))
                _check_rows(case, f"table of {structure.variables[j]!r} on {structure.name}", estimator.conditional_table(j), shape, allow_nan)


def check_same_seed(case: EstimatorCase) -> None:
    """Check that two fresh estimators give identical results for the same seed, whatever the global random state.

    The global generators of numpy and torch are seeded differently for the two fits.
    A different seed must give different rows, which shows that ``rng`` is used.
    """
    structure = MIXED_NETWORK.structure
    case.require(structure)
    context = case.context(MIXED_NETWORK, 50, 2, seed=6)
    queries = _query_rows(MIXED_NETWORK, 2, 32, seed=7)

    with _global_seeds(11):
        first = case.fitted(context)
        first_rows = np.asarray(first.generate(200, np.random.default_rng(8)))
    with _global_seeds(12):
        second = case.fitted(context)
        second_rows = np.asarray(second.generate(200, np.random.default_rng(8)))
    other_rows = np.asarray(first.generate(200, np.random.default_rng(9)))

    if case.estimator_class.provides_probabilities:
        for j in range(structure.num_variables):
            assert np.array_equal(first.conditionals(queries, j), second.conditionals(queries, j), equal_nan=True), (
                f"{case.name}: two fits on the same context give different conditionals of {structure.variables[j]!r}; "
                "take every random choice from a seed setting or the rng argument"
            )
    assert np.array_equal(first_rows, second_rows), (
        f"{case.name}.generate gives different rows for the same rng seed (global numpy/torch state changed); "
        "draw only from the rng argument"
    )
    assert not np.array_equal(first_rows, other_rows), f"{case.name}.generate gives the same rows for different rng seeds"


def check_hand_computed(case: EstimatorCase) -> None:
    """Compare the conditionals on the hand-computed context (see `bnbench.testing.data`) with the reference, within ``atol``."""
    case.require_probabilities()
    if case.reference is None:
        raise CheckNotApplicable(f"estimator {case.name!r} declares no closed-form answer (conformance_reference = None)")
    case.require(HAND_STRUCTURE)
    estimator = case.fitted(hand_context(case.estimator_class.reads_true_tables))

    for j, variable in enumerate(HAND_STRUCTURE.variables):
        expected = _expected_conditionals(case.reference, j)
        actual = np.asarray(estimator.conditionals(HAND_QUERIES, j))
        assert actual.shape == expected.shape, f"{case.name}: conditionals of {variable!r} have shape {actual.shape}; expected {expected.shape}"
        wrong = ~np.isclose(actual, expected, atol=case.atol, rtol=0)
        if wrong.any():
            episode, query, _ = (int(i) for i in np.argwhere(wrong)[0])
            raise AssertionError(
                f"{case.name}: P({variable} | {_describe_query(HAND_QUERIES[episode, query], j)}) in episode {episode} is "
                f"{actual[episode, query].tolist()}; expected {expected[episode, query].tolist()} (reference {_reference_name(case)}, atol {case.atol})"
            )


def check_conditioning_set(case: EstimatorCase) -> None:
    """Check ``conditions_on``: a parents estimator reads only the parents, a prefix estimator only earlier columns."""
    case.require_probabilities()
    structure = MIXED_NETWORK.structure
    case.require(structure)
    estimator = case.fitted(case.context(MIXED_NETWORK, 200, 2, seed=10))
    queries = _query_rows(MIXED_NETWORK, 2, 64, seed=11)
    rng = np.random.default_rng(12)

    for j in range(structure.num_variables):
        if case.estimator_class.conditions_on == "parents":
            free = [k for k in range(structure.num_variables) if k not in structure.parents[j]]
            declared = f"parents {structure.parent_names(j)}"
        else:
            free = list(range(j, structure.num_variables))
            declared = "earlier columns"
        changed = queries.copy()
        for k in free:
            changed[..., k] = rng.integers(structure.cardinalities[k], size=changed.shape[:-1])
        before = estimator.conditionals(queries, j)
        after = estimator.conditionals(changed, j)
        assert np.allclose(before, after, atol=case.atol, rtol=0, equal_nan=True), (
            f"{case.name} declares conditions_on={case.estimator_class.conditions_on!r}, but its conditionals of "
            f"{structure.variables[j]!r} change when columns other than its {declared} change"
        )


def check_table_matches_conditionals(case: EstimatorCase) -> None:
    """Check that a parents estimator's `conditional_table` and `conditionals` agree at every query row."""
    case.require_probabilities()
    if case.estimator_class.conditions_on != "parents":
        raise CheckNotApplicable(f"estimator {case.name!r} conditions on the prefix; it has no tables")
    structure = MIXED_NETWORK.structure
    case.require(structure)
    estimator = case.fitted(case.context(MIXED_NETWORK, 30, 2, seed=13))
    queries = _query_rows(MIXED_NETWORK, 2, 64, seed=14)
    for j in range(structure.num_variables):
        table = np.asarray(estimator.conditional_table(j)).reshape(2, -1, structure.cardinalities[j])
        looked_up = table[np.arange(2)[:, None], structure.parent_configuration_index(queries, j)]
        assert np.allclose(looked_up, estimator.conditionals(queries, j), atol=case.atol, rtol=0, equal_nan=True), (
            f"{case.name}: conditional_table({j}) and conditionals(rows, {j}) disagree"
        )


def check_all_conditionals(case: EstimatorCase) -> None:
    """Check that `all_conditionals` returns, for every variable, what `conditionals` returns for it."""
    case.require_probabilities()
    structure = MIXED_NETWORK.structure
    case.require(structure)
    estimator = case.fitted(case.context(MIXED_NETWORK, 30, 2, seed=17))
    queries = _query_rows(MIXED_NETWORK, 2, 16, seed=18)
    together = estimator.all_conditionals(queries)
    assert len(together) == structure.num_variables, (
        f"{case.name}: all_conditionals returned {len(together)} arrays for {structure.num_variables} variables"
    )
    for j, probabilities in enumerate(together):
        assert np.allclose(probabilities, estimator.conditionals(queries, j), atol=case.atol, rtol=0, equal_nan=True), (
            f"{case.name}: all_conditionals and conditionals(rows, {j}) disagree"
        )


def check_generation_matches_conditionals(case: EstimatorCase) -> None:
    """Check that generated rows follow the estimator's own conditionals: joint TV at most ``generation_tolerance``."""
    case.require_probabilities()
    case.require(HAND_STRUCTURE)
    estimator = case.fitted(case.context(HAND_NETWORK, 200, 2, seed=15))
    implied = np.ones((2, 8))
    for j in range(HAND_STRUCTURE.num_variables):
        probabilities = np.asarray(estimator.conditionals(HAND_QUERIES, j))  # (2, 8, 2)
        implied *= np.take_along_axis(probabilities, HAND_QUERIES[..., j : j + 1], axis=-1)[..., 0]
    rows = np.asarray(estimator.generate(case.generated_rows, np.random.default_rng(16)))
    distance = _joint_tv(rows, implied)
    assert distance.max() <= case.generation_tolerance, (
        f"{case.name}: TV between {case.generated_rows} generated rows and the joint implied by its own conditionals "
        f"is {distance.max():.4f}, above {case.generation_tolerance}"
    )


def check_convergence(case: EstimatorCase) -> None:
    """Check that the error to the truth shrinks with N and is at most ``convergence_tolerance`` at the large size.

    The error is the mean conditional TV, weighted by the true probability of the
    conditioning values. For a generation-only estimator it is the TV between its
    generated rows and the true joint.
    """
    case.require(HAND_STRUCTURE)
    small, large = case.convergence_sizes
    errors = {size: _error_to_truth(case, case.fitted(case.context(HAND_NETWORK, size, 4, seed=17 + size))) for size in (small, large)}
    assert errors[large] <= case.convergence_tolerance, (
        f"{case.name}: error to the truth at N={large} is {errors[large]:.4f}, above {case.convergence_tolerance}"
    )
    assert errors[large] <= errors[small], (
        f"{case.name}: error to the truth grows from {errors[small]:.4f} at N={small} to {errors[large]:.4f} at N={large}"
    )


#: The checks in the order `check_estimator` runs them.
CHECKS: dict[str, Callable[[EstimatorCase], None]] = {
    "declared_attributes": check_declared_attributes,
    "fit_contract": check_fit_contract,
    "shapes_and_dtypes": check_shapes_and_dtypes,
    "probability_rows": check_probability_rows,
    "same_seed": check_same_seed,
    "hand_computed": check_hand_computed,
    "conditioning_set": check_conditioning_set,
    "table_matches_conditionals": check_table_matches_conditionals,
    "all_conditionals": check_all_conditionals,
    "generation_matches_conditionals": check_generation_matches_conditionals,
    "convergence": check_convergence,
}


def _expected_conditionals(reference: Any, j: int) -> np.ndarray:
    """Return the reference's conditionals of variable ``j`` at `HAND_QUERIES`, shape ``(2, 8, 2)``."""
    if reference == "mle":
        return hand_mle_conditionals(j)
    if reference == "truth":
        return np.broadcast_to(true_conditionals(HAND_NETWORK, HAND_QUERIES, j), (2, 8, 2))
    expected = np.asarray(reference[j], dtype=np.float64)
    table_shape = (2, *HAND_STRUCTURE.table_shape(j))
    if expected.shape == table_shape:
        table = expected.reshape(2, -1, 2)
        return table[np.arange(2)[:, None], HAND_STRUCTURE.parent_configuration_index(HAND_QUERIES, j)]
    if expected.shape != (2, 8, 2):
        raise ValueError(
            f"reference for variable {HAND_STRUCTURE.variables[j]!r} has shape {expected.shape}; give a table "
            f"{table_shape} or conditionals (2, 8, 2) at HAND_QUERIES"
        )
    return expected


def _error_to_truth(case: EstimatorCase, estimator: Estimator) -> float:
    weights = np.exp(HAND_NETWORK.log_prob(HAND_QUERIES[0]))  # (8,) true probability of each full row
    if not case.estimator_class.provides_probabilities:
        rows = np.asarray(estimator.generate(case.generated_rows, np.random.default_rng(18)))
        return float(_joint_tv(rows, weights[None]).mean())
    num_episodes = estimator.fitted_context.num_episodes
    queries = np.broadcast_to(HAND_QUERIES[:1], (num_episodes, 8, 3))
    distances = []
    for j in range(HAND_STRUCTURE.num_variables):
        estimate = np.asarray(estimator.conditionals(queries, j))  # (B, 8, 2)
        truth = true_conditionals(HAND_NETWORK, queries, j)
        distances.append((0.5 * np.abs(estimate - truth).sum(axis=-1) * weights).sum(axis=-1))  # (B,)
    return float(np.mean(distances))


def _joint_tv(rows: np.ndarray, joint: np.ndarray) -> np.ndarray:
    """TV per episode between rows ``(B, R, 3)`` of the hand structure and a joint ``(B or 1, 8)``."""
    codes = rows[..., 0] * 4 + rows[..., 1] * 2 + rows[..., 2]  # (B, R), C order as in HAND_QUERIES
    empirical = np.stack([np.bincount(c, minlength=8) for c in codes]) / rows.shape[1]
    return 0.5 * np.abs(empirical - joint).sum(axis=-1)


def _query_rows(network: BayesianNetwork, num_episodes: int, num_rows: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([network.sample(num_rows, rng) for _ in range(num_episodes)])  # (B, Q, M)


def _check_rows(case: EstimatorCase, what: str, array: object, shape: tuple[int, ...], allow_nan: bool) -> None:
    try:
        check_probabilities(case.name, what, array, shape, allow_nan)
    except EstimatorOutputError as error:
        raise AssertionError(str(error)) from None


def _expect_raises(exception: type[BaseException], call: Callable[[], object], what: str) -> None:
    try:
        call()
    except exception:
        return
    except Exception as error:  # a different error breaks the contract just as much as none
        raise AssertionError(f"{what} raised {type(error).__name__}: {error}; expected {exception.__name__}") from error
    raise AssertionError(f"{what} returned normally; expected {exception.__name__}")


def _describe_query(row: np.ndarray, target: int) -> str:
    earlier = [f"{HAND_STRUCTURE.variables[k]}={row[k]}" for k in range(target)]
    return ", ".join(earlier) if earlier else "nothing"


def _reference_name(case: EstimatorCase) -> str:
    return repr(case.reference) if isinstance(case.reference, str) else "given arrays"


@contextmanager
def _global_seeds(seed: int):
    """Seed numpy's (and torch's, if imported) global generators, restoring their states afterwards."""
    numpy_state = np.random.get_state()
    torch = sys.modules.get("torch")
    torch_state = torch.random.get_rng_state() if torch is not None else None
    np.random.seed(seed)
    if torch is not None:
        torch.manual_seed(seed)
    try:
        yield
    finally:
        np.random.set_state(numpy_state)
        if torch is not None:
            torch.random.set_rng_state(torch_state)
