"""The exact transformer: agreement with the count MLE, the derived error bound, the model's layers and generation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from bnbench import exact
from bnbench.episodes import Context, sample_episodes
from bnbench.estimators import NotFittedError, make_estimator
from bnbench.estimators.exact_transformer import ExactTransformer
from bnbench.estimators.mle import CountMLE
from bnbench.metrics.samples import family_tv
from bnbench.networks import load_network
from bnbench.sampling import ancestral_sample
from bnbench.structure import Structure
from bnbench.transformers.exact import (
    DEFAULT_BETA,
    ExactTransformerModel,
    attention_masks,
    error_bound,
)
from bnbench.transformers.layers import MLP, Attention, Block

#: Agreement with the count MLE required in float64 at the default beta.
FLOAT64_TOLERANCE = 1e-6
#: Agreement in float32, measured at about 3e-8 on the development machine, with room for other summation orders.
FLOAT32_TOLERANCE = 1e-6

SMALL_CASES = [(name, n) for name in ("asia", "cancer", "earthquake", "sachs", "survey") for n in (1, 37, 10_000)]
LARGE_CASES = [(name, n) for name in ("alarm", "child", "insurance") for n in (1, 37, 1000)] + [("alarm", 10_000)]
RANDOM_NETWORKS = [f"random:n=12,max_in_degree=4,card=2-5,graph_seed={seed}" for seed in (1, 2, 3)]

# x0, x1 binary roots and x2 with three states and parents (x0, x1).
COLLIDER = Structure.from_cardinalities("collider", [[], [], [0, 1]], [2, 2, 3])
COLLIDER_ROWS = np.array([[[0, 0, 1], [1, 0, 2], [0, 0, 0], [1, 1, 1], [1, 0, 2], [1, 0, 0]]])
# x0 -> x1, both binary.
PAIR = Structure.from_cardinalities("pair", [[], [0]], [2, 2])


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Run torch on one thread: these tensors are small, and extra threads only contend with other processes."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _episodes(network: str, n: int, seed: int = 0, num_episodes: int = 2, num_test_rows: int = 20):
    return sample_episodes(
        load_network(network), num_episodes=num_episodes, context_size=n, num_test_rows=num_test_rows, seed=seed
    )


def _max_difference(estimator, reference, batch) -> float:
    """Largest |difference| over every table entry and every conditional of the test rows."""
    largest = 0.0
    for j in range(batch.structure.num_variables):
        largest = max(largest, np.abs(estimator.conditional_table(j) - reference.conditional_table(j)).max())
        conditionals = estimator.conditionals(batch.test, j)
        largest = max(largest, np.abs(conditionals - reference.conditionals(batch.test, j)).max())
    return float(largest)


def _num_unseen(reference: CountMLE) -> int:
    return sum(int((counts.sum(axis=-1) == 0).sum()) for counts in reference.counts_)


def _tokens(model: ExactTransformerModel, rows, target: int, query: bool) -> torch.Tensor:
    return model.encoding.encode(torch.as_tensor(rows), target, query=query, dtype=torch.float64)


def _single_output(structure: Structure, context_rows: np.ndarray, query_row: list[int], target: int, beta: float):
    """The estimator's conditional of ``target`` for one query row of one episode."""
    estimator = ExactTransformer(beta=beta).fit(Context(structure, context_rows))
    return estimator.conditionals(np.array([[query_row]]), target)[0, 0]


# Agreement with the count MLE.


@pytest.mark.parametrize(("network", "n"), SMALL_CASES + LARGE_CASES, ids=lambda v: str(v))
def test_matches_mle_on_bundled_networks(network, n):
    batch = _episodes(network, n)
    context = batch.context_for()
    reference = CountMLE().fit(context)
    assert _max_difference(ExactTransformer().fit(context), reference, batch) <= FLOAT64_TOLERANCE
    if n == 1:
        assert _num_unseen(reference) > 0  # unseen configurations were part of the comparison


@pytest.mark.parametrize("n", [1, 37, 10_000])
@pytest.mark.parametrize("network", RANDOM_NETWORKS)
def test_matches_mle_on_random_networks(network, n):
    batch = _episodes(network, n, seed=n)
    assert batch.structure.max_in_degree == 4
    assert len(set(batch.structure.cardinalities)) > 1
    context = batch.context_for()
    assert _max_difference(ExactTransformer().fit(context), CountMLE().fit(context), batch) <= FLOAT64_TOLERANCE


