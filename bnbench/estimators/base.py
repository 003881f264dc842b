"""The estimator contract.

An estimator takes its settings in the constructor and does its work in `fit`. The
fitted estimator answers, for every episode of the context it was fitted on:

* `conditionals(rows, j)`: P(x_j | the values of ``rows`` before column j), shape
  ``(B, Q, card_j)``. Estimators with ``conditions_on = "parents"`` read only the
  parents of ``j``; ``"prefix"`` estimators may read every earlier column.
* `all_conditionals(rows)`: `conditionals` of every variable at once, one array per
  variable (the default calls `conditionals` M times).
* `conditional_table(j)`: the full table ``(B, *parent_cards, card_j)`` (parents
  estimators only).
* `generate(num_rows, rng)`: new rows ``(B, num_rows, M)``, drawn in topological
  order with ``rng`` as the only source of randomness.
* `generate_given(rows, observed, rng)`: ``rows`` ``(B, Q, M)`` with the variables
  where ``observed`` is False drawn from the estimated conditional given the observed
  ones (any subset, not only a prefix); only estimators with ``supports_evidence``.

Estimators that only generate rows set ``provides_probabilities = False`` and
implement `generate` alone. Every array at this boundary is a numpy array; states
are integer codes into ``structure.state_names``.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import numpy as np

from bnbench.episodes import Context
from bnbench.sampling import ancestral_sample, gather_conditionals
from bnbench.structure import Structure


class NotFittedError(RuntimeError):
    """Raised when a fitted-only method is called before `fit`."""


class Estimator(ABC):
    """Base class of every estimator; see the module docstring for the contract.

    Class attributes declare capabilities; the harness and the conformance suite
    check them:

    * ``name``: the registry name.
    * ``provides_probabilities``: `conditionals` is implemented.
    * ``conditions_on``: ``"parents"`` or ``"prefix"`` (see the module docstring).
    * ``supports_evidence``: `generate_given` can condition on any subset of variables.
    * ``reads_true_tables``: `fit` needs ``context.true_cpts`` (only the oracle).
    """

    name: ClassVar[str] = ""
    provides_probabilities: ClassVar[bool] = True
    conditions_on: ClassVar[Literal["parents", "prefix"]] = "parents"
    supports_evidence: ClassVar[bool] = False
    reads_true_tables: ClassVar[bool] = False

    context_: Context | None = None

    @classmethod
    def unavailable_reason(cls, structure: Structure) -> str | None:
        """Why this estimator cannot run on ``structure``, or None when it can."""
        return None

    def get_settings(self) -> dict[str, Any]:
        """The constructor settings, read back from attributes of the same name."""
        parameters = inspect.signature(type(self).__init__).parameters
        return {
            name: getattr(self, name)
            for name, parameter in parameters.items()
            if name != "self" and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
        }

    def provenance(self) -> dict[str, Any]:
        """JSON-safe facts about where a fitted estimator's parameters come from; stored in each ok record.

        The settings alone may not pin down the numbers: ``trained-transformer`` without a
        ``checkpoint`` setting uses whichever shipped file fits, so it returns that file's
        path and digest here. Most estimators have nothing to add and return ``{}``.
        """
        return {}

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.get_settings().items())
        return f"{type(self).__name__}({settings})"

    @abstractmethod
    def fit(self, context: Context) -> Estimator:
        """Learn from ``context`` (every episode at once) and return ``self``."""

    def conditionals(self, rows: np.ndarray, target: int) -> np.ndarray:
        """P(x_target | earlier columns of ``rows``); ``rows`` ``(B, Q, M)`` -> ``(B, Q, card)``.

        Columns at and after ``target`` are ignored.
        """
        raise NotImplementedError(f"estimator {self.name!r} generates rows only; it has no conditionals")

    def all_conditionals(self, rows: np.ndarray) -> list[np.ndarray]:
        """`conditionals` of every variable for the same rows: one ``(B, Q, card_j)`` array per variable.

        The harness times this call. Override it when the conditionals of all variables
        can be computed in one batched pass.
        """
        return [self.conditionals(rows, j) for j in range(self.fitted_context.structure.num_variables)]

    def conditional_table(self, target: int) -> np.ndarray:
        """The estimated table of ``target``, shape ``(B, *parent_cards, card)``.

        The default evaluates `conditionals` once per parent configuration; this is
        exact only for ``conditions_on = "parents"``.
        """
        if self.conditions_on != "parents":
            raise NotImplementedError(f"estimator {self.name!r} conditions on the whole prefix; it has no tables")
        structure = self.fitted_context.structure
        queries = parent_configuration_rows(structure, target, self.fitted_context.num_episodes)
        probabilities = self.conditionals(queries, target)  # (B, P, card)
        return probabilities.reshape(queries.shape[0], *structure.table_shape(target))

    def generate(self, num_rows: int, rng: np.random.Generator) -> np.ndarray:
        """Draw ``num_rows`` rows per episode autoregressively from `conditionals`."""
        context = self.fitted_context
        structure = context.structure
        rows = np.zeros((context.num_episodes, num_rows, structure.num_variables), dtype=np.int64)
        for j in range(structure.num_variables):
            probabilities = self.conditionals(rows, j)  # (B, R, card)
            rows[:, :, j] = sample_categorical(probabilities, rng)
        return rows

    def generate_given(self, rows: np.ndarray, observed: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Fill the unobserved variables of each query row from P(unobserved | observed values of the row).

        Args:
            rows: ``(B, Q, M)`` integer codes; entries where ``observed`` is False are ignored.
            observed: Boolean mask, ``(M,)`` for the same evidence variables in every row
                or ``(B, Q, M)`` for a different set per row.
            rng: The only source of randomness.

        Returns:
            ``(B, Q, M)`` codes, equal to ``rows`` where ``observed`` is True.
        """
        raise NotImplementedError(
            f"estimator {self.name!r} cannot condition on arbitrary evidence (supports_evidence is False)"
        )

    @property
    def fitted_context(self) -> Context:
        if self.context_ is None:
            raise NotFittedError(f"estimator {self.name!r} is not fitted; call fit(context) first")
        return self.context_


