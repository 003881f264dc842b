"""The evidence task: generate the unobserved variables of a row given evidence on any subset.

Queries: for each episode, the first `NUM_EVIDENCE_SETS` held-out test rows are the
evidence values (true rows, so every evidence has positive probability under the
truth). Each gets its own random subset of observed variables, of a size drawn
uniformly from 1 to M - 1. Each evidence set is repeated ``num_generated_rows //
sets`` times, and the estimator's `generate_given` fills in the rest of every copy.

Scores, against the exact conditional distribution under the true tables, averaged
over episodes and evidence sets:

* ``evidence_marginal_tv``: TV between the generated and the exact conditional
  marginal of each unobserved variable, averaged over those variables.
* ``evidence_joint_tv``: TV between the generated rows and the exact conditional
  joint, where the joint has at most `bnbench.exact.MAX_JOINT_STATES` states.
* ``..._floor``: the same scores for the same number of exact draws, so the floor is
  what a perfect sampler scores with that many rows (the scores are noisy: their
  expectation shrinks like sqrt(states / rows)).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from bnbench.episodes import EpisodeBatch
from bnbench.estimators.base import Estimator
from bnbench.exact import MAX_JOINT_STATES, IntractableError
from bnbench.harness.validation import EstimatorOutputError, check_rows
from bnbench.inference import evidence as exact_evidence
from bnbench.inference import weighting
from bnbench.metrics.speed import peak_memory, timed

logger = logging.getLogger(__name__)

#: Evidence sets per episode.
NUM_EVIDENCE_SETS = 10
#: Particles per evidence set when the exact conditionals are intractable.
ESTIMATION_PARTICLES = 20_000
#: Largest conditional joint, in entries (episodes x sets x states), scored exactly.
MAX_JOINT_ENTRIES = 2**24


@dataclass(frozen=True)
class EvidenceQueries:
    """Evidence sets ``(B, E, M)`` with their observed masks, and the copies of each to generate."""

    rows: np.ndarray
    observed: np.ndarray
    samples_per_set: int

    def repeated(self) -> tuple[np.ndarray, np.ndarray]:
        """Rows and masks ``(B, E * S, M)``: each set repeated S times in a row."""
        return np.repeat(self.rows, self.samples_per_set, axis=1), np.repeat(self.observed, self.samples_per_set, axis=1)


def make_queries(episodes: EpisodeBatch, num_generated_rows: int, rng: np.random.Generator) -> EvidenceQueries:
    """Draw the evidence sets of every episode; see the module docstring."""
    structure = episodes.structure
    num_variables = structure.num_variables
    num_test = episodes.test.shape[1]
    if num_variables < 2:
        raise ValueError(f"the evidence task needs at least 2 variables; network {structure.name!r} has {num_variables}")
    if num_test < 1:
        raise ValueError("the evidence task takes its evidence from held-out test rows; use --test-rows 1 or more")
    num_sets = min(NUM_EVIDENCE_SETS, num_test)
    if num_generated_rows < num_sets:
        raise ValueError(
            f"the evidence task generates at least one row per evidence set ({num_sets} sets); "
            f"use --generated-rows {num_sets} or more"
        )

    rows = episodes.test[:, :num_sets].copy()  # (B, E, M)
    num_episodes = rows.shape[0]
    sizes = rng.integers(1, num_variables, size=(num_episodes, num_sets))  # 1 .. M - 1 observed
    ranks = np.argsort(rng.random((num_episodes, num_sets, num_variables)), axis=-1).argsort(axis=-1)
    observed = ranks < sizes[..., None]  # a uniform subset of each size
    return EvidenceQueries(rows, observed, num_generated_rows // num_sets)


def evaluate_evidence(
    estimator: Estimator,
    episodes: EpisodeBatch,
    num_generated_rows: int,
    measure_memory: bool,
    seed: int,
) -> dict[str, Any]:
    """Fit ``estimator`` on ``episodes`` and score `generate_given` on the evidence task."""
    structure = episodes.structure
    unfitted = copy.deepcopy(estimator) if measure_memory else None
    context = episodes.context_for(estimator.reads_true_tables)
    synchronize = getattr(estimator, "synchronize", None)
    query_rng, generate_rng, floor_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))

    _, fit_seconds = timed(lambda: estimator.fit(context), synchronize)
    queries = make_queries(episodes, num_generated_rows, query_rng)
    rows, observed = queries.repeated()
    generated, seconds = timed(lambda: estimator.generate_given(rows.copy(), observed.copy(), generate_rng), synchronize)
    generated = _checked_generation(estimator.name, structure, generated, rows, observed)

    metrics: dict[str, Any] = {
        "fit_s": fit_seconds,
        "generate_given_s": seconds,
        "generate_rows_per_s": generated.shape[0] * generated.shape[1] / seconds if seconds > 0 else float("inf"),
        "evidence_sets": int(queries.rows.shape[1]),
        "evidence_rows_per_set": queries.samples_per_set,
    }
    metrics.update(score_generation(episodes, queries, generated, floor_rng))
    if unfitted is not None:
        metrics["peak_memory_mb"] = _peak_memory(unfitted, episodes, rows, observed, seed) / 2**20
    return metrics


def score_generation(episodes: EpisodeBatch, queries: EvidenceQueries, generated: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
    """Marginal and joint TV of generated rows ``(B, E * S, M)`` against the exact conditionals, and their floors."""
    structure = episodes.structure
    num_episodes, num_sets, _ = queries.rows.shape
    samples = queries.samples_per_set
    blocks = generated.reshape(num_episodes, num_sets, samples, structure.num_variables)  # (B, E, S, M)
    truth, exact = _true_marginals(episodes, queries, rng)

    distances, floors = [], []
    for j, card in enumerate(structure.cardinalities):
        free = ~queries.observed[..., j]  # (B, E)
        if not free.any():
            continue
        empirical = _frequencies(blocks[..., j], card)  # (B, E, K)
        exact_draws = _frequencies(_draw_many(truth[j], samples, rng), card)
        distances.append(0.5 * np.abs(empirical - truth[j]).sum(axis=-1)[free])
        floors.append(0.5 * np.abs(exact_draws - truth[j]).sum(axis=-1)[free])
    metrics: dict[str, Any] = {
        "evidence_marginal_tv": float(np.concatenate(distances).mean()),
        "evidence_marginal_tv_floor": float(np.concatenate(floors).mean()),
        "exact": exact,
    }
    metrics.update(_joint_scores(episodes, queries, blocks, rng))
    return metrics


def _true_marginals(episodes: EpisodeBatch, queries: EvidenceQueries, rng: np.random.Generator) -> tuple[list[np.ndarray], bool]:
    """Exact conditional marginals ``(B, E, K)`` per variable, or likelihood-weighting estimates when intractable."""
    structure = episodes.structure
    try:
        return exact_evidence.conditional_marginals(structure, episodes.cpts, queries.rows, queries.observed), True
    except IntractableError as error:
        logger.info("%s; estimating the true conditionals with %d particles per evidence set", error, ESTIMATION_PARTICLES)
        marginals, _ = weighting.marginals_given(structure, episodes.cpts, queries.rows, queries.observed, rng, ESTIMATION_PARTICLES)
        return marginals, False


def _joint_scores(episodes: EpisodeBatch, queries: EvidenceQueries, blocks: np.ndarray, rng: np.random.Generator) -> dict[str, float]:
    structure = episodes.structure
    num_episodes, num_sets, samples, _ = blocks.shape
    num_states = structure.num_joint_states
    if num_states > MAX_JOINT_STATES or num_episodes * num_sets * num_states > MAX_JOINT_ENTRIES:
        return {}
    truth = exact_evidence.conditional_joint(structure, episodes.cpts, queries.rows, queries.observed, MAX_JOINT_ENTRIES)
    truth = truth.reshape(num_episodes, num_sets, num_states)
    codes = np.ravel_multi_index(tuple(np.moveaxis(blocks, -1, 0)), structure.cardinalities)  # (B, E, S)
    empirical = _frequencies(codes, num_states)
    exact_draws = _frequencies(_draw_many(truth, samples, rng), num_states)
    return {
        "evidence_joint_tv": float((0.5 * np.abs(empirical - truth).sum(axis=-1)).mean()),
        "evidence_joint_tv_floor": float((0.5 * np.abs(exact_draws - truth).sum(axis=-1)).mean()),
    }


def _frequencies(codes: np.ndarray, num_states: int) -> np.ndarray:
    """Relative frequencies ``(..., K)`` of codes ``(..., S)``; an empty sample is an error."""
    if codes.shape[-1] == 0:
        raise ValueError("cannot score an empty sample: generate at least one row per evidence set")
    flat = codes.reshape(-1, codes.shape[-1])
    offsets = np.arange(flat.shape[0])[:, None] * num_states
    counts = np.bincount((flat + offsets).ravel(), minlength=flat.shape[0] * num_states)
    return counts.reshape(*codes.shape[:-1], num_states) / codes.shape[-1]


def _draw_many(probabilities: np.ndarray, num_draws: int, rng: np.random.Generator) -> np.ndarray:
    """``num_draws`` draws from each distribution ``(..., K)``, as codes ``(..., num_draws)``."""
    num_states = probabilities.shape[-1]
    cdf = np.cumsum(probabilities.reshape(-1, num_states), axis=-1)
    cdf /= cdf[:, -1:]
    uniforms = rng.random((cdf.shape[0], num_draws))
    codes = np.stack([np.searchsorted(c, u, side="right") for c, u in zip(cdf, uniforms)])
    return codes.clip(max=num_states - 1).reshape(*probabilities.shape[:-1], num_draws)


def _checked_generation(name: str, structure, generated: object, rows: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Apply the contract checks of `check_rows`, and check that every observed entry is returned unchanged."""
    array = check_rows(name, structure, generated, rows.shape)
    changed = observed & (array != rows)
    if changed.any():
        episode, row, j = (int(i) for i in np.argwhere(changed)[0])
        raise EstimatorOutputError(
            f"estimator {name!r} changed observed variable {structure.variables[j]!r} in row {row} of episode {episode} "
            f"(evidence {rows[episode, row, j]}, returned {array[episode, row, j]}); generate_given must keep the evidence"
        )
    return array


def _peak_memory(estimator: Estimator, episodes: EpisodeBatch, rows: np.ndarray, observed: np.ndarray, seed: int) -> int:
    context = episodes.context_for(estimator.reads_true_tables)

    def work() -> None:
        estimator.fit(context)
        estimator.generate_given(rows.copy(), observed.copy(), np.random.default_rng(seed))

    return peak_memory(work)
