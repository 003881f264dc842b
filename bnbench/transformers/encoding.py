"""One token per row: the encoding shared by the exact and the trained transformers.

A token is the concatenation, in this order, of

1. the one-hot code of every variable, in topological order, in blocks sized by each
   variable's cardinality (``offsets[j]`` is where variable j's block starts),
2. a one-hot indicator of the target variable (M entries),
3. a query flag: 1 for the query token, 0 for context tokens.

Context tokens carry every variable. In a query token the block of the target and of
every later variable is all zeros (masked), so only the prefix x_<target is visible.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch
import torch.nn.functional as F

#: Bump when the token layout changes; checkpoints store it and refuse other versions.
ENCODING_VERSION = 1


@dataclass(frozen=True)
class RowEncoding:
    """Token layout for variables with the given cardinalities (in topological order)."""

    cardinalities: tuple[int, ...]

    @cached_property
    def offsets(self) -> tuple[int, ...]:
        starts, total = [], 0
        for card in self.cardinalities:
            starts.append(total)
            total += card
        return tuple(starts)

    @property
    def num_variables(self) -> int:
        return len(self.cardinalities)

    @property
    def values_width(self) -> int:
        """Width of the one-hot blocks (sum of cardinalities)."""
        return sum(self.cardinalities)

    @property
    def target_offset(self) -> int:
        return self.values_width

    @property
    def query_flag_index(self) -> int:
        return self.values_width + self.num_variables

    @property
    def width(self) -> int:
        return self.values_width + self.num_variables + 1

    @cached_property
    def variable_of_feature(self) -> torch.Tensor:
        """For each value feature, the index of its variable: shape ``(values_width,)``."""
        return torch.repeat_interleave(torch.arange(self.num_variables), torch.tensor(self.cardinalities))

    def one_hot_values(self, rows: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Concatenated one-hot blocks of integer rows ``(..., M)`` -> ``(..., values_width)``.

        Raises `ValueError` when a code is outside its variable's states.
        """
        cardinalities = torch.tensor(self.cardinalities, device=rows.device)
        if ((rows < 0) | (rows >= cardinalities)).any():
            raise ValueError(
                f"rows contain state codes outside 0..card-1 for cardinalities {list(self.cardinalities)}; "
                "pass each variable's integer code, below its cardinality"
            )
        # One scatter writes a 1 at offset_j + code_j for every variable j.
        offsets = torch.tensor(self.offsets, device=rows.device)
        values = torch.zeros((*rows.shape[:-1], self.values_width), dtype=dtype, device=rows.device)
        return values.scatter_(-1, rows + offsets, 1.0)

    def encode(
        self, rows: torch.Tensor, target: int | torch.Tensor, query: bool, dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        """Tokens for rows ``(B, L, M)`` with target variable ``target``.

        ``target`` is an int, a ``(B,)`` tensor (one target per episode) or a ``(B, L)``
        tensor (one target per token). With ``query=True`` the target and later
        variables are masked and the query flag is set.
        """
        num_episodes, length, _ = rows.shape
        values = self.one_hot_values(rows, dtype)  # (B, L, values_width)
        target = torch.as_tensor(target, dtype=torch.long, device=rows.device)
        if target.ndim == 0:
            target = target.expand(num_episodes)
        if target.ndim == 1:
            target = target[:, None].expand(num_episodes, length)  # (B, L)

        if query:
            # Keep only features of variables strictly before the target.
            visible = self.variable_of_feature.to(rows.device) < target[..., None]  # (B, L, values_width)
            values = values * visible.to(dtype)

        indicator = F.one_hot(target, self.num_variables).to(dtype)  # (B, L, M)
        flag = torch.full((num_episodes, length, 1), 1.0 if query else 0.0, dtype=dtype, device=rows.device)
        return torch.cat([values, indicator, flag], dim=-1)
