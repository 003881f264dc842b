"""The exact transformer as an estimator: attention layers that compute the count MLE in context.

`fit` builds `bnbench.transformers.exact.ExactTransformerModel` for the network's
structure and runs each episode's context rows through it once, caching the keys
and values that every later query attends to. `conditionals` encodes the query rows
as tokens for one target variable and runs them through the model. `generate` does
that once per variable in topological order: it samples the variable from the
model's output and writes it into the next query tokens. The count estimator is
never called, because the counting happens inside layer-2 attention.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from bnbench.episodes import Context
from bnbench.estimators.base import Estimator, NotFittedError, sample_categorical
from bnbench.structure import Structure
from bnbench.transformers.exact import (
    DEFAULT_BETA,
    POLICIES,
    ContextCache,
    ExactTransformerModel,
    Policy,
    num_parameters,
)

logger = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "float64": torch.float64}
#: Largest model, in weights, that the estimator builds (2**26 weights are 512 MiB in float64).
MAX_PARAMETERS = 2**26
#: Largest attention score matrix (episodes x queries x context rows) computed at once; queries are chunked to fit.
MAX_SCORE_ELEMENTS = 2**24


class ExactTransformer(Estimator):
    """Count MLE computed by a two-layer transformer with constructed weights.

    Agrees with ``mle`` (same ``policy``, no pseudo-counts) to within N exp(-beta / 2)
    per entry plus rounding; see `bnbench.transformers.exact` for the construction
    and the bound.

    Args:
        beta: Inverse temperature of the layer-2 scores (positive). The default 100
            makes the bound smaller than float64 rounding for N up to 10^6.
        policy: Estimate for parent configurations absent from the context,
            ``"uniform"`` or ``"marginal"`` (as in ``mle``).
        device: Torch device for the model and the cached keys and values (``"cpu"``, ``"cuda"``,
            ``"cuda:1"``). NOTE: the CUDA path has only been written, not run; its tests skip without a GPU.
        dtype: ``"float64"`` or ``"float32"``.

    Fitted attributes: ``model_`` (the module, reused while refitting on the same structure)
    and ``cache_`` (keys and values of every episode's context).
    """

    name = "exact-transformer"
    conditions_on = "parents"

    def __init__(
        self, beta: float = DEFAULT_BETA, policy: Policy = "uniform", device: str = "cpu", dtype: str = "float64"
    ):
        if not (isinstance(beta, (int, float)) and np.isfinite(beta) and beta > 0):
            raise ValueError(f"beta must be a positive finite number; got {beta!r}")
        if policy not in POLICIES:
            raise ValueError(
                f"unknown unseen-configuration policy {policy!r} for the exact transformer; valid policies: "
                f"{list(POLICIES)} (its output is always a probability vector, so there is no 'nan' policy)"
            )
        if dtype not in DTYPES:
            raise ValueError(f"unknown dtype {dtype!r}; valid dtypes: {list(DTYPES)}")
        self.beta = float(beta)
        self.policy = policy
        self.device = str(device)
        self.dtype = dtype
        self._torch_device = _parse_device(self.device)
        self._torch_dtype = DTYPES[dtype]
        self.model_: ExactTransformerModel | None = None
        self.cache_: ContextCache | None = None

    @classmethod
    def unavailable_reason(cls, structure: Structure) -> str | None:
        count = num_parameters(structure)
        if count > MAX_PARAMETERS:
            return (
                f"the exact transformer for network {structure.name!r} has {count:,} dense weights, above the "
                f"limit of {MAX_PARAMETERS:,}; its residual stream grows with the sum of cardinalities"
            )
        return None

    def fit(self, context: Context) -> ExactTransformer:
        structure = context.structure
        model = self.model_
        if model is None or model.structure is not structure or (model.beta, model.policy) != (self.beta, self.policy):
            reason = self.unavailable_reason(structure)
            if reason is not None:
                raise ValueError(reason)
            model = ExactTransformerModel(structure, self.beta, self.policy)
            model = model.to(device=self._torch_device, dtype=self._torch_dtype)
            logger.debug("built the exact transformer of %r (%d weights)", structure.name, num_parameters(structure))

        with torch.inference_mode():
            rows = torch.as_tensor(context.rows, device=self._torch_device)  # (B, N, M)
            # Context keys and values ignore the target indicator, so target 0 encodes every context.
            tokens = model.encoding.encode(rows, 0, query=False, dtype=self._torch_dtype)  # (B, N, token_width)
            self.cache_ = model.encode_context(tokens)
        self.model_ = model
        self.context_ = context
        return self

    def conditionals(self, rows: np.ndarray, target: int) -> np.ndarray:
        target = self._check_target(target)
        rows = self._check_query_rows(rows, target)
        card = self.fitted_context.structure.cardinalities[target]
        with torch.inference_mode():
            outputs = self._run_queries(torch.as_tensor(rows, device=self._torch_device), target)  # (B, Q, max_card)
            return _to_probabilities(outputs[..., :card])

    def all_conditionals(self, rows: np.ndarray) -> list[np.ndarray]:
        """P(x_j | parents) of every variable j for every row, in one batched pass over M * Q query tokens.

        ``rows`` ``(B, Q, M)`` -> one ``(B, Q, card_j)`` array per variable; the same
        values as calling `conditionals` once per variable.
        """
        structure = self.fitted_context.structure
        rows = self._check_query_rows(rows, structure.num_variables)
        num_episodes, num_queries, num_variables = rows.shape
        with torch.inference_mode():
            queries = torch.as_tensor(rows, device=self._torch_device)
            repeated = queries.repeat_interleave(num_variables, dim=1)  # (B, Q * M, M), row-major in (query, target)
            targets = torch.arange(num_variables, device=self._torch_device).repeat(num_episodes, num_queries)
            outputs = self._run_queries(repeated, targets)  # (B, Q * M, max_card)
        # Entries past a target's cardinality are exactly 0, so all rows are normalized at once.
        probabilities = _to_probabilities(outputs).reshape(num_episodes, num_queries, num_variables, -1)
        return [probabilities[:, :, j, :card] for j, card in enumerate(structure.cardinalities)]

    def generate(self, num_rows: int, rng: np.random.Generator) -> np.ndarray:
        """Draw ``num_rows`` rows per episode, one variable at a time, all rows and episodes in each pass."""
        context = self.fitted_context
        structure = context.structure
        if num_rows < 0:
            raise ValueError(f"num_rows must be 0 or more; got {num_rows}")
        with torch.inference_mode():
            rows = torch.zeros(
                (context.num_episodes, num_rows, structure.num_variables), dtype=torch.long, device=self._torch_device
            )
            for j, card in enumerate(structure.cardinalities):
                probabilities = _to_probabilities(self._run_queries(rows, j)[..., :card])  # (B, R, card)
                rows[:, :, j] = torch.from_numpy(sample_categorical(probabilities, rng)).to(self._torch_device)
            return rows.cpu().numpy()

    def synchronize(self) -> None:
        """Wait for queued CUDA work, so that a timer stopped afterwards measures it."""
        if self._torch_device.type == "cuda":
            torch.cuda.synchronize(self._torch_device)

    # Helpers.

    def _run_queries(self, rows: torch.Tensor, targets: int | torch.Tensor) -> torch.Tensor:
        """Model outputs ``(B, Q, max_card)`` for integer query rows ``(B, Q, M)`` on the device.

        ``targets`` is one variable index or a ``(B, Q)`` tensor of them. Queries run in
        chunks so that no attention score matrix exceeds `MAX_SCORE_ELEMENTS`.
        """
        model, cache = self.fitted_model, self.fitted_cache
        num_episodes, num_queries, _ = rows.shape
        chunk = max(1, MAX_SCORE_ELEMENTS // (num_episodes * max(cache.num_rows + 1, model.layout.width)))
        outputs = []
        for start in range(0, num_queries, chunk):
            part = slice(start, start + chunk)
            chunk_targets = targets if isinstance(targets, int) else targets[:, part]
            tokens = model.encoding.encode(rows[:, part], chunk_targets, query=True, dtype=self._torch_dtype)
            outputs.append(model.query(cache, tokens))  # (B, chunk, max_card)
        if not outputs:
            width = model.unembedding.out_features
            return torch.zeros((num_episodes, 0, width), dtype=self._torch_dtype, device=rows.device)
        return torch.cat(outputs, dim=1)

    def _check_query_rows(self, rows: np.ndarray, num_visible: int) -> np.ndarray:
        """Validate query rows ``(B, Q, M)``, setting columns from ``num_visible`` on to 0 (the tokens mask them)."""
        context = self.fitted_context
        structure = context.structure
        rows = np.asarray(rows)
        if rows.ndim != 3 or rows.shape[0] != context.num_episodes or rows.shape[2] != structure.num_variables:
            raise ValueError(
                f"query rows have shape {rows.shape}; expected ({context.num_episodes}, queries, "
                f"{structure.num_variables}): one block of rows per fitted episode"
            )
        visible = rows.copy()
        visible[..., num_visible:] = 0
        return structure.validate_rows(visible, what="query rows")

    def _check_target(self, target: int) -> int:
        structure = self.fitted_context.structure
        if not (isinstance(target, (int, np.integer)) and 0 <= target < structure.num_variables):
            raise ValueError(
                f"target {target!r} is not a variable index of network {structure.name!r}; "
                f"use 0..{structure.num_variables - 1}"
            )
        return int(target)

    @property
    def fitted_model(self) -> ExactTransformerModel:
        if self.model_ is None:
            raise NotFittedError(f"estimator {self.name!r} is not fitted; call fit(context) first")
        return self.model_

    @property
    def fitted_cache(self) -> ContextCache:
        if self.cache_ is None:
            raise NotFittedError(f"estimator {self.name!r} is not fitted; call fit(context) first")
        return self.cache_


def _to_probabilities(outputs: torch.Tensor) -> np.ndarray:
    """Model outputs on any device -> float64 numpy rows divided by their sums.

    The model's rows are convex combinations of probability vectors; the division
    removes the rounding of their sums (about 1e-7 in float32).
    """
    probabilities = outputs.to(device="cpu", dtype=torch.float64).numpy()
    return probabilities / probabilities.sum(axis=-1, keepdims=True)


def _parse_device(device: str) -> torch.device:
    try:
        parsed = torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"invalid device {device!r}: {error}; use 'cpu', 'cuda' or 'cuda:INDEX'") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but torch finds no CUDA device; use device='cpu'")
    if parsed.type not in ("cpu", "cuda"):
        # NOTE: only CPU and CUDA have been considered; other backends may lack float64 support.
        raise ValueError(f"device {device!r} is not supported; use 'cpu' or 'cuda'")
    return parsed
