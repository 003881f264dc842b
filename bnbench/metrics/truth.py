"""Reference quantities of the true networks of an episode batch, computed once per batch."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from bnbench import exact
from bnbench.episodes import EpisodeBatch
from bnbench.estimators.mle import family_counts
from bnbench.sampling import ancestral_sample

logger = logging.getLogger(__name__)

#: Rows drawn per episode, at most, to estimate family marginals of networks too large for exact scores.
ESTIMATION_ROWS = 100_000
#: Budget of sampled cells (episodes x rows x variables) for that estimate.
ESTIMATION_CELLS = 20_000_000


@dataclass(frozen=True, eq=False)
class Truth:
    """True family marginals (and joint, when small) of each episode.

    Arrays have a leading episode axis of size B, or 1 when every episode shares
    the same fixed tables (broadcast it against B).

    Attributes:
        family_marginals: P(parents of j, x_j), shape ``(B or 1, *parent_cards, card_j)``.
        joint: The joint ``(B or 1, *cards)``, or None above `exact.MAX_JOINT_STATES`.
        exact: False when the family marginals were estimated from ``estimation_rows`` samples.
    """

    family_marginals: list[np.ndarray]
    joint: np.ndarray | None
    exact: bool
    estimation_rows: int = 0

    def parent_marginal(self, j: int) -> np.ndarray:
        return self.family_marginals[j].sum(axis=-1)


def compute_truth(episodes: EpisodeBatch, seed: int = 0) -> Truth:
    """Exact family marginals when tractable, else estimates from true samples drawn with ``seed``."""
    structure = episodes.structure
    cpts = [t[:1] for t in episodes.cpts] if episodes.fixed_tables else episodes.cpts
    try:
        marginals = exact.family_marginals(structure, cpts)
        is_exact, estimation_rows = True, 0
    except exact.IntractableError as error:
        num_episodes = cpts[0].shape[0]
        estimation_rows = int(min(ESTIMATION_ROWS, max(1_000, ESTIMATION_CELLS // (num_episodes * structure.num_variables))))
        logger.info("%s; estimating family marginals from %d rows per episode", error, estimation_rows)
        rows = ancestral_sample(structure, cpts, estimation_rows, np.random.default_rng(seed))
        marginals = [family_counts(structure, rows, j) / estimation_rows for j in range(structure.num_variables)]
        is_exact = False

    joint = None
    if structure.num_joint_states <= exact.MAX_JOINT_STATES:
        joint = exact.joint(structure, cpts)
    return Truth(family_marginals=marginals, joint=joint, exact=is_exact, estimation_rows=estimation_rows)
