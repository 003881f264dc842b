"""Evidence on any subset of variables, and the exact conditional distribution it implies.

Evidence comes as a pair of arrays: ``rows`` ``(B, Q, M)`` with integer state codes,
and a boolean ``observed`` mask, either ``(M,)`` (the same variables observed in every
row) or ``(B, Q, M)`` (a different set per row). Entries of ``rows`` where ``observed``
is False are ignored. `encode_evidence` turns ``{variable: state label}`` into such a
row, matching states by label.

The exact conditionals are computed by variable elimination with evidence indicators:
observed variable j contributes the factor lambda_j(x_j) = 1[x_j = e_j] for its row
(all ones for a query variable), so one tensor contraction, batched over episodes and
rows, gives P(e) for every row at once, and its gradient with respect to the
indicators gives every conditional marginal. Only the ancestors of the query and of
the observed variables take part, because every other table sums to 1. `opt_einsum`
picks the elimination order and torch runs the contraction and its gradient. Rows
are split into chunks whose intermediate tables fit ``max_entries`` entries, and
`IntractableError` is raised when one row alone is too large.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import opt_einsum

from bnbench.estimators.base import sample_categorical
from bnbench.exact import MAX_JOINT_STATES, IntractableError, joint
from bnbench.sampling import gather_conditionals
from bnbench.structure import Structure

#: Largest intermediate table, in entries (episodes x rows x states), that one contraction may build.
MAX_CONTRACTION_ENTRIES = 2**24


class EvidenceError(ValueError):
    """Raised when evidence has the wrong shape, an invalid state code or an unknown label."""


class ImpossibleEvidenceError(EvidenceError):
    """Raised when evidence has probability 0 under the tables it is conditioned on."""


def validate_evidence(structure: Structure, rows: np.ndarray, observed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Check evidence and return ``(rows, observed)`` as int64 and bool arrays of shape ``(B, Q, M)``.

    Unobserved entries of ``rows`` may hold anything (for example -1); they are set to 0.
    Raises `EvidenceError` on a wrong shape or dtype, an invalid code in an observed
    entry, or zero query rows.
    """
    values = np.asarray(rows)
    mask = np.asarray(observed)
    num_variables = structure.num_variables
    if values.ndim != 3 or values.shape[-1] != num_variables:
        raise EvidenceError(
            f"evidence rows have shape {values.shape}; expected (episodes, rows, {num_variables}) "
            f"for network {structure.name!r}"
        )
    if values.shape[0] == 0 or values.shape[1] == 0:
        raise EvidenceError(f"evidence rows have shape {values.shape}; give at least one episode and one row")
    if not np.issubdtype(values.dtype, np.integer):
        raise EvidenceError(f"evidence rows have dtype {values.dtype}; expected integer state codes")
    if mask.dtype != np.bool_:
        raise EvidenceError(f"the observed mask has dtype {mask.dtype}; expected booleans (True = observed)")
    if mask.shape == (num_variables,):
        mask = np.broadcast_to(mask, values.shape)
    elif mask.shape != values.shape:
        raise EvidenceError(
            f"the observed mask has shape {mask.shape}; expected ({num_variables},) or the shape of the rows {values.shape}"
        )

    values = np.where(mask, values, 0).astype(np.int64)
    cards = np.asarray(structure.cardinalities)
    bad = (values < 0) | (values >= cards)
    if bad.any():
        position = tuple(int(i) for i in np.argwhere(bad)[0])
        j = position[-1]
        raise EvidenceError(
            f"evidence gives code {int(values[position])} for variable {structure.variables[j]!r} at index {position}; "
            f"valid codes are 0..{cards[j] - 1} (states {list(structure.state_names[j])})"
        )
    return values, np.array(mask, dtype=bool)


def encode_evidence(structure: Structure, evidence: Mapping[str, object]) -> tuple[np.ndarray, np.ndarray]:
    """Turn ``{variable: state label}`` into a row ``(M,)`` of codes and an observed mask ``(M,)``.

    States are matched by label, compared as text, so an integer 2 selects the state
    named ``"2"`` whatever its position. Raises `KeyError` for an unknown variable and
    `EvidenceError` for an unknown state.
    """
    row = np.zeros(structure.num_variables, dtype=np.int64)
    observed = np.zeros(structure.num_variables, dtype=bool)
    for variable, label in evidence.items():
        j = structure.index(variable)
        states = structure.state_names[j]
        if str(label) not in states:
            raise EvidenceError(f"variable {variable!r} has no state {label!r}; its states are {list(states)}")
        row[j] = states.index(str(label))
        observed[j] = True
    return row, observed


