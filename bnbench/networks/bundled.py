"""The discrete bnlearn networks bundled in pgmpy's wheel, loaded offline with a local cache.

pgmpy ships the networks as gzipped BIF files. Parsing the large ones takes seconds
(about 10 s for diabetes), so each parsed network is cached as ``.npz`` under
``$BNBENCH_CACHE_DIR`` (default ``~/.cache/bnbench``), keyed by the file's size and
modification time.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from bnbench.network import BayesianNetwork
from bnbench.networks.bif import read_bif_tables
from bnbench.structure import Structure

logger = logging.getLogger(__name__)

CACHE_VERSION = 1


def bundled_directory() -> Path:
    spec = importlib.util.find_spec("pgmpy")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("pgmpy is not installed; install it with 'pip install pgmpy'")
    return Path(spec.origin).parent / "utils" / "example_models"


@lru_cache(maxsize=1)
def bundled_names() -> tuple[str, ...]:
    """Names of the discrete networks in pgmpy's wheel, sorted."""
    directory = bundled_directory()
    return tuple(sorted(p.name[: -len(".bif.gz")] for p in directory.glob("*.bif.gz")))


def cache_directory() -> Path:
    return Path(os.environ.get("BNBENCH_CACHE_DIR", Path.home() / ".cache" / "bnbench"))


@lru_cache(maxsize=32)
def load_bundled(name: str) -> BayesianNetwork:
    """Load a bundled network by name, from the cache when it is current."""
    source = bundled_directory() / f"{name}.bif.gz"
    if not source.is_file():
        raise KeyError(f"network {name!r} is not bundled with pgmpy; bundled networks: {list(bundled_names())}")

    stat = source.stat()
    key = f"{name}-v{CACHE_VERSION}-{stat.st_size}-{int(stat.st_mtime)}"
    cached = cache_directory() / f"{key}.npz"
    if cached.is_file():
        try:
            return _read_cache(cached, name)
        except (OSError, ValueError, KeyError) as error:
            logger.warning("ignoring unreadable cache file %s (%s); parsing %s again", cached, error, source)

    logger.info("parsing %s (cached afterwards under %s)", source, cache_directory())
    structure, tables = read_bif_tables(source, name=name)
    network = BayesianNetwork(structure, tables)
    try:
        _write_cache(cached, structure, [tables[v] for v in structure.variables])
    except OSError as error:
        logger.warning("cannot write cache file %s: %s", cached, error)
    return network


def _write_cache(path: Path, structure: Structure, tables: list[np.ndarray]) -> None:
    """Store the tables as parsed, so a cached load validates exactly the same numbers."""
    s = structure
    header = {"variables": s.variables, "state_names": s.state_names, "parents": s.parents}
    arrays = {f"cpt{j}": table for j, table in enumerate(tables)}
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez_compressed(temporary, header=np.array(json.dumps(header)), **arrays)
    os.replace(temporary, path)


def _read_cache(path: Path, name: str) -> BayesianNetwork:
    with np.load(path, allow_pickle=False) as data:
        header = json.loads(str(data["header"]))
        structure = Structure(
            name=name,
            variables=tuple(header["variables"]),
            state_names=tuple(tuple(s) for s in header["state_names"]),
            parents=tuple(tuple(p) for p in header["parents"]),
        )
        cpts = [data[f"cpt{j}"] for j in range(structure.num_variables)]
    return BayesianNetwork(structure, cpts)
