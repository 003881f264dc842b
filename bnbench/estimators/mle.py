"""Count-based maximum-likelihood estimation, vectorized over episodes.

P̂(x_j = k | pa) = (n(pa, k) + alpha) / (n(pa) + alpha * card_j), where n counts context
rows. Cardinalities come from the structure, so a state that never occurs gets
probability alpha / (n(pa) + alpha * card_j), which is 0 without pseudo-counts.

A parent configuration with n(pa) = 0 never occurs in the context. Its row follows
``policy``:

* ``uniform`` (default): 1 / card_j for every state.
* ``marginal``: the target's marginal frequency in the context, (n(k) + alpha) / (N + alpha * card_j).
* ``nan``: NaN, so every downstream use of the row is visibly undefined.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from bnbench.episodes import Context
from bnbench.estimators.base import TableEstimator
from bnbench.structure import Structure

POLICIES = ("uniform", "marginal", "nan")
Policy = Literal["uniform", "marginal", "nan"]


def family_counts(structure: Structure, rows: np.ndarray, j: int) -> np.ndarray:
    """Counts n(pa, k) of variable ``j``'s family per episode; ``rows`` ``(B, N, M)`` -> ``(B, *parent_cards, card)``."""
    num_episodes, num_rows = rows.shape[:2]
    num_states = structure.cardinalities[j]
    num_configurations = structure.num_parent_configurations(j)

    # flat = (episode * configurations + parent configuration) * states + x_j, built in
    # place: the multiply-adds over parents start from the episode index.
    flat = np.empty((num_episodes, num_rows), dtype=np.int64)  # (B, N)
    flat[:] = np.arange(num_episodes)[:, None]
    for p in structure.parents[j]:
        flat *= structure.cardinalities[p]
        flat += rows[..., p]
    flat *= num_states
    flat += rows[..., j]
    counts = np.bincount(flat.ravel(), minlength=num_episodes * num_configurations * num_states)
    return counts.reshape(num_episodes, *structure.table_shape(j)).astype(np.float64)


#: Most bins of one joint bincount in `all_family_counts` (episodes x product of family sizes).
MAX_JOINT_BINS = 2**14


def all_family_counts(structure: Structure, rows: np.ndarray, max_bins: int = MAX_JOINT_BINS) -> list[np.ndarray]:
    """`family_counts` of every variable, sharing one pass over the rows among several small families.

    np.bincount costs about the same per row whatever the number of bins, and it dominates
    counting on large contexts. So families are packed into groups whose joint index space
    (episodes x product of family sizes) stays within ``max_bins``. Each group is counted in
    one bincount of the joint index, and each family's counts are a marginal of the joint
    counts, so the result equals counting family by family. On alarm with 10^5 rows this
    halves the time (37 bincounts become 10).
    """
    num_episodes, num_rows = rows.shape[:2]
    sizes = [structure.num_parent_configurations(j) * structure.cardinalities[j] for j in range(structure.num_variables)]
    groups: list[list[int]] = []
    bins = max_bins + 1
    for j in sorted(range(structure.num_variables), key=sizes.__getitem__):
        if bins * sizes[j] > max_bins:
            groups.append([])
            bins = num_episodes
        groups[-1].append(j)
        bins *= sizes[j]

    counts: list[np.ndarray | None] = [None] * structure.num_variables
    for group in groups:
        if len(group) == 1:
            counts[group[0]] = family_counts(structure, rows, group[0])
            continue
        flat = np.empty((num_episodes, num_rows), dtype=np.int64)
        flat[:] = np.arange(num_episodes)[:, None]
        for j in group:  # each family's own index, appended as the next mixed-radix digit
            for p in structure.parents[j]:
                flat *= structure.cardinalities[p]
                flat += rows[..., p]
            flat *= structure.cardinalities[j]
            flat += rows[..., j]
        group_sizes = [sizes[j] for j in group]
        joint = np.bincount(flat.ravel(), minlength=num_episodes * int(np.prod(group_sizes)))
        joint = joint.reshape(num_episodes, *group_sizes)
        for position, j in enumerate(group):
            others = tuple(1 + k for k in range(len(group)) if k != position)
            counts[j] = joint.sum(axis=others).reshape(num_episodes, *structure.table_shape(j)).astype(np.float64)
    return counts  # type: ignore[return-value]


def estimate_tables(
    structure: Structure, rows: np.ndarray, policy: Policy = "uniform", alpha: float = 0.0
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Return (tables, counts) of the count MLE for every variable; see the module docstring."""
    tables, all_counts = [], []
    # A column-major view of the same rows: every column read below is contiguous. On alarm
    # with 10^5 rows this cut counting from about 50 ms to about 30 ms (2-core machine).
    rows = np.moveaxis(np.ascontiguousarray(np.moveaxis(rows, -1, 0)), 0, -1)  # (B, N, M) view of (M, B, N)
    for j, counts in enumerate(all_family_counts(structure, rows)):  # (B, *parent_cards, K) each
        num_states = structure.cardinalities[j]
        totals = counts.sum(axis=-1, keepdims=True)
        unseen = totals == 0  # (B, *parent_cards, 1)

        with np.errstate(invalid="ignore", divide="ignore"):
            table = (counts + alpha) / (totals + alpha * num_states)

        if policy == "uniform":
            fallback = np.full(num_states, 1.0 / num_states)
        elif policy == "marginal":
            marginal_counts = counts.reshape(counts.shape[0], -1, num_states).sum(axis=1)  # (B, K)
            fallback = (marginal_counts + alpha) / (marginal_counts.sum(-1, keepdims=True) + alpha * num_states)
            fallback = fallback.reshape(counts.shape[0], *([1] * (counts.ndim - 2)), num_states)
        else:
            fallback = np.full(num_states, np.nan)
        tables.append(np.where(unseen, fallback, table))
        all_counts.append(counts)
    return tables, all_counts


class CountMLE(TableEstimator):
    """Count-based MLE with an explicit unseen-configuration policy and optional add-alpha.

    Args:
        policy: Row used for parent configurations absent from the context:
            ``"uniform"``, ``"marginal"`` or ``"nan"`` (see the module docstring).
        alpha: Dirichlet pseudo-count added to every cell (0 gives the plain MLE).

    Fitted attributes: ``cpts_`` (tables) and ``counts_`` (family counts), both
    ``(B, *parent_cards, card)`` per variable.
    """

    name = "mle"

    def __init__(self, policy: Policy = "uniform", alpha: float = 0.0):
        if policy not in POLICIES:
            raise ValueError(f"unknown unseen-configuration policy {policy!r}; valid policies: {list(POLICIES)}")
        if not alpha >= 0:
            raise ValueError(f"alpha must be 0 or more; got {alpha}")
        self.policy = policy
        self.alpha = float(alpha)
        self.counts_: list[np.ndarray] | None = None

    @property
    def may_return_nan(self) -> bool:
        return self.policy == "nan"

    def fit(self, context: Context) -> CountMLE:
        self.cpts_, self.counts_ = estimate_tables(context.structure, context.rows, self.policy, self.alpha)
        self.context_ = context
        return self
