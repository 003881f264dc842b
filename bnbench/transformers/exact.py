"""A two-layer transformer whose weights are set so that it computes the count MLE in context.

Input: one token per row in the layout of `bnbench.transformers.encoding` (one-hot
blocks of every variable, a one-hot target indicator, a query flag). The model reads
N context tokens and, for each query token with target variable j, outputs
P̂(x_j | parents) as a vector of length ``max(cardinalities)`` whose first ``card_j``
entries are the estimate (the rest are 0).

Sequence and attention masks. The sequence is ``[unseen-configuration token, N
context rows, Q queries]``. The unseen-configuration token is a constant token (a
model parameter) that is present in every context.

* Layer 1, attention: the unseen-configuration token attends to the N context rows
  with equal scores and averages their values. A row's value is its one-hot code
  (policy ``marginal``, so the average is the context marginals) or the uniform
  distribution of every variable (policy ``uniform``). Every other token attends
  only to the unseen-configuration token, whose layer-1 value is zero, so it
  receives nothing.
* Layer 1, MLP (the parent selector): hidden unit f computes
  ``relu(x_f + [var(f) is a parent of the target] + query_flag - 2)``, which is
  ``x_f`` on the parent blocks of a query token and 0 everywhere else.
* Layer 2, attention: every token attends to the unseen-configuration token and the
  context rows. The query is ``beta * (parent code, |pa(j)| - 1/2)`` and the key of
  a row is ``(one-hot code, 0)``, so a row scores ``beta`` times the number of
  parents it shares with the query. The unseen-configuration token's key ``(0, 1)``
  scores ``beta * (|pa(j)| - 1/2)``, halfway between "all parents match" and "one
  parent differs". A row's value is its one-hot code, and the unseen-configuration
  token's value is the fallback distribution from layer 1.
* Layer 2, MLP (the readout): hidden unit f computes
  ``relu(o_f - 2 * [var(f) is not the target])``, which keeps the target's block of
  the attention output o, and writes it to output position ``f - offset(var(f))``.

Error bound. Let n be the number of context rows whose parent values equal the
query's, c their target counts, and u the fallback distribution. A row that differs
in k >= 1 parents gets weight exp(-beta * k) relative to a matching row, so the
mismatching rows' total relative weight r is at most (N - n) exp(-beta), and the
unseen-configuration token gets exp(-beta / 2). The output is
``(c + exp(-beta/2) u + R) / (n + exp(-beta/2) + r)``, where R, with entries in
[0, r], sums the mismatching rows' codes. Hence, per entry:

* n >= 1: ``|output - c / n| <= (exp(-beta/2) + (N - n) exp(-beta)) / n``;
* n = 0: ``|output - u| <= r / (exp(-beta/2) + r) <= N exp(-beta/2)``;
* always: ``|output - MLE| <= N exp(-beta/2)``.

At the default beta = 100 the bound is N * 1.9e-22, below float64 rounding for any
N up to 10^6. Scores are multiples of beta / 2, at most beta times the largest
in-degree, and softmax subtracts the largest score, so no exponential overflows in
float32 or float64. Weights that underflow to 0 only move the output closer to the
MLE. The output is a convex combination of one-hot codes and a probability vector,
so it is a probability vector up to rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from bnbench.structure import Structure
from bnbench.transformers.encoding import RowEncoding
from bnbench.transformers.exact_weights import ResidualLayout, set_weights
from bnbench.transformers.layers import Block

#: Default inverse temperature of the layer-2 scores; see the module docstring for the bound N exp(-beta / 2).
DEFAULT_BETA = 100.0
#: Unseen-configuration policies, with the meaning of `bnbench.estimators.mle`.
POLICIES = ("uniform", "marginal")
Policy = Literal["uniform", "marginal"]


def error_bound(beta: float, num_rows: int) -> float:
    """Return N exp(-beta / 2), the bound on |exact transformer - count MLE| per entry with N = ``num_rows`` rows."""
    return num_rows * math.exp(-beta / 2)


def num_parameters(structure: Structure) -> int:
    """Count the weights of `ExactTransformerModel` for ``structure``, without building it.

    With D the sum of cardinalities and M the number of variables, the residual stream
    has width d = 4D + 2M + 2 + max cardinality and the count is about d (9D + M).
    """
    encoding = RowEncoding(structure.cardinalities)
    width, values = ResidualLayout.for_encoding(encoding).width, encoding.values_width
    embedding = width * encoding.width + width + width  # weight, bias, unseen-configuration token
    layer1 = 2 * width + 2 * values * width + (values * width + values) + width * values
    layer2 = 2 * (values + 1) * width + 2 * values * width + (values * width + values) + width * values
    return embedding + layer1 + layer2 + max(structure.cardinalities) * width


@dataclass(frozen=True)
class ContextCache:
    """Keys and values of one batch of contexts, computed once and attended to by every query.

    Attributes:
        layer1_keys: Layer-1 key of the unseen-configuration token ``(B, 1, 1)``.
        layer1_values: Its layer-1 value ``(B, 1, D)`` (zero under the construction).
        layer2_keys: Layer-2 keys ``(B, 1 + N, D + 1)``, with the unseen-configuration token at position 0.
        layer2_values: Layer-2 values ``(B, 1 + N, D)``, in the same order.
    """

    layer1_keys: torch.Tensor
    layer1_values: torch.Tensor
    layer2_keys: torch.Tensor
    layer2_values: torch.Tensor

    @property
    def num_rows(self) -> int:
        return self.layer2_keys.shape[1] - 1


class ExactTransformerModel(nn.Module):
    """Embedding, two transformer blocks and an unembedding, with weights computed from ``structure``.

    See the module docstring for the construction and its error bound. Weights are
    built in float64 and do not require gradients. Move the model with ``.to(device,
    dtype)``.

    Args:
        structure: The network graph; parents decide the layer-1 MLP weights.
        beta: Inverse temperature of the layer-2 scores (positive and finite).
        policy: Estimate for unseen parent configurations, ``"uniform"`` or ``"marginal"``.
    """

    def __init__(self, structure: Structure, beta: float = DEFAULT_BETA, policy: Policy = "uniform"):
        super().__init__()
        if not (math.isfinite(beta) and beta > 0):
            raise ValueError(f"beta must be a positive finite number; got {beta}")
        if policy not in POLICIES:
            raise ValueError(f"unknown unseen-configuration policy {policy!r}; valid policies: {list(POLICIES)}")
        self.structure = structure
        self.beta = float(beta)
        self.policy = policy
        self.encoding = RowEncoding(structure.cardinalities)
        self.layout = ResidualLayout.for_encoding(self.encoding)

        # Modules are created on the meta device (no random initialization), then every weight is set below.
        width, values_width = self.layout.width, self.encoding.values_width
        factory = {"device": "meta", "dtype": torch.float64}
        self.embedding = nn.Linear(self.encoding.width, width, **factory)
        self.unseen_token = nn.Parameter(torch.empty(width, **factory))
        self.layer1 = Block(width, key_width=1, value_width=values_width, hidden_width=values_width, **factory)
        self.layer2 = Block(
            width, key_width=values_width + 1, value_width=values_width, hidden_width=values_width, **factory
        )
        self.unembedding = nn.Linear(width, max(structure.cardinalities), bias=False, **factory)
        self.to_empty(device="cpu")

        with torch.no_grad():
            for parameter in self.parameters():
                parameter.zero_()
        set_weights(self)
        self.requires_grad_(False)
        self.refresh_context_projection()

    # Forward passes.

    def forward(self, context_tokens: torch.Tensor, query_tokens: torch.Tensor) -> torch.Tensor:
        """Run the sequence ``[unseen, context, queries]`` through both blocks, in time quadratic in its length.

        ``context_tokens`` ``(B, N, token_width)`` and ``query_tokens`` ``(B, Q, token_width)``
        -> outputs at the query positions ``(B, Q, max_card)``. The reference for
        `encode_context` plus `query`, which compute the same values in O(N) per query.
        """
        num_episodes, num_rows, _ = context_tokens.shape
        num_queries = query_tokens.shape[1]
        unseen = self.unseen_token.expand(num_episodes, 1, -1)
        hidden = torch.cat([unseen, self.embedding(context_tokens), self.embedding(query_tokens)], dim=1)  # (B, L, d)
        first_mask, second_mask = attention_masks(num_rows, num_queries, device=hidden.device)
        hidden = self.layer1.self_attend(hidden, first_mask)
        hidden = self.layer2.self_attend(hidden, second_mask)
        return self.unembedding(hidden[:, 1 + num_rows :])

    def encode_context(self, context_tokens: torch.Tensor) -> ContextCache:
        """Compute the keys and values that queries attend to, from context tokens ``(B, N, token_width)``.

        Layer 1 leaves a context row unchanged: its attention reads only the
        unseen-configuration token, whose layer-1 value is zero, and the MLP fires only
        on query tokens. A row's layer-1 and layer-2 keys and values are therefore
        linear in its token, and they are computed through the composed matrices
        (projection times embedding, see `refresh_context_projection`) without building
        the d-wide residual stream. Rows' keys and values ignore the target indicator,
        so any target serves.
        """
        num_episodes = context_tokens.shape[0]
        values = self.encoding.values_width
        distinct = context_tokens @ self.context_projection_table  # (B, N, distinct columns)
        projected = distinct[..., self.context_projection_index] + self.context_projection_bias  # (B, N, 3D + 2)
        first_keys, first_values, second_keys, second_values = projected.split([1, values, values + 1, values], dim=-1)

        unseen = self.unseen_token.expand(num_episodes, 1, -1)  # (B, 1, d)
        unseen_first_keys, unseen_first_values = self.layer1.attention.keys_values(unseen)
        unseen = self.layer1(unseen, first_keys, first_values)  # averages the context rows' layer-1 values
        unseen_second_keys, unseen_second_values = self.layer2.attention.keys_values(unseen)
        return ContextCache(
            layer1_keys=unseen_first_keys,
            layer1_values=unseen_first_values,
            layer2_keys=torch.cat([unseen_second_keys, second_keys], dim=1),
            layer2_values=torch.cat([unseen_second_values, second_values], dim=1),
        )

    def query(self, cache: ContextCache, query_tokens: torch.Tensor) -> torch.Tensor:
        """Run query tokens ``(B, Q, token_width)`` against ``cache``; returns outputs ``(B, Q, max_card)``."""
        hidden = self.embedding(query_tokens)  # (B, Q, d)
        hidden = self.layer1(hidden, cache.layer1_keys, cache.layer1_values)
        hidden = self.layer2(hidden, cache.layer2_keys, cache.layer2_values)
        return self.unembedding(hidden)

    def attention_weights(self, cache: ContextCache, query_tokens: torch.Tensor) -> torch.Tensor:
        """Return the layer-2 attention weights ``(B, Q, 1 + N)`` of query tokens, unseen-configuration token first."""
        hidden = self.embedding(query_tokens)
        hidden = self.layer1(hidden, cache.layer1_keys, cache.layer1_values)
        return self.layer2.attention.weights(hidden, cache.layer2_keys)

    def refresh_context_projection(self) -> None:
        """Recompute the composed map from a context token to its keys and values of both layers.

        The map is ``projection = tokens @ table[:, index] + bias`` with ``3D + 2`` output
        columns. Identical columns of the composed matrix are stored once in ``table``
        (under the construction a row's layer-2 key and value both repeat its one-hot
        code), which makes the product two to three times cheaper. `encode_context`
        reads these buffers, so call this after editing any weight.
        """
        first, second = self.layer1.attention, self.layer2.attention
        with torch.no_grad():
            weights = [first.key.weight, first.value.weight, second.key.weight, second.value.weight]
            stacked = torch.cat(weights)  # (3D + 2, d)
            composed = (stacked @ self.embedding.weight).T  # (token_width, 3D + 2)
            distinct, index = torch.unique(composed, dim=1, return_inverse=True)
            self.register_buffer("context_projection_table", distinct.contiguous(), persistent=False)
            self.register_buffer("context_projection_index", index, persistent=False)
            self.register_buffer("context_projection_bias", stacked @ self.embedding.bias, persistent=False)


def attention_masks(
    num_rows: int, num_queries: int, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Build the boolean masks ``(L, L)`` of both layers over ``[unseen, N rows, Q queries]``.

    An entry is True where the token of its row may attend to the token of its column.

    Layer 1: the unseen-configuration token attends to the rows, every other token to
    the unseen-configuration token. Layer 2: every token attends to the unseen token
    and the rows, never to a query.
    """
    length = 1 + num_rows + num_queries
    first = torch.zeros(length, length, dtype=torch.bool, device=device)
    first[0, 1 : 1 + num_rows] = True
    first[1:, 0] = True
    second = torch.zeros(length, length, dtype=torch.bool, device=device)
    second[:, : 1 + num_rows] = True
    return first, second
