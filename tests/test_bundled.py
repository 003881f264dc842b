import gzip

import numpy as np
import pytest

from bnbench.networks import bundled_names, load_network
from bnbench.networks.bundled import bundled_directory, load_bundled
from bnbench.networks.pgmpy_convert import table_from_pgmpy

EXPECTED = {
    "asia", "cancer", "earthquake", "sachs", "survey", "alarm", "child", "insurance", "water", "hailfinder",
    "hepar2", "win95pts", "andes", "pathfinder", "pigs", "link", "munin", "diabetes", "mildew", "barley",
}


def test_every_expected_network_is_bundled():
    assert EXPECTED <= set(bundled_names())


@pytest.mark.parametrize("name", bundled_names())
def test_bundled_network_loads_with_valid_tables(name):
    network = load_network(name)
    structure = network.structure
    assert structure.num_variables > 0
    for j, table in enumerate(network.cpts):
        assert table.shape == structure.table_shape(j)
        assert np.allclose(table.sum(-1), 1.0, atol=1e-12)
        for p in structure.parents[j]:
            assert p < j


@pytest.mark.parametrize("name", ["asia", "alarm", "sachs"])
def test_tables_match_pgmpy_model_by_label(name):
    from pgmpy.readwrite import BIFReader

    network = load_network(name)
    text = gzip.open(bundled_directory() / f"{name}.bif.gz", "rt").read()
    model = BIFReader(string=text).get_model()
    for j, variable in enumerate(network.structure.variables):
        expected = table_from_pgmpy(network.structure, j, model.get_cpds(variable))
        assert np.allclose(network.cpts[j], expected, atol=1e-6), variable


def test_asia_either_is_placed_by_label():
    asia = load_network("asia")
    structure = asia.structure
    j = structure.index("either")
    assert structure.parent_names(j) == ["lung", "tub"]
    yes, no = 0, 1
    assert structure.state_names[j] == ("yes", "no")
    # either is the logical OR of lung and tub: only (no, no) gives either = no.
    assert asia.cpts[j][no, no].tolist() == [0.0, 1.0]
    assert asia.cpts[j][no, yes].tolist() == [1.0, 0.0]
    assert asia.cpts[j][yes, no].tolist() == [1.0, 0.0]


def test_cache_returns_identical_tables():
    first = load_network("child")
    load_bundled.cache_clear()
    second = load_network("child")
    assert first is not second
    assert first.structure.variables == second.structure.variables
    for a, b in zip(first.cpts, second.cpts):
        assert np.array_equal(a, b)


def test_unknown_name_lists_valid_names():
    with pytest.raises(KeyError, match=r"unknown network 'asai'.*'asia'.*chain"):
        load_network("asai")
