"""The training loop: AdamW, warm-up then cosine (or linear, or constant) learning rate, periodic evaluation.

Objectives (``TrainingConfig.objective``):

* ``cross-entropy`` (default): -log q(x) of each query's sampled target value x. Its
  minimizer is the posterior predictive under the table prior, which tends to the count
  MLE as the context grows. Matching the MLE is learned, not imposed.
* ``expected-cross-entropy``: -sum_k p(k | parents) log q(k) with the true conditional p.
  It has the same expectation and minimizer as ``cross-entropy`` but lower variance,
  because it averages over the target value instead of sampling it.
* ``l1-mle``: sum_k |q(k) - MLE(k)| against the in-context count MLE of the query's
  parent configuration. The MLE is the training target, so the model learns to copy it,
  including its uniform row for parent configurations absent from the context.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from bnbench.episodes import derive_seed
from bnbench.priors import parse_prior
from bnbench.structure import Structure
from bnbench.training.config import OBJECTIVES, TrainingConfig
from bnbench.training.data import EpisodeSampler, TrainingBatch
from bnbench.training.evaluation import evaluate_against_mle, format_evaluation
from bnbench.transformers.trained import ModelConfig, RowTransformer, build_model

logger = logging.getLogger(__name__)

@dataclass
class TrainingResult:
    """A trained model and what happened during training."""

    model: RowTransformer
    steps: int
    wall_seconds: float
    final_loss: float
    history: list[dict[str, Any]] = field(default_factory=list)
    final_metrics: list[dict[str, Any]] = field(default_factory=list)


class WeightAverage:
    """An exponential moving average of a model's weights, kept in a separate copy of the model."""

    def __init__(self, model: RowTransformer, decay: float):
        self.decay = decay
        self.updates = 0
        self.model = copy.deepcopy(model)
        self.model.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: RowTransformer) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for averaged, current in zip(self.model.parameters(), model.parameters()):
            averaged.lerp_(current, 1.0 - decay)


def learning_rate_at(step: int, config: TrainingConfig) -> float:
    """Learning rate at ``step`` (0-based): linear warm-up, then the configured decay to the final ratio."""
    peak = config.learning_rate
    if step < config.warmup_steps:
        return peak * (step + 1) / config.warmup_steps
    if config.schedule == "constant":
        return peak
    decay_steps = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / decay_steps)
    floor = peak * config.final_learning_rate_ratio
    if config.schedule == "linear":
        return floor + (peak - floor) * (1.0 - progress)
    return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def compute_loss(logits: torch.Tensor, batch: TrainingBatch, objective: str) -> torch.Tensor:
    """Compute the training loss of ``logits`` ``(B, Q, P)`` (-inf outside the target block) for ``objective``."""
    if objective == "cross-entropy":
        return F.cross_entropy(logits.flatten(0, 1), batch.labels.flatten())
    log_q = torch.log_softmax(logits, dim=-1)  # (B, Q, P)
    if objective == "expected-cross-entropy":
        # Entries outside the block have p = 0 and log q = -inf; count them as 0.
        terms = torch.where(batch.true_probabilities > 0, batch.true_probabilities * log_q, torch.zeros_like(log_q))
        return -terms.sum(dim=-1).mean()
    if objective == "l1-mle":
        return (log_q.exp() - batch.mle_probabilities).abs().sum(dim=-1).mean()
    raise ValueError(f"unknown objective {objective!r}; valid objectives: {list(OBJECTIVES)}")


