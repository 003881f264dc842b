"""bnbench beside pgmpy on the same data: count-MLE fitting and forward sampling on alarm.

Each task is timed once per library on identical inputs:

* fit: bnbench's `CountMLE.fit` on integer rows versus pgmpy's ``DiscreteMLE.fit`` on
  the same rows as a labelled DataFrame (built outside the clock), with every
  declared state passed through ``state_names``;
* sample: bnbench's vectorized `ancestral_sample` versus pgmpy's
  ``BayesianModelSampling.forward_sample``, both from alarm's true tables.

Outside the clock, the fitted tables are compared (``max_abs_diff_vs_bnbench``) and
the sampled rows are scored (``sample_family_tv``). When both libraries of a
task were timed in the same run, both entries store ``pgmpy_over_bnbench`` (pgmpy
median / bnbench median). `bnbench report` computes the same ratio from the medians.
"""

from __future__ import annotations

import numpy as np
import pytest

from bnbench import exact
from bnbench.episodes import Context
from bnbench.estimators.mle import CountMLE
from bnbench.metrics import samples
from bnbench.sampling import ancestral_sample

NETWORK = "alarm"
SIZES = (10_000, 100_000)
LIBRARIES = ("bnbench", "pgmpy")
DATA_SEED = 0
SAMPLE_SEED = 1

CASES = [
    pytest.param(library, n, id=f"{library}-{NETWORK}-n{n}")
    for n in SIZES
    for library in LIBRARIES
]


@pytest.fixture(scope="module")
def alarm(bayesian_network):
    return bayesian_network(NETWORK)


@pytest.fixture(scope="module")
def pgmpy_model(alarm):
    from bnbench.networks.pgmpy_convert import to_pgmpy

    return to_pgmpy(alarm.structure, alarm.cpts)


@pytest.fixture(scope="module")
def data(alarm):
    """``data(n)``: n rows of alarm as integer codes ``(1, n, M)`` and as a pgmpy DataFrame, cached."""
    import pandas as pd

    cache = {}
    structure = alarm.structure
    labels = [np.asarray(states, dtype=object) for states in structure.state_names]

    def rows_and_frame(n: int):
        if n not in cache:
            rows = alarm.sample(n, np.random.default_rng(DATA_SEED))  # (n, M)
            frame = pd.DataFrame({v: labels[j][rows[:, j]] for j, v in enumerate(structure.variables)})
            cache[n] = (rows[None], frame)
        return cache[n]

    return rows_and_frame


@pytest.fixture(scope="module")
def family_marginals(alarm):
    """True P(parents, x_j) of alarm, exact, ``(1, *parent_cards, card)`` per variable."""
    return exact.family_marginals(alarm.structure, alarm.batched_cpts)


@pytest.fixture(scope="module")
def medians():
    """Median seconds and extra_info of each timed task, so the second library can store the ratio."""
    return {}


def describe_peer(describe, library: str, operation: str, n: int, free_parameters: int) -> None:
    describe(library=library, operation=operation, network=NETWORK, context_size=n,
             rows=n, tables="fixed", seed=DATA_SEED, free_parameters=free_parameters)


def store_ratio(benchmark, medians: dict, operation: str, library: str, n: int) -> None:
    """Keep this median; once both libraries of the task are timed, store pgmpy / bnbench in both."""
    if benchmark.stats is None:
        return
    task = medians.setdefault((operation, n), {})
    task[library] = (benchmark.stats.stats.median, benchmark.extra_info)
    if set(task) >= {"bnbench", "pgmpy"}:
        ratio = task["pgmpy"][0] / task["bnbench"][0]
        for _, extra_info in task.values():
            extra_info["pgmpy_over_bnbench"] = ratio


@pytest.mark.parametrize(("library", "n"), CASES)
def test_fit_peer(benchmark, timed, describe, medians, alarm, data, pgmpy_model, library, n):
    structure = alarm.structure
    rows, frame = data(n)
    describe_peer(describe, library, "fit", n, structure.num_free_parameters)
    bnbench_tables = CountMLE().fit(Context(structure, rows)).cpts_

    if library == "bnbench":
        context = Context(structure, rows)
        model = timed(lambda estimator: estimator.fit(context), lambda: (CountMLE(),))
        tables = [table[0] for table in model.cpts_]
    else:
        from pgmpy.parameter_estimator import DiscreteMLE

        from bnbench.networks.pgmpy_convert import table_from_pgmpy

        state_names = {v: list(states) for v, states in zip(structure.variables, structure.state_names)}

        def empty_model():
            model = pgmpy_model.copy()
            model.remove_cpds(*model.get_cpds())
            return (model,)

        fitted = timed(lambda model: DiscreteMLE(state_names=state_names).fit(model, frame), empty_model)
        cpds = {cpd.variables[0]: cpd for cpd in fitted.parameters_}
        tables = [table_from_pgmpy(structure, j, cpds[v]) for j, v in enumerate(structure.variables)]

    difference = max(float(np.abs(table - reference[0]).max()) for table, reference in zip(tables, bnbench_tables))
    benchmark.extra_info["max_abs_diff_vs_bnbench"] = difference
    assert difference < 1e-9
    store_ratio(benchmark, medians, "fit", library, n)


@pytest.mark.parametrize(("library", "n"), CASES)
def test_sample_peer(benchmark, timed, describe, medians, alarm, family_marginals, pgmpy_model, library, n):
    structure = alarm.structure
    describe_peer(describe, library, "sample", n, structure.num_free_parameters)

    if library == "bnbench":
        cpts = alarm.batched_cpts
        rows = timed(lambda rng: ancestral_sample(structure, cpts, n, rng), lambda: (np.random.default_rng(SAMPLE_SEED),))
    else:
        from pgmpy.sampling import BayesianModelSampling

        sampler = BayesianModelSampling(pgmpy_model)
        # forward_sample reseeds numpy's global generator; restore it after the run.
        saved_state = np.random.get_state()
        try:
            frame = timed(lambda: sampler.forward_sample(size=n, seed=SAMPLE_SEED, show_progress=False))
        finally:
            np.random.set_state(saved_state)
        code_of = [{label: k for k, label in enumerate(states)} for states in structure.state_names]
        columns = [frame[v].astype(str).map(code_of[j]).to_numpy() for j, v in enumerate(structure.variables)]
        rows = np.stack(columns, axis=-1).astype(np.int64)[None]  # (1, n, M)

    assert rows.shape == (1, n, structure.num_variables)
    tv = samples.family_tv(structure, rows, family_marginals)
    benchmark.extra_info["sample_family_tv"] = float(tv.mean())
    store_ratio(benchmark, medians, "sample", library, n)
