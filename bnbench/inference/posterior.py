"""The Dirichlet posterior of a network's tables given context rows, in Pyro.

Model: every row of every conditional table has a Dirichlet(alpha, ..., alpha) prior,
independently, and the context rows are categorical draws from the tables. Episodes
are a batch dimension: each episode has its own tables and its own context, and one
inference run covers the whole batch.

Vectorization: the rows of all tables with the same cardinality K form one sample
site ``cpt_card{K}`` of shape ``(B, R_K, K)``, inside the plates ``episodes`` (dim -2)
and ``table_rows_card{K}`` (dim -1). The context is observed through one site per
cardinality, ``context_card{K}`` of shape ``(B, U, M_K)``, where the M_K variables with
K states are an event dimension. The model thus has two sites per distinct cardinality
whatever the network size, and no Python loop over rows. The U rows are the distinct
context rows of each episode, each scaled by its multiplicity (`ContextData`). `TableGroups` maps the
group rows back to each variable's table.

Likelihood (`InferenceSettings.likelihood`): ``"rows"`` (the default) observes the
context rows as described above, at a cost per gradient step that grows with the number
of distinct rows. ``"counts"`` observes the family counts instead, through one
``pyro.factor`` site ``context_card{K}`` of shape ``(B, R_K)`` with value
sum_k n(pa, k) log theta(pa, k) (`ContextCounts`). That sum equals the log-likelihood
of the context rows, so the posterior is the same, and the cost per step no longer
depends on N.

Generation: with ``num_rows > 0`` the model also draws new rows ancestrally, one site
per variable named after it, inside the plates ``episodes`` and ``rows``. Replaying
posterior table samples through it with `pyro.infer.Predictive` gives the posterior
predictive.

Inference (`sample_posterior`):

* ``"nuts"``: `pyro.infer.NUTS` on the unconstrained (stick-breaking) tables.
* ``"svi"``: `pyro.infer.SVI` with `dirichlet_guide`, a mean-field guide with one
  Dirichlet per table row and learned concentrations. The exact posterior is in this
  family (Dirichlet prior, categorical likelihood), so the optimum of the ELBO is the
  exact posterior and the only error is optimization noise.

The posterior is known in closed form, Dirichlet(alpha + counts) per row, and the
tests compare both methods with it; the Pyro route exists to measure what general
purpose inference costs.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pyro
import pyro.distributions as dist
import torch

from bnbench.inference.torch_state import isolated_torch
from bnbench.structure import Structure

logger = logging.getLogger(__name__)

EPISODES_PLATE = "episodes"
ROWS_PLATE = "rows"
CONTEXT_PLATE = "context"
METHODS = ("nuts", "svi")
Method = Literal["nuts", "svi"]
LIKELIHOODS = ("rows", "counts")


@dataclass(frozen=True)
class TableGroups:
    """The rows of all tables, grouped by cardinality into one array per group.

    Variable j's table rows (``num_parent_configurations(j)`` of them, C order over
    the parent axes) occupy rows ``offsets[j]`` to ``offsets[j] + configurations`` of
    group ``cardinalities[j]``.
    """

    structure: Structure
    cardinalities: tuple[int, ...]
    members: dict[int, tuple[int, ...]]
    offsets: tuple[int, ...]
    sizes: dict[int, int]

    @classmethod
    def from_structure(cls, structure: Structure) -> TableGroups:
        cardinalities = tuple(sorted(set(structure.cardinalities)))
        sizes = {k: 0 for k in cardinalities}
        offsets = []
        for j, card in enumerate(structure.cardinalities):
            offsets.append(sizes[card])
            sizes[card] += structure.num_parent_configurations(j)
        members = {k: tuple(j for j, c in enumerate(structure.cardinalities) if c == k) for k in cardinalities}
        return cls(structure, cardinalities, members, tuple(offsets), sizes)

    @staticmethod
    def site(card: int) -> str:
        return f"cpt_card{card}"

    def table_row_index(self, rows: np.ndarray, card: int) -> np.ndarray:
        """Group row of each member variable's table for each data row: ``(B, N, M)`` -> ``(B, N, M_K)``."""
        columns = [self.offsets[j] + self.structure.parent_configuration_index(rows, j) for j in self.members[card]]
        return np.stack(columns, axis=-1)

    def split(self, groups: dict[int, np.ndarray]) -> list[np.ndarray]:
        """Per-variable tables ``(..., *parent_cards, K)`` from group arrays ``(..., R_K, K)``."""
        tables = []
        for j, card in enumerate(self.structure.cardinalities):
            start = self.offsets[j]
            block = groups[card][..., start : start + self.structure.num_parent_configurations(j), :]
            tables.append(block.reshape(*block.shape[:-2], *self.structure.table_shape(j)))
        return tables

    def join(self, tables: Sequence[np.ndarray]) -> dict[int, np.ndarray]:
        """Group arrays ``(..., R_K, K)`` from per-variable tables ``(..., *parent_cards, K)``; inverse of `split`."""
        groups = {}
        for card in self.cardinalities:
            parts = []
            for j in self.members[card]:
                table = np.asarray(tables[j])
                batch = table.shape[: table.ndim - len(self.structure.table_shape(j))]
                parts.append(table.reshape(*batch, -1, card))
            groups[card] = np.concatenate(parts, axis=-2)
        return groups