@pytest.mark.parametrize("network", ["asia", "alarm", RANDOM_NETWORKS[0]])
def test_marginal_policy_matches_mle(network):
    batch = _episodes(network, 37)
    context = batch.context_for()
    reference = CountMLE(policy="marginal").fit(context)
    assert _num_unseen(reference) > 0
    estimator = ExactTransformer(policy="marginal").fit(context)
    assert _max_difference(estimator, reference, batch) <= FLOAT64_TOLERANCE


@pytest.mark.parametrize(("network", "n"), [("asia", 10_000), ("alarm", 37), (RANDOM_NETWORKS[1], 1000)])
def test_float32_matches_mle(network, n):
    batch = _episodes(network, n)
    context = batch.context_for()
    estimator = ExactTransformer(dtype="float32").fit(context)
    assert estimator.cache_.layer2_keys.dtype == torch.float32
    assert _max_difference(estimator, CountMLE().fit(context), batch) <= FLOAT32_TOLERANCE


def test_all_conditionals_match_loop():
    batch = _episodes("alarm", 100)
    estimator = ExactTransformer().fit(batch.context_for())
    batched = estimator.all_conditionals(batch.test)
    assert len(batched) == batch.structure.num_variables
    for j, probabilities in enumerate(batched):
        assert np.abs(probabilities - estimator.conditionals(batch.test, j)).max() <= 1e-15


def test_outputs_are_probability_vectors():
    batch = _episodes(RANDOM_NETWORKS[2], 37)
    estimator = ExactTransformer(beta=3.0).fit(batch.context_for())
    for j in range(batch.structure.num_variables):
        table = estimator.conditional_table(j)
        assert table.shape == (2, *batch.structure.table_shape(j))
        assert (table >= 0).all()
        assert np.abs(table.sum(axis=-1) - 1).max() <= 1e-12


# The derived error bound: N exp(-beta / 2) per entry.


def test_error_bound_value():
    assert error_bound(DEFAULT_BETA, 10_000) == pytest.approx(10_000 * math.exp(-50))
    assert error_bound(DEFAULT_BETA, 10_000) < 1e-17


def test_unseen_configuration_error_matches_formula():
    # Every row is (0, 1). The query x0 = 1 is unseen, and every row differs from it in the one parent.
    beta, n = 20.0, 10
    output = _single_output(PAIR, np.tile([0, 1], (1, n, 1)), [1, 0], target=1, beta=beta)
    unseen, mismatched = math.exp(-beta / 2), n * math.exp(-beta)
    expected = (unseen * 0.5 + mismatched) / (unseen + mismatched)
    assert output[1] == pytest.approx(expected, rel=1e-12)
    error = abs(output[1] - 0.5)
    assert error <= error_bound(beta, n)
    assert error >= 0.45 * error_bound(beta, n)  # the bound is tight up to a factor of 2 here


def test_seen_configuration_error_matches_formula():
    # Three rows (0, 0) match the query x0 = 0, and seven rows (1, 1) differ in the one parent.
    beta, matching, mismatching = 8.0, 3, 7
    rows = np.array([[[0, 0]] * matching + [[1, 1]] * mismatching])
    output = _single_output(PAIR, rows, [0, 0], target=1, beta=beta)
    unseen, mismatched = math.exp(-beta / 2), mismatching * math.exp(-beta)
    expected = (unseen * 0.5 + mismatched) / (matching + unseen + mismatched)
    assert output[1] == pytest.approx(expected, rel=1e-12)
    assert abs(output[1] - 0.0) <= (unseen + mismatched) / matching
    assert abs(output[1] - 0.0) <= error_bound(beta, matching + mismatching)


@pytest.mark.parametrize("beta", [4.0, 12.0, 30.0])
def test_error_within_bound_at_small_beta(beta):
    batch = _episodes(RANDOM_NETWORKS[0], 37)
    context = batch.context_for()
    difference = _max_difference(ExactTransformer(beta=beta).fit(context), CountMLE().fit(context), batch)
    assert difference <= error_bound(beta, 37) + 1e-12
    if beta == 4.0:
        assert difference > 1e-3  # the soft regime is visible, so the check above is not vacuous


