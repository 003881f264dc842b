"""Settings of a training run, kept free of torch so that the CLI starts fast."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from bnbench.priors import parse_prior

OBJECTIVES = ("cross-entropy", "expected-cross-entropy", "l1-mle")
SCHEDULES = ("cosine", "linear", "constant")


@dataclass(frozen=True)
class TrainingConfig:
    """Settings of one training run; every field is stored in the checkpoint.

    Attributes:
        prior: Table-prior spec for training and evaluation episodes (``dirichlet:1``).
        steps: Optimizer steps.
        batch_size: Episodes per step when the context is small.
        max_tokens: Cap on tokens (episodes x (N + Q)) per step; large contexts get fewer episodes.
        num_queries: Query rows per episode.
        min_context, max_context: Range of the log-uniform context size N.
        objective: One of `OBJECTIVES`; see the module docstring.
        learning_rate: Peak learning rate of AdamW.
        final_learning_rate_ratio: Learning rate at the last step, as a fraction of the peak.
        warmup_steps: Steps of linear warm-up from 0 to the peak.
        schedule: Decay after warm-up: ``cosine``, ``linear`` or ``constant``.
        weight_decay: AdamW weight decay.
        gradient_clip: Maximum global gradient norm (0 disables clipping).
        ema_decay: Keep an exponential moving average of the weights with this decay, and
            evaluate and return the averaged weights (0 disables). The decay ramps up as
            min(ema_decay, (1 + t) / (10 + t)) so early weights fade quickly.
        context_weight_power: Multiply each step's loss by (N / max_context) ** power. The
            best prediction for each context is unchanged, but steps with large contexts,
            whose gradients are small because every estimate there is close, get more weight.
        eval_every: Steps between evaluations against the MLE (0: only at the end).
        eval_context_sizes: Context sizes of the evaluation episodes.
        eval_episodes: Held-out episodes per evaluation context size.
        eval_test_rows: Test rows per evaluation episode.
        seed: Seeds the weights, the training episodes and the held-out evaluation episodes.
        device: ``cpu`` or ``cuda``.
    """

    prior: str = "dirichlet:1"
    steps: int = 8000
    batch_size: int = 64
    max_tokens: int = 16384
    num_queries: int = 32
    min_context: int = 1
    max_context: int = 1000
    objective: str = "cross-entropy"
    learning_rate: float = 3e-3
    final_learning_rate_ratio: float = 0.02
    warmup_steps: int = 200
    schedule: str = "cosine"
    weight_decay: float = 0.0
    gradient_clip: float = 1.0
    ema_decay: float = 0.995
    context_weight_power: float = 0.5
    eval_every: int = 2000
    eval_context_sizes: tuple[int, ...] = (10, 50, 100, 300, 1000)
    eval_episodes: int = 64
    eval_test_rows: int = 200
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {self.objective!r}; valid objectives: {list(OBJECTIVES)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown learning-rate schedule {self.schedule!r}; valid schedules: {list(SCHEDULES)}")
        for name in ("steps", "batch_size", "max_tokens", "num_queries", "eval_episodes", "eval_test_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1; got {getattr(self, name)}")
        for name in ("warmup_steps", "eval_every", "seed"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 or more; got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive; got {self.learning_rate}")
        if not 0 <= self.context_weight_power <= 4:
            raise ValueError(f"context_weight_power must be in [0, 4]; got {self.context_weight_power}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1); got {self.ema_decay}")
        if not 0 <= self.final_learning_rate_ratio <= 1:
            raise ValueError(f"final_learning_rate_ratio must be in [0, 1]; got {self.final_learning_rate_ratio}")
        if any(size < 1 for size in self.eval_context_sizes):
            raise ValueError(f"evaluation context sizes must be 1 or more; got {list(self.eval_context_sizes)}")
        if not 1 <= self.min_context <= self.max_context:
            raise ValueError(
                f"context size range {self.min_context}..{self.max_context} is invalid; use 1 <= minimum <= maximum"
            )
        parse_prior(self.prior)

    def to_dict(self) -> dict[str, Any]:
        settings = asdict(self)
        settings["eval_context_sizes"] = list(self.eval_context_sizes)
        return settings

    @classmethod
    def from_dict(cls, settings: dict[str, Any]) -> TrainingConfig:
        values = dict(settings)
        values["eval_context_sizes"] = tuple(values.get("eval_context_sizes", ()))
        return cls(**values)