@dataclass(frozen=True)
class ContextData:
    """Context rows prepared for the model, one copy of each distinct row with its multiplicity.

    The log-likelihood of the context is a sum over rows. Observing each distinct row
    once, scaled by the number of times it occurs, therefore gives the same posterior,
    at a cost that grows with the number of distinct rows instead of N. Episodes with
    fewer distinct rows are padded with rows of weight 0.

    Attributes:
        num_episodes, num_rows: B and the padded number of distinct rows U.
        weights: Multiplicity of each row, ``(B, U)`` floats; 0 for padding.
        present: ``weights > 0``.
        scale: ``weights`` with padding set to 1 (Pyro rejects a scale of 0).
        table_rows: Per cardinality K, the group row of each member variable's table, ``(B, U, M_K)``.
        values: Per cardinality K, the observed values of the member variables, ``(B, U, M_K)``.
    """

    num_episodes: int
    num_rows: int
    weights: torch.Tensor
    present: torch.Tensor
    scale: torch.Tensor
    table_rows: dict[int, torch.Tensor]
    values: dict[int, torch.Tensor]

    @classmethod
    def from_rows(cls, groups: TableGroups, rows: np.ndarray) -> ContextData:
        distinct, weights = _distinct_rows(rows)  # (B, U, M), (B, U)
        return cls(
            num_episodes=distinct.shape[0],
            num_rows=distinct.shape[1],
            weights=torch.as_tensor(weights),
            present=torch.as_tensor(weights > 0),
            scale=torch.as_tensor(np.where(weights > 0, weights, 1.0)),
            table_rows={k: torch.as_tensor(groups.table_row_index(distinct, k)) for k in groups.cardinalities},
            values={k: torch.as_tensor(np.ascontiguousarray(distinct[..., list(groups.members[k])])) for k in groups.cardinalities},
        )


