"""Estimators added from outside bnbench: register(), a class path, an entry point, and broken plug-ins in a grid."""

from __future__ import annotations

import importlib
import importlib.metadata
import textwrap

import numpy as np
import pytest

from bnbench.cli import main
from bnbench.estimators import Estimator, UnknownEstimatorError, estimator_names, get_estimator_class, make_estimator, register
from bnbench.estimators import registry
from bnbench.estimators.mle import CountMLE
from bnbench.harness.grid import GridConfig
from bnbench.harness.records import read_records
from bnbench.harness.runner import run_grid
from bnbench.report.tables import render
from bnbench.testing import HAND_MLE, HAND_ROWS, HAND_STRUCTURE
from bnbench.episodes import Context

EXAMPLE_INSTALL = "pip install --no-deps -e examples/bnbench-knn"


@pytest.fixture
def isolated_registry(monkeypatch):
    """Registrations made by a test disappear after it."""
    monkeypatch.setattr(registry, "_REGISTERED", dict(registry._REGISTERED))


def tiny_grid(*estimators: str) -> GridConfig:
    return GridConfig(
        networks=("chain:n=3",), context_sizes=(20,), estimators=estimators, seeds=(0,),
        num_episodes=2, num_test_rows=20, num_generated_rows=20, measure_memory=False,
    )


def write_module(directory, name: str, source: str) -> None:
    (directory / f"{name}.py").write_text(textwrap.dedent(source))
    importlib.invalidate_caches()


PLUGIN_SOURCE = """
    from bnbench.estimators.mle import CountMLE

    class HalfSmoothed(CountMLE):
        '''The count MLE with alpha = 0.5 by default.'''

        def __init__(self, alpha: float = 0.5):
            super().__init__(alpha=alpha)
"""


# register()


def test_register_decorator_makes_name_usable(isolated_registry, tmp_path):
    @register("add-half")
    class AddHalf(CountMLE):
        def __init__(self):
            super().__init__(alpha=0.5)

    assert "add-half" in estimator_names()
    assert get_estimator_class("add-half") is AddHalf
    assert AddHalf.name == "add-half"
    estimator = make_estimator("add-half").fit(Context(HAND_STRUCTURE, HAND_ROWS))
    # Episode 0 has A = (0, 0, 1): (2 + 0.5) / (3 + 1) and (1 + 0.5) / (3 + 1).
    np.testing.assert_allclose(estimator.conditional_table(0)[0], [0.625, 0.375])

    statuses = run_grid(tiny_grid("add-half", "mle"), tmp_path / "r.jsonl", progress=False)
    assert statuses["ok"] == 2


def test_register_plain_call(isolated_registry):
    class Plain(CountMLE):
        pass

    assert register("plain-mle", Plain) is Plain
    assert get_estimator_class("plain-mle") is Plain


def test_register_rejects_builtin_name(isolated_registry):
    with pytest.raises(ValueError, match="built in"):
        register("mle", type("Other", (CountMLE,), {}))


def test_register_rejects_non_estimator(isolated_registry):
    with pytest.raises(TypeError, match="not an Estimator subclass"):
        register("not-an-estimator", dict)


# Class paths


