"""The Bayesian estimator: the Dirichlet posterior of the tables given the context, inferred with Pyro.

Every table row has a Dirichlet(alpha) prior; the context rows are the observations.
`fit` draws posterior samples of the tables with NUTS or SVI, for every episode in
one run (see `bnbench.inference.posterior`). The conditionals are the posterior
predictive probabilities, estimated by the mean of the table samples: for one new
row, P(x_j | parents, context) = E[theta_j(parents, x_j) | context], because the rows
of different tables are independent under the posterior. `generate` draws each row
from the tables of one posterior sample with `pyro.infer.Predictive`.

Under evidence, the posterior predictive of one row is the network whose tables are
the posterior means (the same independence), so `generate_given` runs exact
enumeration on those tables.
"""

from __future__ import annotations

import logging

import numpy as np

from bnbench.episodes import Context
from bnbench.estimators.base import TableEstimator
from bnbench.inference.weighting import DEFAULT_PARTICLES
from bnbench.structure import Structure

logger = logging.getLogger(__name__)

METHODS = ("auto", "nuts", "svi")
#: Networks with more free parameters per episode than this get SVI under method
#: "auto", and method "nuts" stops with a message. With 80 iterations of
#: tree depth 4, NUTS left a mean error of 0.023 (max 0.21) in the posterior means of
#: alarm (509 free parameters) and 0.15 on water (10083), against 0.019 and 0.024 for
#: SVI (benchmarks/pyro_scaling.py, 8 episodes of 100 rows).
MAX_NUTS_PARAMETERS = 200


