"""A Bayesian network written as a Pyro model.

One ``pyro.sample`` site per variable, named after the variable, inside a plate over
rows. Tables are indexed with `pyro.ops.indexing.Vindex`, so parent values that carry
enumeration dimensions on the left (``TraceEnum_ELBO``, ``infer_discrete``) select the
right rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro.ops.indexing import Vindex

from bnbench.structure import Structure

#: Name of the plate over rows. Variable names that equal it are rejected.
ROWS_PLATE = "rows"


def make_pyro_model(structure: Structure, cpts: Sequence[np.ndarray | torch.Tensor], dtype: torch.dtype = torch.float64):
    """Return ``model(data=None, num_rows=1)``: the network as a Pyro model.

    Args:
        structure: Variables and parents.
        cpts: Tables in bnbench's layout ``(*parent_cards, card)``.
        dtype: Floating type of the probability tensors.

    The returned model draws ``num_rows`` rows, or observes ``data`` (an integer tensor
    of shape ``(N, M)``) when it is given. It returns the rows as a ``(N, M)`` tensor,
    broadcast against any enumeration dimensions. Condition on a subset of variables
    with ``pyro.condition(model, data={name: values})``.
    """
    if ROWS_PLATE in structure.variables:
        raise ValueError(
            f"variable name {ROWS_PLATE!r} collides with the plate over rows; rename the variable"
        )
    # Copy: network tables are read-only numpy arrays, which torch cannot wrap safely.
    tables = [t.to(dtype) if torch.is_tensor(t) else torch.tensor(np.array(t), dtype=dtype) for t in cpts]

    def model(data: torch.Tensor | None = None, num_rows: int = 1) -> torch.Tensor:
        if data is not None:
            data = torch.as_tensor(data, dtype=torch.long)
            num_rows = data.shape[0]
        values: list[torch.Tensor] = []
        with pyro.plate(ROWS_PLATE, num_rows):
            for j, variable in enumerate(structure.variables):
                parent_values = tuple(values[p] for p in structure.parents[j])
                probs = Vindex(tables[j])[parent_values + (slice(None),)] if parent_values else tables[j]
                observed = None if data is None else data[..., j]
                values.append(pyro.sample(variable, dist.Categorical(probs=probs), obs=observed))
        return torch.stack(torch.broadcast_tensors(*values), dim=-1)

    return model