# The model: attention and MLP layers with weights set by construction.


def test_model_layers_are_attention_and_mlp():
    model = ExactTransformerModel(COLLIDER)
    assert [type(block) for block in (model.layer1, model.layer2)] == [Block, Block]
    for block in (model.layer1, model.layer2):
        assert isinstance(block.attention, Attention)
        assert isinstance(block.mlp, MLP)
    leaf_types = {type(module) for module in model.modules() if not list(module.children())}
    assert leaf_types == {nn.Linear}
    assert not any(parameter.requires_grad for parameter in model.parameters())


def test_layer2_attends_uniformly_to_matching_rows():
    model = ExactTransformerModel(COLLIDER)
    tokens = _tokens(model, COLLIDER_ROWS, 0, query=False)
    cache = model.encode_context(tokens)
    queries = torch.tensor([[[1, 0, 0], [0, 1, 0]]])  # (x0, x1) = (1, 0) matches rows 1, 4, 5; (0, 1) matches none
    weights = model.attention_weights(cache, model.encoding.encode(queries, 2, query=True, dtype=torch.float64))[0]

    assert weights.shape == (2, 1 + 6)
    matching = [1 + 1, 1 + 4, 1 + 5]
    assert torch.allclose(weights[0, matching], torch.full((3,), 1 / 3, dtype=torch.float64), rtol=0, atol=1e-15)
    others = [i for i in range(7) if i not in matching]
    assert weights[0, others].max() <= math.exp(-DEFAULT_BETA / 2)
    # An unseen configuration puts (almost) all weight on the unseen-configuration token.
    assert weights[1, 0] == pytest.approx(1.0, abs=1e-15)


def test_layer2_scores_count_matching_parents():
    beta = 2.0
    model = ExactTransformerModel(COLLIDER, beta=beta)
    tokens = _tokens(model, COLLIDER_ROWS, 0, query=False)
    cache = model.encode_context(tokens)
    query = model.encoding.encode(torch.tensor([[[0, 1, 0]]]), 2, query=True, dtype=torch.float64)
    weights = model.attention_weights(cache, query)[0, 0]
    # Matching parents of each row with (0, 1): rows (0,0), (1,0), (0,0), (1,1), (1,0), (1,0).
    scores = torch.tensor([1.5, 1, 0, 1, 1, 0, 0], dtype=torch.float64) * beta  # unseen token first: 2 - 1/2
    assert torch.allclose(weights, torch.softmax(scores, dim=0), rtol=1e-14, atol=0)


def test_layer1_mlp_selects_parent_blocks():
    model = ExactTransformerModel(COLLIDER)
    cache = model.encode_context(_tokens(model, COLLIDER_ROWS, 0, query=False))
    query_row = torch.tensor([[[1, 0, 2]]])
    # Features are x0 = (0, 1), x1 = (0, 1), x2 = (0, 1, 2): x2's parents keep x0 = 1 and x1 = 0; x1 has none.
    for target, expected in [(2, [0, 1, 1, 0, 0, 0, 0]), (1, [0, 0, 0, 0, 0, 0, 0])]:
        hidden = model.embedding(model.encoding.encode(query_row, target, query=True, dtype=torch.float64))
        hidden = model.layer1(hidden, cache.layer1_keys, cache.layer1_values)
        assert hidden[0, 0, model.layout.parent_values].tolist() == expected


@pytest.mark.parametrize("policy", ["uniform", "marginal"])
def test_layer1_attention_writes_fallback(policy):
    model = ExactTransformerModel(COLLIDER, policy=policy)
    tokens = _tokens(model, COLLIDER_ROWS, 0, query=False)
    unseen = model.unseen_token.expand(1, 1, -1)
    keys, _ = model.layer1.attention.keys_values(model.embedding(tokens))
    assert torch.equal(model.layer1.attention.weights(unseen, keys), torch.full((1, 1, 6), 1 / 6, dtype=torch.float64))

    # Context marginals: x0 = (2, 4) / 6, x1 = (5, 1) / 6 and x2 = (2, 2, 2) / 6.
    marginals = [2 / 6, 4 / 6, 5 / 6, 1 / 6, 1 / 3, 1 / 3, 1 / 3]
    uniform = [1 / 2, 1 / 2, 1 / 2, 1 / 2, 1 / 3, 1 / 3, 1 / 3]
    expected = torch.tensor(marginals if policy == "marginal" else uniform, dtype=torch.float64)
    fallback = model.encode_context(tokens).layer2_values[0, 0]  # the unseen-configuration token's layer-2 value
    assert torch.allclose(fallback, expected, rtol=0, atol=1e-15)