def resolve_device(device: str) -> torch.device:
    """``cpu``, ``cuda``, ``cuda:K`` or ``auto`` (CUDA when available) as a torch device; raises when CUDA is missing."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ValueError(f"invalid device {device!r}; use 'cpu', 'cuda', 'cuda:N' or 'auto'") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available; use device 'cpu'")
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device {device!r} is not supported; use 'cpu', 'cuda', 'cuda:N' or 'auto'")
    return resolved


def train(
    structure: Structure,
    model_config: ModelConfig,
    config: TrainingConfig,
    progress: bool = True,
    on_evaluation: Callable[[int, list[dict[str, Any]], RowTransformer], None] | None = None,
) -> TrainingResult:
    """Train a fresh model on episodes of ``structure`` and return it with its history.

    ``on_evaluation(step, results, model)`` runs after each evaluation, including the final
    one (the CLI saves a checkpoint there). The same seed gives the same weights on the same device, torch
    version and thread count.
    """
    if tuple(model_config.cardinalities) != structure.cardinalities:
        raise ValueError(
            f"model cardinalities {list(model_config.cardinalities)} do not match network "
            f"{structure.name!r} ({list(structure.cardinalities)})"
        )
    device = resolve_device(config.device)
    prior = parse_prior(config.prior)
    sampler = EpisodeSampler(structure, prior, config.min_context, config.max_context, config.num_queries)
    rng = np.random.default_rng(derive_seed(config.seed, "training episodes"))
    eval_seed = derive_seed(config.seed, "held-out evaluation")

    model = build_model(model_config, config.seed).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    average = WeightAverage(model, config.ema_decay) if config.ema_decay > 0 else None
    logger.info("training %d parameters on %s for %d steps (%s)", model.num_parameters(), device, config.steps, config.objective)

    def evaluate(step: int) -> list[dict[str, Any]]:
        evaluated = model if average is None else average.model
        results = evaluate_against_mle(
            evaluated,
            structure,
            prior,
            config.eval_context_sizes,
            num_episodes=config.eval_episodes,
            num_test_rows=config.eval_test_rows,
            seed=eval_seed,
            device=device,
        )
        logger.info("step %d, held-out evaluation:\n%s", step, format_evaluation(results))
        history.append({"step": step, "evaluation": results})
        if on_evaluation is not None:
            on_evaluation(step, results, evaluated)
        return results

    history: list[dict[str, Any]] = []
    smoothed_loss = math.nan
    started = time.perf_counter()
    model.train()
    with tqdm(total=config.steps, disable=not progress, unit="step", dynamic_ncols=True, desc=structure.name) as bar:
        for step in range(config.steps):
            for group in optimizer.param_groups:
                group["lr"] = learning_rate_at(step, config)

            # One context size per step; the token cap shrinks the batch at large N.
            context_size = sampler.sample_context_size(rng)
            num_episodes = max(1, min(config.batch_size, config.max_tokens // (context_size + config.num_queries)))
            batch = sampler.sample(num_episodes, context_size, rng, device)

            logits = model(batch.context_tokens, batch.query_tokens, batch.targets)  # (B, Q, P)
            loss = compute_loss(logits, batch, config.objective)
            if config.context_weight_power:
                loss = loss * (context_size / config.max_context) ** config.context_weight_power
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.gradient_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.gradient_clip)
            optimizer.step()
            if average is not None:
                average.update(model)

            value = loss.item()
            if not math.isfinite(value):
                raise FloatingPointError(
                    f"training loss became {value} at step {step}; lower --lr or raise --warmup-steps"
                )
            smoothed_loss = value if math.isnan(smoothed_loss) else 0.98 * smoothed_loss + 0.02 * value
            bar.set_postfix(loss=f"{smoothed_loss:.4f}", N=context_size, lr=f"{learning_rate_at(step, config):.2g}")
            bar.update(1)

            done = step + 1
            if config.eval_every and done % config.eval_every == 0 and done < config.steps:
                results = evaluate(done)
                if progress:
                    bar.write(f"step {done}: loss {smoothed_loss:.4f}\n{format_evaluation(results)}")

    final_metrics = evaluate(config.steps)
    wall_seconds = time.perf_counter() - started
    if progress:
        tqdm.write(f"final (step {config.steps}, {wall_seconds:.0f} s): loss {smoothed_loss:.4f}\n{format_evaluation(final_metrics)}")
    trained = model if average is None else average.model
    trained.eval()
    return TrainingResult(
        model=trained,
        steps=config.steps,
        wall_seconds=wall_seconds,
        final_loss=smoothed_loss,
        history=history,
        final_metrics=final_metrics,
    )
