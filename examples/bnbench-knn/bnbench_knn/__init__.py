"""A k-nearest-rows estimator: an example of a bnbench plug-in installed through an entry point.

To estimate P(x_j | x_1, ..., x_(j-1)) for a query row, the estimator measures the
Hamming distance between the query and every context row on the columns before j,
keeps the k nearest rows (and every row tied with the k-th), and returns the
frequencies of x_j among them, with ``alpha`` pseudo-counts:

    P(x_j = s | query) = (n_s + alpha) / (n + alpha * card_j)

where n counts the kept rows and n_s those with x_j = s. When at least k context
rows match the query exactly on the earlier columns, only exact matches are kept
and the estimate is the count MLE given the whole prefix; in a Bayesian network
that prefix MLE converges to P(x_j | parents) as the context grows. When no row
matches, the nearest rows stand in, where the count MLE would fall back to a
uniform row.

The estimator reads the whole prefix, so it declares ``conditions_on = "prefix"``
and has no tables; generation uses the base class's autoregressive sampler.
"""

from __future__ import annotations

import numbers

import numpy as np

from bnbench.episodes import Context
from bnbench.estimators import Estimator

__all__ = ["NearestRows"]

#: Largest distance array, in entries, built at once; queries are processed in chunks below it.
MAX_CHUNK_ENTRIES = 2**24


class NearestRows(Estimator):
    """Frequencies of the target among the k context rows nearest to the query's prefix.

    Args:
        k: Rows kept per query, at least 1; rows tied with the k-th nearest are kept too.
        alpha: Pseudo-count added to every state (0 gives plain frequencies).
    """

    name = "knn"
    conditions_on = "prefix"

    def __init__(self, k: int = 1, alpha: float = 0.0):
        if not (isinstance(k, numbers.Integral) and k >= 1):
            raise ValueError(f"k must be an integer of at least 1; got {k!r}")
        if not alpha >= 0:
            raise ValueError(f"alpha must be 0 or more; got {alpha!r}")
        self.k = int(k)
        self.alpha = float(alpha)

    def fit(self, context: Context) -> NearestRows:
        # All the work happens per query; fitting only keeps the context.
        self.context_ = context
        return self

    def conditionals(self, rows: np.ndarray, target: int) -> np.ndarray:
        """P(x_target | earlier columns of ``rows``); ``(B, Q, M)`` -> ``(B, Q, card)``."""
        context = self.fitted_context
        rows = np.asarray(rows)
        num_episodes, num_queries, _ = rows.shape
        num_context = context.num_rows
        chunk = max(1, MAX_CHUNK_ENTRIES // max(1, num_episodes * num_context * max(target, 1)))
        parts = [self._chunk(rows[:, start : start + chunk], target) for start in range(0, num_queries, chunk)]
        return np.concatenate(parts, axis=1) if parts else np.zeros((num_episodes, 0, context.structure.cardinalities[target]))

    def _chunk(self, queries: np.ndarray, target: int) -> np.ndarray:
        context = self.fitted_context
        num_states = context.structure.cardinalities[target]
        earlier = context.rows[:, :, :target]  # (B, N, j)
        distance = (queries[:, :, None, :target] != earlier[:, None, :, :]).sum(axis=-1)  # (B, Q, N)

        k = min(self.k, context.num_rows)
        kth = np.partition(distance, k - 1, axis=-1)[..., k - 1 : k]  # (B, Q, 1)
        neighbors = (distance <= kth).astype(np.float64)  # (B, Q, N), ties with the k-th included
        one_hot = np.eye(num_states)[context.rows[:, :, target]]  # (B, N, K)
        counts = np.einsum("bqn,bnk->bqk", neighbors, one_hot)  # (B, Q, K)
        return (counts + self.alpha) / (counts.sum(axis=-1, keepdims=True) + self.alpha * num_states)
