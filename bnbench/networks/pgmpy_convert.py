"""Conversion between bnbench networks and pgmpy models, matched by variable and state labels."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bnbench.structure import Structure


def to_pgmpy(structure: Structure, cpts: Sequence[np.ndarray]):
    """Build a pgmpy ``DiscreteBayesianNetwork`` with the given tables (no episode axis)."""
    from pgmpy.factors.discrete import TabularCPD
    from pgmpy.models import DiscreteBayesianNetwork

    model = DiscreteBayesianNetwork()
    model.add_nodes_from(structure.variables)
    model.add_edges_from((structure.variables[p], v) for j, v in enumerate(structure.variables) for p in structure.parents[j])
    for j, variable in enumerate(structure.variables):
        parents = structure.parent_names(j)
        table = np.asarray(cpts[j])
        # pgmpy wants (card, prod(parent cards)) with parents in `evidence` order, C order.
        values = table.reshape(-1, structure.cardinalities[j]).T
        state_names = {variable: list(structure.state_names[j])}
        state_names.update({structure.variables[p]: list(structure.state_names[p]) for p in structure.parents[j]})
        model.add_cpds(
            TabularCPD(
                variable,
                structure.cardinalities[j],
                values,
                evidence=parents or None,
                evidence_card=list(structure.parent_cardinalities(j)) or None,
                state_names=state_names,
            )
        )
    return model


def table_from_pgmpy(structure: Structure, j: int, cpd) -> np.ndarray:
    """Return a pgmpy ``TabularCPD`` as variable ``j``'s table in bnbench's layout.

    Axes and states are matched by label: pgmpy may order parents and states
    differently from the structure, and `TabularCPD.get_evidence` even reverses them.
    """
    variable = structure.variables[j]
    names = list(cpd.variables)  # [child, *parents] in the axis order of cpd.values
    if names[0] != variable:
        raise ValueError(f"pgmpy table is for {names[0]!r}, expected {variable!r}")
    expected_parents = structure.parent_names(j)
    if sorted(names[1:]) != sorted(expected_parents):
        raise ValueError(f"pgmpy table of {variable!r} has parents {names[1:]}; expected {expected_parents}")

    values = np.asarray(cpd.values, dtype=np.float64).reshape([len(cpd.state_names[n]) for n in names])
    # Reorder states of every axis to the structure's state order, by label.
    for axis, name in enumerate(names):
        own = list(structure.state_names[structure.index(name)])
        theirs = [str(s) for s in cpd.state_names[name]]
        missing = sorted(set(own) - set(theirs))
        if missing:
            raise ValueError(f"pgmpy table of {variable!r} lacks states {missing} of {name!r}")
        values = np.take(values, [theirs.index(s) for s in own], axis=axis)
    # Move axes to (*parents in declared order, child).
    order = [names.index(p) for p in expected_parents] + [0]
    return np.transpose(values, order)
