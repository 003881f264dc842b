"""``bnbench train``: train a transformer on one graph with fresh tables per episode and save a checkpoint."""

from __future__ import annotations

import argparse
import logging
import re
import shlex
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bnbench.networks import load_network
from bnbench.networks.synthetic import FAMILIES
from bnbench.training.config import OBJECTIVES, SCHEDULES, TrainingConfig
from bnbench.transformers.config import ModelConfig

if TYPE_CHECKING:
    from bnbench.transformers.trained import RowTransformer

logger = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    training, model = TrainingConfig(), ModelConfig(cardinalities=(2,))
    parser = subparsers.add_parser(
        "train",
        help="train a transformer for one network and save a checkpoint",
        description=(
            "Train a transformer on episodes of one graph: fresh tables per episode from --prior, a "
            "log-uniform context size, a uniform target variable. Evaluates against the count MLE on "
            "held-out tables every --eval-every steps and saves the checkpoint there and at the end."
        ),
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--network", "-n", metavar="NAME", help="bundled network name or .bif path (its graph only)")
    source.add_argument("--family", metavar="SPEC", help=f"synthetic family spec, e.g. 'general' or 'chain:n=5,card=3' (families: {', '.join(FAMILIES)})")
    parser.add_argument("--output", "-o", type=Path, help="checkpoint path (default: trained-NETWORK-seedSEED.pt)")

    episodes = parser.add_argument_group("episodes")
    episodes.add_argument("--prior", default=training.prior, help="table prior of training and evaluation episodes (default: %(default)s)")
    episodes.add_argument("--context-range", type=int, nargs=2, default=[training.min_context, training.max_context],
                          metavar=("MIN", "MAX"), help="range of the log-uniform context size N (default: %(default)s)")
    episodes.add_argument("--queries", type=int, default=training.num_queries, help="query rows per episode (default: %(default)s)")
    episodes.add_argument("--batch-size", type=int, default=training.batch_size,
                          help="episodes per step for small contexts (default: %(default)s)")
    episodes.add_argument("--max-tokens", type=int, default=training.max_tokens,
                          help="cap on episodes x (N + queries) per step; larger contexts get fewer episodes (default: %(default)s)")

    optimization = parser.add_argument_group("optimization")
    optimization.add_argument("--steps", type=int, default=training.steps, help="optimizer steps (default: %(default)s)")
    optimization.add_argument("--objective", choices=OBJECTIVES, default=training.objective,
                              help="training loss; see docs/trained-transformer.md (default: %(default)s)")
    optimization.add_argument("--lr", type=float, default=training.learning_rate, help="peak AdamW learning rate (default: %(default)s)")
    optimization.add_argument("--final-lr-ratio", type=float, default=training.final_learning_rate_ratio,
                              help="learning rate at the last step as a fraction of the peak (default: %(default)s)")
    optimization.add_argument("--warmup-steps", type=int, default=training.warmup_steps, help="linear warm-up steps (default: %(default)s)")
    optimization.add_argument("--schedule", choices=SCHEDULES, default=training.schedule, help="decay after warm-up (default: %(default)s)")
    optimization.add_argument("--weight-decay", type=float, default=training.weight_decay, help="AdamW weight decay (default: %(default)s)")
    optimization.add_argument("--gradient-clip", type=float, default=training.gradient_clip,
                              help="maximum gradient norm, 0 to disable (default: %(default)s)")
    optimization.add_argument("--ema", type=float, default=training.ema_decay,
                              help="decay of the moving average of the weights that is evaluated and saved, 0 to disable "
                                   "(default: %(default)s)")
    optimization.add_argument("--context-weight-power", type=float, default=training.context_weight_power,
                              help="multiply each step's loss by (N / MAX) ** POWER to weight large contexts more "
                                   "(default: %(default)s)")
    optimization.add_argument("--seed", type=int, default=training.seed, help="seed of weights and episodes (default: %(default)s)")

    architecture = parser.add_argument_group("model")
    architecture.add_argument("--d-model", type=int, default=model.d_model, help="residual width (default: %(default)s)")
    architecture.add_argument("--layers", type=int, default=model.num_layers, help="transformer blocks (default: %(default)s)")
    architecture.add_argument("--heads", type=int, default=model.num_heads, help="attention heads (default: %(default)s)")
    architecture.add_argument("--mlp-width", type=int, default=model.mlp_width, help="hidden width of each MLP (default: %(default)s)")

    evaluation = parser.add_argument_group("evaluation")
    evaluation.add_argument("--eval-every", type=int, default=training.eval_every,
                            help="steps between held-out evaluations and checkpoint saves, 0 for only at the end (default: %(default)s)")
    evaluation.add_argument("--eval-sizes", type=int, nargs="+", default=list(training.eval_context_sizes), metavar="N",
                            help="context sizes of the held-out evaluation (default: %(default)s)")
    evaluation.add_argument("--eval-episodes", type=int, default=training.eval_episodes,
                            help="held-out episodes per evaluation context size (default: %(default)s)")
    evaluation.add_argument("--eval-test-rows", type=int, default=training.eval_test_rows,
                            help="test rows per held-out episode (default: %(default)s)")

    machine = parser.add_argument_group("machine")
    machine.add_argument("--device", default=training.device, help="cpu, cuda, cuda:N or auto (default: %(default)s)")
    machine.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    machine.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(execute=execute)


def execute(args: argparse.Namespace) -> int:
    # torch loads here, not at parser build, so that other subcommands start fast.
    import torch

    from bnbench.training.checkpoint import save_checkpoint
    from bnbench.training.evaluation import format_evaluation
    from bnbench.training.loop import train

    spec = args.network if args.network is not None else args.family
    if args.family is not None and args.family.partition(":")[0] not in FAMILIES:
        raise ValueError(f"unknown synthetic family in {args.family!r}; valid families: {list(FAMILIES)}")
    structure = load_network(spec).structure
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be at least 1; got {args.threads}")
        torch.set_num_threads(args.threads)

    model_config = ModelConfig(
        cardinalities=structure.cardinalities,
        d_model=args.d_model,
        num_layers=args.layers,
        num_heads=args.heads,
        mlp_width=args.mlp_width,
    )
    config = TrainingConfig(
        prior=args.prior,
        steps=args.steps,
        batch_size=args.batch_size,
        max_tokens=args.max_tokens,
        num_queries=args.queries,
        min_context=args.context_range[0],
        max_context=args.context_range[1],
        objective=args.objective,
        learning_rate=args.lr,
        final_learning_rate_ratio=args.final_lr_ratio,
        warmup_steps=args.warmup_steps,
        schedule=args.schedule,
        weight_decay=args.weight_decay,
        gradient_clip=args.gradient_clip,
        ema_decay=args.ema,
        context_weight_power=args.context_weight_power,
        eval_every=args.eval_every,
        eval_context_sizes=tuple(args.eval_sizes),
        eval_episodes=args.eval_episodes,
        eval_test_rows=args.eval_test_rows,
        seed=args.seed,
        device=args.device,
    )
    output = args.output or Path(f"trained-{_file_stem(structure.name)}-seed{args.seed}.pt")
    command = rebuild_command(args.network, args.family, model_config, config, args.threads, output)
    training_settings: dict[str, Any] = {**config.to_dict(), "threads": torch.get_num_threads()}
    print(f"training for {structure.name!r}; rebuild command:\n  {command}")

    started = time.perf_counter()

    def save_partial(step: int, results: list[dict[str, Any]], model: RowTransformer) -> None:
        # Lets a long run be inspected (or used) before it ends; the final save replaces it.
        save_checkpoint(
            output, model, structure, training_settings, steps=step, wall_seconds=time.perf_counter() - started,
            final_loss=float("nan"), final_metrics=results, command=command,
        )

    result = train(structure, model_config, config, progress=not args.no_progress, on_evaluation=save_partial)
    save_checkpoint(
        output,
        result.model,
        structure,
        training_settings,
        steps=result.steps,
        wall_seconds=result.wall_seconds,
        final_loss=result.final_loss,
        final_metrics=result.final_metrics,
        command=command,
    )
    print(format_evaluation(result.final_metrics))
    print(f"trained {result.steps} steps in {result.wall_seconds:.0f} s; checkpoint written to {output}")
    return 0


def rebuild_command(
    network: str | None,
    family: str | None,
    model: ModelConfig,
    config: TrainingConfig,
    threads: int | None,
    output: Path,
) -> str:
    """Spell out the ``bnbench train`` command with every setting, so later changes of the defaults do not alter it."""
    words = ["bnbench", "train"]
    words += ["--network", network] if network is not None else ["--family", str(family)]
    words += [
        "--prior", config.prior,
        "--context-range", str(config.min_context), str(config.max_context),
        "--queries", str(config.num_queries),
        "--batch-size", str(config.batch_size),
        "--max-tokens", str(config.max_tokens),
        "--steps", str(config.steps),
        "--objective", config.objective,
        "--lr", repr(config.learning_rate),
        "--final-lr-ratio", repr(config.final_learning_rate_ratio),
        "--warmup-steps", str(config.warmup_steps),
        "--schedule", config.schedule,
        "--weight-decay", repr(config.weight_decay),
        "--gradient-clip", repr(config.gradient_clip),
        "--ema", repr(config.ema_decay),
        "--context-weight-power", repr(config.context_weight_power),
        "--seed", str(config.seed),
        "--d-model", str(model.d_model),
        "--layers", str(model.num_layers),
        "--heads", str(model.num_heads),
        "--mlp-width", str(model.mlp_width),
        "--eval-every", str(config.eval_every),
        "--eval-sizes", *(str(n) for n in config.eval_context_sizes),
        "--eval-episodes", str(config.eval_episodes),
        "--eval-test-rows", str(config.eval_test_rows),
        "--device", config.device,
    ]
    if threads is not None:
        words += ["--threads", str(threads)]
    words += ["--output", str(output)]
    return shlex.join(words)


def _file_stem(name: str) -> str:
    """Replace characters unsafe in file names (``general:card=2`` -> ``general-card-2``)."""
    return re.sub(r"[^A-Za-z0-9_.]+", "-", name).strip("-")
