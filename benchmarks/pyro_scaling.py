"""Time Pyro posterior inference (NUTS and SVI) against the number of free parameters.

Usage: ``python benchmarks/pyro_scaling.py [--networks asia sachs alarm water]
[--methods nuts svi] [--episodes 8] [--context 100] [--iterations 40] [--max-tree-depth 4]``

For each network, one batch of episodes with the network's own tables, then
`bnbench.inference.posterior.sample_posterior` with the pyro-posterior defaults for
each method, except ``--iterations`` NUTS warmup iterations and samples (also the SVI
guide draws) and the tree depth. Prints one
line per (network, method): the wall-clock fit time, the time per NUTS iteration or
SVI step, and the largest and mean absolute error of the
posterior mean against the closed form Dirichlet(alpha + counts). This is a plain
script, not a pytest-benchmark case, because one NUTS fit of a large network takes
minutes.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from bnbench.episodes import sample_episodes
from bnbench.estimators.mle import estimate_tables
from bnbench.inference.posterior import InferenceSettings, sample_posterior
from bnbench.networks import load_network


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", nargs="+", default=["asia", "sachs", "alarm", "water"])
    parser.add_argument("--methods", nargs="+", default=["nuts", "svi"], choices=["nuts", "svi"])
    parser.add_argument("--episodes", type=int, default=8, help="episodes per batch (default: %(default)s)")
    parser.add_argument("--context", type=int, default=100, help="context rows per episode (default: %(default)s)")
    parser.add_argument("--iterations", type=int, default=40, help="NUTS warmup iterations, and as many samples (default: %(default)s)")
    parser.add_argument("--max-tree-depth", type=int, default=4, help="NUTS tree depth limit (default: %(default)s)")
    arguments = parser.parse_args()
    print(f"# {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads available, "
          f"torch {torch.__version__}; B = {arguments.episodes}, N = {arguments.context}")
    print("| network | free parameters | method | iterations | fit (s) | per iteration (ms) | max abs error | mean abs error |")
    print("|---|---|---|---|---|---|---|---|")
    for name in arguments.networks:
        network = load_network(name)
        structure = network.structure
        episodes = sample_episodes(network, num_episodes=arguments.episodes, context_size=arguments.context, num_test_rows=0, seed=0)
        closed, _ = estimate_tables(structure, episodes.context, alpha=1.0)
        for method in arguments.methods:
            settings = InferenceSettings(
                method=method,
                num_samples=arguments.iterations,
                warmup_steps=arguments.iterations,
                max_tree_depth=arguments.max_tree_depth,
            )
            start = time.perf_counter()
            posterior = sample_posterior(structure, episodes.context, 1.0, settings, seed=0)
            seconds = time.perf_counter() - start
            iterations = settings.warmup_steps + settings.num_samples if method == "nuts" else settings.num_steps
            errors = np.concatenate([np.abs(m - c).ravel() for m, c in zip(posterior.mean_tables(), closed)])
            print(f"| {name} | {structure.num_free_parameters} | {method} | {iterations} | {seconds:.1f} | "
                  f"{seconds / iterations * 1e3:.0f} | {errors.max():.3f} | {errors.mean():.4f} |", flush=True)


if __name__ == "__main__":
    main()
