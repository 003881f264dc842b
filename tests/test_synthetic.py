import numpy as np
import pytest

from bnbench.networks import load_network
from bnbench.networks.synthetic import chain, general, parse_synthetic, random_dag, tree
from bnbench.priors import DirichletPrior, UniformBinaryPrior, parse_prior


def test_chain_tree_and_general_graphs():
    assert chain(4).parents == ((), (0,), (1,), (2,))
    assert tree(7, branching=2).parents == ((), (0,), (0,), (1,), (1,), (2,), (2,))
    assert general().parents == ((), (), (0, 1), (0, 2), (3,))
    assert general(card=3).cardinalities == (3, 3, 3, 3, 3)


def test_random_dag_respects_max_in_degree_and_seed():
    structure = random_dag(n=30, max_in_degree=4, card="2-5", graph_seed=3)
    assert structure.max_in_degree <= 4
    assert all(2 <= c <= 5 for c in structure.cardinalities)
    assert len(set(structure.cardinalities)) > 1
    assert structure.parents == random_dag(n=30, max_in_degree=4, card="2-5", graph_seed=3).parents
    assert structure.parents != random_dag(n=30, max_in_degree=4, card="2-5", graph_seed=4).parents


def test_spec_parsing_and_reproducible_tables():
    first = load_network("random:n=8,max_in_degree=3,card=3,seed=5,prior=dirichlet:0.5")
    second = load_network("random:n=8,max_in_degree=3,card=3,seed=5,prior=dirichlet:0.5")
    other = load_network("random:n=8,max_in_degree=3,card=3,seed=6,prior=dirichlet:0.5")
    assert all(np.array_equal(a, b) for a, b in zip(first.cpts, second.cpts))
    assert not all(np.array_equal(a, b) for a, b in zip(first.cpts, other.cpts))
    structure, prior, seed = parse_synthetic("chain:n=3,prior=uniform:0.2;0.8,seed=9")
    assert structure.num_variables == 3
    assert prior == "uniform:0.2,0.8"
    assert seed == 9


def test_bad_specs_name_the_problem():
    with pytest.raises(ValueError, match=r"unknown options \['m'\] for family 'chain'"):
        parse_synthetic("chain:m=3")
    with pytest.raises(ValueError, match="must be an integer"):
        parse_synthetic("chain:n=three")
    with pytest.raises(ValueError, match="write key=value"):
        parse_synthetic("chain:n")
    with pytest.raises(ValueError, match="cardinality must be at least 2"):
        parse_synthetic("chain:card=1")


def test_dirichlet_rows_have_the_prior_mean():
    structure = general(card=3)
    tables = DirichletPrior((2.0,)).sample(structure, 4000, np.random.default_rng(0))
    for j, table in enumerate(tables):
        assert table.shape == (4000, *structure.table_shape(j))
        assert np.allclose(table.sum(-1), 1.0)
    # Each entry has mean 1/3 and variance (1/3)(2/3)/(3*2+1) ~ 0.032; the mean of 4000
    # draws has standard error ~ 0.0028, so 0.015 is > 5 sigma.
    assert abs(tables[0][:, 0].mean() - 1 / 3) < 0.015


def test_dirichlet_mixture_draws_one_alpha_per_episode():
    structure = chain(2, card=4)
    tables = DirichletPrior((0.01, 100.0)).sample(structure, 400, np.random.default_rng(1))
    spread = tables[0].max(axis=-1)  # near 1 for alpha = 0.01, near 0.25 for alpha = 100
    # With alpha = 100 the largest of four entries exceeds 0.4 with negligible probability,
    # and about half of the episodes draw alpha = 0.01.
    concentrated = spread > 0.4
    assert spread[~concentrated].max() < 0.35
    assert 0.4 < concentrated.mean() < 0.6


def test_uniform_prior_range_and_binary_check():
    structure = chain(3)
    tables = UniformBinaryPrior(0.1, 0.9).sample(structure, 1000, np.random.default_rng(2))
    p_one = tables[1][..., 1]
    assert p_one.min() >= 0.1
    assert p_one.max() <= 0.9
    with pytest.raises(ValueError, match="binary variables"):
        UniformBinaryPrior().sample(chain(3, card=3), 1, np.random.default_rng(0))


def test_parse_prior_errors():
    assert parse_prior("dirichlet:0.1,1") == DirichletPrior((0.1, 1.0))
    assert parse_prior("uniform:0.2,0.7") == UniformBinaryPrior(0.2, 0.7)
    with pytest.raises(ValueError, match="unknown table prior 'beta:1'"):
        parse_prior("beta:1")
    with pytest.raises(ValueError, match="must be positive"):
        parse_prior("dirichlet:0")
    with pytest.raises(ValueError, match="must be numbers"):
        parse_prior("dirichlet:x")