def test_class_path_with_settings(tmp_path, monkeypatch):
    write_module(tmp_path, "classpath_plugin", PLUGIN_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    estimator = make_estimator("classpath_plugin:HalfSmoothed:alpha=2")
    assert type(estimator).__name__ == "HalfSmoothed"
    assert estimator.alpha == 2.0
    fitted = estimator.fit(Context(HAND_STRUCTURE, HAND_ROWS))
    # Episode 0 has A = (0, 0, 1): (2 + 2) / (3 + 4) and (1 + 2) / (3 + 4).
    np.testing.assert_allclose(fitted.conditional_table(0)[0], [4 / 7, 3 / 7])


def test_class_path_on_command_line(tmp_path, monkeypatch, capsys):
    write_module(tmp_path, "cli_plugin", PLUGIN_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    output = tmp_path / "run.jsonl"
    code = main(["run", "-n", "chain:n=3", "-N", "20", "-e", "cli_plugin:HalfSmoothed", "--seeds", "0", "--episodes", "1",
                 "--test-rows", "10", "--generated-rows", "10", "--no-memory", "--no-progress", "-o", str(output)])
    assert code == 0
    assert "cli_plugin:HalfSmoothed" in capsys.readouterr().out
    (record,) = read_records(output)
    assert record["status"] == "ok"
    assert record["settings"] == {"alpha": 0.5}


def test_class_path_missing_module():
    with pytest.raises(UnknownEstimatorError, match="cannot import module 'no_such_plugin_module'"):
        get_estimator_class("no_such_plugin_module:Estimator")


def test_class_path_not_estimator(tmp_path, monkeypatch):
    write_module(tmp_path, "not_estimator_plugin", "class Thing:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(UnknownEstimatorError, match="not an Estimator subclass"):
        get_estimator_class("not_estimator_plugin:Thing")


# Entry points


def write_distribution(directory, name: str, entry_points: str) -> None:
    """A minimal installed distribution (a .dist-info folder) that importlib.metadata finds on sys.path."""
    info = directory / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[bnbench.estimators]\n{entry_points}\n")
    importlib.invalidate_caches()


def test_entry_point_is_found(tmp_path, monkeypatch):
    write_module(tmp_path, "entry_point_plugin", PLUGIN_SOURCE)
    write_distribution(tmp_path, "entry_point_plugin", "half-smoothed = entry_point_plugin:HalfSmoothed")
    monkeypatch.syspath_prepend(str(tmp_path))

    assert "half-smoothed" in estimator_names()
    cls = get_estimator_class("half-smoothed")
    assert cls.__name__ == "HalfSmoothed"
    assert cls.name == "half-smoothed"
    assert make_estimator("half-smoothed:alpha=1").alpha == 1.0


def test_broken_entry_point_is_listed_unavailable(tmp_path, monkeypatch, capsys):
    write_distribution(tmp_path, "broken_plugin", "broken-plugin = no_such_module_for_entry_point:Missing")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(UnknownEstimatorError, match="cannot import module 'no_such_module_for_entry_point'"):
        get_estimator_class("broken-plugin")
    assert main(["list", "estimators"]) == 0
    printed = capsys.readouterr().out
    assert "broken-plugin" in printed
    assert "unavailable" in printed


# The example plug-in in examples/bnbench-knn, installed through its entry point


@pytest.fixture
def knn_entry_point():
    found = [ep for ep in importlib.metadata.entry_points(group="bnbench.estimators") if ep.name == "knn"]
    if not found:
        pytest.skip(f"the example plug-in is not installed; install it with '{EXAMPLE_INSTALL}' (.ci/run does)")
    return found[0]


def test_example_plugin_entry_point(knn_entry_point):
    assert knn_entry_point.value == "bnbench_knn:NearestRows"
    assert knn_entry_point.dist.name == "bnbench-knn"
    cls = get_estimator_class("knn")
    assert cls.__module__ == "bnbench_knn"
    assert cls.conditions_on == "prefix"


def test_example_plugin_in_grid(knn_entry_point, tmp_path):
    output = tmp_path / "r.jsonl"
    statuses = run_grid(tiny_grid("knn:k=3", "mle"), output, progress=False)
    assert statuses["ok"] == 2
    knn = next(r for r in read_records(output) if r["estimator"] == "knn:k=3")
    assert knn["settings"] == {"k": 3, "alpha": 0.0}
    # A prefix estimator's divergences are Monte Carlo estimates over the test rows.
    assert knn["metrics"]["divergence_exact"] is False
    assert 0 <= knn["metrics"]["tv"] <= 1


def test_example_plugin_k1_matches_mle_on_full_prefix(knn_entry_point):
    # With exact matches available, k = 1 keeps every matching row: for the first two
    # variables of the hand context that is the count MLE given the whole prefix.
    estimator = make_estimator("knn").fit(Context(HAND_STRUCTURE, HAND_ROWS))
    np.testing.assert_allclose(estimator.conditionals(HAND_ROWS, 0), np.broadcast_to(HAND_MLE[0][:, None], (2, 3, 2)))


def test_example_plugin_rejects_bad_k(knn_entry_point):
    with pytest.raises(ValueError, match="k must be an integer of at least 1; got 0"):
        make_estimator("knn:k=0")


# Broken plug-ins: each cell fails with the reason, and the grid goes on.


class _Broken(CountMLE):
    def __init__(self):
        super().__init__()


class RaisesInFit(_Broken):
    def fit(self, context):
        raise RuntimeError("lost the context")


class WrongShape(_Broken):
    def conditionals(self, rows, target):
        return super().conditionals(rows, target)[..., :1]


class NotNormalized(_Broken):
    def conditionals(self, rows, target):
        return 0.9 * super().conditionals(rows, target)


class ReturnsNaN(_Broken):
    def conditionals(self, rows, target):
        return np.full_like(super().conditionals(rows, target), np.nan)


class InvalidRows(_Broken):
    def generate(self, num_rows, rng):
        return super().generate(num_rows, rng) + 5


BROKEN = {
    "raises-in-fit": (RaisesInFit, "RuntimeError: lost the context"),
    "wrong-shape": (WrongShape, "of shape (2, 20, 1); expected (2, 20, 2)"),
    "not-normalized": (NotNormalized, "with a row summing to 0.9"),
    "returns-nan": (ReturnsNaN, "returned NaN in conditionals"),
    "invalid-rows": (InvalidRows, "valid codes are 0..1"),
}


def test_broken_plugins_fail_their_cells(isolated_registry, tmp_path):
    for name, (cls, _) in BROKEN.items():
        register(name, cls)
    output = tmp_path / "r.jsonl"
    statuses = run_grid(tiny_grid(*BROKEN, "mle"), output, progress=False)

    assert statuses["failed"] == len(BROKEN)
    assert statuses["ok"] == 1
    records = {r["estimator"]: r for r in read_records(output)}
    assert records["mle"]["status"] == "ok"
    for name, (_, reason) in BROKEN.items():
        assert records[name]["status"] == "failed", name
        assert reason in records[name]["error"], records[name]["error"]
        assert records[name]["traceback"]


def test_broken_plugin_rows_in_report(isolated_registry, tmp_path):
    register("raises-in-fit", RaisesInFit)
    output = tmp_path / "r.jsonl"
    run_grid(tiny_grid("raises-in-fit", "mle"), output, progress=False)
    table = render(read_records(output), "csv")
    lines = table.splitlines()
    column = lines[0].split(",").index("estimator")
    rows = {line.split(",")[column]: line for line in lines[1:]}
    assert ",0/1,failed," in rows["raises-in-fit"]
    assert "RuntimeError: lost the context" in rows["raises-in-fit"]
    assert ",1/1," in rows["mle"]


def test_unknown_estimator_lists_names():
    with pytest.raises(UnknownEstimatorError) as error:
        get_estimator_class("mel")
    assert "unknown estimator 'mel'" in str(error.value)
    assert "'mle'" in str(error.value)


def test_plugin_base_class_is_public():
    assert issubclass(get_estimator_class("mle"), Estimator)
