"""Fit, one conditional and generation of each estimator, timed separately, with fidelity in extra_info.

Cases are networks x estimators x context sizes, with ids such as ``mle-asia-n1000``.
Choose other cases with ``--bnbench-estimators``, ``--bnbench-networks`` and
``--bnbench-sizes`` (values separated by ``;``), for example a plug-in:
``pytest benchmarks/test_estimators.py --bnbench-estimators 'mle;knn'``.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from bnbench.episodes import derive_seed
from bnbench.estimators.registry import get_estimator_class, make_estimator, split_spec

ESTIMATORS = ("mle", "mle:alpha=1", "oracle")
NETWORKS = ("asia", "alarm")
SIZES = (100, 1000, 10_000)
SEED = 0


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if not {"estimator", "network", "n"} <= set(metafunc.fixturenames):
        return
    config = metafunc.config
    estimators = _option(config, "--bnbench-estimators", ESTIMATORS)
    networks = _option(config, "--bnbench-networks", NETWORKS)
    sizes = [int(size) for size in _option(config, "--bnbench-sizes", SIZES)]
    cases = [
        pytest.param(estimator, network, n, id=f"{short_id(estimator)}-{short_id(network)}-n{n}")
        for network in networks
        for n in sizes
        for estimator in estimators
    ]
    metafunc.parametrize(("estimator", "network", "n"), cases)


def short_id(spec: str) -> str:
    """A test-id-safe name: ``mle:alpha=1`` -> ``mle_alpha1``; dashes would split the id's fields."""
    return re.sub(r"[^A-Za-z0-9.]+", "_", spec.replace("=", "")).strip("_")


def _option(config: pytest.Config, name: str, default: tuple) -> list:
    value = config.getoption(name)
    return list(default) if value is None else [v.strip() for v in value.split(";") if v.strip()]


@pytest.fixture
def case(estimator, network, n, episodes, fidelity, describe):
    """The episodes of the case, with its description and fidelity stored in extra_info."""
    batch = episodes(network, n, SEED)
    reason = get_estimator_class(split_spec(estimator)[0]).unavailable_reason(batch.structure)
    if reason is not None:
        pytest.skip(reason)
    describe(
        network=network, context_size=n, estimator=estimator, tables="fixed", seed=SEED,
        num_episodes=batch.num_episodes, free_parameters=batch.structure.num_free_parameters,
    )
    describe(**fidelity(estimator, network, n, SEED))
    return batch


@pytest.fixture
def fitted(estimator, case, sync):
    model = make_estimator(estimator)
    model.fit(case.context_for(model.reads_true_tables))
    sync(model)
    return model


def test_fit(benchmark, timed, describe, sync, estimator, case):
    describe(operation="fit")

    def setup():
        model = make_estimator(estimator)
        return model, case.context_for(model.reads_true_tables)

    def fit(model, context):
        model.fit(context)
        sync(model)

    timed(fit, setup)


def test_conditional(benchmark, timed, describe, sync, fitted, case, costliest_variable):
    if not fitted.provides_probabilities:
        pytest.skip(f"estimator {fitted.name!r} generates rows only; it has no conditionals")
    target = costliest_variable(case)
    queries = case.test  # (B, T, M)
    describe(operation="conditional", target=case.structure.variables[target], queries=queries.shape[0] * queries.shape[1])

    def conditional():
        probabilities = fitted.conditionals(queries, target)  # (B, T, card)
        sync(fitted)
        return probabilities

    probabilities = timed(conditional)
    assert probabilities.shape == (*queries.shape[:2], case.structure.cardinalities[target])


def test_generate(benchmark, timed, describe, sync, fitted, case, n):
    num_rows = 1000
    describe(operation="generate", rows=case.num_episodes * num_rows)
    seed = derive_seed(SEED, n, "benchmark-generate")

    def generate(rng):
        rows = fitted.generate(num_rows, rng)  # (B, R, M)
        sync(fitted)
        return rows

    rows = timed(generate, lambda: (np.random.default_rng(seed),))
    assert rows.shape == (case.num_episodes, num_rows, case.structure.num_variables)
