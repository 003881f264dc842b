"""Likelihood weighting: approximate sampling and marginals under evidence, for any network size.

Each query row gets ``num_particles`` particles, drawn in topological order with the
observed variables clamped to their evidence. A particle's weight is the product of
P(e_j | parents) over the observed variables. Marginals are weighted frequencies, and
`sample_given` keeps one particle per row, drawn with probability proportional to its
weight (sampling-importance-resampling). Both are consistent as ``num_particles``
grows but biased for a finite count, most for evidence of low probability, so the
effective sample size sum(w)^2 / sum(w^2) is returned with every result.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bnbench.estimators.base import sample_categorical
from bnbench.inference.evidence import ImpossibleEvidenceError, validate_evidence
from bnbench.sampling import gather_conditionals
from bnbench.structure import Structure

#: Particles per query row unless the caller sets another count.
DEFAULT_PARTICLES = 1000
#: Largest particle array, in entries (episodes x rows x particles x variables), held at once.
MAX_PARTICLE_ENTRIES = 2**24


def weighted_particles(
    structure: Structure,
    cpts: Sequence[np.ndarray],
    rows: np.ndarray,
    observed: np.ndarray,
    num_particles: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Particles ``(B, Q, P, M)`` and their weights ``(B, Q, P)`` for validated evidence ``(B, Q, M)``."""
    num_episodes, num_rows, num_variables = rows.shape
    tables = [np.broadcast_to(t, (num_episodes, *structure.table_shape(j))) for j, t in enumerate(cpts)]
    particles = np.repeat(rows, num_particles, axis=1)  # (B, Q * P, M), particles of a row are adjacent
    clamped = np.repeat(observed, num_particles, axis=1)
    log_weight = np.zeros(particles.shape[:2])
    for j in range(num_variables):
        probabilities = gather_conditionals(structure, tables, particles, j)  # (B, Q * P, K)
        drawn = sample_categorical(probabilities, rng)
        particles[..., j] = np.where(clamped[..., j], particles[..., j], drawn)
        chosen = np.take_along_axis(probabilities, particles[..., j, None], axis=-1)[..., 0]
        with np.errstate(divide="ignore"):
            log_weight += np.where(clamped[..., j], np.log(chosen), 0.0)
    shape = (num_episodes, num_rows, num_particles)
    return particles.reshape(*shape, num_variables), np.exp(log_weight).reshape(shape)


def sample_given(
    structure: Structure,
    cpts: Sequence[np.ndarray],
    rows: np.ndarray,
    observed: np.ndarray,
    rng: np.random.Generator,
    num_particles: int = DEFAULT_PARTICLES,
) -> tuple[np.ndarray, np.ndarray]:
    """One approximate draw from P(unobserved | evidence) per row, and the effective sample sizes.

    Returns ``(rows (B, Q, M), effective_sample_size (B, Q))``. Raises
    `ImpossibleEvidenceError` when every particle of a row has weight 0.
    """
    rows, observed = validate_evidence(structure, rows, observed)
    _check_particles(num_particles)
    output = rows.copy()
    effective = np.empty(rows.shape[:2])
    for chunk in _row_chunks(rows.shape, num_particles):
        particles, weights = weighted_particles(structure, cpts, rows[:, chunk], observed[:, chunk], num_particles, rng)
        total = _checked_total(structure, weights)
        choice = sample_categorical(weights / total[..., None], rng)  # (B, Qc)
        output[:, chunk] = np.take_along_axis(particles, choice[..., None, None], axis=2)[:, :, 0]
        effective[:, chunk] = total**2 / (weights**2).sum(axis=-1)
    return output, effective


def marginals_given(
    structure: Structure,
    cpts: Sequence[np.ndarray],
    rows: np.ndarray,
    observed: np.ndarray,
    rng: np.random.Generator,
    num_particles: int = DEFAULT_PARTICLES,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Weighted-frequency estimates of P(x_j | evidence), one ``(B, Q, card_j)`` per variable, and the effective sample sizes."""
    rows, observed = validate_evidence(structure, rows, observed)
    _check_particles(num_particles)
    marginals = [np.empty((*rows.shape[:2], k)) for k in structure.cardinalities]
    effective = np.empty(rows.shape[:2])
    for chunk in _row_chunks(rows.shape, num_particles):
        particles, weights = weighted_particles(structure, cpts, rows[:, chunk], observed[:, chunk], num_particles, rng)
        total = _checked_total(structure, weights)
        normalized = weights / total[..., None]  # (B, Qc, P)
        for j, card in enumerate(structure.cardinalities):
            one_hot = np.eye(card)[particles[..., j]]  # (B, Qc, P, K)
            marginals[j][:, chunk] = np.einsum("bqp,bqpk->bqk", normalized, one_hot)
        effective[:, chunk] = total**2 / (weights**2).sum(axis=-1)
    return marginals, effective


def _check_particles(num_particles: int) -> None:
    if num_particles < 1:
        raise ValueError(f"num_particles is {num_particles}; likelihood weighting needs 1 or more particles per row")


def _row_chunks(shape: tuple[int, ...], num_particles: int) -> list[slice]:
    num_episodes, num_rows, num_variables = shape
    per_row = num_episodes * num_particles * num_variables
    size = max(1, MAX_PARTICLE_ENTRIES // per_row)
    return [slice(start, start + size) for start in range(0, num_rows, size)]


def _checked_total(structure: Structure, weights: np.ndarray) -> np.ndarray:
    total = weights.sum(axis=-1)  # (B, Qc)
    zero = ~(total > 0)
    if zero.any():
        episode, row = (int(i) for i in np.argwhere(zero)[0])
        raise ImpossibleEvidenceError(
            f"every likelihood-weighting particle of row {row} in episode {episode} has weight 0 in network "
            f"{structure.name!r}: the evidence has probability 0, or too small a probability for "
            f"{weights.shape[-1]} particles; use more particles or exact inference"
        )
    return total