def conditional_marginals(
    structure: Structure,
    cpts: Sequence[np.ndarray],
    rows: np.ndarray,
    observed: np.ndarray,
    variables: Sequence[int] | None = None,
    max_entries: int = MAX_CONTRACTION_ENTRIES,
) -> list[np.ndarray]:
    """Exact P(x_j | the evidence of each row) for each of ``variables`` (default: all).

    Args:
        structure: The graph.
        cpts: Tables ``(B or 1, *parent_cards, card)``.
        rows, observed: Evidence, as in `validate_evidence`.
        variables: Indices of the variables to return marginals of.
        max_entries: Largest intermediate table of one contraction.

    Returns:
        One array ``(B, Q, card_j)`` per requested variable; an observed variable's
        marginal is the indicator of its observed state.

    Raises:
        ImpossibleEvidenceError: Some row's evidence has probability 0.
        IntractableError: One row alone needs an intermediate above ``max_entries``.
    """
    rows, observed = validate_evidence(structure, rows, observed)
    targets = range(structure.num_variables) if variables is None else variables
    return _IndicatorContraction(structure, cpts, rows, observed, max_entries).marginals([int(j) for j in targets])


def evidence_probability(
    structure: Structure, cpts: Sequence[np.ndarray], rows: np.ndarray, observed: np.ndarray, max_entries: int = MAX_CONTRACTION_ENTRIES
) -> np.ndarray:
    """P(evidence) of each row, shape ``(B, Q)``."""
    rows, observed = validate_evidence(structure, rows, observed)
    return _IndicatorContraction(structure, cpts, rows, observed, max_entries).probability()


def conditional_joint(
    structure: Structure, cpts: Sequence[np.ndarray], rows: np.ndarray, observed: np.ndarray, max_entries: int = MAX_CONTRACTION_ENTRIES
) -> np.ndarray:
    """Exact joint P(x | evidence) of each row, shape ``(B, Q, *cards)``.

    Raises `IntractableError` when the joint has more than `bnbench.exact.MAX_JOINT_STATES`
    states or the result would exceed ``max_entries`` entries, and
    `ImpossibleEvidenceError` when some row's evidence has probability 0.
    """
    rows, observed = validate_evidence(structure, rows, observed)
    num_episodes, num_rows, _ = rows.shape
    num_states = structure.num_joint_states
    if num_states > MAX_JOINT_STATES or num_episodes * num_rows * num_states > max_entries:
        raise IntractableError(
            f"the conditional joint of network {structure.name!r} has {num_states:.3g} states per row "
            f"({num_episodes} x {num_rows} rows), above the limit of {max_entries:.3g} entries"
        )
    full = joint(structure, list(cpts))  # (B or 1, *cards)
    full = np.broadcast_to(full.reshape(full.shape[0], 1, num_states), (num_episodes, num_rows, num_states))

    # Mask out joint states that disagree with any observed value of the row.
    states = np.indices(structure.cardinalities).reshape(structure.num_variables, -1).T  # (S, M)
    agrees = (~observed[:, :, None, :]) | (states[None, None] == rows[:, :, None, :])  # (B, Q, S, M)
    masked = full * agrees.all(axis=-1)
    total = masked.sum(axis=-1, keepdims=True)
    _raise_if_impossible(structure, total[..., 0])
    return (masked / total).reshape(num_episodes, num_rows, *structure.cardinalities)


def forward_sample_rest(
    structure: Structure,
    cpts: Sequence[np.ndarray],
    rows: np.ndarray,
    fixed: Sequence[int],
    rng: np.random.Generator,
) -> np.ndarray:
    """Fill every variable not in ``fixed`` by ancestral sampling given the values of ``rows``.

    ``fixed`` must be closed under taking parents (an ancestral set), so that the
    remaining variables, given it, follow their own tables. ``cpts`` are
    ``(B or 1, *parent_cards, card)``; ``rows`` ``(B, Q, M)`` is filled in place and returned.
    """
    fixed_set = set(fixed)
    num_episodes = rows.shape[0]
    tables = [np.broadcast_to(t, (num_episodes, *structure.table_shape(j))) for j, t in enumerate(cpts)]
    for j in range(structure.num_variables):
        if j not in fixed_set:
            rows[..., j] = sample_categorical(gather_conditionals(structure, tables, rows, j), rng)  # (B, Q)
    return rows


def _raise_if_impossible(structure: Structure, probability: np.ndarray) -> None:
    """Raise `ImpossibleEvidenceError` naming the first row whose evidence probability is 0."""
    zero = ~(probability > 0)
    if zero.any():
        episode, row = (int(i) for i in np.argwhere(zero)[0])
        raise ImpossibleEvidenceError(
            f"the evidence of row {row} in episode {episode} has probability 0 under the tables of network "
            f"{structure.name!r} ({int(zero.sum())} rows in all); no value of the other variables is consistent with it. "
            "Tables with zero entries (count MLE) cause this: smooth them with a Dirichlet prior (alpha > 0)"
        )


