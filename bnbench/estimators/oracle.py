"""The true tables, as an estimator: the upper bound on fidelity."""

from __future__ import annotations

from bnbench.episodes import Context
from bnbench.estimators.base import TableEstimator


class Oracle(TableEstimator):
    """Returns the true tables of each episode; ignores the context rows.

    The harness hands the true tables to estimators that set ``reads_true_tables``.
    """

    name = "oracle"
    reads_true_tables = True

    def __init__(self) -> None:
        pass

    def fit(self, context: Context) -> Oracle:
        if context.true_cpts is None:
            raise ValueError(
                "the oracle needs the true tables; build its context with EpisodeBatch.context_for(reads_true_tables=True)"
            )
        self.cpts_ = [t for t in context.true_cpts]
        self.context_ = context
        return self
