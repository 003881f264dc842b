"""Checkpoints of trained transformers: weights plus everything needed to check compatibility.

A checkpoint is a ``torch.save`` file holding only tensors and plain Python values,
so it loads with ``torch.load(weights_only=True)``. Its keys:

* ``format``, ``format_version``: identify the file layout (`CHECKPOINT_FORMAT`, `FORMAT_VERSION`).
* ``encoding_version``: the token layout it was trained with
  (`bnbench.transformers.encoding.ENCODING_VERSION`); another version is rejected.
* ``structure``: network name, variables in order, state names, cardinalities and parents.
* ``model``: `ModelConfig` settings; ``training``: `TrainingConfig` settings.
* ``steps``, ``wall_seconds``, ``final_loss``, ``final_metrics``: how training went.
* ``command``: the ``bnbench train`` command that rebuilds the file.
* ``versions``: torch, numpy and bnbench versions used to train.
* ``state_dict``: the weights.

Compatibility with a network means the same variables in the same order, the same
cardinalities and the same parent lists. State labels may differ, because the model
reads integer codes only, and a difference is logged.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

import bnbench
from bnbench.structure import Structure
from bnbench.transformers.encoding import ENCODING_VERSION
from bnbench.transformers.trained import ModelConfig, RowTransformer

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "bnbench-trained-transformer"
#: Bump when the checkpoint keys change meaning.
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """Raised when a file is not a readable bnbench checkpoint."""


class CheckpointMismatchError(CheckpointError):
    """Raised when a checkpoint was trained for another network or another encoding version."""


@dataclass(frozen=True, eq=False)
class Checkpoint:
    """A loaded checkpoint: the model, its network structure and the stored metadata."""

    path: Path
    model: RowTransformer
    structure: Structure
    metadata: dict[str, Any]

    @property
    def command(self) -> str:
        return str(self.metadata.get("command", ""))


def structure_to_dict(structure: Structure) -> dict[str, Any]:
    return {
        "name": structure.name,
        "variables": list(structure.variables),
        "state_names": [list(states) for states in structure.state_names],
        "cardinalities": list(structure.cardinalities),
        "parents": [list(parents) for parents in structure.parents],
    }


def structure_from_dict(data: dict[str, Any]) -> Structure:
    return Structure(
        name=str(data["name"]),
        variables=tuple(data["variables"]),
        state_names=tuple(tuple(states) for states in data["state_names"]),
        parents=tuple(tuple(int(p) for p in parents) for parents in data["parents"]),
    )


def save_checkpoint(
    path: str | Path,
    model: RowTransformer,
    structure: Structure,
    training: dict[str, Any],
    *,
    steps: int,
    wall_seconds: float,
    final_loss: float,
    final_metrics: list[dict[str, Any]],
    command: str,
) -> Path:
    """Write a checkpoint atomically (a temporary file renamed into place) and return its path."""
    path = Path(path)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": FORMAT_VERSION,
        "encoding_version": ENCODING_VERSION,
        "structure": structure_to_dict(structure),
        "model": model.config.to_dict(),
        "training": dict(training),
        "steps": int(steps),
        "wall_seconds": float(wall_seconds),
        "final_loss": float(final_loss),
        "final_metrics": list(final_metrics),
        "command": command,
        "versions": {"torch": str(torch.__version__), "numpy": np.__version__, "bnbench": bnbench.__version__},
        # Stored in float32 on the CPU so the file loads anywhere.
        "state_dict": {k: v.detach().to("cpu", torch.float32).clone() for k, v in model.state_dict().items()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(payload, temporary)
    os.replace(temporary, path)
    return path


def read_metadata(path: str | Path) -> dict[str, Any]:
    """Everything in the checkpoint except the weights; raises `CheckpointError` for a foreign or broken file."""
    return {k: v for k, v in _read(Path(path)).items() if k != "state_dict"}


def load_checkpoint(path: str | Path, structure: Structure | None = None, device: str | torch.device = "cpu") -> Checkpoint:
    """Load a checkpoint, check it against ``structure`` when given, and move the model to ``device``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: the file is not a bnbench checkpoint of a known format version.
        CheckpointMismatchError: another encoding version, or another network than ``structure``.
    """
    path = Path(path)
    payload = _read(path)
    trained_for = structure_from_dict(payload["structure"])
    if structure is not None:
        check_compatible(trained_for, structure, path)
    config = ModelConfig.from_dict(payload["model"])
    model = RowTransformer(config)
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as error:
        raise CheckpointError(f"checkpoint {str(path)!r} has weights that do not fit its model settings: {error}") from None
    model.to(device).eval()
    metadata = {k: v for k, v in payload.items() if k != "state_dict"}
    return Checkpoint(path=path, model=model, structure=trained_for, metadata=metadata)


def check_compatible(trained_for: Structure, structure: Structure, path: str | Path = "checkpoint") -> None:
    """Raise `CheckpointMismatchError` unless ``structure`` has the variables, cardinalities and parents trained for."""
    problem = mismatch(trained_for, structure)
    if problem is not None:
        raise CheckpointMismatchError(
            f"checkpoint {str(path)!r} was trained for network {trained_for.name!r}, not {structure.name!r}: "
            f"{problem}. Use a checkpoint trained for this network, or train one with "
            f"'bnbench train --network {structure.name}'"
        )
    if trained_for.state_names != structure.state_names:
        logger.info(
            "checkpoint %s: state labels differ from network %r; the model uses integer codes only",
            path,
            structure.name,
        )


def mismatch(trained_for: Structure, structure: Structure) -> str | None:
    """Return the first difference that makes a checkpoint unusable for ``structure``, or None."""
    if trained_for.variables != structure.variables:
        return f"variables {list(trained_for.variables)} versus {list(structure.variables)}"
    if trained_for.cardinalities != structure.cardinalities:
        return f"cardinalities {list(trained_for.cardinalities)} versus {list(structure.cardinalities)}"
    if trained_for.parents != structure.parents:
        differing = [v for j, v in enumerate(structure.variables) if trained_for.parents[j] != structure.parents[j]]
        return f"the parents of {differing} differ"
    return None


def shipped_directory() -> Path:
    """Return the directory of the checkpoints shipped with bnbench (package data ``bnbench/checkpoints``)."""
    return Path(str(resources.files("bnbench") / "checkpoints"))


def shipped_checkpoints() -> list[Path]:
    directory = shipped_directory()
    return sorted(directory.glob("*.pt")) if directory.is_dir() else []


def find_checkpoint(structure: Structure, directory: str | Path | None = None) -> Path | None:
    """Return the first checkpoint in ``directory`` (default: the shipped ones) whose structure fits, or None.

    Matching compares structures, not names, because a synthetic network's name
    carries its options.
    """
    paths = sorted(Path(directory).glob("*.pt")) if directory is not None else shipped_checkpoints()
    for path in paths:
        try:
            trained_for = trained_structure(path)
        except (CheckpointError, OSError) as error:
            logger.warning("skipping unreadable checkpoint %s: %s", path, error)
            continue
        if mismatch(trained_for, structure) is None:
            return path
    return None


def trained_structure(path: str | Path) -> Structure:
    """The structure a checkpoint was trained for, read once per version of the file."""
    return _cached_structure(str(path), Path(path).stat().st_mtime_ns)


@lru_cache(maxsize=64)
def _cached_structure(path: str, modified_ns: int) -> Structure:
    return structure_from_dict(read_metadata(path)["structure"])


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} not found; give the path of a file written by 'bnbench train'")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several unrelated types for a foreign file
        raise CheckpointError(f"cannot read checkpoint {str(path)!r}: {type(error).__name__}: {error}") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a bnbench trained-transformer checkpoint")
    if payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has format version {payload.get('format_version')}; this bnbench reads "
            f"version {FORMAT_VERSION}. Retrain it with the command stored in the file"
        )
    if payload.get("encoding_version") != ENCODING_VERSION:
        raise CheckpointMismatchError(
            f"checkpoint {str(path)!r} was trained with token encoding version {payload.get('encoding_version')}, "
            f"but this bnbench uses version {ENCODING_VERSION}; retrain it with: {payload.get('command', 'bnbench train')}"
        )
    return payload