def _distinct_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of each episode and their counts, padded to the largest number of distinct rows."""
    found = [np.unique(episode, axis=0, return_counts=True) for episode in rows]
    size = max(len(counts) for _, counts in found)
    distinct = np.zeros((rows.shape[0], size, rows.shape[2]), dtype=np.int64)
    weights = np.zeros((rows.shape[0], size))
    for b, (unique, counts) in enumerate(found):
        distinct[b, : len(counts)] = unique
        weights[b, : len(counts)] = counts
    return distinct, weights


@dataclass(frozen=True)
class ContextCounts:
    """Context summarized by its family counts, the sufficient statistics of the tables.

    Attributes:
        num_episodes: B.
        counts: Per cardinality K, n(pa, k) for every row of the group's tables, ``(B, R_K, K)`` floats.
    """

    num_episodes: int
    counts: dict[int, torch.Tensor]

    @classmethod
    def from_rows(cls, groups: TableGroups, rows: np.ndarray) -> ContextCounts:
        from bnbench.estimators.mle import all_family_counts

        grouped = groups.join(all_family_counts(groups.structure, rows))
        return cls(num_episodes=rows.shape[0], counts={k: torch.as_tensor(v) for k, v in grouped.items()})


def make_dirichlet_model(structure: Structure, alpha: float, dtype: torch.dtype = torch.float64):
    """Return ``model(num_episodes, context=None, num_rows=0)``; see the module docstring.

    ``context`` is a `ContextData` or `ContextCounts` to observe; ``num_rows`` new rows per episode are
    drawn when positive, and returned as a ``(B, num_rows, M)`` tensor (None otherwise).
    """
    if not alpha > 0:
        raise ValueError(f"the Dirichlet concentration alpha must be positive; got {alpha}")
    groups = TableGroups.from_structure(structure)
    _check_names(structure, groups)
    concentration = {k: torch.full((k,), float(alpha), dtype=dtype) for k in groups.cardinalities}

    def model(num_episodes: int, context: ContextData | ContextCounts | None = None, num_rows: int = 0) -> torch.Tensor | None:
        with pyro.plate(EPISODES_PLATE, num_episodes, dim=-2):
            # One plate object per group: the counts likelihood enters it a second time.
            table_plates = {k: pyro.plate(f"table_rows_card{k}", groups.sizes[k], dim=-1) for k in groups.cardinalities}
            tables = {}
            for k in groups.cardinalities:
                with table_plates[k]:
                    tables[k] = pyro.sample(groups.site(k), dist.Dirichlet(concentration[k]))  # (..., B, R_K, K)

            if isinstance(context, ContextCounts):
                for k in groups.cardinalities:
                    with table_plates[k]:
                        # xlogy gives 0 for a count of 0, whatever the table entry.
                        pyro.factor(f"context_card{k}", torch.xlogy(context.counts[k], tables[k]).sum(-1))  # (..., B, R_K)
            elif context is not None:
                # Padding rows have weight 0: Pyro rejects a zero scale, so they are masked out instead.
                with (
                    pyro.plate(CONTEXT_PLATE, context.num_rows, dim=-1),
                    pyro.poutine.mask(mask=context.present),
                    pyro.poutine.scale(scale=context.scale),
                ):
                    for k in groups.cardinalities:
                        index = context.table_rows[k]  # (B, N, M_K)
                        probs = gather_rows(tables[k], index.reshape(num_episodes, -1)).unflatten(-2, index.shape[1:])  # (..., B, N, M_K, K)
                        pyro.sample(f"context_card{k}", dist.Categorical(probs=probs).to_event(1), obs=context.values[k])

            if num_rows <= 0:
                return None
            with pyro.plate(ROWS_PLATE, num_rows, dim=-1):
                values: list[torch.Tensor] = []
                for j, variable in enumerate(structure.variables):
                    configuration = torch.zeros((num_episodes, num_rows), dtype=torch.long)
                    for p in structure.parents[j]:
                        configuration = configuration * structure.cardinalities[p] + values[p]  # (..., B, R)
                    probs = gather_rows(tables[structure.cardinalities[j]], groups.offsets[j] + configuration)  # (..., B, R, K)
                    values.append(pyro.sample(variable, dist.Categorical(probs=probs)))
                return torch.stack(torch.broadcast_tensors(*values), dim=-1)

    return model


def gather_rows(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``result[..., b, i, :] = table[..., b, index[..., b, i], :]``, broadcasting the leading dimensions.

    ``table`` is ``(..., B, R_K, K)`` and ``index`` ``(..., B, I)``; the result is ``(..., B, I, K)``.
    """
    if table.shape[:-2] != index.shape[:-1]:
        batch = torch.broadcast_shapes(table.shape[:-2], index.shape[:-1])
        table = table.expand(*batch, *table.shape[-2:])
        index = index.expand(*batch, index.shape[-1])
    return table.gather(-2, index.unsqueeze(-1).expand(*index.shape, table.shape[-1]))


