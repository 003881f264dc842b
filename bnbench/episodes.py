"""In-context episodes: true tables, context rows and held-out test rows from one seed.

An episode batch holds ``B`` episodes of one structure. Each episode has its own
true tables (drawn fresh from a table prior, or the network's fixed tables shared by
all episodes), ``N`` context rows that estimators learn from, and ``T`` test rows
from the same tables that score them.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np

from bnbench.network import BayesianNetwork, validate_table
from bnbench.priors import TablePrior
from bnbench.sampling import ancestral_sample
from bnbench.structure import Structure


class ContextError(ValueError):
    """Raised when context rows are empty or do not fit the structure."""


@dataclass(frozen=True, eq=False)
class Context:
    """What an estimator is fitted on: the structure and ``(B, N, M)`` integer rows.

    ``true_cpts`` is None except for estimators that declare ``reads_true_tables``
    (the oracle); the harness never hands the truth to any other estimator.
    """

    structure: Structure
    rows: np.ndarray
    true_cpts: list[np.ndarray] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        rows = np.asarray(self.rows)
        if rows.ndim == 2:
            raise ContextError(
                f"context rows have shape {rows.shape}; expected (episodes, rows, variables). "
                "Wrap a single episode as rows[None]"
            )
        if rows.ndim != 3:
            raise ContextError(f"context rows have shape {rows.shape}; expected (episodes, rows, variables)")
        if rows.shape[0] == 0:
            raise ContextError("the context has zero episodes; give at least one")
        if rows.shape[1] == 0:
            raise ContextError(
                "the context has zero rows; in-context estimation needs at least one row per episode "
                "(use a context size of 1 or more)"
            )
        object.__setattr__(self, "rows", self.structure.validate_rows(rows, what="context rows"))

    @property
    def num_episodes(self) -> int:
        return self.rows.shape[0]

    @property
    def num_rows(self) -> int:
        return self.rows.shape[1]


@dataclass(frozen=True, eq=False)
class EpisodeBatch:
    """``B`` episodes of one structure, all drawn from ``seed``.

    Attributes:
        structure: The graph shared by every episode.
        cpts: True tables per variable, shape ``(B, *parent_cards, card)``.
        context: Context rows ``(B, N, M)``.
        test: Held-out rows ``(B, T, M)`` from the same true tables.
        seed: The seed every array above was drawn from.
        table_prior: The prior fresh tables were drawn from, or None for fixed tables.
    """

    structure: Structure
    cpts: list[np.ndarray] = field(repr=False)
    context: np.ndarray = field(repr=False)
    test: np.ndarray = field(repr=False)
    seed: int
    table_prior: str | None = None

    @property
    def num_episodes(self) -> int:
        return self.context.shape[0]

    @property
    def context_size(self) -> int:
        return self.context.shape[1]

    @property
    def fixed_tables(self) -> bool:
        return self.table_prior is None

    def context_for(self, reads_true_tables: bool = False) -> Context:
        """The estimator's view: the context rows, with the true tables only for the oracle."""
        return Context(self.structure, self.context, list(self.cpts) if reads_true_tables else None)


def sample_episodes(
    source: BayesianNetwork | Structure,
    *,
    num_episodes: int,
    context_size: int,
    num_test_rows: int,
    seed: int,
    prior: TablePrior | None = None,
) -> EpisodeBatch:
    """Draw a batch of episodes.

    With ``prior=None`` every episode uses the network's own tables ("fixed real
    tables"); ``source`` must then be a `BayesianNetwork`. With a prior, each episode
    draws fresh tables for ``source``'s structure ("fresh tables per episode").
    Tables, context and test rows come from independent streams spawned from ``seed``,
    so the same seed gives the same tables at every context size.
    """
    if num_episodes < 1:
        raise ValueError(f"num_episodes must be at least 1; got {num_episodes}")
    if context_size < 1:
        raise ContextError(f"context_size must be at least 1; got {context_size}")
    if num_test_rows < 0:
        raise ValueError(f"num_test_rows must be 0 or more; got {num_test_rows}")
    structure = source if isinstance(source, Structure) else source.structure
    table_stream, context_stream, test_stream = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)
    )

    if prior is None:
        if not isinstance(source, BayesianNetwork):
            raise ValueError(
                f"structure {structure.name!r} has no tables; pass a BayesianNetwork or a table prior"
            )
        cpts = [np.broadcast_to(t, (num_episodes, *t.shape)) for t in source.cpts]
    else:
        cpts = [validate_table(structure, j, t, batched=True) for j, t in enumerate(prior.sample(structure, num_episodes, table_stream))]

    context = ancestral_sample(structure, cpts, context_size, context_stream)
    test = ancestral_sample(structure, cpts, num_test_rows, test_stream)
    return EpisodeBatch(
        structure=structure,
        cpts=cpts,
        context=context,
        test=test,
        seed=seed,
        table_prior=None if prior is None else str(prior),
    )


def derive_seed(*parts: object) -> int:
    """A stable 63-bit seed from strings and integers (the same on every machine and run)."""
    words = [zlib.crc32(str(p).encode()) if not isinstance(p, int) else p for p in parts]
    return int(np.random.SeedSequence(words).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))