def test_cached_path_equals_full_forward():
    batch = _episodes("random:n=7,max_in_degree=3,card=2-3,graph_seed=4", 15, num_test_rows=5)
    model = ExactTransformerModel(batch.structure, beta=3.0, policy="marginal")
    encode = model.encoding.encode
    rows, queries = torch.as_tensor(batch.context), torch.as_tensor(batch.test)
    cache = model.encode_context(encode(rows, 0, query=False, dtype=torch.float64))
    for j in range(batch.structure.num_variables):
        query_tokens = encode(queries, j, query=True, dtype=torch.float64)
        full = model(encode(rows, j, query=False, dtype=torch.float64), query_tokens)
        assert torch.allclose(model.query(cache, query_tokens), full, rtol=0, atol=1e-14)


def test_layer1_leaves_context_rows_unchanged():
    batch = _episodes("random:n=7,max_in_degree=3,card=2-3,graph_seed=4", 15, num_test_rows=5)
    model = ExactTransformerModel(batch.structure)
    context = model.embedding(_tokens(model, batch.context, 3, query=False))
    query = model.embedding(_tokens(model, batch.test, 3, query=True))
    hidden = torch.cat([model.unseen_token.expand(2, 1, -1), context, query], dim=1)
    first_mask, _ = attention_masks(15, 5)
    after = model.layer1.self_attend(hidden, first_mask)
    assert torch.equal(after[:, 1:16], context)


def test_context_cache_ignores_target_indicator():
    batch = _episodes("asia", 50)
    model = ExactTransformerModel(batch.structure)
    rows = torch.as_tensor(batch.context)
    caches = [model.encode_context(model.encoding.encode(rows, j, query=False, dtype=torch.float64)) for j in (0, 7)]
    assert torch.equal(caches[0].layer2_keys, caches[1].layer2_keys)
    assert torch.equal(caches[0].layer2_values, caches[1].layer2_values)


def test_refresh_after_weight_edit():
    model = ExactTransformerModel(PAIR)
    before = model.context_projection_table.clone()
    with torch.no_grad():
        model.layer2.attention.value.weight.mul_(2.0)
    model.refresh_context_projection()
    assert not torch.equal(before, model.context_projection_table)


# Generation.


def test_generate_matches_mle_sampler():
    batch = _episodes("asia", 200, num_episodes=3)
    context = batch.context_for()
    generated = ExactTransformer().fit(context).generate(2000, np.random.default_rng(5))
    sampled = ancestral_sample(batch.structure, CountMLE().fit(context).cpts_, 2000, np.random.default_rng(5))
    # Both draw one uniform per row and variable in the same order, so the rows agree except
    # where a uniform falls within rounding of a CDF step.
    assert generated.shape == (3, 2000, 8)
    assert (generated == sampled).all(axis=-1).mean() >= 0.999


def test_generated_tv_shrinks_like_sampler():
    batch = _episodes("asia", 200, num_episodes=4)
    context = batch.context_for()
    estimator = ExactTransformer().fit(context)
    implied = exact.family_marginals(batch.structure, CountMLE().fit(context).cpts_)
    tv = {}
    for num_rows in (250, 4000):
        rows = estimator.generate(num_rows, np.random.default_rng(num_rows))
        tv[num_rows] = family_tv(batch.structure, rows, implied).mean()
    # A sampler's expected TV falls like 1/sqrt(R): a ratio of 4 for 16 times more rows.
    # Tolerance: 2.5 to 6.4 (the ratio 4 times or divided by 1.6), for 32 families at fixed seeds.
    assert 2.5 <= tv[250] / tv[4000] <= 6.4
    assert tv[4000] <= 0.05


