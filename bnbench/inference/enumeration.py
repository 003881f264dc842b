"""Exact conditional marginals and sampling under evidence with Pyro's parallel enumeration.

The network becomes a Pyro model with one site per variable inside two plates,
episodes (dim -2) and rows (dim -1). Tables are indexed with `Vindex`, so parent
values that carry enumeration dimensions select the right rows. A variable observed
in every row is a site with ``obs=``. A variable observed in some rows only is
enumerated, and a ``pyro.factor`` with log 1[x = e] where observed (0 elsewhere)
restricts it to its evidence. `infer_discrete` then draws every enumerated variable
from its exact conditional, and ``TraceEnum_ELBO.compute_marginals`` returns exact
conditional marginals.

Only the ancestors of the observed variables enter the sampling model: given them,
every other variable follows its own table, so it is drawn afterwards by ancestral
sampling. This keeps the number of enumerated sites small when few variables are
observed.

Limits are checked before Pyro runs, because breaking them does not fail cleanly:

* torch tensors have at most 64 dimensions, so at most `MAX_ENUMERATED_SITES`
  variables can be enumerated at once (andes, hepar2, win95pts and larger networks
  exceed it when many variables are unobserved);
* memory grows with the number of rows in the plates (water with 20,000 rows
  passed 24 GiB). The memory of one (episode, row) cell is estimated from the
  contraction `opt_einsum` would choose, and the rows are split into chunks that fit
  ``memory_budget``.

When enumeration cannot run, ``fallback`` decides what happens. ``"elimination"``
(default) samples exactly by variable elimination, one variable at a time.
``"likelihood-weighting"`` samples approximately with a stated number of particles.
``"error"`` raises `EnumerationLimitError` naming the network and the limit.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import opt_einsum

from bnbench.estimators.base import sample_categorical
from bnbench.exact import IntractableError
from bnbench.inference import evidence as exact_evidence
from bnbench.inference import weighting
from bnbench.inference.evidence import ImpossibleEvidenceError, forward_sample_rest, validate_evidence
from bnbench.sampling import gather_conditionals
from bnbench.structure import Structure

logger = logging.getLogger(__name__)

#: torch tensors have at most 64 dimensions. The model uses two plate dimensions and
#: the state axis of a table, which leaves 61 enumerated sites; 62 fail with
#: "only tensors with up to 64 dims are supported" (pyro-ppl 1.9.2, torch 2.13).
MAX_ENUMERATED_SITES = 61
#: Default memory allowed to one enumeration call, in bytes. The budget used is the
#: smaller of this and half the memory the operating system reports as available.
DEFAULT_MEMORY_BUDGET = 2**30
#: Bytes per float64 entry times the copies Pyro keeps of each factor and message
#: (probabilities, log-probabilities, sampling backpointers): an estimate, not a bound.
BYTES_PER_ENTRY = 8 * 4

EPISODES_PLATE = "episodes"
ROWS_PLATE = "rows"
EVIDENCE_SUFFIX = "__evidence"

Fallback = Literal["elimination", "likelihood-weighting", "error"]
FALLBACKS: tuple[str, ...] = ("elimination", "likelihood-weighting", "error")


class EnumerationLimitError(RuntimeError):
    """Raised when enumeration cannot run and the caller asked for no fallback, or the fallback is intractable too."""


@dataclass(frozen=True)
class EnumerationPlan:
    """The variables of the enumeration model, and how the model treats each.

    Attributes:
        structure: The graph.
        variables: The model's variables in topological order: the ancestors of the
            observed variables and of the requested targets.
        clamped: Variables observed in every row (sites with ``obs=``).
        enumerated: The other model variables, summed or sampled by enumeration.
        partially_observed: Enumerated variables observed in some rows.
        bytes_per_cell: Estimated memory of one (episode, row) cell.
    """

    structure: Structure
    variables: tuple[int, ...]
    clamped: tuple[int, ...]
    enumerated: tuple[int, ...]
    partially_observed: tuple[int, ...]
    bytes_per_cell: float

    def limit_reason(self, memory_budget: float) -> str | None:
        """Why enumeration cannot run within ``memory_budget`` bytes, or None when it can."""
        name = self.structure.name
        if len(self.enumerated) > MAX_ENUMERATED_SITES:
            return (
                f"network {name!r} needs {len(self.enumerated)} enumerated variables for this evidence, above "
                f"Pyro's limit of {MAX_ENUMERATED_SITES} (torch tensors have at most 64 dimensions)"
            )
        if self.bytes_per_cell > memory_budget:
            return (
                f"enumerating network {name!r} for this evidence needs an estimated {self.bytes_per_cell / 2**20:.3g} MiB "
                f"per row, above the memory budget of {memory_budget / 2**20:.3g} MiB"
            )
        return None

    def chunks(self, num_episodes: int, num_rows: int, memory_budget: float) -> list[tuple[slice, slice]]:
        """(episodes, rows) blocks whose estimated memory fits ``memory_budget``."""
        cells = max(1, int(memory_budget // max(self.bytes_per_cell, 1.0)))
        episode_size = min(num_episodes, cells)
        row_size = max(1, cells // episode_size)
        return [
            (slice(e, e + episode_size), slice(r, r + row_size))
            for e in range(0, num_episodes, episode_size)
            for r in range(0, num_rows, row_size)
        ]


def plan_enumeration(structure: Structure, observed: np.ndarray, targets: Sequence[int] = ()) -> EnumerationPlan:
    """Plan the enumeration model for an observed mask ``(B, Q, M)`` and the target variables."""
    ever = observed.any(axis=(0, 1))
    always = observed.all(axis=(0, 1))
    variables = tuple(structure.ancestors([*np.flatnonzero(ever).tolist(), *targets]))
    clamped = tuple(j for j in variables if always[j])
    enumerated = tuple(j for j in variables if not always[j])
    partially_observed = tuple(j for j in enumerated if ever[j])
    return EnumerationPlan(
        structure=structure,
        variables=variables,
        clamped=clamped,
        enumerated=enumerated,
        partially_observed=partially_observed,
        bytes_per_cell=_estimate_cell_bytes(structure, variables, enumerated, partially_observed),
    )


def memory_budget(requested: float = DEFAULT_MEMORY_BUDGET) -> float:
    """Return the smaller of ``requested`` and half the available memory (Linux ``MemAvailable``)."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return min(float(requested), int(line.split()[1]) * 1024 / 2)
    except (OSError, ValueError, IndexError):
        pass
    return float(requested)


