"""The benchmark grid: networks x context sizes x estimators x seeds, checked before anything runs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from bnbench.episodes import derive_seed
from bnbench.estimators.registry import estimator_names, get_estimator_class, split_spec
from bnbench.networks import load_network
from bnbench.priors import parse_prior


#: Tasks of a grid; the first is the default and is left out of cell ids.
TASKS = ("generate", "evidence")


class GridError(ValueError):
    """Raised when a grid setting is invalid; nothing has run yet."""


@dataclass(frozen=True)
class GridConfig:
    """One benchmark run. Every combination of the four tuples is a cell.

    Attributes:
        networks: Network specs (bundled names, BIF paths, synthetic family specs).
        context_sizes: Context rows N per episode.
        estimators: Estimator specs; empty means every registered estimator.
        seeds: Episode seeds; each seed draws new episodes, shared by all estimators.
        num_episodes: Episodes per cell.
        num_test_rows: Held-out true rows per episode, for held-out likelihood.
        num_generated_rows: Rows each estimator generates per episode.
        table_prior: None for the network's own tables, or a prior spec
            (``dirichlet:1``) to draw fresh tables per episode.
        measure_memory: Run fit and generation a second time under memory tracing.
        task: ``"generate"`` (rows from scratch) or ``"evidence"`` (the unobserved
            variables of rows given evidence on any subset; see `bnbench.harness.evidence`).
    """

    networks: tuple[str, ...] = ("asia",)
    context_sizes: tuple[int, ...] = (10, 100, 1000)
    estimators: tuple[str, ...] = ()
    seeds: tuple[int, ...] = (0, 1, 2)
    num_episodes: int = 8
    num_test_rows: int = 500
    num_generated_rows: int = 1000
    table_prior: str | None = None
    measure_memory: bool = True
    task: str = "generate"

    def resolved_estimators(self) -> tuple[str, ...]:
        return self.estimators or tuple(estimator_names())

    def check(self) -> None:
        """Validate every setting and name; raises `GridError` naming the bad value."""
        if not self.networks:
            raise GridError("no networks given; name at least one, e.g. 'asia'")
        for size in self.context_sizes:
            if size < 1:
                raise GridError(f"context size {size} is invalid; use 1 or more rows")
        if not self.context_sizes:
            raise GridError("no context sizes given; e.g. 10 100 1000")
        for seed in self.seeds:
            if seed < 0:
                raise GridError(f"seed {seed} is invalid; seeds are integers 0 or more")
        if not self.seeds:
            raise GridError("no seeds given; e.g. 0 1 2")
        for name, value in (("num_episodes", self.num_episodes),):
            if value < 1:
                raise GridError(f"{name} is {value}; use 1 or more")
        for name, value in (("num_test_rows", self.num_test_rows), ("num_generated_rows", self.num_generated_rows)):
            if value < 0:
                raise GridError(f"{name} is {value}; use 0 or more")
        if self.task not in TASKS:
            raise GridError(f"unknown task {self.task!r}; valid tasks: {list(TASKS)}")
        if self.table_prior is not None:
            try:
                parse_prior(self.table_prior)
            except ValueError as error:
                raise GridError(str(error)) from None
        for spec in self.resolved_estimators():
            try:
                get_estimator_class(split_spec(spec)[0])
            except (KeyError, ValueError) as error:
                raise GridError(str(error)) from None
        for network in self.networks:
            try:
                load_network(network)
            except (KeyError, ValueError, OSError) as error:
                raise GridError(str(error)) from None

    def cells(self) -> list[Cell]:
        return [
            Cell(network, size, estimator, seed, self)
            for network in self.networks
            for seed in self.seeds
            for size in self.context_sizes
            for estimator in self.resolved_estimators()
        ]

    def describe(self) -> dict[str, object]:
        settings = asdict(self)
        settings["estimators"] = list(self.resolved_estimators())
        return settings


@dataclass(frozen=True)
class Cell:
    network: str
    context_size: int
    estimator: str
    seed: int
    config: GridConfig = field(repr=False)

    @property
    def tables(self) -> str:
        return self.config.table_prior or "fixed"

    @property
    def task(self) -> str:
        return self.config.task

    @property
    def id(self) -> str:
        """Everything that changes this cell's numbers, as one stable string.

        The task appears only when it is not the default, so ids of earlier records stay valid.
        """
        c = self.config
        task = "" if self.task == TASKS[0] else f"|task={self.task}"
        return (
            f"{self.network}|n={self.context_size}|{self.estimator}|seed={self.seed}|tables={self.tables}"
            f"|episodes={c.num_episodes}|test={c.num_test_rows}|generated={c.num_generated_rows}{task}"
        )

    @property
    def episode_seed(self) -> int:
        """The same for every estimator and context size of a (network, seed, tables) group.

        Leaving N out keeps the true tables and test rows equal across context sizes,
        so curves over N compare like with like.
        """
        return derive_seed(self.seed, self.network, self.tables)