def test_generate_is_reproducible_and_batched():
    batch = _episodes("sachs", 100, num_episodes=3)
    estimator = ExactTransformer().fit(batch.context_for())
    first = estimator.generate(300, np.random.default_rng(1))
    assert np.array_equal(first, estimator.generate(300, np.random.default_rng(1)))
    assert not np.array_equal(first, estimator.generate(300, np.random.default_rng(2)))
    assert estimator.generate(0, np.random.default_rng(1)).shape == (3, 0, 11)
    batch.structure.validate_rows(first)


# Settings, registry and bad input.


def test_registry_builds_with_settings():
    estimator = make_estimator("exact-transformer:beta=50,policy=marginal,dtype=float32")
    assert isinstance(estimator, ExactTransformer)
    assert estimator.get_settings() == {"beta": 50.0, "policy": "marginal", "device": "cpu", "dtype": "float32"}


def test_refit_reuses_model_for_same_structure():
    estimator = ExactTransformer()
    first = _episodes("asia", 20, seed=1)
    second = sample_episodes(load_network("asia"), num_episodes=1, context_size=30, num_test_rows=0, seed=2)
    model = estimator.fit(first.context_for()).model_
    assert estimator.fit(second.context_for()).model_ is model
    assert estimator.cache_.num_rows == 30


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"beta": 0.0}, "beta must be a positive finite number"),
        ({"beta": float("inf")}, "beta must be a positive finite number"),
        ({"beta": "large"}, "beta must be a positive finite number"),
        ({"policy": "nan"}, "no 'nan' policy"),
        ({"dtype": "float16"}, "unknown dtype 'float16'"),
        ({"device": "not-a-device"}, "invalid device 'not-a-device'"),
    ],
)
def test_invalid_settings_raise(settings, message):
    with pytest.raises(ValueError, match=message):
        ExactTransformer(**settings)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_cuda_without_device_raises():
    with pytest.raises(ValueError, match="no CUDA device"):
        ExactTransformer(device="cuda")


def test_calls_before_fit_raise():
    with pytest.raises(NotFittedError, match=r"call fit\(context\) first"):
        ExactTransformer().conditionals(np.zeros((1, 1, 2), dtype=int), 1)


def test_invalid_queries_raise():
    estimator = ExactTransformer().fit(Context(PAIR, np.array([[[0, 1], [1, 1]]])))
    with pytest.raises(ValueError, match="is not a variable index"):
        estimator.conditionals(np.zeros((1, 1, 2), dtype=int), 2)
    with pytest.raises(ValueError, match=r"expected \(1, queries, 2\)"):
        estimator.conditionals(np.zeros((2, 1, 2), dtype=int), 1)
    with pytest.raises(ValueError, match="contain code 5"):
        estimator.conditionals(np.array([[[5, 0]]]), 1)
    with pytest.raises(ValueError, match="num_rows must be 0 or more"):
        estimator.generate(-1, np.random.default_rng(0))
    # Columns from the target on are masked, so invalid codes there are ignored.
    assert np.allclose(estimator.conditionals(np.array([[[1, 9]]]), 1), [[[0.0, 1.0]]], rtol=0, atol=1e-15)


def test_too_large_network_is_unavailable():
    structure = Structure.from_cardinalities("wide", [[], [0], [1]], [3000, 3000, 3000])
    reason = ExactTransformer.unavailable_reason(structure)
    assert reason is not None and "dense weights" in reason
    assert ExactTransformer.unavailable_reason(load_network("alarm").structure) is None
    with pytest.raises(ValueError, match="dense weights"):
        ExactTransformer().fit(Context(structure, np.zeros((1, 1, 3), dtype=int)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cuda_matches_cpu(dtype):
    batch = _episodes("alarm", 1000)
    context = batch.context_for()
    cuda = ExactTransformer(device="cuda", dtype=dtype).fit(context)
    assert cuda.cache_.layer2_keys.device.type == "cuda"
    assert _max_difference(cuda, CountMLE().fit(context), batch) <= FLOAT64_TOLERANCE
    rows = cuda.generate(500, np.random.default_rng(0))
    assert rows.shape == (2, 500, batch.structure.num_variables)
    cuda.synchronize()
