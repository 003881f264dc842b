"""Tables fitted from the context, then exact inference under any evidence with Pyro's enumeration.

Fit: the count MLE with the core unseen-configuration policy (``alpha = 0``), or the
posterior mean under a Dirichlet(alpha) prior on every table row, (n + alpha) /
(n(pa) + alpha * card), with ``alpha > 0``. The default is alpha = 1, because a
table with zero entries gives some evidence probability 0, and no row can be drawn
under it.

Generation without evidence is ancestral sampling from the fitted tables (enumeration
has nothing to sum out then). `generate_given` draws the unobserved variables of
each row from their exact conditional given the row's evidence, and
`conditional_marginals` returns those conditionals, both through
`bnbench.inference.enumeration`, which checks Pyro's limits first and falls back as
``fallback`` chooses.
"""

from __future__ import annotations

import numpy as np

from bnbench.episodes import Context
from bnbench.estimators.base import TableEstimator
from bnbench.estimators.mle import POLICIES, Policy, estimate_tables
from bnbench.inference.weighting import DEFAULT_PARTICLES


class PyroEnum(TableEstimator):
    """Tables from the context (MLE or Dirichlet posterior mean), exact sampling under any evidence by Pyro enumeration.

    Args:
        alpha: Dirichlet pseudo-count per table cell; 0 gives the count MLE.
        policy: Row for parent configurations absent from the context when
            ``alpha = 0``: ``"uniform"``, ``"marginal"`` or ``"nan"`` (as for ``mle``).
        fallback: When enumeration exceeds Pyro's limits: ``"elimination"`` (exact,
            numpy variable elimination), ``"likelihood-weighting"`` (approximate,
            ``num_particles`` per row) or ``"error"``.
        num_particles: Particles per row for the likelihood-weighting fallback.
        max_memory: Memory budget of one enumeration call, in bytes.

    Fitted attributes: ``cpts_`` and ``counts_``, ``(B, *parent_cards, card)`` per variable.
    """

    name = "pyro-enum"
    supports_evidence = True
    #: The conformance suite compares with the count MLE, so it fits with alpha = 0.
    conformance_settings = {"alpha": 0.0}

    def __init__(
        self,
        alpha: float = 1.0,
        policy: Policy = "uniform",
        fallback: str = "elimination",
        num_particles: int = DEFAULT_PARTICLES,
        max_memory: float = 2**30,
    ):
        from bnbench.inference.enumeration import FALLBACKS

        if not alpha >= 0:
            raise ValueError(f"alpha must be 0 or more; got {alpha}")
        if policy not in POLICIES:
            raise ValueError(f"unknown unseen-configuration policy {policy!r}; valid policies: {list(POLICIES)}")
        if fallback not in FALLBACKS:
            raise ValueError(f"unknown fallback {fallback!r}; valid fallbacks: {list(FALLBACKS)}")
        if num_particles < 1:
            raise ValueError(f"num_particles is {num_particles}; use 1 or more")
        if not max_memory > 0:
            raise ValueError(f"max_memory is {max_memory}; give a positive number of bytes")
        self.alpha = float(alpha)
        self.policy = policy
        self.fallback = fallback
        self.num_particles = int(num_particles)
        self.max_memory = float(max_memory)
        self.counts_: list[np.ndarray] | None = None

    @property
    def may_return_nan(self) -> bool:
        return self.alpha == 0 and self.policy == "nan"

    def fit(self, context: Context) -> PyroEnum:
        self.cpts_, self.counts_ = estimate_tables(context.structure, context.rows, self.policy, self.alpha)
        self.context_ = context
        return self

    def generate_given(self, rows: np.ndarray, observed: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Fill the unobserved entries of ``rows`` ``(B, Q, M)`` by exact conditional sampling; see the base class."""
        from bnbench.inference.enumeration import sample_given

        return sample_given(
            self.fitted_context.structure,
            self.fitted_cpts,
            rows,
            observed,
            rng,
            fallback=self.fallback,
            num_particles=self.num_particles,
            max_memory=self.max_memory,
        )

    def conditional_marginals(self, rows: np.ndarray, observed: np.ndarray, rng: np.random.Generator | None = None) -> list[np.ndarray]:
        """Exact P(x_j | the evidence of each row) under the fitted tables, ``(B, Q, card_j)`` per variable.

        ``rng`` is used only by the likelihood-weighting fallback.
        """
        from bnbench.inference.enumeration import marginals_given

        return marginals_given(
            self.fitted_context.structure,
            self.fitted_cpts,
            rows,
            observed,
            fallback=self.fallback,
            rng=rng,
            num_particles=self.num_particles,
            max_memory=self.max_memory,
        )