def sample_given(
    structure: Structure,
    cpts: Sequence[np.ndarray],
    rows: np.ndarray,
    observed: np.ndarray,
    rng: np.random.Generator,
    *,
    fallback: Fallback = "elimination",
    num_particles: int = weighting.DEFAULT_PARTICLES,
    max_memory: float = DEFAULT_MEMORY_BUDGET,
) -> np.ndarray:
    """Draw the unobserved variables of every row from their exact conditional given the row's evidence.

    Args:
        structure: The graph.
        cpts: Tables ``(B or 1, *parent_cards, card)``.
        rows: Evidence values ``(B, Q, M)``; unobserved entries are ignored.
        observed: Mask ``(M,)`` or ``(B, Q, M)``, True where a value is evidence.
        rng: The only source of randomness (Pyro's draws are seeded from it).
        fallback: What to do when enumeration exceeds its limits (module docstring).
        num_particles: Particles per row for the likelihood-weighting fallback.
        max_memory: Memory budget in bytes (capped by half the available memory).

    Returns:
        Rows ``(B, Q, M)`` equal to ``rows`` where observed, sampled elsewhere.

    Raises:
        EvidenceError: Invalid evidence, or zero rows.
        ImpossibleEvidenceError: Some row's evidence has probability 0.
        EnumerationLimitError: Enumeration is impossible and ``fallback`` is ``"error"``
            or intractable too.
    """
    _check_fallback(fallback)
    _check_names(structure)
    rows, observed = validate_evidence(structure, rows, observed)
    plan = plan_enumeration(structure, observed)
    budget = memory_budget(max_memory)
    reason = plan.limit_reason(budget)

    if not plan.enumerated:
        samples = rows.copy()
    elif reason is None:
        samples = _enumerated_samples(plan, cpts, rows, observed, rng, budget)
    else:
        samples = _fallback_samples(plan, cpts, rows, observed, rng, fallback, num_particles, reason)
    forward_sample_rest(structure, cpts, samples, plan.variables, rng)
    _check_sampled_rows(structure, cpts, samples, plan.variables, rows, observed)
    return samples


