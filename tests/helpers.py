"""Reference computations for tests, independent of the code under test."""

from __future__ import annotations

import numpy as np

from bnbench.network import BayesianNetwork


def brute_force_joint(network: BayesianNetwork) -> np.ndarray:
    """The joint by enumerating every assignment (independent of bnbench.exact)."""
    cards = network.structure.cardinalities
    joint = np.zeros(cards)
    for assignment in np.ndindex(*cards):
        joint[assignment] = np.exp(network.log_prob(np.array(assignment)))
    return joint
