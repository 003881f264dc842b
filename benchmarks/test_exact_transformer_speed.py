"""Speed of the exact transformer beside the count MLE on the same episodes.

Cases (one episode each, ids such as ``exact-transformer-alarm-n1000``):

* ``test_fit_and_conditionals``: fit, then the conditional of every variable for one
  query row, at N = 100, 1,000 and 10,000. ``exact-transformer`` computes the M
  conditionals in one batched pass (`ExactTransformer.all_conditionals`);
  ``exact-transformer-per-variable`` calls ``conditionals`` once per variable, as
  ``mle`` does. The transformer's weights depend only on the network, so they are
  built in setup (``test_build`` times that step).
* ``test_generate``: 1,000 rows from a fitted estimator, at N = 100 and 1,000.
* ``test_build``: constructing the model's weights for a network.

Torch runs on one thread, as numpy's count MLE does. Agreement with ``mle``
(``mle_max_abs_diff``) is stored in ``extra_info``, computed outside the timed calls.
Run ``pytest benchmarks/test_exact_transformer_speed.py --benchmark-json=FILE``. With
``--benchmark-disable`` every case runs once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
import pytest
import torch

from bnbench.episodes import EpisodeBatch, derive_seed, sample_episodes
from bnbench.estimators.base import Estimator
from bnbench.estimators.exact_transformer import ExactTransformer
from bnbench.estimators.mle import CountMLE
from bnbench.harness.records import SCHEMA_VERSION
from bnbench.networks import load_network
from bnbench.transformers.exact import ExactTransformerModel

NETWORKS = ("asia", "alarm")
SEED = 0
#: Rows generated per call in `test_generate`.
NUM_GENERATED_ROWS = 1000
#: Timed rounds: enough to fill this many seconds, within the bounds below.
ROUND_BUDGET_S = 1.0
MIN_ROUNDS, MAX_ROUNDS = 3, 200

#: Estimator ids of the fit-and-conditionals cases, and how each computes the M conditionals.
IMPLEMENTATIONS = {
    "mle": "per-variable",
    "exact-transformer": "batched",
    "exact-transformer-per-variable": "per-variable",
}


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Give torch one thread, as numpy's count MLE uses one core.

    On a machine shared with other jobs, torch's second worker thread also waited for a
    core held by another process, which made small operations take tens of milliseconds.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@lru_cache(maxsize=None)
def _episodes(network: str, n: int) -> EpisodeBatch:
    """One episode of ``network`` with ``n`` context rows and one held-out query row."""
    return sample_episodes(
        load_network(network), num_episodes=1, context_size=n, num_test_rows=1, seed=derive_seed(SEED, network, n)
    )


def _make(estimator_id: str) -> Estimator:
    return CountMLE() if estimator_id == "mle" else ExactTransformer()


def _conditionals(estimator: Estimator, rows: np.ndarray, batched: bool) -> list[np.ndarray]:
    if batched:
        return estimator.all_conditionals(rows)
    return [estimator.conditionals(rows, j) for j in range(rows.shape[-1])]


def _synchronize(estimator: Estimator) -> None:
    wait = getattr(estimator, "synchronize", None)
    if callable(wait):
        wait()


def _run(benchmark, function: Callable[..., Any], setup: Callable[[], tuple]) -> Any:
    """Time ``function(*setup())`` with `benchmark.pedantic`, ``setup`` outside the clock; return the last result.

    One untimed call sets the number of rounds: enough to fill `ROUND_BUDGET_S`.
    """
    if benchmark.disabled:
        return benchmark.pedantic(function, setup=lambda: (setup(), {}), rounds=1)
    arguments = setup()
    start = time.perf_counter()
    function(*arguments)
    elapsed = time.perf_counter() - start
    rounds = int(min(MAX_ROUNDS, max(MIN_ROUNDS, ROUND_BUDGET_S / max(elapsed, 1e-9))))
    return benchmark.pedantic(function, setup=lambda: (setup(), {}), rounds=rounds)


def _describe(benchmark, **case: Any) -> None:
    benchmark.extra_info.update({"schema": SCHEMA_VERSION, "tables": "fixed", "seed": SEED, "num_episodes": 1, **case})


def _fit_cases() -> list:
    return [
        pytest.param(estimator_id, network, n, id=f"{estimator_id}-{network}-n{n}")
        for network in NETWORKS
        for n in (100, 1000, 10_000)
        for estimator_id in IMPLEMENTATIONS
    ]


@pytest.mark.parametrize(("estimator_id", "network", "n"), _fit_cases())
def test_fit_and_conditionals(benchmark, estimator_id, network, n):
    batch = _episodes(network, n)
    context, query = batch.context_for(), batch.test[:, :1]  # (1, 1, M)
    batched = IMPLEMENTATIONS[estimator_id] == "batched"
    _describe(
        benchmark, network=network, context_size=n, estimator=estimator_id.removesuffix("-per-variable"),
        operation="fit+conditionals", implementation=IMPLEMENTATIONS[estimator_id],
        queries=batch.structure.num_variables,
    )

    def setup() -> tuple:
        estimator = _make(estimator_id)
        estimator.fit(context)  # builds the transformer's weights for this network (see test_build)
        _synchronize(estimator)
        return (estimator,)

    def fit_and_conditionals(estimator: Estimator) -> list[np.ndarray]:
        estimator.fit(context)
        probabilities = _conditionals(estimator, query, batched)
        _synchronize(estimator)
        return probabilities

    probabilities = _run(benchmark, fit_and_conditionals, setup)
    reference = _conditionals(CountMLE().fit(context), query, batched=False)
    difference = max(float(np.abs(p - q).max()) for p, q in zip(probabilities, reference))
    benchmark.extra_info["mle_max_abs_diff"] = difference
    assert difference <= 1e-6


@pytest.mark.parametrize(
    ("estimator_id", "network", "n"),
    [
        pytest.param(estimator_id, network, n, id=f"{estimator_id}-{network}-n{n}")
        for network in NETWORKS
        for n in (100, 1000)
        for estimator_id in ("mle", "exact-transformer")
    ],
)
def test_generate(benchmark, estimator_id, network, n):
    batch = _episodes(network, n)
    estimator = _make(estimator_id).fit(batch.context_for())
    _describe(benchmark, network=network, context_size=n, estimator=estimator_id, operation="generate")
    benchmark.extra_info["rows"] = NUM_GENERATED_ROWS

    def generate(rng: np.random.Generator) -> np.ndarray:
        rows = estimator.generate(NUM_GENERATED_ROWS, rng)  # (1, R, M)
        _synchronize(estimator)
        return rows

    rows = _run(benchmark, generate, lambda: (np.random.default_rng(derive_seed(SEED, n, "benchmark-generate")),))
    assert rows.shape == (1, NUM_GENERATED_ROWS, batch.structure.num_variables)


@pytest.mark.parametrize("network", NETWORKS, ids=lambda network: f"exact-transformer-{network}")
def test_build(benchmark, network):
    structure = load_network(network).structure
    _describe(benchmark, network=network, estimator="exact-transformer", operation="build")
    model = _run(benchmark, lambda: ExactTransformerModel(structure), lambda: ())
    assert model.structure is structure
