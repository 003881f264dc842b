"""Priors over conditional tables, used to draw fresh tables for each episode.

Spec strings, as accepted by `parse_prior` and the command line:

* ``dirichlet:ALPHA``: every row of every table ~ Dirichlet(ALPHA, ..., ALPHA).
* ``dirichlet:A1,A2,...``: a mixture; each episode draws one of the alphas uniformly.
* ``uniform:LOW,HIGH``: binary variables only; P(x = state 1) ~ U(LOW, HIGH) per row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bnbench.structure import Structure


@dataclass(frozen=True)
class DirichletPrior:
    """Symmetric Dirichlet rows; several ``alphas`` make a per-episode mixture."""

    alphas: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        if not self.alphas or any(not a > 0 for a in self.alphas):
            raise ValueError(f"Dirichlet concentrations must be positive; got {self.alphas}")

    def sample(self, structure: Structure, num_episodes: int, rng: np.random.Generator) -> list[np.ndarray]:
        """Draw tables of shape ``(B, *parent_cards, card)`` for every variable."""
        alpha = np.asarray(self.alphas)[rng.integers(len(self.alphas), size=num_episodes)]  # (B,)
        tables = []
        for j in range(structure.num_variables):
            shape = (num_episodes, *structure.table_shape(j))
            # A Dirichlet draw is a normalized vector of Gamma(alpha) draws.
            gamma = rng.standard_gamma(alpha.reshape(-1, *([1] * (len(shape) - 1))) * np.ones(shape))
            total = gamma.sum(axis=-1, keepdims=True)
            # Tiny alphas can underflow a whole row to zero; such a row becomes one-hot.
            degenerate = total[..., 0] == 0
            if degenerate.any():
                gamma[degenerate] = np.eye(shape[-1])[rng.integers(shape[-1], size=int(degenerate.sum()))]
                total = gamma.sum(axis=-1, keepdims=True)
            tables.append(gamma / total)
        return tables

    def __str__(self) -> str:
        return "dirichlet:" + ",".join(f"{a:g}" for a in self.alphas)


@dataclass(frozen=True)
class UniformBinaryPrior:
    """For binary variables: P(x = state 1 | parents) ~ U(low, high), independently per row."""

    low: float = 0.1
    high: float = 0.9

    def __post_init__(self) -> None:
        if not 0.0 <= self.low <= self.high <= 1.0:
            raise ValueError(f"uniform prior needs 0 <= low <= high <= 1; got low={self.low}, high={self.high}")

    def sample(self, structure: Structure, num_episodes: int, rng: np.random.Generator) -> list[np.ndarray]:
        non_binary = [v for v, c in zip(structure.variables, structure.cardinalities) if c != 2]
        if non_binary:
            raise ValueError(
                f"the uniform table prior is for binary variables, but {non_binary[:5]} are not binary; "
                "use a Dirichlet prior such as 'dirichlet:1' instead"
            )
        tables = []
        for j in range(structure.num_variables):
            p_one = rng.uniform(self.low, self.high, size=(num_episodes, *structure.parent_cardinalities(j)))
            tables.append(np.stack([1.0 - p_one, p_one], axis=-1))
        return tables

    def __str__(self) -> str:
        return f"uniform:{self.low:g},{self.high:g}"


TablePrior = DirichletPrior | UniformBinaryPrior


def parse_prior(spec: str) -> TablePrior:
    """Parse ``dirichlet:1.0``, ``dirichlet:0.1,1,10`` or ``uniform:0.1,0.9``."""
    kind, _, arguments = spec.partition(":")
    try:
        values = tuple(float(a) for a in arguments.split(",")) if arguments else ()
    except ValueError:
        raise ValueError(f"invalid table prior {spec!r}: arguments must be numbers, as in 'dirichlet:1.0'") from None
    if kind == "dirichlet":
        return DirichletPrior(values or (1.0,))
    if kind == "uniform":
        if len(values) not in (0, 2):
            raise ValueError(f"invalid table prior {spec!r}: write 'uniform:LOW,HIGH', as in 'uniform:0.1,0.9'")
        return UniformBinaryPrior(*values) if values else UniformBinaryPrior()
    raise ValueError(f"unknown table prior {spec!r}; valid forms: 'dirichlet:ALPHA[,ALPHA...]', 'uniform:LOW,HIGH'")