def dirichlet_guide(structure: Structure, alpha: float, num_episodes: int, dtype: torch.dtype = torch.float64):
    """Build the SVI guide: one Dirichlet per table row, with concentrations learned in log space.

    Parameters ``log_concentration_card{K}`` ``(B, R_K, K)`` start at log(alpha), the
    prior, so the data alone move them. Returns ``guide(num_episodes, context=None, num_rows=0)``.
    """
    groups = TableGroups.from_structure(structure)

    def guide(num_episodes_: int, context: ContextData | ContextCounts | None = None, num_rows: int = 0) -> None:
        with pyro.plate(EPISODES_PLATE, num_episodes, dim=-2):
            for k in groups.cardinalities:
                start = torch.full((num_episodes, groups.sizes[k], k), math.log(alpha), dtype=dtype)
                log_concentration = pyro.param(f"log_concentration_card{k}", start)
                with pyro.plate(f"table_rows_card{k}", groups.sizes[k], dim=-1):
                    pyro.sample(groups.site(k), dist.Dirichlet(log_concentration.exp()))

    return guide


@dataclass(frozen=True)
class InferenceSettings:
    """Settings of `sample_posterior`; see `bnbench.estimators.pyro_posterior.PyroPosterior` for each."""

    method: Method = "nuts"
    num_samples: int = 30
    warmup_steps: int = 30
    max_tree_depth: int = 4
    num_steps: int = 1000
    learning_rate: float = 0.1
    num_particles: int = 4
    likelihood: str = "rows"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown inference method {self.method!r}; valid methods: {list(METHODS)}")
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(f"unknown likelihood {self.likelihood!r}; valid likelihoods: {list(LIKELIHOODS)}")
        for name in ("num_samples", "max_tree_depth", "num_steps", "num_particles"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} is {getattr(self, name)}; use 1 or more")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps is {self.warmup_steps}; use 0 or more")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate is {self.learning_rate}; use a positive step size")


@dataclass(frozen=True)
class PosteriorSamples:
    """Posterior samples of every table.

    Attributes:
        groups: Samples per cardinality group, ``(S, B, R_K, K)`` tensors (the model's sites).
        tables: The same samples per variable, ``(S, B, *parent_cards, K)`` numpy arrays.
        diagnostics: Method-specific figures (NUTS step size and divergences, SVI final loss).
    """

    groups: dict[str, torch.Tensor]
    tables: list[np.ndarray]
    diagnostics: dict[str, Any] = field(default_factory=dict)

    @property
    def num_samples(self) -> int:
        return self.tables[0].shape[0]

    def mean_tables(self) -> list[np.ndarray]:
        """Posterior mean of each table, ``(B, *parent_cards, K)``, renormalized against rounding."""
        means = [t.mean(axis=0) for t in self.tables]
        return [m / m.sum(axis=-1, keepdims=True) for m in means]


def sample_posterior(
    structure: Structure,
    rows: np.ndarray,
    alpha: float,
    settings: InferenceSettings,
    seed: int,
) -> PosteriorSamples:
    """Draw ``settings.num_samples`` posterior samples of the tables given context ``rows`` ``(B, N, M)``."""
    groups = TableGroups.from_structure(structure)
    model = make_dirichlet_model(structure, alpha)
    context = (ContextCounts if settings.likelihood == "counts" else ContextData).from_rows(groups, rows)
    num_episodes = rows.shape[0]

    # Validation re-checks every Dirichlet value and observation on each gradient step; the
    # model is fixed and tested, so inference runs without it.
    with isolated_torch(seed), pyro.validation_enabled(False):
        if settings.method == "nuts":
            samples, diagnostics = _run_nuts(model, num_episodes, context, settings)
        else:
            samples, diagnostics = _run_svi(structure, model, alpha, num_episodes, context, settings)
    arrays = {k: samples[groups.site(k)].detach().numpy() for k in groups.cardinalities}
    return PosteriorSamples(groups=samples, tables=groups.split(arrays), diagnostics=diagnostics)