class TableEstimator(Estimator):
    """An estimator whose fit produces one table per variable, stored in ``cpts_``.

    Subclasses set ``self.cpts_`` (each ``(B, *parent_cards, card)``) and
    ``self.context_`` in `fit`; lookups and ancestral sampling come from here.
    """

    cpts_: list[np.ndarray] | None = None

    def conditionals(self, rows: np.ndarray, target: int) -> np.ndarray:
        context = self.fitted_context
        return gather_conditionals(context.structure, self.fitted_cpts, np.asarray(rows), target)

    def conditional_table(self, target: int) -> np.ndarray:
        return self.fitted_cpts[target]

    def generate(self, num_rows: int, rng: np.random.Generator) -> np.ndarray:
        return ancestral_sample(self.fitted_context.structure, self.fitted_cpts, num_rows, rng)

    @property
    def fitted_cpts(self) -> list[np.ndarray]:
        if self.cpts_ is None:
            raise NotFittedError(f"estimator {self.name!r} is not fitted; call fit(context) first")
        return self.cpts_


def sample_categorical(probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw per probability vector on the last axis; ``(..., K)`` -> ``(...)`` integer codes."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if np.isnan(probabilities).any():
        raise ValueError("cannot sample from NaN probabilities; fit with an unseen-configuration policy other than 'nan'")
    cdf = np.cumsum(probabilities, axis=-1)
    cdf /= cdf[..., -1:]
    cdf[..., -1] = 1.0
    uniforms = rng.random(probabilities.shape[:-1] + (1,))
    return (cdf <= uniforms).sum(axis=-1)


def parent_configuration_rows(structure: Structure, target: int, num_episodes: int) -> np.ndarray:
    """Query rows ``(B, P, M)`` that enumerate the parent configurations of ``target`` in C order.

    Columns other than the parents are 0.
    """
    cards: Sequence[int] = structure.parent_cardinalities(target)
    grid = np.indices(cards).reshape(len(cards), -1).T if cards else np.zeros((1, 0), dtype=np.int64)
    rows = np.zeros((grid.shape[0], structure.num_variables), dtype=np.int64)
    rows[:, list(structure.parents[target])] = grid
    return np.broadcast_to(rows, (num_episodes, *rows.shape)).copy()
