"""A conformance suite that any estimator class can run.

The checks (`CHECKS`, in `bnbench.testing.checks`) hold an estimator to the contract
of `bnbench.estimators.base`: declared attributes are valid, unfitted use raises
`NotFittedError`, shapes and dtypes are right, every probability row sums to 1,
the same seed gives the same result, answers on a hand-computed context are exact,
``conditions_on`` is honoured, tables agree with conditionals, generated rows
follow the estimator's own conditionals, and the error to the truth shrinks as the
context grows.

In a pytest suite, one test per check::

    import pytest
    from bnbench.testing import CHECKS, EstimatorCase, run_check

    @pytest.mark.parametrize("check", CHECKS)
    def test_conformance(check):
        run_check(check, EstimatorCase(MyEstimator))

Outside pytest, `check_estimator` runs every check and returns their outcomes.

An estimator class can declare how it is tested, with optional class attributes:

* ``conformance_settings``: constructor settings for a fast run (for example few
  posterior samples), used when the case gives no settings.
* ``conformance_reference``: its exact answer on the hand-computed context:
  ``"mle"``, ``"truth"`` or None (no closed form; the check is skipped). See
  `EstimatorCase`.
"""

from __future__ import annotations

from collections.abc import Callable

from bnbench.estimators.base import Estimator
from bnbench.testing.checks import CHECKS, CheckNotApplicable, EstimatorCase
from bnbench.testing.data import HAND_MLE, HAND_QUERIES, HAND_ROWS, HAND_STRUCTURE, HAND_TRUE_TABLES

__all__ = [
    "CHECKS",
    "CheckNotApplicable",
    "EstimatorCase",
    "HAND_MLE",
    "HAND_QUERIES",
    "HAND_ROWS",
    "HAND_STRUCTURE",
    "HAND_TRUE_TABLES",
    "check_estimator",
    "run_check",
]


def run_check(check: str | Callable[[EstimatorCase], None], case: EstimatorCase) -> None:
    """Run one check by name or function; inside pytest, a check that does not apply is skipped with its reason."""
    function = _resolve(check)
    try:
        function(case)
    except CheckNotApplicable as reason:
        import pytest

        pytest.skip(str(reason))


def check_estimator(estimator: type[Estimator] | str | EstimatorCase, **expectations) -> dict[str, str]:
    """Run every check; return ``{check: "passed" or "not applicable: reason"}``.

    ``expectations`` are `EstimatorCase` fields (``settings``, ``reference``, ...).
    Raises `AssertionError` naming the first failing check.
    """
    case = estimator if isinstance(estimator, EstimatorCase) else EstimatorCase(estimator, **expectations)
    outcomes = {}
    for name, function in CHECKS.items():
        try:
            function(case)
        except CheckNotApplicable as reason:
            outcomes[name] = f"not applicable: {reason}"
        except AssertionError as error:
            raise AssertionError(f"conformance check {name!r} failed for estimator {case.name!r}: {error}") from error
        else:
            outcomes[name] = "passed"
    return outcomes


def _resolve(check: str | Callable[[EstimatorCase], None]) -> Callable[[EstimatorCase], None]:
    if callable(check):
        return check
    if check not in CHECKS:
        raise KeyError(f"unknown conformance check {check!r}; valid checks: {list(CHECKS)}")
    return CHECKS[check]