class _IndicatorContraction:
    """Batched contractions of tables and evidence indicators; see the module docstring.

    Symbol 0 is the episode axis, symbol 1 the row axis and symbol j + 2 variable j.
    P(e) is multilinear in the indicators, so the gradient of P(e) with respect to
    lambda_j is P(x_j, e without x_j's own evidence): one forward and one backward
    pass give the marginals of every variable (the differential approach to
    inference). torch provides the gradient.
    """

    def __init__(self, structure: Structure, cpts: Sequence[np.ndarray], rows: np.ndarray, observed: np.ndarray, max_entries: int):
        self.structure = structure
        self.rows = rows
        self.observed = observed
        self.max_entries = max_entries
        num_episodes = rows.shape[0]
        self.tables = [np.broadcast_to(np.asarray(t, dtype=np.float64), (num_episodes, *structure.table_shape(j))) for j, t in enumerate(cpts)]
        self.evidence_variables = [int(j) for j in np.flatnonzero(observed.any(axis=(0, 1)))]

    def probability(self) -> np.ndarray:
        """P(e) of each row, ``(B, Q)``."""
        return np.concatenate([p for p, _ in self._chunks([], gradients=False)], axis=1)

    def marginals(self, targets: Sequence[int]) -> list[np.ndarray]:
        """P(x_j | e) ``(B, Q, K_j)`` for each of ``targets``; raises `ImpossibleEvidenceError` when P(e) = 0."""
        targets = list(targets)
        found: list[list[np.ndarray]] = [[] for _ in targets]
        for probability, gradients in self._chunks(targets, gradients=True):
            _raise_if_impossible(self.structure, probability)
            for position, gradient in enumerate(gradients):
                found[position].append(gradient / gradient.sum(axis=-1, keepdims=True))
        marginals = [np.concatenate(parts, axis=1) for parts in found]
        for position, j in enumerate(targets):
            # The gradient leaves out x_j's own evidence; an observed value is certain.
            one_hot = np.eye(self.structure.cardinalities[j])[self.rows[..., j]]
            marginals[position] = np.where(self.observed[..., j, None], one_hot, marginals[position])
        return marginals

    def _chunks(self, targets: list[int], gradients: bool):
        """Yield (P(e) ``(B, q)``, [dP(e)/dlambda_j ``(B, q, K_j)`` for j in targets]) per chunk of rows."""
        import torch

        from bnbench.inference.torch_state import torch_threads

        num_rows = self.rows.shape[1]
        path, chunk = self._plan(targets, gradients)
        for start in range(0, num_rows, chunk):
            equation, operands, indicators = self._operands(targets, slice(start, start + chunk), torch)
            if gradients:
                for j in targets:
                    indicators[j].requires_grad_(True)
            with torch.set_grad_enabled(gradients), torch_threads():
                probability = opt_einsum.contract(equation, *operands, optimize=path, backend="torch")  # (B, q)
                found = torch.autograd.grad(probability.sum(), [indicators[j] for j in targets]) if targets else []
            yield probability.detach().numpy(), [g.numpy() for g in found]

    def _operands(self, targets: Sequence[int], rows: slice, torch=None):
        """Build the contraction's equation, its operands, and the indicator operands by variable.

        Operands are numpy arrays, or torch tensors when ``torch`` is the torch module.
        """
        structure = self.structure
        symbol = opt_einsum.get_symbol
        with_indicator = set(self.evidence_variables) | set(targets)
        relevant = structure.ancestors(sorted(with_indicator))
        values, observed = self.rows[:, rows], self.observed[:, rows]
        num_episodes, num_rows = values.shape[:2]
        convert = (lambda a: torch.as_tensor(np.array(a))) if torch is not None else (lambda a: a)

        inputs = [symbol(0) + symbol(1)]
        operands = [convert(np.ones((num_episodes, num_rows)))]
        indicators = {}
        for j in relevant:
            inputs.append(symbol(0) + "".join(symbol(p + 2) for p in structure.parents[j]) + symbol(j + 2))
            operands.append(convert(self.tables[j]))
            if j in with_indicator:
                one_hot = np.eye(structure.cardinalities[j])[values[..., j]]  # (B, q, K_j)
                indicators[j] = convert(np.where(observed[..., j, None], one_hot, 1.0))
                inputs.append(symbol(0) + symbol(1) + symbol(j + 2))
                operands.append(indicators[j])
        return ",".join(inputs) + "->" + symbol(0) + symbol(1), operands, indicators

    def _plan(self, targets: list[int], gradients: bool) -> tuple[list, int]:
        """Find the elimination order for one row, and the number of rows per chunk it allows.

        Every chunk reuses the order: an intermediate with the row axis grows linearly
        with the chunk. The backward pass keeps every intermediate, so with gradients
        their sum, not the largest, must stay below ``max_entries``.
        """
        equation, operands, _ = self._operands(targets, slice(0, 1))
        path, info = opt_einsum.contract_path(equation, *operands, optimize="greedy")
        per_row = max(int(sum(info.size_list) if gradients else info.largest_intermediate), 1)
        if per_row > self.max_entries:
            raise IntractableError(
                f"exact inference under evidence in network {self.structure.name!r} needs intermediate tables of "
                f"{per_row:.3g} entries for one row of {self.rows.shape[0]} episodes, above the limit of {self.max_entries:.3g}"
            )
        return path, max(1, self.max_entries // per_row)
