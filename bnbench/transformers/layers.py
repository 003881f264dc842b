"""Transformer layers without normalization: single-head softmax attention, a ReLU MLP and a block.

The layers are plain `torch.nn` modules built from `nn.Linear`, matrix products,
`torch.exp` and `torch.softmax`. Attention takes its keys and values as arguments instead of
computing them from the same sequence, so a caller can compute the keys and values
of a context once and let many query tokens attend to them (key-value caching).

``device`` and ``dtype`` are passed to every `nn.Linear`, as in torch's own modules.
Shapes: ``B`` episodes, ``L`` query positions, ``S`` key positions, ``d`` the width
of the residual stream.
"""

from __future__ import annotations

import torch
from torch import nn


class Attention(nn.Module):
    """One softmax attention head: ``softmax(q k^T) v``, projected back into the residual stream.

    The scores are not divided by sqrt(key_width): a construction that wants an
    inverse temperature puts it into ``query``'s weights.
    """

    def __init__(
        self,
        width: int,
        key_width: int,
        value_width: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.query = nn.Linear(width, key_width, bias=False, **factory)
        self.key = nn.Linear(width, key_width, bias=False, **factory)
        self.value = nn.Linear(width, value_width, bias=False, **factory)
        self.output = nn.Linear(value_width, width, bias=False, **factory)

    def keys_values(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Project tokens ``(B, S, d)`` to keys ``(B, S, key_width)`` and values ``(B, S, value_width)``."""
        return self.key(hidden), self.value(hidden)

    def scores(self, hidden: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Return the scores ``q k^T`` ``(B, L, S)`` of query tokens ``(B, L, d)`` over ``keys`` ``(B, S, key_width)``.

        ``mask`` is a boolean ``(L, S)`` or ``(B, L, S)`` tensor, True where a query may
        attend to a key; other scores become -inf. Every query must be allowed at least one key.
        """
        scores = self.query(hidden) @ keys.transpose(-1, -2)  # (B, L, S)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        return scores

    def weights(self, hidden: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Return the attention weights ``softmax(q k^T)`` ``(B, L, S)``, with arguments as in `scores`."""
        return torch.softmax(self.scores(hidden, keys, mask), dim=-1)

    def forward(
        self, hidden: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Return the head's contribution ``(B, L, d)`` to the residual stream of query tokens ``(B, L, d)``.

        Computes ``softmax(s) v`` as ``(exp(s - max s) v) / sum exp(s - max s)``, normalizing
        after the product as fused attention kernels do. When many weights are equal (a
        count), the product then sums exact small integers, which keeps float32 accurate
        for long contexts.
        """
        scores = self.scores(hidden, keys, mask)
        unnormalized = torch.exp(scores - scores.amax(dim=-1, keepdim=True))  # (B, L, S)
        mixed = (unnormalized @ values) / unnormalized.sum(dim=-1, keepdim=True)  # (B, L, value_width)
        return self.output(mixed)


class MLP(nn.Module):
    """``Linear -> ReLU -> Linear``; the first layer has a bias, the second writes into the residual stream."""

    def __init__(
        self, width: int, hidden_width: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ):
        super().__init__()
        self.hidden = nn.Linear(width, hidden_width, device=device, dtype=dtype)
        self.output = nn.Linear(hidden_width, width, bias=False, device=device, dtype=dtype)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.output(torch.relu(self.hidden(hidden)))


class Block(nn.Module):
    """A transformer block without layer normalization: ``h + attention``, then ``+ MLP``.

    The construction in `bnbench.transformers.exact` relies on exact subspace
    bookkeeping, which a normalization layer would rescale, so there is none.
    """

    def __init__(
        self,
        width: int,
        key_width: int,
        value_width: int,
        hidden_width: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__()
        self.attention = Attention(width, key_width, value_width, device=device, dtype=dtype)
        self.mlp = MLP(width, hidden_width, device=device, dtype=dtype)

    def forward(
        self, hidden: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Return tokens ``(B, L, d)`` after attending to ``keys``/``values`` ``(B, S, ·)`` and the MLP."""
        hidden = hidden + self.attention(hidden, keys, values, mask)
        return hidden + self.mlp(hidden)

    def self_attend(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Run the block over one sequence ``(B, L, d)`` whose tokens attend to each other under ``mask`` ``(L, L)``."""
        keys, values = self.attention.keys_values(hidden)
        return self(hidden, keys, values, mask)