class PyroPosterior(TableEstimator):
    """Dirichlet(alpha) posterior of every table given the context, by Pyro NUTS (small networks) or SVI.

    Args:
        alpha: Dirichlet concentration of the prior on every table row.
        method: ``"nuts"``, ``"svi"``, or ``"auto"``: NUTS for networks with at most
            ``max_nuts_parameters`` free parameters, SVI above.
        num_samples: Posterior samples of the tables (NUTS draws after warmup, or
            draws from the fitted SVI guide).
        warmup_steps: NUTS warmup iterations (step size and mass matrix adaptation).
        max_tree_depth: NUTS tree depth limit; at most 2**depth - 1 gradient steps per iteration.
        num_steps: SVI optimization steps.
        learning_rate: Initial SVI Adam step size; it decays 100-fold over the run.
        num_particles: SVI samples per ELBO estimate (vectorized).
        likelihood: ``"rows"`` observes the distinct context rows, at a cost per step that
            grows with their number; ``"counts"`` observes the family counts through
            ``pyro.factor``, the same posterior at a cost independent of N.
        max_nuts_parameters: The free-parameter limit of method ``"auto"`` and ``"nuts"``.
        seed: Seed of the posterior sampling in `fit`; generation draws from its ``rng``.
        fallback: Enumeration fallback for `generate_given` (see ``pyro-enum``).
        num_particles_fallback: Particles per row for the likelihood-weighting fallback.

    Fitted attributes: ``cpts_`` (posterior means, ``(B, *parent_cards, card)``),
    ``samples_`` (`PosteriorSamples`) and ``method_`` (the method that ran).
    """

    name = "pyro-posterior"
    supports_evidence = True
    #: NUTS has Monte Carlo error, so no closed-form reference holds to the suite's tolerance.
    conformance_reference = None
    conformance_settings = {"num_samples": 20, "warmup_steps": 20, "max_tree_depth": 4}

    def __init__(
        self,
        alpha: float = 1.0,
        method: str = "auto",
        num_samples: int = 30,
        warmup_steps: int = 30,
        max_tree_depth: int = 4,
        num_steps: int = 1000,
        learning_rate: float = 0.1,
        num_particles: int = 4,
        likelihood: str = "rows",
        max_nuts_parameters: int = MAX_NUTS_PARAMETERS,
        seed: int = 0,
        fallback: str = "elimination",
        num_particles_fallback: int = DEFAULT_PARTICLES,
    ):
        from bnbench.inference.enumeration import FALLBACKS

        if not alpha > 0:
            raise ValueError(f"alpha must be positive for a Dirichlet prior; got {alpha}")
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; valid methods: {list(METHODS)}")
        if fallback not in FALLBACKS:
            raise ValueError(f"unknown fallback {fallback!r}; valid fallbacks: {list(FALLBACKS)}")
        self.alpha = float(alpha)
        self.method = method
        self.num_samples = int(num_samples)
        self.warmup_steps = int(warmup_steps)
        self.max_tree_depth = int(max_tree_depth)
        self.num_steps = int(num_steps)
        self.learning_rate = float(learning_rate)
        self.num_particles = int(num_particles)
        self.likelihood = likelihood
        self.max_nuts_parameters = int(max_nuts_parameters)
        self.seed = int(seed)
        self.fallback = fallback
        self.num_particles_fallback = int(num_particles_fallback)
        self._inference_settings("nuts")  # validates the numbers now, not at fit time
        self.samples_ = None
        self.method_: str | None = None

    def resolve_method(self, structure: Structure) -> str:
        """The method `fit` runs on ``structure``; raises `ValueError` when NUTS is asked for a network too large for it."""
        size = structure.num_free_parameters
        if self.method == "auto":
            return "nuts" if size <= self.max_nuts_parameters else "svi"
        if self.method == "nuts" and size > self.max_nuts_parameters:
            raise ValueError(
                f"NUTS on network {structure.name!r} ({size} free parameters per episode, limit "
                f"{self.max_nuts_parameters}) does not converge in a short run, and a converged run takes "
                "minutes to hours per fit; use the faster 'pyro-posterior:method=svi', or raise "
                "max_nuts_parameters to run NUTS anyway"
            )
        return self.method

    def fit(self, context: Context) -> PyroPosterior:
        from bnbench.inference.posterior import sample_posterior

        structure = context.structure
        method = self.resolve_method(structure)
        if method != self.method:
            logger.info("pyro-posterior on %r (%d free parameters): method %s", structure.name, structure.num_free_parameters, method)
        self.samples_ = sample_posterior(structure, context.rows, self.alpha, self._inference_settings(method), self.seed)
        self.cpts_ = self.samples_.mean_tables()
        self.method_ = method
        self.context_ = context
        return self

    def generate(self, num_rows: int, rng: np.random.Generator) -> np.ndarray:
        """Draw rows from the posterior predictive; each posterior sample of the tables draws an equal share.

        The rows of each episode are shuffled, so any prefix of them mixes the samples.
        """
        from bnbench.inference.posterior import posterior_predictive
        from bnbench.inference.torch_state import seed_from

        context = self.fitted_context
        if self.samples_ is None:
            raise RuntimeError("estimator 'pyro-posterior' has tables but no posterior samples; call fit(context)")
        if num_rows < 1:
            return np.zeros((context.num_episodes, 0, context.structure.num_variables), dtype=np.int64)
        rows = posterior_predictive(context.structure, self.samples_, num_rows, seed_from(rng), self.alpha)
        order = np.argsort(rng.random(rows.shape[:2]), axis=1)  # (B, R)
        return np.take_along_axis(rows, order[..., None], axis=1)

    def generate_given(self, rows: np.ndarray, observed: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Draw the unobserved variables from the posterior predictive given each row's evidence (exact enumeration)."""
        from bnbench.inference.enumeration import sample_given

        return sample_given(
            self.fitted_context.structure,
            self.fitted_cpts,
            rows,
            observed,
            rng,
            fallback=self.fallback,
            num_particles=self.num_particles_fallback,
        )

    def _inference_settings(self, method: str):
        from bnbench.inference.posterior import InferenceSettings

        return InferenceSettings(
            method=method,
            num_samples=self.num_samples,
            warmup_steps=self.warmup_steps,
            max_tree_depth=self.max_tree_depth,
            num_steps=self.num_steps,
            learning_rate=self.learning_rate,
            num_particles=self.num_particles,
            likelihood=self.likelihood,
        )