def marginals_given(
    structure: Structure,
    cpts: Sequence[np.ndarray],
    rows: np.ndarray,
    observed: np.ndarray,
    *,
    variables: Sequence[int] | None = None,
    fallback: Fallback = "elimination",
    rng: np.random.Generator | None = None,
    num_particles: int = weighting.DEFAULT_PARTICLES,
    max_memory: float = DEFAULT_MEMORY_BUDGET,
) -> list[np.ndarray]:
    """Exact P(x_j | the evidence of each row), one ``(B, Q, card_j)`` array per requested variable.

    Arguments are as for `sample_given`; ``variables`` defaults to every variable, and
    ``rng`` is needed only by the likelihood-weighting fallback. An observed variable's
    marginal is the indicator of its observed state.
    """
    _check_fallback(fallback)
    _check_names(structure)
    rows, observed = validate_evidence(structure, rows, observed)
    targets = list(range(structure.num_variables)) if variables is None else [int(j) for j in variables]
    plan = plan_enumeration(structure, observed, targets)
    budget = memory_budget(max_memory)
    reason = plan.limit_reason(budget)

    if reason is None:
        marginals = _enumerated_marginals(plan, cpts, rows, observed, budget)
        # Pyro returns finite marginals even for evidence of probability 0. A draw of the
        # model's variables detects it: it has probability 0 or breaks the evidence.
        if plan.enumerated:
            draw = _enumerated_samples(plan, cpts, rows, observed, np.random.default_rng(0), budget)
            _check_sampled_rows(structure, cpts, draw, plan.variables, rows, observed)
        return [marginals[j] for j in targets]
    _log_fallback(structure, reason, fallback)
    if fallback == "elimination":
        try:
            return exact_evidence.conditional_marginals(structure, cpts, rows, observed, targets)
        except IntractableError as error:
            raise EnumerationLimitError(f"{reason}; the variable-elimination fallback is intractable too: {error}") from error
    if fallback == "likelihood-weighting":
        if rng is None:
            raise ValueError("the likelihood-weighting fallback draws particles; pass rng")
        marginals, _ = weighting.marginals_given(structure, cpts, rows, observed, rng, num_particles)
        return [marginals[j] for j in targets]
    raise EnumerationLimitError(f"{reason}; use fallback='elimination' or 'likelihood-weighting'")


# Pyro model and enumeration.


def _model(plan: EnumerationPlan, tables: list, values, observed):
    """Build the enumeration model of ``plan`` for torch tables ``(B, *parent_cards, K)`` and evidence ``(B, Q, M)``."""
    import pyro
    import pyro.distributions as dist
    import torch
    from pyro.ops.indexing import Vindex

    structure = plan.structure
    num_episodes, num_rows = values.shape[:2]
    episode = torch.arange(num_episodes).unsqueeze(-1)  # (B, 1)
    clamped, partially_observed = set(plan.clamped), set(plan.partially_observed)
    zero = torch.zeros((), dtype=tables[plan.variables[0]].dtype)

    def model() -> dict[int, torch.Tensor]:
        sampled: dict[int, torch.Tensor] = {}
        with pyro.plate(EPISODES_PLATE, num_episodes, dim=-2), pyro.plate(ROWS_PLATE, num_rows, dim=-1):
            for j in plan.variables:
                name = structure.variables[j]
                index = (episode, *(sampled[p] for p in structure.parents[j]), slice(None))
                probs = Vindex(tables[j])[index]  # (*enumeration dims, B, 1 or Q, K)
                if j in clamped:
                    sampled[j] = pyro.sample(name, dist.Categorical(probs=probs), obs=values[..., j])
                    continue
                value = pyro.sample(name, dist.Categorical(probs=probs), infer={"enumerate": "parallel"})
                if j in partially_observed:
                    match = (value == values[..., j]).to(probs.dtype).log()  # 0 or -inf
                    pyro.factor(name + EVIDENCE_SUFFIX, torch.where(observed[..., j], match, zero))
                sampled[j] = value
        return sampled

    return model


