"""A discrete Bayesian network: a `Structure` plus one conditional probability table per variable.

Table layout, used everywhere in bnbench: the table of variable ``j`` is an array of
shape ``(*parent_cards, card_j)``. The parent axes come in the declared parent order
(``structure.parents[j]``) and the child's states come last, so ``table[a, b, :]`` is
P(x_j | first parent = a, second parent = b). Batched tables (one per episode) put
the episode axis first: ``(B, *parent_cards, card_j)``.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from functools import cached_property

import numpy as np

from bnbench.sampling import ancestral_sample
from bnbench.structure import Structure

logger = logging.getLogger(__name__)

#: Rows whose sum is within this of 1 are renormalized silently (floating-point noise;
#: pgmpy's bundled tables sum to 1 only to about 3e-7).
FLOAT_TOLERANCE = 1e-6
#: Rows off by more than FLOAT_TOLERANCE but at most this much are rounding in the
#: source (three entries of 0.3333 sum to 0.9999): they are renormalized with a warning.
ROUNDING_TOLERANCE = 1e-2


class TableError(ValueError):
    """Raised when a conditional table has the wrong shape or is not a probability table."""


class TableRenormalizedWarning(UserWarning):
    """Emitted when table rows that sum to 1 only up to rounding are renormalized."""


class BayesianNetwork:
    """A structure with validated conditional probability tables.

    Args:
        structure: Variables, states and parents.
        cpts: One table per variable, either a sequence in ``structure.variables``
            order or a mapping from variable name. Each has the layout described in
            this module's docstring.

    Raises:
        TableError: On a wrong shape, a negative or NaN entry, or a row whose sum is
            more than ``ROUNDING_TOLERANCE`` away from 1. The message names the
            variable and the parent configuration by state labels.
    """

    def __init__(self, structure: Structure, cpts: Sequence[np.ndarray] | Mapping[str, np.ndarray]):
        self.structure = structure
        if isinstance(cpts, Mapping):
            missing = [v for v in structure.variables if v not in cpts]
            if missing:
                raise TableError(f"network {structure.name!r}: no table for variables {missing}")
            extra = sorted(set(cpts) - set(structure.variables))
            if extra:
                raise TableError(f"network {structure.name!r}: tables given for unknown variables {extra}")
            tables = [cpts[v] for v in structure.variables]
        else:
            tables = list(cpts)
            if len(tables) != structure.num_variables:
                raise TableError(
                    f"network {structure.name!r}: got {len(tables)} tables for {structure.num_variables} variables"
                )
        self.cpts: tuple[np.ndarray, ...] = tuple(
            validate_table(structure, j, table) for j, table in enumerate(tables)
        )
        # Loaded networks are cached and shared, so their tables must not change in place.
        for table in self.cpts:
            table.flags.writeable = False

    def __repr__(self) -> str:
        return f"BayesianNetwork({self.structure.name!r}, variables={self.structure.num_variables})"

    @property
    def name(self) -> str:
        return self.structure.name

    @cached_property
    def batched_cpts(self) -> list[np.ndarray]:
        """The tables with a leading episode axis of size 1."""
        return [table[None] for table in self.cpts]

    def cpt(self, variable: str | int) -> np.ndarray:
        j = variable if isinstance(variable, int) else self.structure.index(variable)
        return self.cpts[j]

    def sample(self, num_rows: int, rng: np.random.Generator) -> np.ndarray:
        """Draw ``num_rows`` independent rows by ancestral sampling; returns codes ``(num_rows, M)``."""
        return ancestral_sample(self.structure, self.batched_cpts, num_rows, rng)[0]

    def log_prob(self, rows: np.ndarray) -> np.ndarray:
        """Exact log-probability (nats) of each row; ``rows`` is ``(..., M)``, the result ``(...)``."""
        rows = self.structure.validate_rows(rows)
        total = np.zeros(rows.shape[:-1])
        with np.errstate(divide="ignore"):
            for j in range(self.structure.num_variables):
                table = self.cpts[j].reshape(-1, self.structure.cardinalities[j])
                configuration = self.structure.parent_configuration_index(rows, j)
                total += np.log(table[configuration, rows[..., j]])
        return total

    def pyro_model(self):
        """Return this network as a Pyro model; see `bnbench.pyro_model.make_pyro_model`."""
        from bnbench.pyro_model import make_pyro_model

        return make_pyro_model(self.structure, self.cpts)


def validate_table(structure: Structure, j: int, table: np.ndarray, batched: bool = False) -> np.ndarray:
    """Check one conditional table and return it as float64 with rows summing to 1.

    With ``batched=True`` the table carries a leading episode axis.
    """
    variable = structure.variables[j]
    array = np.array(table, dtype=np.float64)
    expected = structure.table_shape(j)
    actual = array.shape[1:] if batched else array.shape
    if tuple(actual) != expected:
        raise TableError(
            f"table of {variable!r} has shape {tuple(actual)}; expected {expected} "
            f"(parents {structure.parent_names(j)} in declared order, then the {structure.cardinalities[j]} states)"
        )
    if np.isnan(array).any():
        raise TableError(f"table of {variable!r} contains NaN at {_describe_row(structure, j, array, np.isnan(array), batched)}")
    if (array < 0).any():
        raise TableError(
            f"table of {variable!r} has a negative entry at {_describe_row(structure, j, array, array < 0, batched)}"
        )

    sums = array.sum(axis=-1)
    deviation = np.abs(sums - 1.0)
    wrong = deviation > ROUNDING_TOLERANCE
    if wrong.any():
        raise TableError(
            f"table of {variable!r}: the row at {_describe_row(structure, j, array, wrong[..., None], batched)} "
            f"sums to {float(sums[wrong][0]):.6g}; each row must sum to 1 (tolerance {ROUNDING_TOLERANCE})"
        )
    rounded = deviation > FLOAT_TOLERANCE
    if rounded.any():
        warnings.warn(
            f"table of {variable!r}: {int(rounded.sum())} rows sum to 1 only within "
            f"{float(deviation.max()):.2g}; renormalized them",
            TableRenormalizedWarning,
            stacklevel=3,
        )
    return array / sums[..., None]


def _describe_row(structure: Structure, j: int, array: np.ndarray, mask: np.ndarray, batched: bool) -> str:
    """Name the first flagged row by parent state labels (and episode, for batched tables)."""
    position = tuple(int(i) for i in np.argwhere(mask)[0])
    parts = []
    if batched:
        parts.append(f"episode {position[0]}")
        position = position[1:]
    for axis, p in enumerate(structure.parents[j]):
        parts.append(f"{structure.variables[p]}={structure.state_names[p][position[axis]]}")
    if not structure.parents[j]:
        parts.append("(no parents)")
    return ", ".join(parts)
