"""Fidelity of generated rows: empirical marginals against the true ones.

Both scores are total variation distances, 0.5 * sum |empirical - true|. With R
generated rows the empirical distribution is noisy even for a perfect sampler:
its expected TV shrinks like sqrt(states / R), so compare estimators at the same R.
"""

from __future__ import annotations

import numpy as np

from bnbench.estimators.mle import family_counts
from bnbench.structure import Structure


def family_tv(structure: Structure, rows: np.ndarray, family_marginals: list[np.ndarray]) -> np.ndarray:
    """TV between generated and true family marginals, per variable and episode: ``(B, M)``.

    ``rows`` is ``(B, R, M)``; ``family_marginals[j]`` is ``(B or 1, *parent_cards, card_j)``.
    """
    num_rows = rows.shape[1]
    scores = []
    for j in range(structure.num_variables):
        empirical = family_counts(structure, rows, j) / num_rows
        difference = np.abs(empirical - family_marginals[j]).reshape(rows.shape[0], -1)
        scores.append(0.5 * difference.sum(axis=1))
    return np.stack(scores, axis=1)


def joint_tv(structure: Structure, rows: np.ndarray, joint: np.ndarray) -> np.ndarray:
    """TV between the generated and the true joint distribution, per episode: ``(B,)``."""
    num_episodes, num_rows, _ = rows.shape
    num_states = structure.num_joint_states
    flat = np.ravel_multi_index(tuple(np.moveaxis(rows, -1, 0)), structure.cardinalities)  # (B, R)
    offset = np.arange(num_episodes)[:, None] * num_states
    empirical = np.bincount((flat + offset).ravel(), minlength=num_episodes * num_states).reshape(num_episodes, -1)
    true = np.broadcast_to(joint.reshape(joint.shape[0], -1), empirical.shape)
    return 0.5 * np.abs(empirical / num_rows - true).sum(axis=1)
