"""Run a benchmark grid, one record per cell, resuming where an earlier run stopped."""

from __future__ import annotations

import logging
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timezone
from itertools import groupby
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from bnbench.episodes import EpisodeBatch, derive_seed, sample_episodes
from bnbench.estimators.mle import estimate_tables
from bnbench.estimators.registry import make_estimator, split_spec
from bnbench.harness import environment
from bnbench.harness.evaluate import EvaluationSettings, Reference, evaluate
from bnbench.harness.evidence import evaluate_evidence
from bnbench.harness.grid import Cell, GridConfig
from bnbench.harness.records import SCHEMA_VERSION, append_record, finished_cells
from bnbench.metrics.truth import Truth, compute_truth
from bnbench.networks import load_network
from bnbench.priors import parse_prior

logger = logging.getLogger(__name__)


def run_grid(config: GridConfig, output: Path, progress: bool = True) -> Counter[str]:
    """Run every unfinished cell of ``config``, appending records to ``output``.

    Cells already recorded as ok or skipped in ``output`` are not run again. A cell
    that raises is recorded as failed with its error, and the grid goes on.
    Returns the number of cells per status, including ``"resumed"``.
    """
    config.check()
    done = finished_cells(output)
    cells = config.cells()
    statuses: Counter[str] = Counter(resumed=sum(c.id in done for c in cells))
    pending = [c for c in cells if c.id not in done]
    logger.info("%d cells, %d already finished in %s", len(cells), statuses["resumed"], output)

    with tqdm(total=len(pending), disable=not progress, unit="cell", dynamic_ncols=True) as bar:
        for group in _groups(pending):
            first = group[0]
            bar.set_description(f"{first.network} N={first.context_size} seed={first.seed}")
            for record in _run_group(group):
                append_record(output, record)
                statuses[record["status"]] += 1
                if record["status"] == "failed":
                    logger.error("cell %s failed: %s", record["cell"], record["error"])
                bar.update(1)
    return statuses


def _groups(cells: list[Cell]) -> Iterator[list[Cell]]:
    """Cells that share episodes (same network, N and seed), in grid order."""
    key = lambda c: (c.network, c.seed, c.context_size)  # noqa: E731
    for _, group in groupby(cells, key=key):
        yield list(group)


def _run_group(cells: list[Cell]) -> Iterator[dict[str, Any]]:
    """Draw the shared episodes once, then evaluate each estimator on them."""
    first = cells[0]
    try:
        episodes, truth, reference = _prepare(first)
    except Exception as error:  # every cell of the group fails the same way
        logger.exception("cannot prepare episodes for %s", first.id)
        for cell in cells:
            yield _record(cell, "failed", started=time.time(), error=error)
        return
    for cell in cells:
        yield run_cell(cell, episodes, truth, reference)


def _prepare(cell: Cell) -> tuple[EpisodeBatch, Truth, Reference]:
    config = cell.config
    network = load_network(cell.network)
    prior = None if config.table_prior is None else parse_prior(config.table_prior)
    episodes = sample_episodes(
        network if prior is None else network.structure,
        num_episodes=config.num_episodes,
        context_size=cell.context_size,
        num_test_rows=config.num_test_rows,
        seed=cell.episode_seed,
        prior=prior,
    )
    truth = compute_truth(episodes, seed=derive_seed(cell.episode_seed, "truth"))
    tables, counts = estimate_tables(episodes.structure, episodes.context)
    return episodes, truth, Reference(tables, counts)


def run_cell(cell: Cell, episodes: EpisodeBatch, truth: Truth, reference: Reference) -> dict[str, Any]:
    """Evaluate one estimator on prepared episodes and return its record (never raises for estimator errors)."""
    started = time.time()
    try:
        estimator = make_estimator(cell.estimator)
        reason = estimator.unavailable_reason(episodes.structure)
        if reason is not None:
            return _record(cell, "skipped", started, estimator=estimator, note=reason)
        if cell.task == "evidence":
            if not estimator.supports_evidence:
                note = f"estimator {estimator.name!r} cannot condition on arbitrary evidence (supports_evidence is False)"
                return _record(cell, "skipped", started, estimator=estimator, note=note)
            # Without N in the seed, every context size is scored on the same evidence sets.
            evidence_seed = derive_seed(cell.episode_seed, "evidence")
            metrics = evaluate_evidence(estimator, episodes, cell.config.num_generated_rows, cell.config.measure_memory, evidence_seed)
            return _record(cell, "ok", started, estimator=estimator, metrics=metrics, provenance=estimator.provenance())
        settings = EvaluationSettings(cell.config.num_generated_rows, cell.config.measure_memory)
        generation_seed = derive_seed(cell.episode_seed, cell.context_size, "generate")
        metrics = evaluate(estimator, episodes, truth, reference, settings, generation_seed)
        return _record(cell, "ok", started, estimator=estimator, metrics=metrics, provenance=estimator.provenance())
    except Exception as error:
        return _record(cell, "failed", started, error=error)


def _record(
    cell: Cell,
    status: str,
    started: float,
    *,
    estimator=None,
    metrics: dict[str, Any] | None = None,
    error: BaseException | None = None,
    note: str | None = None,
    provenance: dict[str, Any] | None = None,
) -> dict[str, Any]:
    config = cell.config
    record: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "cell": cell.id,
        "status": status,
        "network": cell.network,
        "context_size": cell.context_size,
        "estimator": cell.estimator,
        "estimator_name": split_spec(cell.estimator)[0],
        "settings": estimator.get_settings() if estimator is not None else None,
        "provenance": provenance or {},
        "seed": cell.seed,
        "episode_seed": cell.episode_seed,
        "tables": cell.tables,
        "task": cell.task,
        "num_episodes": config.num_episodes,
        "num_test_rows": config.num_test_rows,
        "num_generated_rows": config.num_generated_rows,
        "metrics": metrics or {},
        "note": note,
        "error": None if error is None else f"{type(error).__name__}: {error}",
        "traceback": None if error is None else "".join(traceback.format_exception(error)),
        "started_at": datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="seconds"),
        "duration_s": time.time() - started,
        "versions": environment.versions(),
        "machine": environment.machine(),
    }
    return record
