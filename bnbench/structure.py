"""The graph of a discrete Bayesian network: variables, states and ordered parents.

A `Structure` holds no probabilities. It is what estimators may know about a
network before they see data, and what a table prior needs to draw fresh tables.
"""

from __future__ import annotations

import graphlib
import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np


class StructureError(ValueError):
    """Raised when a graph is cyclic, names are inconsistent or a cardinality is invalid."""


@dataclass(frozen=True, eq=False)
class Structure:
    """Variables in topological order, their state names and their ordered parents.

    Attributes:
        name: Short name of the network (``"asia"``, ``"chain:n=5"``).
        variables: Variable names in topological order. Column ``j`` of every data
            array is ``variables[j]``.
        state_names: For each variable, its state labels. Integer code ``k`` of
            variable ``j`` means ``state_names[j][k]``.
        parents: For each variable, the indices of its parents in the declared order.
            This order fixes the axes of the variable's conditional table.

    Build one with :meth:`from_parents`, which sorts the variables topologically and
    rejects cycles. The constructor checks that the given order is topological.
    """

    name: str
    variables: tuple[str, ...]
    state_names: tuple[tuple[str, ...], ...]
    parents: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        num_variables = len(self.variables)
        if num_variables == 0:
            raise StructureError(f"network {self.name!r} has no variables; give at least one")
        if len(set(self.variables)) != num_variables:
            duplicates = sorted({v for v in self.variables if self.variables.count(v) > 1})
            raise StructureError(f"network {self.name!r} repeats variable names {duplicates}; names must be unique")
        if len(self.state_names) != num_variables or len(self.parents) != num_variables:
            raise StructureError(
                f"network {self.name!r}: got {num_variables} variables, {len(self.state_names)} state lists "
                f"and {len(self.parents)} parent lists; give one of each per variable"
            )
        for j, variable in enumerate(self.variables):
            states = self.state_names[j]
            if len(states) < 1:
                raise StructureError(f"variable {variable!r} has no states; give at least one state name")
            if len(set(states)) != len(states):
                raise StructureError(f"variable {variable!r} repeats state names {list(states)}; names must be unique")
            for p in self.parents[j]:
                if not 0 <= p < j:
                    raise StructureError(
                        f"variable {variable!r} has parent index {p}, which is not an earlier variable; "
                        "list variables in topological order or use Structure.from_parents"
                    )
            if len(set(self.parents[j])) != len(self.parents[j]):
                raise StructureError(f"variable {variable!r} lists a parent twice: {self.parent_names(j)}")

    @classmethod
    def from_parents(
        cls,
        name: str,
        parents: Mapping[str, Sequence[str]],
        state_names: Mapping[str, Sequence[str]],
    ) -> Structure:
        """Build a structure from parent names, sorting the variables topologically.

        The order of ``parents`` is kept wherever the graph allows, so a mapping that
        is already in topological order keeps its order. Raises `StructureError`
        naming the cycle when the graph is cyclic.
        """
        unknown = sorted({p for ps in parents.values() for p in ps} - set(parents))
        if unknown:
            raise StructureError(
                f"network {name!r}: parents {unknown} are not declared as variables; "
                "add them to the parents mapping (with an empty parent list for roots)"
            )
        missing_states = sorted(set(parents) - set(state_names))
        if missing_states:
            raise StructureError(f"network {name!r}: no state names for variables {missing_states}")

        order = _stable_topological_order(name, parents)
        index = {variable: j for j, variable in enumerate(order)}
        return cls(
            name=name,
            variables=tuple(order),
            state_names=tuple(tuple(str(s) for s in state_names[v]) for v in order),
            parents=tuple(tuple(index[p] for p in parents[v]) for v in order),
        )

    @classmethod
    def from_cardinalities(
        cls, name: str, parents: Sequence[Sequence[int]], cardinalities: Sequence[int]
    ) -> Structure:
        """Build a structure with variables ``x0, x1, ...`` and states ``"0", "1", ...``.

        ``parents[j]`` lists parent indices of variable ``j``; every parent index
        must be smaller than ``j``.
        """
        if len(parents) != len(cardinalities):
            raise StructureError(
                f"network {name!r}: {len(parents)} parent lists but {len(cardinalities)} cardinalities"
            )
        for j, card in enumerate(cardinalities):
            if int(card) < 1:
                raise StructureError(f"network {name!r}: variable x{j} has cardinality {card}; use 1 or more")
        return cls(
            name=name,
            variables=tuple(f"x{j}" for j in range(len(parents))),
            state_names=tuple(tuple(str(k) for k in range(int(c))) for c in cardinalities),
            parents=tuple(tuple(int(p) for p in ps) for ps in parents),
        )

    # Sizes and lookups.

    @property
    def num_variables(self) -> int:
        return len(self.variables)

    @cached_property
    def cardinalities(self) -> tuple[int, ...]:
        return tuple(len(states) for states in self.state_names)

    def index(self, variable: str) -> int:
        """Return the column of ``variable``; raises `KeyError` listing valid names."""
        try:
            return self.variables.index(variable)
        except ValueError:
            raise KeyError(
                f"variable {variable!r} is not in network {self.name!r}; valid names: {list(self.variables)}"
            ) from None

    def parent_names(self, j: int) -> list[str]:
        return [self.variables[p] for p in self.parents[j]]

    def parent_cardinalities(self, j: int) -> tuple[int, ...]:
        return tuple(self.cardinalities[p] for p in self.parents[j])

    def num_parent_configurations(self, j: int) -> int:
        return math.prod(self.parent_cardinalities(j))

    def table_shape(self, j: int) -> tuple[int, ...]:
        """Shape of variable ``j``'s table: parent axes in declared order, child states last."""
        return (*self.parent_cardinalities(j), self.cardinalities[j])

    @cached_property
    def num_free_parameters(self) -> int:
        """Number of free table entries: sum over variables of (configurations) x (card - 1)."""
        return sum(self.num_parent_configurations(j) * (self.cardinalities[j] - 1) for j in range(self.num_variables))

    @cached_property
    def num_joint_states(self) -> int:
        return math.prod(self.cardinalities)

    @cached_property
    def max_in_degree(self) -> int:
        return max(len(ps) for ps in self.parents)

    @cached_property
    def children(self) -> tuple[tuple[int, ...], ...]:
        kids: list[list[int]] = [[] for _ in self.variables]
        for j, ps in enumerate(self.parents):
            for p in ps:
                kids[p].append(j)
        return tuple(tuple(k) for k in kids)

    def ancestors(self, variables: Sequence[int]) -> list[int]:
        """Return the sorted indices of ``variables`` and all their ancestors."""
        seen: set[int] = set()
        stack = list(variables)
        while stack:
            j = stack.pop()
            if j not in seen:
                seen.add(j)
                stack.extend(self.parents[j])
        return sorted(seen)

    def parent_configuration_index(self, rows: np.ndarray, j: int) -> np.ndarray:
        """Flat index of each row's parent configuration of variable ``j`` (C order over parent axes).

        ``rows`` has shape ``(..., M)`` with integer codes; the result has shape ``(...)``.
        A root variable has one configuration, index 0.
        """
        index = np.zeros(rows.shape[:-1], dtype=np.int64)
        for p in self.parents[j]:
            index = index * self.cardinalities[p] + rows[..., p]
        return index

    def validate_rows(self, rows: np.ndarray, what: str = "rows") -> np.ndarray:
        """Check that ``rows`` is an integer array ``(..., M)`` of valid state codes; return it as int64."""
        array = np.asarray(rows)
        if array.ndim < 1 or array.shape[-1] != self.num_variables:
            raise ValueError(
                f"{what} have shape {array.shape}; expected (..., {self.num_variables}) "
                f"with one column per variable of network {self.name!r}"
            )
        if not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"{what} have dtype {array.dtype}; expected integer state codes")
        array = array.astype(np.int64, copy=False)
        cards = np.asarray(self.cardinalities)
        bad = (array < 0) | (array >= cards)
        if bad.any():
            position = tuple(int(i) for i in np.argwhere(bad)[0])
            j = position[-1]
            raise ValueError(
                f"{what} contain code {int(array[position])} for variable {self.variables[j]!r} at index "
                f"{position}; valid codes are 0..{cards[j] - 1}"
            )
        return array

    def describe(self) -> dict[str, object]:
        """Summary sizes, as shown by ``bnbench list networks``."""
        return {
            "network": self.name,
            "variables": self.num_variables,
            "edges": sum(len(ps) for ps in self.parents),
            "max in-degree": self.max_in_degree,
            "max cardinality": max(self.cardinalities),
            "free parameters": self.num_free_parameters,
        }


def _stable_topological_order(name: str, parents: Mapping[str, Sequence[str]]) -> list[str]:
    """Kahn's algorithm that always takes the earliest-declared variable whose parents are placed."""
    try:
        graphlib.TopologicalSorter({v: list(ps) for v, ps in parents.items()}).prepare()
    except graphlib.CycleError as error:
        cycle = " -> ".join(str(v) for v in error.args[1])
        raise StructureError(
            f"network {name!r} has a directed cycle: {cycle}; a Bayesian network must be acyclic"
        ) from None

    position = {v: i for i, v in enumerate(parents)}
    children: dict[str, list[str]] = {v: [] for v in parents}
    unplaced_parents = {v: set(ps) for v, ps in parents.items()}
    for v, ps in parents.items():
        for p in set(ps):
            children[p].append(v)

    ready = [(position[v], v) for v, ps in unplaced_parents.items() if not ps]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, variable = heapq.heappop(ready)
        order.append(variable)
        for child in children[variable]:
            unplaced_parents[child].discard(variable)
            if not unplaced_parents[child]:
                heapq.heappush(ready, (position[child], child))
    return order
