"""Fidelity of estimated conditionals against the true network.

Notation: p is the true conditional, q the estimate, pi the true marginal of the
parent configuration, and every score is per episode (shape ``(B,)``).

* KL(true || estimate) of the joint decomposes over variables:
  KL = sum_j sum_pa pi(pa) KL(p(.|pa) || q(.|pa)). A cell with p > 0 and q = 0 makes
  it infinite, and it is reported so. The smoothed variant scores
  (1 - SMOOTHING) q + SMOOTHING / card instead of q.
* Conditional TV: sum_pa pi(pa) * 0.5 * sum_x |p(x|pa) - q(x|pa)|, per variable.
* Held-out log-likelihood: mean over true test rows of sum_j log q(x_j | earlier values), in nats.

For estimators that condition on the whole prefix, pi-weighted sums become averages
over the true test rows (Monte Carlo estimates).
"""

from __future__ import annotations

import numpy as np

#: Weight of the uniform distribution mixed into q for the smoothed KL.
SMOOTHING = 1e-3


def table_kl(true_table: np.ndarray, estimate: np.ndarray, family_marginal: np.ndarray) -> np.ndarray:
    """Exact sum_pa pi(pa) KL(p(.|pa) || q(.|pa)) for one variable; tables ``(B, ..., K)`` -> ``(B,)``."""
    weight = np.broadcast_to(family_marginal, np.broadcast_shapes(family_marginal.shape, estimate.shape))
    terms = _kl_terms(np.broadcast_to(true_table, weight.shape), estimate, weight)
    return terms.reshape(terms.shape[0], -1).sum(axis=1)


def table_tv(true_table: np.ndarray, estimate: np.ndarray, family_marginal: np.ndarray) -> np.ndarray:
    """Exact sum_pa pi(pa) TV(p(.|pa), q(.|pa)) for one variable; ``(B,)``."""
    parent_weight = family_marginal.sum(axis=-1)  # (B or 1, *parent_cards)
    distance = 0.5 * np.abs(true_table - estimate).sum(axis=-1)  # (B, *parent_cards)
    # A configuration the truth never reaches does not count, even if the estimate is NaN there.
    weighted = np.where(parent_weight > 0, parent_weight * distance, 0.0)
    return weighted.reshape(weighted.shape[0], -1).sum(axis=1)


def row_kl(true_probabilities: np.ndarray, estimate: np.ndarray) -> np.ndarray:
    """Mean over rows of KL(p || q); arrays ``(B, T, K)`` -> ``(B,)``."""
    terms = _kl_terms(true_probabilities, estimate, true_probabilities)
    return terms.sum(axis=-1).mean(axis=-1)


def row_tv(true_probabilities: np.ndarray, estimate: np.ndarray) -> np.ndarray:
    """Mean over rows of TV(p, q); arrays ``(B, T, K)`` -> ``(B,)``."""
    return (0.5 * np.abs(true_probabilities - estimate).sum(axis=-1)).mean(axis=-1)


def smooth(estimate: np.ndarray) -> np.ndarray:
    """Mix ``SMOOTHING`` of the uniform distribution into each row on the last axis."""
    return (1.0 - SMOOTHING) * estimate + SMOOTHING / estimate.shape[-1]


def log_likelihood_terms(estimate: np.ndarray, values: np.ndarray) -> np.ndarray:
    """log q(x) of the observed ``values`` ``(B, T)`` under ``estimate`` ``(B, T, K)``; ``-inf`` where q = 0."""
    chosen = np.take_along_axis(estimate, values[..., None], axis=-1)[..., 0]
    with np.errstate(divide="ignore"):
        return np.log(chosen)


def agreement(estimate: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Max and mean absolute difference per episode; arrays ``(B, ...)`` -> two ``(B,)``."""
    difference = np.abs(estimate - reference).reshape(estimate.shape[0], -1)
    return difference.max(axis=1), difference.mean(axis=1)


def _kl_terms(p: np.ndarray, q: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """weight * log(p / q) with 0 where weight = 0 and +inf where weight > 0 and q = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = weight * (np.log(p) - np.log(q))
    terms = np.where(weight > 0, terms, 0.0)
    return terms
