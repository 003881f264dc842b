"""Score one estimator on one episode batch: fidelity, generated rows, time and memory."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from bnbench.episodes import EpisodeBatch
from bnbench.estimators.base import Estimator
from bnbench.harness.validation import EstimatorOutputError, check_probabilities, check_rows
from bnbench.metrics import fidelity, samples
from bnbench.metrics.speed import peak_memory, timed
from bnbench.metrics.truth import Truth
from bnbench.sampling import gather_conditionals

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reference:
    """The count MLE (uniform policy, no pseudo-counts) of the same context, and its counts."""

    cpts: list[np.ndarray]
    counts: list[np.ndarray]


@dataclass(frozen=True)
class EvaluationSettings:
    num_generated_rows: int = 1000
    measure_memory: bool = True


def evaluate(
    estimator: Estimator,
    episodes: EpisodeBatch,
    truth: Truth,
    reference: Reference,
    settings: EvaluationSettings,
    seed: int,
) -> dict[str, Any]:
    """Fit ``estimator`` on ``episodes`` and return its metrics (see docs/metrics.md)."""
    structure = episodes.structure
    name = estimator.name
    unfitted = copy.deepcopy(estimator) if settings.measure_memory else None
    context = episodes.context_for(estimator.reads_true_tables)
    synchronize = getattr(estimator, "synchronize", None)

    _, fit_seconds = timed(lambda: estimator.fit(context), synchronize)
    metrics: dict[str, Any] = {"fit_s": fit_seconds, "exact": truth.exact}
    metrics.update(_context_coverage(episodes, truth, reference))

    if estimator.provides_probabilities:
        metrics.update(_probability_metrics(estimator, episodes, truth, reference, synchronize))

    if settings.num_generated_rows > 0:
        rng = np.random.default_rng(seed)
        rows, generate_seconds = timed(lambda: estimator.generate(settings.num_generated_rows, rng), synchronize)
        shape = (episodes.num_episodes, settings.num_generated_rows, structure.num_variables)
        rows = check_rows(name, structure, rows, shape)
        metrics["generate_rows_per_s"] = rows.shape[0] * rows.shape[1] / generate_seconds if generate_seconds > 0 else float("inf")
        metrics["generated_family_tv"] = float(samples.family_tv(structure, rows, truth.family_marginals).mean())
        if truth.joint is not None:
            metrics["generated_joint_tv"] = float(samples.joint_tv(structure, rows, truth.joint).mean())

    if unfitted is not None:
        metrics["peak_memory_mb"] = _peak_memory(unfitted, episodes, settings, seed) / 2**20
    return metrics


def _probability_metrics(estimator, episodes, truth, reference, synchronize) -> dict[str, Any]:
    structure = episodes.structure
    name = estimator.name
    num_episodes, num_test = episodes.num_episodes, episodes.test.shape[1]
    allow_nan = bool(getattr(estimator, "may_return_nan", False))
    metrics: dict[str, Any] = {}

    # Conditionals on the true test rows: held-out likelihood and time per conditional.
    outputs, total_seconds = timed(lambda: estimator.all_conditionals(episodes.test), synchronize)
    if len(outputs) != structure.num_variables:
        raise EstimatorOutputError(
            f"estimator {name!r} returned conditionals for {len(outputs)} variables; expected {structure.num_variables}"
        )
    test_conditionals = []
    for j, probabilities in enumerate(outputs):
        shape = (num_episodes, num_test, structure.cardinalities[j])
        test_conditionals.append(check_probabilities(name, f"conditionals of {structure.variables[j]!r}", probabilities, shape, allow_nan))
    if num_test:
        metrics["conditional_s"] = total_seconds / (num_episodes * num_test * structure.num_variables)
        log_likelihood = sum(fidelity.log_likelihood_terms(q, episodes.test[..., j]) for j, q in enumerate(test_conditionals))
        smoothed = sum(
            fidelity.log_likelihood_terms(fidelity.smooth(q), episodes.test[..., j]) for j, q in enumerate(test_conditionals)
        )
        metrics["heldout_ll"] = float(log_likelihood.mean())
        metrics["heldout_ll_smoothed"] = float(smoothed.mean())

    # Divergences from the truth, and agreement with the count MLE.
    kl, kl_smoothed, tv, max_diff, mean_diff = [], [], [], [], []
    if estimator.conditions_on == "parents":
        for j in range(structure.num_variables):
            shape = (num_episodes, *structure.table_shape(j))
            table = check_probabilities(name, f"table of {structure.variables[j]!r}", estimator.conditional_table(j), shape, allow_nan)
            true_table, marginal = episodes.cpts[j], truth.family_marginals[j]
            kl.append(fidelity.table_kl(true_table, table, marginal))
            kl_smoothed.append(fidelity.table_kl(true_table, fidelity.smooth(table), marginal))
            tv.append(fidelity.table_tv(true_table, table, marginal))
            largest, average = fidelity.agreement(table, reference.cpts[j])
            max_diff.append(largest)
            mean_diff.append(average)
        metrics["divergence_exact"] = truth.exact
    elif num_test:
        for j, q in enumerate(test_conditionals):
            p = gather_conditionals(structure, episodes.cpts, episodes.test, j)
            kl.append(fidelity.row_kl(p, q))
            kl_smoothed.append(fidelity.row_kl(p, fidelity.smooth(q)))
            tv.append(fidelity.row_tv(p, q))
            largest, average = fidelity.agreement(q, gather_conditionals(structure, reference.cpts, episodes.test, j))
            max_diff.append(largest)
            mean_diff.append(average)
        metrics["divergence_exact"] = False

    if kl:
        kl_matrix = np.stack(kl, axis=1)  # (B, M)
        metrics["kl"] = float(kl_matrix.sum(axis=1).mean())
        metrics["kl_smoothed"] = float(np.stack(kl_smoothed, axis=1).sum(axis=1).mean())
        metrics["infinite_kl_fraction"] = float(np.isinf(kl_matrix.sum(axis=1)).mean())
        metrics["kl_by_variable"] = dict(zip(structure.variables, kl_matrix.mean(axis=0).tolist()))
        tv_matrix = np.stack(tv, axis=1)
        metrics["tv"] = float(tv_matrix.mean())
        metrics["tv_by_variable"] = dict(zip(structure.variables, tv_matrix.mean(axis=0).tolist()))
        metrics["mle_max_abs_diff"] = float(np.max(np.stack(max_diff)))
        metrics["mle_mean_abs_diff"] = float(np.mean(np.stack(mean_diff)))
    return metrics


def _context_coverage(episodes: EpisodeBatch, truth: Truth, reference: Reference) -> dict[str, float]:
    """Measure how much of the true network the context leaves unidentified (the same for every estimator)."""
    unseen_mass, unseen_rows, reachable_rows = [], 0, 0
    for j, counts in enumerate(reference.counts):
        parent_weight = np.broadcast_to(truth.parent_marginal(j), counts.shape[:-1])
        unseen = counts.sum(axis=-1) == 0
        unseen_mass.append((parent_weight * unseen).reshape(counts.shape[0], -1).sum(axis=1))
        reachable = parent_weight > 0
        unseen_rows += int((unseen & reachable).sum())
        reachable_rows += int(reachable.sum())
    return {
        "unseen_parent_mass": float(np.mean(unseen_mass)),
        "unidentified_fraction": unseen_rows / reachable_rows if reachable_rows else 0.0,
    }


def _peak_memory(estimator: Estimator, episodes: EpisodeBatch, settings: EvaluationSettings, seed: int) -> int:
    context = episodes.context_for(estimator.reads_true_tables)

    def work() -> None:
        estimator.fit(context)
        if estimator.provides_probabilities:
            estimator.all_conditionals(episodes.test)
        if settings.num_generated_rows > 0:
            estimator.generate(settings.num_generated_rows, np.random.default_rng(seed))

    return peak_memory(work)