def _torch_block(plan: EnumerationPlan, cpts, rows: np.ndarray, observed: np.ndarray, episodes: slice, block_rows: slice, pad: bool = False):
    """Convert the tables ``(b, *parent_cards, K)`` and evidence ``(b, q, M)`` of one (episodes, rows) block to torch.

    With ``pad``, a block of one episode or one row gets a copy of it appended, so both plates have size 2 or more.
    """
    import torch

    structure = plan.structure
    num_episodes = rows.shape[0]
    values, mask = rows[episodes, block_rows], observed[episodes, block_rows]
    if pad:
        values, mask = _pad_to_two(values, axes=(0, 1)), _pad_to_two(mask, axes=(0, 1))
    tables: list = [None] * structure.num_variables
    for j in plan.variables:
        table = np.broadcast_to(np.asarray(cpts[j], dtype=np.float64), (num_episodes, *structure.table_shape(j)))[episodes]
        tables[j] = torch.as_tensor(np.array(_pad_to_two(table, axes=(0,)) if pad else table))
    return tables, torch.as_tensor(values), torch.as_tensor(mask)


def _enumerated_samples(plan, cpts, rows, observed, rng, budget) -> np.ndarray:
    import torch
    from pyro.infer import infer_discrete

    from bnbench.inference.torch_state import isolated_torch, seed_from

    samples = rows.copy()
    chunks = plan.chunks(rows.shape[0], rows.shape[1], budget)
    logger.debug("enumerating %d variables of %r in %d chunks", len(plan.enumerated), plan.structure.name, len(chunks))
    with isolated_torch(seed_from(rng)), torch.no_grad():
        for episodes, block_rows in chunks:
            tables, values, mask = _torch_block(plan, cpts, rows, observed, episodes, block_rows)
            model = _model(plan, tables, values, mask)
            sampled = infer_discrete(model, first_available_dim=-3, temperature=1)()
            block = samples[episodes, block_rows]  # a view
            for j in plan.enumerated:
                block[..., j] = sampled[j].expand(values.shape[:2]).numpy()
    return samples


def _enumerated_marginals(plan, cpts, rows, observed, budget) -> dict[int, np.ndarray]:
    import torch
    from pyro.infer import TraceEnum_ELBO

    from bnbench.inference.torch_state import torch_threads

    structure = plan.structure
    num_episodes, num_rows, _ = rows.shape
    marginals = {j: np.zeros((num_episodes, num_rows, structure.cardinalities[j])) for j in plan.variables}
    for j in plan.clamped:
        marginals[j] = np.eye(structure.cardinalities[j])[rows[..., j]]
    if not plan.enumerated:
        return marginals

    # compute_marginals raises KeyError for a plate of size 1 (pyro-ppl 1.9.2), so
    # blocks with one episode or one row are padded with a copy and cut back.
    with torch.no_grad(), torch_threads():
        for episodes, block_rows in plan.chunks(num_episodes, num_rows, budget / 4):
            tables, values, mask = _torch_block(plan, cpts, rows, observed, episodes, block_rows, pad=True)
            found = TraceEnum_ELBO(max_plate_nesting=2).compute_marginals(_model(plan, tables, values, mask), lambda: None)
            for j in plan.enumerated:
                probs = found[structure.variables[j]].probs.expand(*values.shape[:2], structure.cardinalities[j])
                block = marginals[j][episodes, block_rows]  # a view
                block[...] = probs[: block.shape[0], : block.shape[1]].numpy()
    return marginals


