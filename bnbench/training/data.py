"""Training episodes drawn on the fly: fixed graph, fresh tables per episode, one target per episode.

Each training step draws one context size N (log-uniform between the configured
bounds, so small and large contexts are equally represented per decade), then ``B``
episodes of that size. An episode has its own tables from the table prior, N context
rows, ``Q`` query rows from the same tables and one target variable drawn uniformly.
Every query of an episode predicts that target from its prefix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from bnbench.estimators.mle import family_counts
from bnbench.priors import TablePrior
from bnbench.sampling import ancestral_sample
from bnbench.structure import Structure
from bnbench.transformers.encoding import RowEncoding


@dataclass(frozen=True, eq=False)
class TrainingBatch:
    """Tensors for one step; ``P = values_width`` of the encoding.

    Attributes:
        context_tokens: ``(B, N, width)`` context tokens.
        query_tokens: ``(B, Q, width)`` query tokens (target and later variables masked).
        targets: ``(B,)`` target variable of each episode.
        labels: ``(B, Q)`` feature index (block offset plus state) of each query's sampled target value.
        true_probabilities: ``(B, Q, P)`` true P(target | parents) of each query, zero outside the target block.
        mle_probabilities: ``(B, Q, P)`` the in-context count MLE of the same conditional (uniform row for
            parent configurations absent from the context), zero outside the target block.
    """

    context_tokens: torch.Tensor
    query_tokens: torch.Tensor
    targets: torch.Tensor
    labels: torch.Tensor
    true_probabilities: torch.Tensor
    mle_probabilities: torch.Tensor

    @property
    def num_tokens(self) -> int:
        return self.context_tokens.shape[0] * (self.context_tokens.shape[1] + self.query_tokens.shape[1])


@dataclass(frozen=True)
class EpisodeSampler:
    """Draws `TrainingBatch` objects for one structure and table prior.

    Attributes:
        structure: The fixed graph every episode uses.
        prior: Table prior; each episode draws its own tables from it.
        min_context: Smallest context size N (1 or more).
        max_context: Largest context size N.
        num_queries: Query rows Q per episode.
    """

    structure: Structure
    prior: TablePrior
    min_context: int = 1
    max_context: int = 1000
    num_queries: int = 32

    def __post_init__(self) -> None:
        if not 1 <= self.min_context <= self.max_context:
            raise ValueError(
                f"context size range {self.min_context}..{self.max_context} is invalid; "
                "use 1 <= minimum <= maximum"
            )
        if self.num_queries < 1:
            raise ValueError(f"num_queries must be at least 1; got {self.num_queries}")

    @property
    def encoding(self) -> RowEncoding:
        return RowEncoding(self.structure.cardinalities)

    def sample_context_size(self, rng: np.random.Generator) -> int:
        """Draw a log-uniform integer in ``[min_context, max_context]``."""
        low, high = math.log(self.min_context), math.log(self.max_context + 1)
        return int(min(self.max_context, math.floor(math.exp(rng.uniform(low, high)))))

    def sample(self, num_episodes: int, context_size: int, rng: np.random.Generator, device: str | torch.device = "cpu") -> TrainingBatch:
        """Draw ``num_episodes`` episodes with ``context_size`` context rows each."""
        structure = self.structure
        tables = self.prior.sample(structure, num_episodes, rng)
        rows = ancestral_sample(structure, tables, context_size + self.num_queries, rng)  # (B, N + Q, M)
        context, queries = rows[:, :context_size], rows[:, context_size:]
        targets = rng.integers(structure.num_variables, size=num_episodes)  # (B,)
        true_probabilities, mle_probabilities, labels = self._targets(tables, context, queries, targets)

        encoding = self.encoding
        context_t = torch.as_tensor(context, device=device)
        queries_t = torch.as_tensor(queries, device=device)
        targets_t = torch.as_tensor(targets, device=device)
        return TrainingBatch(
            context_tokens=encoding.encode(context_t, targets_t, query=False),
            query_tokens=encoding.encode(queries_t, targets_t, query=True),
            targets=targets_t,
            labels=torch.as_tensor(labels, device=device),
            true_probabilities=torch.as_tensor(true_probabilities, dtype=torch.float32, device=device),
            mle_probabilities=torch.as_tensor(mle_probabilities, dtype=torch.float32, device=device),
        )

    def _targets(
        self, tables: list[np.ndarray], context: np.ndarray, queries: np.ndarray, targets: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """True and count-MLE conditionals ``(B, Q, P)`` of each episode's target, and the label indices ``(B, Q)``."""
        structure, encoding = self.structure, self.encoding
        num_episodes, num_queries = queries.shape[:2]
        true_probabilities = np.zeros((num_episodes, num_queries, encoding.values_width))
        mle_probabilities = np.zeros_like(true_probabilities)
        labels = np.zeros((num_episodes, num_queries), dtype=np.int64)

        for j in np.unique(targets):
            episodes = np.flatnonzero(targets == j)
            start, card = encoding.offsets[j], structure.cardinalities[j]
            block = slice(start, start + card)
            configuration = structure.parent_configuration_index(queries[episodes], j)  # (b, Q)
            episode_index = np.arange(len(episodes))[:, None]

            table = tables[j][episodes].reshape(len(episodes), -1, card)  # (b, configurations, card)
            true_probabilities[episodes, :, block] = table[episode_index, configuration]

            counts = family_counts(structure, context[episodes], j).reshape(len(episodes), -1, card)
            totals = counts.sum(axis=-1, keepdims=True)
            with np.errstate(invalid="ignore", divide="ignore"):
                mle = np.where(totals > 0, counts / totals, 1.0 / card)
            mle_probabilities[episodes, :, block] = mle[episode_index, configuration]

            labels[episodes] = start + queries[episodes, :, j]
        return true_probabilities, mle_probabilities, labels
