import numpy as np
import pyro
import pytest
import torch
from pyro.infer import TraceEnum_ELBO, config_enumerate, infer_discrete
from pyro.poutine.util import site_is_subsample

from bnbench import exact
from bnbench.estimators.mle import family_counts
from bnbench.networks import load_network

from helpers import brute_force_joint


def test_one_site_per_variable_inside_the_rows_plate(collider):
    model = collider.pyro_model()
    trace = pyro.poutine.trace(model).get_trace(num_rows=5)
    sites = [name for name, site in trace.nodes.items() if site["type"] == "sample" and not site_is_subsample(site)]
    assert sites == list(collider.structure.variables)
    for name in sites:
        assert trace.nodes[name]["value"].shape == (5,)
        assert [frame.name for frame in trace.nodes[name]["cond_indep_stack"]] == ["rows"]


def test_trace_log_prob_equals_network_log_prob(collider):
    rows = collider.sample(20, np.random.default_rng(0))
    trace = pyro.poutine.trace(collider.pyro_model()).get_trace(data=torch.as_tensor(rows))
    trace.compute_log_prob()
    total = sum(trace.nodes[v]["log_prob"] for v in collider.structure.variables)
    assert np.allclose(total.numpy(), collider.log_prob(rows), atol=1e-12)


def test_pyro_samples_and_fast_sampler_share_family_marginals():
    asia = load_network("asia")
    structure = asia.structure
    pyro.set_rng_seed(0)
    pyro_rows = asia.pyro_model()(num_rows=40_000).numpy()[None]
    fast_rows = asia.sample(40_000, np.random.default_rng(0))[None]
    exact_marginals = exact.family_marginals(structure, asia.batched_cpts)
    for j in range(structure.num_variables):
        truth = exact_marginals[j]
        for rows in (pyro_rows, fast_rows):
            empirical = family_counts(structure, rows, j) / 40_000
            # A cell of probability p has standard error sqrt(p (1 - p) / 40000) <= 0.0025;
            # 0.012 is about 5 sigma.
            assert np.abs(empirical - truth).max() < 0.012, structure.variables[j]


def test_enumerated_posterior_matches_brute_force(sprinkler):
    """P(rain | wet) by TraceEnum_ELBO marginals, whatever the evidence."""
    joint = brute_force_joint(sprinkler)  # axes: rain, sprinkler, wet
    model = config_enumerate(sprinkler.pyro_model())
    for wet in (0, 1):
        conditioned = pyro.condition(model, data={"wet": torch.tensor([wet, wet])})
        marginals = TraceEnum_ELBO(max_plate_nesting=1).compute_marginals(conditioned, lambda **kw: None, num_rows=2)
        posterior = marginals["rain"].probs[0].numpy()
        expected = joint[:, :, wet].sum(axis=1) / joint[:, :, wet].sum()
        assert np.allclose(posterior, expected, atol=1e-12)


def test_infer_discrete_samples_follow_the_exact_posterior(sprinkler):
    joint = brute_force_joint(sprinkler)
    model = config_enumerate(sprinkler.pyro_model())
    conditioned = pyro.condition(model, data={"wet": torch.ones(20_000, dtype=torch.long)})
    pyro.set_rng_seed(1)
    rows = infer_discrete(conditioned, first_available_dim=-2, temperature=1)(num_rows=20_000)
    p_rain = joint[1, :, 1].sum() / joint[:, :, 1].sum()
    # Standard error sqrt(p (1 - p) / 20000) < 0.0036; tolerance 0.015 is > 4 sigma.
    assert abs(rows[:, 0].float().mean().item() - p_rain) < 0.015


def test_variable_named_like_the_plate_is_rejected():
    from bnbench.network import BayesianNetwork
    from bnbench.structure import Structure

    structure = Structure.from_parents("clash", {"rows": []}, {"rows": ["0", "1"]})
    network = BayesianNetwork(structure, {"rows": np.array([0.5, 0.5])})
    with pytest.raises(ValueError, match="collides with the plate"):
        network.pyro_model()