def posterior_predictive(
    structure: Structure,
    samples: PosteriorSamples,
    num_rows: int,
    seed: int,
    alpha: float = 1.0,
) -> np.ndarray:
    """Draw ``num_rows`` rows per episode from the posterior predictive with `pyro.infer.Predictive`.

    Each posterior sample of the tables generates an equal share of the rows, all in one
    vectorized model call. The rows are returned in sample order, ``(B, num_rows, M)``.
    ``alpha`` only builds the model, because the tables come from ``samples``.
    """
    from pyro.infer import Predictive

    num_used = min(samples.num_samples, num_rows)
    rows_per_sample = -(-num_rows // num_used)  # ceiling division
    model = make_dirichlet_model(structure, alpha)
    num_episodes = samples.tables[0].shape[1]
    chosen = {name: value[:num_used] for name, value in samples.groups.items()}
    with isolated_torch(seed), torch.no_grad():
        predictive = Predictive(model, posterior_samples=chosen, return_sites=["_RETURN"], parallel=True)
        drawn = predictive(num_episodes, None, rows_per_sample)["_RETURN"]  # (S, B, R_s, M)
    rows = drawn.permute(1, 0, 2, 3).reshape(num_episodes, num_used * rows_per_sample, structure.num_variables)
    return rows[:, :num_rows].numpy().astype(np.int64)


def _run_nuts(model, num_episodes: int, context: ContextData | ContextCounts, settings: InferenceSettings):
    from pyro.infer import MCMC, NUTS

    kernel = NUTS(model, max_tree_depth=settings.max_tree_depth)
    mcmc = MCMC(kernel, num_samples=settings.num_samples, warmup_steps=settings.warmup_steps, disable_progbar=True)
    mcmc.run(num_episodes, context)
    diagnostics = mcmc.diagnostics()
    divergences = sum(len(v) for v in diagnostics.get("divergences", {}).values())
    return mcmc.get_samples(), {"step_size": float(kernel.step_size), "divergences": divergences}


def _run_svi(
    structure: Structure, model, alpha: float, num_episodes: int, context: ContextData | ContextCounts, settings: InferenceSettings
):
    from pyro.infer import SVI, TraceMeanField_ELBO

    guide = dirichlet_guide(structure, alpha, num_episodes)
    # The learning rate decays 100-fold over the run, so late steps average out the gradient noise.
    optimizer = pyro.optim.ClippedAdam({"lr": settings.learning_rate, "lrd": 0.01 ** (1.0 / settings.num_steps)})
    elbo = TraceMeanField_ELBO(num_particles=settings.num_particles, vectorize_particles=True, max_plate_nesting=2)
    with pyro.get_param_store().scope():
        svi = SVI(model, guide, optimizer, elbo)
        loss = float("nan")
        for _ in range(settings.num_steps):
            loss = svi.step(num_episodes, context)
        groups = TableGroups.from_structure(structure)
        with torch.no_grad():
            samples = {
                groups.site(k): dist.Dirichlet(pyro.param(f"log_concentration_card{k}").exp()).sample((settings.num_samples,))
                for k in groups.cardinalities
            }  # (S, B, R_K, K) each
    return samples, {"final_loss": loss}


def _check_names(structure: Structure, groups: TableGroups) -> None:
    reserved = {EPISODES_PLATE, ROWS_PLATE, CONTEXT_PLATE}
    for k in groups.cardinalities:
        reserved |= {groups.site(k), f"context_card{k}", f"table_rows_card{k}"}
    clashes = sorted(reserved & set(structure.variables))
    if clashes:
        raise ValueError(f"variables {clashes} of network {structure.name!r} collide with names of the posterior model; rename them")
