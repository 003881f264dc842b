"""The trained transformer as an estimator: a checkpoint's model run on each episode's context.

Without a ``checkpoint`` setting the estimator uses the shipped checkpoint whose network
structure (variables, cardinalities, parents) matches the episodes. The harness skips
networks without one and writes the reason in the record's note. With
``checkpoint=PATH`` it uses that file and raises `CheckpointMismatchError` when the
file was trained for another network.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bnbench.episodes import Context
from bnbench.estimators.base import Estimator
from bnbench.structure import Structure
from bnbench.training.checkpoint import (
    Checkpoint,
    check_compatible,
    find_checkpoint,
    load_checkpoint,
    mismatch,
    read_metadata,
    shipped_checkpoints,
    trained_structure,
)
from bnbench.training.loop import resolve_device
from bnbench.transformers.trained import predict_conditionals

logger = logging.getLogger(__name__)


class _ClassOrInstanceMethod:
    """Bind to the instance when called on one and to the class otherwise.

    `unavailable_reason` needs the instance's ``checkpoint`` setting when there is one, and
    callers that only hold the class still get the shipped-checkpoint result.
    """

    def __init__(self, function: Callable[..., Any]):
        self.function = function
        functools.update_wrapper(self, function)  # type: ignore[arg-type]

    def __get__(self, instance: object, owner: type) -> Callable[..., Any]:
        return functools.partial(self.function, owner if instance is None else instance)


class TrainedTransformer(Estimator):
    """A transformer trained with ``bnbench train``; conditions on the whole prefix of a row.

    Args:
        checkpoint: Path of a checkpoint file; None picks the shipped checkpoint of the network.
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA when available).
        query_chunk: Query rows per forward pass; bounds memory at ``B x heads x chunk x N`` floats.

    Fitted attributes: ``checkpoint_`` (the loaded `Checkpoint`) and ``context_rows_``
    (the context as a ``(B, N, M)`` tensor on the device).
    """

    name = "trained-transformer"
    # The model reads every earlier column of a query row; whether it ignores non-parents is
    # learned, not built in, so it has no parents-only table.
    conditions_on = "prefix"

    def __init__(self, checkpoint: str | None = None, device: str = "cpu", query_chunk: int = 256):
        if checkpoint is not None and not Path(checkpoint).is_file():
            raise FileNotFoundError(
                f"checkpoint {checkpoint!r} not found; give the path of a file written by 'bnbench train', "
                "or leave checkpoint unset to use a shipped one"
            )
        if query_chunk < 1:
            raise ValueError(f"query_chunk must be at least 1; got {query_chunk}")
        self.checkpoint = checkpoint
        self.device = device
        self.query_chunk = int(query_chunk)
        self.checkpoint_: Checkpoint | None = None
        self.context_rows_: torch.Tensor | None = None

    @_ClassOrInstanceMethod
    def unavailable_reason(self_or_class: Any, structure: Structure) -> str | None:  # noqa: N805
        """Why no checkpoint fits ``structure`` (the given one, or any shipped one), or None."""
        path = getattr(self_or_class, "checkpoint", None) if not isinstance(self_or_class, type) else None
        if path is not None:
            trained_for = trained_structure(path)
            problem = mismatch(trained_for, structure)
            if problem is None:
                return None
            return f"checkpoint {path} was trained for network {trained_for.name!r}, not {structure.name!r} ({problem})"
        if find_checkpoint(structure) is not None:
            return None
        shipped = ", ".join(_trained_for(p) for p in shipped_checkpoints()) or "none"
        return (
            f"no shipped checkpoint fits network {structure.name!r} (shipped: {shipped}); "
            f"train one with 'bnbench train --network {structure.name} --output FILE.pt' "
            "and pass it as 'trained-transformer:checkpoint=FILE.pt'"
        )

    def fit(self, context: Context) -> TrainedTransformer:
        device = resolve_device(self.device)
        structure = context.structure
        path = self.checkpoint
        if path is None:
            found = find_checkpoint(structure)
            if found is None:
                raise ValueError(self.unavailable_reason(structure))
            path = str(found)
        self.checkpoint_ = _load_cached(str(path), Path(path).stat().st_mtime_ns, str(device))
        check_compatible(self.checkpoint_.structure, structure, path)
        self.context_rows_ = torch.as_tensor(context.rows, device=device)
        self.context_ = context
        return self

    def provenance(self) -> dict[str, Any]:
        """Return the path, SHA-256 digest and training steps of the checkpoint that `fit` loaded."""
        if self.checkpoint_ is None:
            return {}
        path = self.checkpoint_.path
        return {
            "checkpoint": str(path),
            "checkpoint_sha256": _file_digest(str(path), path.stat().st_mtime_ns),
            "checkpoint_steps": self.checkpoint_.metadata.get("steps"),
        }

    def conditionals(self, rows: np.ndarray, target: int) -> np.ndarray:
        context = self.fitted_context
        if self.checkpoint_ is None or self.context_rows_ is None:
            raise RuntimeError("the estimator lost its fitted state; call fit again")
        rows = np.asarray(rows)
        expected = (context.num_episodes, context.structure.num_variables)
        if rows.ndim != 3 or (rows.shape[0], rows.shape[2]) != expected:
            raise ValueError(f"query rows have shape {rows.shape}; expected ({expected[0]}, Q, {expected[1]})")
        if not np.issubdtype(rows.dtype, np.integer):
            raise ValueError(f"query rows have dtype {rows.dtype}; expected integer state codes")
        if not 0 <= target < context.structure.num_variables:
            raise ValueError(f"target {target} is out of range; the network has {context.structure.num_variables} variables")
        if rows.shape[1] == 0:
            return np.zeros((rows.shape[0], 0, context.structure.cardinalities[target]))

        queries = torch.as_tensor(rows.astype(np.int64, copy=False), device=self.context_rows_.device)
        probabilities = predict_conditionals(
            self.checkpoint_.model, self.context_rows_, queries, target, self.query_chunk
        )  # (B, Q, card)
        result = probabilities.double().cpu().numpy()
        return result / result.sum(axis=-1, keepdims=True)

    def synchronize(self) -> None:
        """Wait for queued CUDA work, so that timers measure finished computation."""
        if self.context_rows_ is not None and self.context_rows_.device.type == "cuda":
            torch.cuda.synchronize(self.context_rows_.device)


@functools.lru_cache(maxsize=8)
def _load_cached(path: str, modified_ns: int, device: str) -> Checkpoint:
    """Load each version of a checkpoint file once per device; the model is never trained after loading."""
    return load_checkpoint(path, device=device)


@functools.lru_cache(maxsize=8)
def _file_digest(path: str, modified_ns: int) -> str:
    """SHA-256 of a file, computed once per version of it."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _trained_for(path: Path) -> str:
    try:
        return f"{path.name} ({read_metadata(path)['structure']['name']})"
    except (ValueError, OSError):
        return f"{path.name} (unreadable)"