def _pad_to_two(array: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Double each of ``axes`` that has size 1 by repeating its one entry."""
    for axis in axes:
        if array.shape[axis] == 1:
            array = np.concatenate([array, array], axis=axis)
    return array


# Fallbacks and checks.


def _fallback_samples(plan, cpts, rows, observed, rng, fallback, num_particles, reason) -> np.ndarray:
    structure = plan.structure
    _log_fallback(structure, reason, fallback)
    if fallback == "elimination":
        try:
            return _eliminated_samples(plan, cpts, rows, observed, rng)
        except IntractableError as error:
            raise EnumerationLimitError(
                f"{reason}; the variable-elimination fallback is intractable too: {error}. "
                "Use fallback='likelihood-weighting' for approximate samples"
            ) from error
    if fallback == "likelihood-weighting":
        samples, effective = weighting.sample_given(structure, cpts, rows, observed, rng, num_particles)
        logger.info(
            "likelihood weighting with %d particles per row; effective sample size min %.3g, median %.3g",
            num_particles, float(effective.min()), float(np.median(effective)),
        )
        return samples
    raise EnumerationLimitError(f"{reason}; use fallback='elimination' or 'likelihood-weighting'")


def _eliminated_samples(plan: EnumerationPlan, cpts, rows, observed, rng) -> np.ndarray:
    """Exact sampling by variable elimination: each enumerated variable from P(x_j | evidence, earlier draws)."""
    values, known = rows.copy(), observed.copy()
    for j in plan.enumerated:
        marginal = exact_evidence.conditional_marginals(plan.structure, cpts, values, known, [j])[0]  # (B, Q, K)
        drawn = sample_categorical(marginal, rng)
        values[..., j] = np.where(known[..., j], values[..., j], drawn)
        known[..., j] = True
    return values


def _check_sampled_rows(
    structure: Structure, cpts: Sequence[np.ndarray], samples: np.ndarray, variables: Sequence[int], rows: np.ndarray, observed: np.ndarray
) -> None:
    """Raise `ImpossibleEvidenceError` for a sampled row of probability 0 or one that breaks its evidence.

    Under evidence of positive probability, every draw has positive probability and
    keeps the evidence, so either failure means the evidence had probability 0.
    """
    num_episodes = samples.shape[0]
    tables = [np.broadcast_to(t, (num_episodes, *structure.table_shape(j))) for j, t in enumerate(cpts)]
    possible = ((samples == rows) | ~observed).all(axis=-1)  # (B, Q)
    for j in variables:
        probabilities = gather_conditionals(structure, tables, samples, j)  # (B, Q, K)
        possible &= np.take_along_axis(probabilities, samples[..., j, None], axis=-1)[..., 0] > 0
    if not possible.all():
        episode, row = (int(i) for i in np.argwhere(~possible)[0])
        raise ImpossibleEvidenceError(
            f"the evidence of row {row} in episode {episode} has probability 0 under the tables of network "
            f"{structure.name!r} ({int((~possible).sum())} rows in all). Tables with zero entries (count MLE) "
            "cause this: smooth them with a Dirichlet prior (alpha > 0)"
        )


def _estimate_cell_bytes(structure: Structure, variables: Sequence[int], enumerated: Sequence[int], partial: Sequence[int]) -> float:
    """Estimated memory of one (episode, row) cell: factors plus the contraction's intermediates."""
    cards = structure.cardinalities
    enumerated_set = set(enumerated)
    symbol = opt_einsum.get_symbol
    entries = 0.0
    inputs, shapes = [], []
    for j in variables:
        enumerated_parents = [p for p in structure.parents[j] if p in enumerated_set]
        dims = enumerated_parents + ([j] if j in enumerated_set else [])
        entries += math.prod(cards[p] for p in enumerated_parents) * cards[j]  # the probabilities tensor
        if dims:
            inputs.append("".join(symbol(k) for k in dims))
            shapes.append(tuple(cards[k] for k in dims))
    for j in partial:
        inputs.append(symbol(j))
        shapes.append((cards[j],))
    if inputs:
        _, info = opt_einsum.contract_path(",".join(inputs) + "->", *shapes, shapes=True, optimize="greedy")
        entries += sum(math.prod(s) for s in shapes) + float(sum(info.size_list))
    return entries * BYTES_PER_ENTRY


def _check_fallback(fallback: str) -> None:
    if fallback not in FALLBACKS:
        raise ValueError(f"unknown fallback {fallback!r}; valid fallbacks: {list(FALLBACKS)}")


def _check_names(structure: Structure) -> None:
    """Reject variable names that collide with the model's plates or evidence factors."""
    names = set(structure.variables)
    reserved = {EPISODES_PLATE, ROWS_PLATE} | {v + EVIDENCE_SUFFIX for v in names}
    clashes = sorted(names & reserved)
    if clashes:
        raise ValueError(
            f"variables {clashes} of network {structure.name!r} collide with names of the enumeration model "
            f"(plates {EPISODES_PLATE!r}, {ROWS_PLATE!r} and factors ending in {EVIDENCE_SUFFIX!r}); rename them"
        )


def _log_fallback(structure: Structure, reason: str, fallback: str) -> None:
    logger.info("Pyro enumeration cannot run on %r (%s); falling back to %s", structure.name, reason, fallback)
