"""Shared fixtures: tiny hand-made networks with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from bnbench.network import BayesianNetwork
from bnbench.structure import Structure


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep parsed networks in one cache per test session, never in the user's home."""
    monkeypatch.setenv("BNBENCH_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "bnbench-cache"))


@pytest.fixture
def collider() -> BayesianNetwork:
    """A -> C <- B with binary A, B and a three-state C."""
    structure = Structure.from_parents(
        "collider",
        {"A": [], "B": [], "C": ["A", "B"]},
        {"A": ["a0", "a1"], "B": ["b0", "b1"], "C": ["c0", "c1", "c2"]},
    )
    c_table = np.array(
        [
            [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]],
            [[0.3, 0.3, 0.4], [0.05, 0.05, 0.9]],
        ]
    )
    return BayesianNetwork(structure, {"A": np.array([0.6, 0.4]), "B": np.array([0.5, 0.5]), "C": c_table})


@pytest.fixture
def sprinkler() -> BayesianNetwork:
    """rain -> sprinkler, (rain, sprinkler) -> wet, all binary."""
    structure = Structure.from_parents(
        "sprinkler",
        {"rain": [], "sprinkler": ["rain"], "wet": ["rain", "sprinkler"]},
        {"rain": ["no", "yes"], "sprinkler": ["off", "on"], "wet": ["dry", "wet"]},
    )
    return BayesianNetwork(
        structure,
        {
            "rain": np.array([0.8, 0.2]),
            "sprinkler": np.array([[0.6, 0.4], [0.99, 0.01]]),
            "wet": np.array([[[1.0, 0.0], [0.2, 0.8]], [[0.1, 0.9], [0.01, 0.99]]]),
        },
    )

