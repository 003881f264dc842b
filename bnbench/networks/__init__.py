"""Network loaders: pgmpy's bundled bnlearn networks, BIF files and synthetic families.

`load_network` takes one spec string:

* a bundled name (``asia``, ``alarm``, ...; see `bundled_names`),
* a path to a ``.bif`` or ``.bif.gz`` file,
* a synthetic family spec (``chain:n=5,card=3``; see `bnbench.networks.synthetic`).
"""

from __future__ import annotations

from pathlib import Path

from bnbench.network import BayesianNetwork
from bnbench.networks.bif import BIFError, parse_bif, read_bif
from bnbench.networks.bundled import bundled_names, load_bundled
from bnbench.networks.synthetic import FAMILIES, load_synthetic

__all__ = ["BIFError", "bundled_names", "load_network", "network_names", "parse_bif", "read_bif"]


def load_network(spec: str) -> BayesianNetwork:
    """Load a network from a bundled name, a BIF path or a synthetic family spec."""
    if spec.endswith((".bif", ".bif.gz")) or Path(spec).is_file():
        return read_bif(spec)
    if spec in bundled_names():
        return load_bundled(spec)
    if spec.partition(":")[0] in FAMILIES:
        return load_synthetic(spec)
    raise KeyError(
        f"unknown network {spec!r}; valid names: {list(bundled_names())}, a synthetic family "
        f"{list(FAMILIES)} (e.g. 'chain:n=5,card=3'), or a path to a .bif file"
    )


def network_names() -> list[str]:
    """Every network name `load_network` accepts without options (bundled names and families)."""
    return [*bundled_names(), *FAMILIES]
