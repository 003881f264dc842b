import numpy as np
import pytest

from bnbench.structure import Structure, StructureError


def test_from_parents_sorts_topologically_and_keeps_declared_order():
    structure = Structure.from_parents(
        "net",
        {"child": ["b", "a"], "a": [], "b": ["a"], "lone": []},
        {"child": ["0", "1"], "a": ["0", "1"], "b": ["0", "1", "2"], "lone": ["x"]},
    )
    assert structure.variables == ("a", "b", "child", "lone")
    # Parents keep their declared order, which fixes the table axes.
    assert structure.parent_names(2) == ["b", "a"]
    assert structure.table_shape(2) == (3, 2, 2)


def test_cycle_is_rejected_with_its_path():
    with pytest.raises(StructureError, match="directed cycle") as error:
        Structure.from_parents("loop", {"a": ["c"], "b": ["a"], "c": ["b"]}, {v: ["0", "1"] for v in "abc"})
    message = str(error.value)
    assert "'loop'" in message
    for variable in "abc":
        assert variable in message


def test_undeclared_parent_is_rejected():
    with pytest.raises(StructureError, match=r"parents \['ghost'\] are not declared"):
        Structure.from_parents("net", {"a": ["ghost"]}, {"a": ["0", "1"]})


def test_constructor_rejects_non_topological_order():
    with pytest.raises(StructureError, match="topological order"):
        Structure("net", ("a", "b"), (("0", "1"), ("0", "1")), ((1,), ()))


def test_duplicate_names_are_rejected():
    with pytest.raises(StructureError, match="repeats variable names"):
        Structure("net", ("a", "a"), (("0",), ("0",)), ((), ()))
    with pytest.raises(StructureError, match="repeats state names"):
        Structure("net", ("a",), (("x", "x"),), ((),))


def test_sizes_of_a_small_graph():
    structure = Structure.from_cardinalities("net", [[], [], [0, 1]], [2, 3, 4])
    assert structure.cardinalities == (2, 3, 4)
    # (2 - 1) + (3 - 1) + 2 * 3 * (4 - 1)
    assert structure.num_free_parameters == 1 + 2 + 18
    assert structure.num_joint_states == 24
    assert structure.max_in_degree == 2
    assert structure.children == ((2,), (2,), ())
    assert structure.ancestors([2]) == [0, 1, 2]


def test_parent_configuration_index_is_c_order():
    structure = Structure.from_cardinalities("net", [[], [], [0, 1]], [2, 3, 2])
    rows = np.array([[0, 0, 0], [0, 2, 1], [1, 0, 0], [1, 2, 1]])
    assert structure.parent_configuration_index(rows, 2).tolist() == [0, 2, 3, 5]
    assert structure.parent_configuration_index(rows, 0).tolist() == [0, 0, 0, 0]


def test_validate_rows_names_bad_code_and_variable():
    structure = Structure.from_cardinalities("net", [[], [0]], [2, 3])
    with pytest.raises(ValueError, match=r"code 3 for variable 'x1'.*valid codes are 0..2"):
        structure.validate_rows(np.array([[0, 3]]))
    with pytest.raises(ValueError, match="expected integer"):
        structure.validate_rows(np.array([[0.0, 1.0]]))
    with pytest.raises(ValueError, match=r"expected \(\.\.\., 2\)"):
        structure.validate_rows(np.array([[0, 1, 1]]))


def test_index_of_unknown_variable_lists_valid_names():
    structure = Structure.from_cardinalities("net", [[], [0]], [2, 2])
    with pytest.raises(KeyError, match=r"valid names: \['x0', 'x1'\]"):
        structure.index("x9")
