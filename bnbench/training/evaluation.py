"""Score a model beside the count MLE on held-out episodes, as the harness does for prefix estimators.

For every context size, one batch of episodes is drawn with `bnbench.episodes.sample_episodes`
(fresh tables from the prior, context rows and test rows). For each variable j and each
test row, the model's P(x_j | prefix) and the MLE's P(x_j | parents) are compared with the
true conditional. The scores are means over episodes, variables and test rows:

* ``model_tv``, ``mle_tv``: total variation to the true conditional,
* ``tv_ratio``: ``model_tv / mle_tv`` (below 1.1 means within 10% of the MLE),
* ``mle_mean_abs_diff``: mean over probabilities of |model - MLE|,
* ``model_nll``, ``mle_nll``: negative log-likelihood of the test rows in nats per row
  (the MLE's is infinite whenever it gives probability 0 to an observed value).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from bnbench.episodes import sample_episodes
from bnbench.estimators.mle import estimate_tables
from bnbench.priors import TablePrior
from bnbench.sampling import gather_conditionals
from bnbench.structure import Structure
from bnbench.transformers.trained import RowTransformer, predict_conditionals


def evaluate_against_mle(
    model: RowTransformer,
    structure: Structure,
    prior: TablePrior,
    context_sizes: Sequence[int],
    *,
    num_episodes: int,
    num_test_rows: int,
    seed: int,
    device: str | torch.device = "cpu",
) -> list[dict[str, Any]]:
    """Score the model and the MLE at each context size, one dict per size (see the module docstring). The same seed draws the same tables at every size."""
    was_training = model.training
    model.eval()
    results = []
    try:
        for context_size in context_sizes:
            episodes = sample_episodes(
                structure,
                num_episodes=num_episodes,
                context_size=context_size,
                num_test_rows=num_test_rows,
                seed=seed,
                prior=prior,
            )
            mle_tables, _ = estimate_tables(structure, episodes.context)
            context = torch.as_tensor(episodes.context, device=device)
            test = torch.as_tensor(episodes.test, device=device)

            model_tv, mle_tv, difference, model_nll, mle_nll = [], [], [], 0.0, 0.0
            for j in range(structure.num_variables):
                q = predict_conditionals(model, context, test, j).double().cpu().numpy()  # (B, T, card)
                p = gather_conditionals(structure, episodes.cpts, episodes.test, j)
                m = gather_conditionals(structure, mle_tables, episodes.test, j)
                model_tv.append(0.5 * np.abs(q - p).sum(axis=-1).mean())
                mle_tv.append(0.5 * np.abs(m - p).sum(axis=-1).mean())
                difference.append(np.abs(q - m).mean())
                observed = episodes.test[..., j][..., None]
                with np.errstate(divide="ignore"):
                    model_nll -= np.log(np.take_along_axis(q, observed, axis=-1)).mean()
                    mle_nll -= np.log(np.take_along_axis(m, observed, axis=-1)).mean()

            results.append(
                {
                    "context_size": int(context_size),
                    "model_tv": float(np.mean(model_tv)),
                    "mle_tv": float(np.mean(mle_tv)),
                    "tv_ratio": float(np.mean(model_tv) / np.mean(mle_tv)) if np.mean(mle_tv) > 0 else float("nan"),
                    "mle_mean_abs_diff": float(np.mean(difference)),
                    "model_nll": float(model_nll),
                    "mle_nll": float(mle_nll),
                }
            )
    finally:
        model.train(was_training)
    return results


def format_evaluation(results: Sequence[dict[str, Any]]) -> str:
    """Format one line per context size: TV of the model and the MLE, their ratio and |model - MLE|."""
    lines = []
    for r in results:
        lines.append(
            f"N={r['context_size']:<5d} TV model {r['model_tv']:.4f}  MLE {r['mle_tv']:.4f}  "
            f"ratio {r['tv_ratio']:.3f}  |model-MLE| {r['mle_mean_abs_diff']:.4f}"
        )
    return "\n".join(lines)
