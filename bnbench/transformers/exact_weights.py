"""Weights of the exact transformer: the residual-stream layout and the matrices of each layer.

`set_weights` fills an `ExactTransformerModel` whose parameters are zero. The
construction itself is described in `bnbench.transformers.exact`. Every matrix is
(output, input), as in `nn.Linear`; D is the sum of cardinalities and M the number
of variables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from bnbench.transformers.encoding import RowEncoding

if TYPE_CHECKING:
    from bnbench.transformers.exact import ExactTransformerModel


@dataclass(frozen=True)
class ResidualLayout:
    """Places of the quantities in the residual stream, as slices of width D or M, or single indices.

    Attributes:
        values: The token's visible one-hot codes (D).
        target: The target indicator (M).
        not_target: One minus the target indicator (M), read by the readout gate.
        query_flag: 1 on query tokens.
        unseen_flag: 1 on the unseen-configuration token.
        fallback: The estimate for unseen parent configurations (uniform distributions or context
            marginals), written by layer-1 attention into the unseen-configuration token (D).
        parent_values: A query's one-hot codes restricted to the target's parents, written by the
            layer-1 MLP (D).
        average: The layer-2 attention output, the weighted average code of the attended tokens (D).
        conditional: The estimated conditional, written by the layer-2 MLP (max cardinality).
        width: Total width d of the residual stream.
    """

    values: slice
    target: slice
    not_target: slice
    query_flag: int
    unseen_flag: int
    fallback: slice
    parent_values: slice
    average: slice
    conditional: slice
    width: int

    @classmethod
    def for_encoding(cls, encoding: RowEncoding) -> ResidualLayout:
        sizes = {
            "values": encoding.values_width,
            "target": encoding.num_variables,
            "not_target": encoding.num_variables,
            "query_flag": 1,
            "unseen_flag": 1,
            "fallback": encoding.values_width,
            "parent_values": encoding.values_width,
            "average": encoding.values_width,
            "conditional": max(encoding.cardinalities),
        }
        places: dict[str, slice | int] = {}
        start = 0
        for name, size in sizes.items():
            places[name] = start if name.endswith("_flag") else slice(start, start + size)
            start += size
        return cls(**places, width=start)  # type: ignore[arg-type]


def set_weights(model: ExactTransformerModel) -> None:
    """Write the constructed weights into ``model``, whose parameters must all be zero."""
    with torch.no_grad():
        _set_embedding(model)
        _set_layer1(model)
        _set_layer2(model)


def _set_embedding(model: ExactTransformerModel) -> None:
    """Set the embedding: copy values, target and query flag, write not_target = 1 - target, flag the unseen token."""
    layout, encoding = model.layout, model.encoding
    weight, bias = model.embedding.weight, model.embedding.bias
    values, num_variables = encoding.values_width, encoding.num_variables
    weight[layout.values, :values] = torch.eye(values)
    indicator = slice(encoding.target_offset, encoding.target_offset + num_variables)
    weight[layout.target, indicator] = torch.eye(num_variables)
    weight[layout.not_target, indicator] = -torch.eye(num_variables)
    bias[layout.not_target] = 1.0
    weight[layout.query_flag, encoding.query_flag_index] = 1.0

    model.unseen_token[layout.unseen_flag] = 1.0


def _set_layer1(model: ExactTransformerModel) -> None:
    """Set layer 1: attention writes the fallback into the unseen-configuration token, and the MLP selects parents."""
    layout, encoding = model.layout, model.encoding
    attention, mlp = model.layer1.attention, model.layer1.mlp
    identity = torch.eye(encoding.values_width)

    # Equal scores (zero query and key weights), so a token averages the values its mask allows.
    # A row's value is its one-hot code, or 1 / card in every feature of each variable's block.
    if model.policy == "marginal":
        attention.value.weight[:, layout.values] = identity
    else:
        variable = encoding.variable_of_feature
        same_variable = (variable[:, None] == variable[None, :]).to(torch.float64)  # (feature, feature)
        cards = torch.tensor(encoding.cardinalities, dtype=torch.float64)[variable]
        attention.value.weight[:, layout.values] = same_variable / cards[:, None]
    attention.output.weight[layout.fallback, :] = identity

    # Parent selector: relu(x_f + [var(f) in pa(target)] + query_flag - 2).
    is_parent = torch.zeros(encoding.num_variables, encoding.num_variables, dtype=torch.float64)  # (parent, child)
    for child, parents in enumerate(model.structure.parents):
        is_parent[list(parents), child] = 1.0
    mlp.hidden.weight[:, layout.values] = identity
    mlp.hidden.weight[:, layout.target] = is_parent[encoding.variable_of_feature]
    mlp.hidden.weight[:, layout.query_flag] = 1.0
    mlp.hidden.bias[:] = -2.0
    mlp.output.weight[layout.parent_values, :] = identity


def _set_layer2(model: ExactTransformerModel) -> None:
    """Set layer 2: attention averages the rows that match the query's parents, and the MLP reads out the target."""
    layout, encoding = model.layout, model.encoding
    attention, mlp = model.layer2.attention, model.layer2.mlp
    values = encoding.values_width
    identity = torch.eye(values)
    num_parents = torch.tensor([len(p) for p in model.structure.parents], dtype=torch.float64)

    # Scores: beta * (matching parents) for a row, beta * (|pa| - 1/2) for the unseen-configuration token.
    attention.query.weight[:values, layout.parent_values] = model.beta * identity
    attention.query.weight[values, layout.target] = model.beta * (num_parents - 0.5)
    attention.key.weight[:values, layout.values] = identity
    attention.key.weight[values, layout.unseen_flag] = 1.0
    attention.value.weight[:, layout.values] = identity
    attention.value.weight[:, layout.fallback] = identity
    attention.output.weight[layout.average, :] = identity

    # Readout: relu(o_f - 2 * [var(f) is not the target]) to output position f - offset(var(f)).
    variable = encoding.variable_of_feature
    mlp.hidden.weight[:, layout.average] = identity
    mlp.hidden.weight[torch.arange(values), layout.not_target.start + variable] = -2.0
    position = torch.arange(values) - torch.tensor(encoding.offsets)[variable]
    mlp.output.weight[layout.conditional.start + position, torch.arange(values)] = 1.0
    model.unembedding.weight[:, layout.conditional] = torch.eye(layout.conditional.stop - layout.conditional.start)
