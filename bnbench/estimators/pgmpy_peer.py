"""pgmpy's maximum-likelihood estimator and forward sampler, wrapped as a peer.

pgmpy fits one data set at a time, so episodes are fitted one after another. States
are passed by label (``state_names``) so that pgmpy keeps every declared state,
including those absent from the context, and tables are read back by label.
pgmpy fills never-seen parent configurations with a uniform row, which matches
bnbench's ``uniform`` policy.
"""

from __future__ import annotations

import logging

import numpy as np

from bnbench.episodes import Context
from bnbench.estimators.base import TableEstimator
from bnbench.networks.pgmpy_convert import table_from_pgmpy, to_pgmpy
from bnbench.structure import Structure

logger = logging.getLogger(__name__)


class PgmpyMLE(TableEstimator):
    """pgmpy's ``DiscreteMLE`` for fitting and ``BayesianModelSampling.forward_sample`` for generation."""

    name = "pgmpy-mle"

    def __init__(self) -> None:
        self.models_: list | None = None

    @classmethod
    def unavailable_reason(cls, structure: Structure) -> str | None:
        try:
            import pgmpy  # noqa: F401
        except ImportError:
            return "pgmpy is not installed; install it with 'pip install pgmpy'"
        return None

    def fit(self, context: Context) -> PgmpyMLE:
        import pandas as pd
        from pgmpy.parameter_estimator import DiscreteMLE

        structure = context.structure
        state_names = {v: list(s) for v, s in zip(structure.variables, structure.state_names)}
        labels = [np.asarray(s, dtype=object) for s in structure.state_names]
        # An empty model with the right edges; pgmpy fits its tables.
        template = to_pgmpy(structure, [np.full(structure.table_shape(j), 1.0 / structure.cardinalities[j]) for j in range(structure.num_variables)])

        tables: list[list[np.ndarray]] = [[] for _ in structure.variables]
        self.models_ = []
        for episode_rows in context.rows:
            frame = pd.DataFrame({v: labels[j][episode_rows[:, j]] for j, v in enumerate(structure.variables)})
            model = template.copy()
            model.remove_cpds(*model.get_cpds())
            estimator = DiscreteMLE(state_names=state_names).fit(model, frame)
            cpds = {cpd.variables[0]: cpd for cpd in estimator.parameters_}
            model.add_cpds(*cpds.values())
            self.models_.append(model)
            for j, variable in enumerate(structure.variables):
                tables[j].append(table_from_pgmpy(structure, j, cpds[variable]))

        self.cpts_ = [np.stack(t) for t in tables]
        self.context_ = context
        return self

    def generate(self, num_rows: int, rng: np.random.Generator) -> np.ndarray:
        """Draw rows with pgmpy's forward sampler, seeded from ``rng``.

        pgmpy reseeds numpy's global generator, so its state is restored afterwards.
        pgmpy also logs a warning whenever a table row it samples from sums to 1 only up
        to rounding (about 1e-16), and adjusts that row. Its own fitted tables trigger this
        too, so those warnings are dropped. An error larger than 1e-3 still raises in pgmpy.
        """
        from pgmpy.sampling import BayesianModelSampling

        structure = self.fitted_context.structure
        if self.models_ is None:
            raise RuntimeError("estimator 'pgmpy-mle' is not fitted; call fit(context) first")
        code_of = [{label: k for k, label in enumerate(states)} for states in structure.state_names]
        output = np.empty((len(self.models_), num_rows, structure.num_variables), dtype=np.int64)
        saved_state = np.random.get_state()
        pgmpy_logger = logging.getLogger("pgmpy")
        pgmpy_logger.addFilter(_drop_rounding_warning)
        try:
            for b, model in enumerate(self.models_):
                seed = int(rng.integers(2**31 - 1))
                frame = BayesianModelSampling(model).forward_sample(size=num_rows, seed=seed, show_progress=False)
                for j, variable in enumerate(structure.variables):
                    output[b, :, j] = [code_of[j][str(label)] for label in frame[variable]]
        finally:
            np.random.set_state(saved_state)
            pgmpy_logger.removeFilter(_drop_rounding_warning)
        return output


def _drop_rounding_warning(record: logging.LogRecord) -> bool:
    """Return False for pgmpy's "don't exactly sum to 1" warning, so the logger drops it."""
    return "don't exactly sum to 1" not in record.getMessage()
