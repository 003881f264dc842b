"""Exact marginals of a network by tensor contraction (variable elimination).

The marginal of a set of variables only involves their ancestors, because every
other table sums to 1. bnbench contracts those tables with `opt_einsum`, which picks
an elimination order, and refuses when the largest intermediate table would exceed
`MAX_INTERMEDIATE_ENTRIES` entries. Every function accepts batched tables
``(B, *parent_cards, card)`` and keeps the episode axis.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import opt_einsum

from bnbench.structure import Structure

#: Largest intermediate table, in entries per episode, that an exact contraction may build.
MAX_INTERMEDIATE_ENTRIES = 2**24
#: Largest joint state space enumerated for joint scores (joint TV of generated rows).
MAX_JOINT_STATES = 2**20


class IntractableError(RuntimeError):
    """Raised when an exact computation would exceed bnbench's size limits."""


def marginal(
    structure: Structure,
    cpts: Sequence[np.ndarray],
    variables: Sequence[int],
    max_intermediate: int | None = None,
) -> np.ndarray:
    """Exact joint marginal of ``variables`` (in the given order), shape ``(B, *cards)``.

    ``max_intermediate`` defaults to `MAX_INTERMEDIATE_ENTRIES`.
    """
    variables = list(variables)
    if max_intermediate is None:
        max_intermediate = MAX_INTERMEDIATE_ENTRIES
    relevant = structure.ancestors(variables)
    num_episodes = np.asarray(cpts[relevant[0]]).shape[0]

    # Symbol 0 is the episode axis, symbol j + 1 is variable j.
    symbol = opt_einsum.get_symbol
    tensors = [np.asarray(cpts[j]) for j in relevant]
    inputs = ["".join(symbol(k) for k in (0, *(p + 1 for p in structure.parents[j]), j + 1)) for j in relevant]
    equation = ",".join(inputs) + "->" + "".join(symbol(k) for k in (0, *(v + 1 for v in variables)))

    path, info = opt_einsum.contract_path(equation, *tensors, optimize="greedy")
    per_episode = info.largest_intermediate / max(num_episodes, 1)
    if per_episode > max_intermediate:
        names = [structure.variables[v] for v in variables]
        raise IntractableError(
            f"exact marginal of {names} in network {structure.name!r} needs an intermediate table of "
            f"{per_episode:.3g} entries per episode, above the limit of {max_intermediate:.3g}; "
            "scores for this network are estimated from samples instead"
        )
    return opt_einsum.contract(equation, *tensors, optimize=path)


def family_marginal(structure: Structure, cpts: Sequence[np.ndarray], j: int) -> np.ndarray:
    """Exact P(parents of j, x_j), shape ``(B, *parent_cards, card_j)`` in table layout."""
    return marginal(structure, cpts, [*structure.parents[j], j])


def family_marginals(structure: Structure, cpts: Sequence[np.ndarray]) -> list[np.ndarray]:
    """`family_marginal` for every variable; raises `IntractableError` on the first that is too large."""
    return [family_marginal(structure, cpts, j) for j in range(structure.num_variables)]


def joint(structure: Structure, cpts: Sequence[np.ndarray]) -> np.ndarray:
    """Exact joint distribution, shape ``(B, *cards)``; raises `IntractableError` above `MAX_JOINT_STATES`."""
    if structure.num_joint_states > MAX_JOINT_STATES:
        raise IntractableError(
            f"the joint of network {structure.name!r} has {structure.num_joint_states:.3g} states, "
            f"above the limit of {MAX_JOINT_STATES:.3g} for enumeration"
        )
    return marginal(structure, cpts, range(structure.num_variables), max_intermediate=MAX_JOINT_STATES)

