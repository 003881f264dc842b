import numpy as np
import pytest

from bnbench import exact
from bnbench.networks import load_network
from bnbench.networks.synthetic import random_dag
from bnbench.priors import DirichletPrior

from helpers import brute_force_joint


def test_family_marginal_equals_brute_force(collider):
    joint = brute_force_joint(collider)
    family = exact.family_marginal(collider.structure, collider.batched_cpts, 2)
    assert family.shape == (1, 2, 2, 3)
    assert np.allclose(family[0], joint, atol=1e-15)


def test_family_marginals_on_random_network_match_enumeration():
    structure = random_dag(n=7, max_in_degree=3, card="2-3", graph_seed=1)
    cpts = DirichletPrior((0.5,)).sample(structure, 3, np.random.default_rng(0))
    joint = exact.joint(structure, cpts)  # (3, *cards)
    assert np.allclose(joint.reshape(3, -1).sum(1), 1.0)
    # Brute force: product of table entries for every assignment of every episode.
    for b in range(3):
        brute = np.zeros(structure.cardinalities)
        for assignment in np.ndindex(*structure.cardinalities):
            row = np.array(assignment)
            brute[assignment] = np.prod(
                [cpts[j][b].reshape(-1, structure.cardinalities[j])[structure.parent_configuration_index(row, j), row[j]] for j in range(7)]
            )
        assert np.allclose(joint[b], brute, atol=1e-14)
        for j in range(7):
            family = exact.family_marginal(structure, cpts, j)[b]
            axes = tuple(k for k in range(7) if k not in (*structure.parents[j], j))
            expected = brute.sum(axis=axes)
            # brute keeps variable order; the family layout is (*parents in declared order, child).
            order = np.argsort(np.argsort([*structure.parents[j], j]))
            assert np.allclose(family, np.transpose(expected, order), atol=1e-14)


def test_alarm_parent_marginals_sum_to_one():
    alarm = load_network("alarm")
    for family in exact.family_marginals(alarm.structure, alarm.batched_cpts):
        assert abs(family.sum() - 1.0) < 1e-9


def test_limits_raise_intractable(collider):
    with pytest.raises(exact.IntractableError, match="above the limit of 2"):
        exact.marginal(collider.structure, collider.batched_cpts, [0, 1, 2], max_intermediate=2)
    alarm = load_network("alarm")
    with pytest.raises(exact.IntractableError, match="states, above the limit"):
        exact.joint(alarm.structure, alarm.batched_cpts)
