"""Networks and contexts of the conformance suite, with answers computed by hand.

The hand network is A -> C <- B with binary variables. Its context has two episodes
of three rows each (columns A, B, C):

* episode 0: (0, 0, 1), (0, 1, 1), (1, 0, 0)
* episode 1: (1, 1, 0), (1, 1, 1), (0, 1, 0)

`HAND_MLE` holds the count MLE of those rows, worked out by hand, with the uniform
row for parent configurations the episode never shows. Queries are the eight rows
of ``{0, 1}^3`` in C order (`HAND_QUERIES`).
"""

from __future__ import annotations

import numpy as np

from bnbench.episodes import Context, sample_episodes
from bnbench.network import BayesianNetwork
from bnbench.priors import DirichletPrior
from bnbench.structure import Structure

HAND_STRUCTURE = Structure.from_parents(
    "hand:A->C<-B",
    {"A": [], "B": [], "C": ["A", "B"]},
    {"A": ["0", "1"], "B": ["0", "1"], "C": ["0", "1"]},
)

#: Context rows ``(2 episodes, 3 rows, 3 variables)``.
HAND_ROWS = np.array(
    [
        [[0, 0, 1], [0, 1, 1], [1, 0, 0]],
        [[1, 1, 0], [1, 1, 1], [0, 1, 0]],
    ]
)

#: The count MLE of `HAND_ROWS` per variable, ``(2, *parent_cards, 2)``; unseen configurations are uniform.
HAND_MLE = [
    # P(A): episode 0 has A = 0, 0, 1; episode 1 has A = 1, 1, 0.
    np.array([[2 / 3, 1 / 3], [1 / 3, 2 / 3]]),
    # P(B): episode 0 has B = 0, 1, 0; episode 1 has B = 1, 1, 1.
    np.array([[2 / 3, 1 / 3], [0.0, 1.0]]),
    # P(C | A, B), indexed [episode, A, B, C].
    np.array(
        [
            # Episode 0: (A, B) = (0, 0) -> C = 1; (0, 1) -> C = 1; (1, 0) -> C = 0; (1, 1) unseen.
            [[[0.0, 1.0], [0.0, 1.0]], [[1.0, 0.0], [0.5, 0.5]]],
            # Episode 1: (0, 0) unseen; (0, 1) -> C = 0; (1, 0) unseen; (1, 1) -> C = 0 and C = 1.
            [[[0.5, 0.5], [1.0, 0.0]], [[0.5, 0.5], [0.5, 0.5]]],
        ]
    ),
]

#: True tables of the hand network: what the oracle returns and what contexts for convergence are drawn from.
HAND_TRUE_TABLES = [
    np.array([0.6, 0.4]),
    np.array([0.7, 0.3]),
    np.array([[[0.9, 0.1], [0.2, 0.8]], [[0.3, 0.7], [0.5, 0.5]]]),
]
HAND_NETWORK = BayesianNetwork(HAND_STRUCTURE, HAND_TRUE_TABLES)

#: Every row of {0, 1}^3 in C order, as queries ``(2 episodes, 8, 3)``.
HAND_QUERIES = np.broadcast_to(np.indices((2, 2, 2)).reshape(3, -1).T, (2, 8, 3)).copy()

#: A small network with mixed cardinalities (3, 2, 4, 2, 3), two parents at most and
#: non-parent earlier columns, for shapes and for the parents/prefix invariance checks.
MIXED_STRUCTURE = Structure.from_cardinalities("mixed", [[], [0], [0, 1], [1], [2, 3]], [3, 2, 4, 2, 3])
MIXED_NETWORK = BayesianNetwork(
    MIXED_STRUCTURE, [t[0] for t in DirichletPrior((1.0,)).sample(MIXED_STRUCTURE, 1, np.random.default_rng(7))]
)


def hand_context(reads_true_tables: bool = False) -> Context:
    """Build the hand-computed context, carrying `HAND_TRUE_TABLES` when ``reads_true_tables`` is set."""
    true_cpts = [np.broadcast_to(t, (2, *t.shape)) for t in HAND_TRUE_TABLES] if reads_true_tables else None
    return Context(HAND_STRUCTURE, HAND_ROWS, true_cpts)


def sampled_context(network: BayesianNetwork, num_rows: int, num_episodes: int, seed: int, reads_true_tables: bool = False) -> Context:
    """Draw ``num_episodes`` contexts of ``num_rows`` rows from ``network``'s own tables."""
    batch = sample_episodes(network, num_episodes=num_episodes, context_size=num_rows, num_test_rows=0, seed=seed)
    return batch.context_for(reads_true_tables)


def true_conditionals(network: BayesianNetwork, queries: np.ndarray, target: int) -> np.ndarray:
    """P(x_target | parents) under ``network`` at each query row; ``(B, Q, M)`` -> ``(B, Q, card)``."""
    structure = network.structure
    table = network.cpts[target].reshape(-1, structure.cardinalities[target])
    return table[structure.parent_configuration_index(queries, target)]


def hand_mle_conditionals(target: int) -> np.ndarray:
    """`HAND_MLE` of ``target`` at `HAND_QUERIES`, ``(2, 8, 2)``."""
    table = HAND_MLE[target].reshape(2, -1, 2)
    configuration = HAND_STRUCTURE.parent_configuration_index(HAND_QUERIES, target)  # (2, 8)
    return table[np.arange(2)[:, None], configuration]
