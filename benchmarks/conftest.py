"""Shared fixtures of bnbench's pytest-benchmark suite.

Benchmarks take only short JSON-safe parameters (network name, estimator spec, context
size). The arrays come from session-cached fixtures keyed by those values, so the
saved JSON stays small. Every benchmark records its case in ``extra_info`` with the
keys `bnbench.report.benchmark_json` reads: ``schema``, ``network``,
``context_size``, ``estimator``, ``tables``, ``seed``, ``operation`` and the work of
one call (``queries`` or ``rows``).

``pytest benchmarks/ --benchmark-disable`` runs every case once (the CI smoke test);
``pytest benchmarks/ --benchmark-json=FILE`` times them and ``bnbench report FILE``
renders the tables.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from bnbench.episodes import EpisodeBatch, derive_seed, sample_episodes
from bnbench.estimators.base import Estimator
from bnbench.estimators.mle import estimate_tables
from bnbench.estimators.registry import make_estimator
from bnbench.harness.evaluate import EvaluationSettings, Reference, evaluate
from bnbench.harness.records import SCHEMA_VERSION, encode
from bnbench.metrics.truth import Truth, compute_truth
from bnbench.network import BayesianNetwork
from bnbench.networks import load_network

#: Episodes per case, held-out rows per episode (scored and used as conditional queries),
#: and rows generated per episode.
NUM_EPISODES = 8
NUM_TEST_ROWS = 500
NUM_GENERATED_ROWS = 1000
#: Scalar metrics of `bnbench.harness.evaluate.evaluate` copied into extra_info.
FIDELITY_KEYS = (
    "kl", "kl_smoothed", "infinite_kl_fraction", "tv", "heldout_ll", "heldout_ll_smoothed",
    "mle_max_abs_diff", "mle_mean_abs_diff", "generated_family_tv", "generated_joint_tv",
    "unseen_parent_mass", "exact",
)
#: Most timed rounds per benchmark; the least and the time budget come from pytest-benchmark's
#: --benchmark-min-rounds and --benchmark-max-time.
MAX_ROUNDS = 100


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("bnbench", "bnbench benchmark cases")
    group.addoption("--bnbench-estimators", default=None, metavar="SPECS",
                    help="estimator specs to benchmark, separated by ';' (default: mle;mle:alpha=1;oracle)")
    group.addoption("--bnbench-networks", default=None, metavar="NAMES",
                    help="networks to benchmark, separated by ';' (default: asia;alarm)")
    group.addoption("--bnbench-sizes", default=None, metavar="SIZES",
                    help="context sizes N, separated by ';' (default: 100;1000;10000)")


@pytest.fixture(scope="session")
def bayesian_network() -> Callable[[str], BayesianNetwork]:
    """``bayesian_network(name)``: a loaded network, cached for the session."""
    cache: dict[str, BayesianNetwork] = {}

    def load(name: str) -> BayesianNetwork:
        if name not in cache:
            cache[name] = load_network(name)
        return cache[name]

    return load


@pytest.fixture(scope="session")
def episodes(bayesian_network) -> Callable[..., EpisodeBatch]:
    """``episodes(network, n, seed=0)``: fixed-table episodes, cached for the session.

    The episode seed is derived as the harness derives it for a cell with the same
    network and seed, so the true tables and test rows match ``bnbench run`` with
    ``--episodes 8 --test-rows 500``.
    """
    cache: dict[tuple[str, int, int], EpisodeBatch] = {}

    def draw(name: str, n: int, seed: int = 0) -> EpisodeBatch:
        key = (name, n, seed)
        if key not in cache:
            cache[key] = sample_episodes(
                bayesian_network(name),
                num_episodes=NUM_EPISODES,
                context_size=n,
                num_test_rows=NUM_TEST_ROWS,
                seed=derive_seed(seed, name, "fixed"),
            )
        return cache[key]

    return draw


@pytest.fixture(scope="session")
def references(episodes) -> Callable[..., tuple[Truth, Reference]]:
    """``references(network, n, seed=0)``: the truth and the count-MLE reference of those episodes."""
    cache: dict[tuple[str, int, int], tuple[Truth, Reference]] = {}

    def compute(name: str, n: int, seed: int = 0) -> tuple[Truth, Reference]:
        key = (name, n, seed)
        if key not in cache:
            batch = episodes(name, n, seed)
            truth = compute_truth(batch, seed=derive_seed(seed, name, "truth"))
            cache[key] = (truth, Reference(*estimate_tables(batch.structure, batch.context)))
        return cache[key]

    return compute


@pytest.fixture(scope="session")
def fidelity(episodes, references) -> Callable[..., dict[str, Any]]:
    """``fidelity(spec, network, n, seed=0)``: the harness's metrics of one case, JSON-safe, cached.

    Computed by `bnbench.harness.evaluate.evaluate` on a separate fit, never inside a timed call.
    """
    cache: dict[tuple[str, str, int, int], dict[str, Any]] = {}

    def measure(spec: str, name: str, n: int, seed: int = 0) -> dict[str, Any]:
        key = (spec, name, n, seed)
        if key not in cache:
            batch = episodes(name, n, seed)
            truth, reference = references(name, n, seed)
            settings = EvaluationSettings(num_generated_rows=NUM_GENERATED_ROWS, measure_memory=False)
            metrics = evaluate(make_estimator(spec), batch, truth, reference, settings, derive_seed(seed, n, "generate"))
            cache[key] = encode({k: metrics[k] for k in FIDELITY_KEYS if k in metrics})
        return cache[key]

    return measure


@pytest.fixture
def describe(benchmark) -> Callable[..., None]:
    """``describe(**case)``: store the case in extra_info, with the schema version."""

    def store(**case: Any) -> None:
        benchmark.extra_info["schema"] = SCHEMA_VERSION
        benchmark.extra_info.update(encode(case))

    return store


@pytest.fixture
def timed(benchmark, request) -> Callable[..., Any]:
    """``timed(function, setup=None)``: time ``function(*setup())`` with `benchmark.pedantic`; return its result.

    ``setup`` returns the positional arguments of one call and runs outside the clock.
    The number of rounds comes from one untimed calibration call (which also warms
    caches up): enough calls to fill ``--benchmark-max-time`` seconds, at least
    ``--benchmark-min-rounds`` and at most `MAX_ROUNDS`. With ``--benchmark-disable``
    the function runs once.
    """
    budget = float(request.config.getoption("benchmark_max_time"))
    min_rounds = int(request.config.getoption("benchmark_min_rounds"))

    def run(function: Callable[..., Any], setup: Callable[[], tuple] | None = None) -> Any:
        def arguments() -> tuple[tuple, dict]:
            return (setup() if setup is not None else ()), {}

        if benchmark.disabled:
            return benchmark.pedantic(function, setup=arguments, rounds=1)

        args, _ = arguments()
        start = time.perf_counter()
        function(*args)
        elapsed = time.perf_counter() - start
        rounds = int(min(MAX_ROUNDS, max(min_rounds, budget / max(elapsed, 1e-9))))
        return benchmark.pedantic(function, setup=arguments, rounds=rounds)

    return run


def synchronize(estimator: Estimator) -> None:
    """Wait for an estimator's queued device work, if it has any (``synchronize()`` is optional)."""
    wait = getattr(estimator, "synchronize", None)
    if callable(wait):
        wait()


@pytest.fixture(scope="session")
def sync() -> Callable[[Estimator], None]:
    """`synchronize` as a fixture, for benchmark modules (conftest is not importable as a module)."""
    return synchronize


def largest_family(batch: EpisodeBatch) -> int:
    """The variable with the most parent configurations (the first of ties): the costliest conditional."""
    structure = batch.structure
    return max(range(structure.num_variables), key=lambda j: (structure.num_parent_configurations(j), -j))


@pytest.fixture(scope="session")
def costliest_variable() -> Callable[[EpisodeBatch], int]:
    return largest_family
