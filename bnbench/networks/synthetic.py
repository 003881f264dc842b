"""Synthetic graph families with seeded random tables.

Spec strings (``family:key=value,...``, every key optional):

* ``chain:n=5,card=2``: x0 -> x1 -> ... -> x(n-1).
* ``tree:n=7,card=2,branching=2``: a rooted tree; x_j's parent is x_((j-1)//branching).
* ``general:card=2``: the five-node graph x2 <- {x0, x1}, x3 <- {x0, x2}, x4 <- {x3}.
* ``random:n=10,max_in_degree=3,card=2,graph_seed=0``: each x_j draws its in-degree
  uniformly from 0..min(j, max_in_degree) and its parents uniformly among x0..x(j-1).

``card`` is one cardinality or a range ``LOW-HIGH`` drawn per variable with
``graph_seed`` (mixed cardinalities). Tables come from ``prior`` (a table-prior spec
with ``;`` between numbers, e.g. ``prior=dirichlet:0.5`` or ``prior=uniform:0.1;0.9``)
drawn with ``seed`` (default 0).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bnbench.network import BayesianNetwork
from bnbench.priors import parse_prior
from bnbench.structure import Structure

FAMILIES = ("chain", "tree", "general", "random")
_STRUCTURE_KEYS = {
    "chain": {"n", "card"},
    "tree": {"n", "card", "branching"},
    "general": {"card"},
    "random": {"n", "max_in_degree", "card", "graph_seed"},
}
_TABLE_KEYS = {"prior", "seed"}


def chain(n: int = 5, card: int | str = 2) -> Structure:
    cards = _cardinalities(card, n, np.random.default_rng(0))
    return Structure.from_cardinalities(f"chain:n={n},card={card}", [[j - 1] if j else [] for j in range(n)], cards)


def tree(n: int = 7, card: int | str = 2, branching: int = 2) -> Structure:
    if branching < 1:
        raise ValueError(f"tree branching must be at least 1; got {branching}")
    cards = _cardinalities(card, n, np.random.default_rng(0))
    parents = [[(j - 1) // branching] if j else [] for j in range(n)]
    return Structure.from_cardinalities(f"tree:n={n},card={card},branching={branching}", parents, cards)


def general(card: int | str = 2) -> Structure:
    cards = _cardinalities(card, 5, np.random.default_rng(0))
    return Structure.from_cardinalities(f"general:card={card}", [[], [], [0, 1], [0, 2], [3]], cards)


def random_dag(n: int = 10, max_in_degree: int = 3, card: int | str = 2, graph_seed: int = 0) -> Structure:
    if max_in_degree < 0:
        raise ValueError(f"max_in_degree must be 0 or more; got {max_in_degree}")
    rng = np.random.default_rng(graph_seed)
    parents = []
    for j in range(n):
        in_degree = int(rng.integers(0, min(j, max_in_degree) + 1))
        parents.append(sorted(int(p) for p in rng.choice(j, size=in_degree, replace=False)) if in_degree else [])
    cards = _cardinalities(card, n, rng)
    name = f"random:n={n},max_in_degree={max_in_degree},card={card},graph_seed={graph_seed}"
    return Structure.from_cardinalities(name, parents, cards)


_BUILDERS: dict[str, Callable[..., Structure]] = {
    "chain": chain,
    "tree": tree,
    "general": general,
    "random": random_dag,
}


def parse_synthetic(spec: str) -> tuple[Structure, str, int]:
    """Parse a family spec into its structure, table-prior spec and table seed."""
    family, _, arguments = spec.partition(":")
    if family not in _BUILDERS:
        raise KeyError(f"unknown synthetic family {family!r}; valid families: {list(FAMILIES)}")
    options: dict[str, str] = {}
    for item in filter(None, arguments.split(",")):
        key, separator, value = item.partition("=")
        if not separator:
            raise ValueError(f"invalid option {item!r} in network spec {spec!r}; write key=value, as in 'chain:n=5'")
        options[key.strip()] = value.strip()

    valid = _STRUCTURE_KEYS[family] | _TABLE_KEYS
    unknown = sorted(set(options) - valid)
    if unknown:
        raise ValueError(f"unknown options {unknown} for family {family!r}; valid options: {sorted(valid)}")

    structure_options: dict[str, int | str] = {}
    for key in _STRUCTURE_KEYS[family] & set(options):
        value = options[key]
        structure_options[key] = value if key == "card" and "-" in value else _integer(key, value, spec)
    structure = _BUILDERS[family](**structure_options)
    prior = options.get("prior", "dirichlet:1").replace(";", ",")
    seed = _integer("seed", options.get("seed", "0"), spec)
    return structure, prior, seed


def load_synthetic(spec: str) -> BayesianNetwork:
    """Build a synthetic network with tables drawn from its prior and seed."""
    structure, prior_spec, seed = parse_synthetic(spec)
    tables = parse_prior(prior_spec).sample(structure, 1, np.random.default_rng(seed))
    return BayesianNetwork(structure, [t[0] for t in tables])


def _cardinalities(card: int | str, n: int, rng: np.random.Generator) -> list[int]:
    if n < 1:
        raise ValueError(f"a network needs at least one variable; got n={n}")
    if isinstance(card, str) and "-" in card:
        low, _, high = card.partition("-")
        low_card, high_card = int(low), int(high)
        if not 2 <= low_card <= high_card:
            raise ValueError(f"cardinality range {card!r} must be LOW-HIGH with 2 <= LOW <= HIGH")
        return [int(c) for c in rng.integers(low_card, high_card + 1, size=n)]
    if int(card) < 2:
        raise ValueError(f"cardinality must be at least 2; got {card}")
    return [int(card)] * n


def _integer(key: str, value: str, spec: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"option {key}={value!r} in network spec {spec!r} must be an integer") from None
