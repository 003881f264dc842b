"""bnbench: a benchmark suite for in-context sequence generation in discrete Bayesian networks."""

from bnbench.episodes import Context, EpisodeBatch, sample_episodes
from bnbench.network import BayesianNetwork, TableError
from bnbench.networks import load_network
from bnbench.structure import Structure, StructureError

__version__ = "0.1.0"

__all__ = [
    "BayesianNetwork",
    "Context",
    "EpisodeBatch",
    "Structure",
    "StructureError",
    "TableError",
    "load_network",
    "sample_episodes",
]
