"""Figures: fidelity and time versus N on log-log axes, the d/(2N) line, infinite and missing values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bnbench.cli import main
from bnbench.harness.records import append_record
from bnbench.report.plots import fidelity_figure, free_parameters, series, slug, time_figure, write_plots

SIZES = (10, 100, 1000)


def record(estimator="mle", n=10, seed=0, network="chain:n=3", status="ok", **metrics):
    return {"schema": 1, "cell": f"{network}|{n}|{estimator}|{seed}", "status": status, "network": network,
            "context_size": n, "estimator": estimator, "tables": "fixed", "seed": seed, "metrics": metrics}


def curve_records():
    records = []
    for seed in (0, 1):
        for n in SIZES:
            records.append(record("mle", n, seed, kl=math.inf if n == 10 else 9 / n * (1 + 0.1 * seed), tv=0.3 / math.sqrt(n),
                                  fit_s=1e-6 * n, generate_rows_per_s=1e6))
            records.append(record("oracle", n, seed, kl=0.0, tv=0.0, fit_s=1e-6))
    return records


def lines_by_label(ax):
    return {line.get_label(): line for line in ax.get_lines()}


def test_fidelity_axes_and_theory_line():
    figure = fidelity_figure(curve_records(), "asia", free_parameters=18)
    kl_axes, tv_axes = figure.axes[:2]
    assert kl_axes.get_xscale() == "log"
    assert kl_axes.get_yscale() == "log"
    assert kl_axes.get_xlabel() == "context size N (rows)"
    assert kl_axes.get_ylabel() == "KL(true || estimate) (nats)"
    assert tv_axes.get_ylabel() == "conditional TV (probability)"

    theory = lines_by_label(kl_axes)["d/(2N), d = 18"]
    np.testing.assert_allclose(theory.get_xdata(), SIZES)
    np.testing.assert_allclose(theory.get_ydata(), [18 / (2 * n) for n in SIZES])
    assert "d/(2N), d = 18" not in lines_by_label(tv_axes)


def test_fidelity_means_over_seeds():
    figure = fidelity_figure(curve_records(), "asia", free_parameters=18)
    mle = lines_by_label(figure.axes[0])["mle"]
    # N = 10 is infinite for every seed, so the line starts at N = 100.
    np.testing.assert_allclose(mle.get_xdata(), [100, 1000])
    np.testing.assert_allclose(mle.get_ydata(), [9 / 100 * 1.05, 9 / 1000 * 1.05])


def test_infinite_and_zero_values_on_edges():
    figure = fidelity_figure(curve_records(), "asia", free_parameters=18)
    labels = lines_by_label(figure.axes[0])
    assert "infinite (drawn at top)" in labels
    assert "zero (drawn at bottom)" in labels
    markers = [line for line in figure.axes[0].get_lines() if line.get_marker() == "^" and len(line.get_xdata())]
    assert [list(line.get_xdata()) for line in markers] == [[10]]
    assert list(markers[0].get_ydata()) == [0.97]  # axes fraction: the top edge
    legend_texts = [text.get_text() for text in figure.legends[0].get_texts()]
    assert legend_texts[:2] == ["mle", "oracle"]


def test_time_figure_inverts_throughput():
    figure = time_figure(curve_records(), "asia")
    labels = [ax.get_ylabel() for ax in figure.axes]
    assert labels == ["fit time (s)", "generation time per row (s)"]
    per_row = lines_by_label(figure.axes[1])["mle"]
    np.testing.assert_allclose(per_row.get_ydata(), [1e-6] * 3)


def test_missing_metrics_give_no_figure():
    records = [record(kl=None), record(status="failed")]
    assert fidelity_figure(records, "asia", 18) is None
    assert time_figure(records, "asia") is None


def test_series_skips_failed_and_sizeless():
    records = [record(kl=0.5), record(kl=0.7, status="failed"), {**record(kl=0.9), "context_size": None}]
    assert series(records, "kl") == {"mle": {10: [0.5]}}


def test_free_parameters_from_records_or_network():
    assert free_parameters([{**record(), "metrics": {"free_parameters": 509}}], "alarm") == 509
    # chain:n=3 with binary variables: 1 + 2 + 2 free entries.
    assert free_parameters([record()], "chain:n=3") == 5
    assert free_parameters([record()], "chain:n=0") is None


def test_slug():
    assert slug("chain:n=5,card=3") == "chain-n5-card3"
    assert slug("asia") == "asia"


def test_write_plots_files(tmp_path):
    records = curve_records() + [record("mle", 10, network="general", tv=0.1), {**record(), "network": None}]
    written = write_plots(records, tmp_path / "figures")
    names = sorted(path.name for path in written)
    assert names == ["fidelity-chain-n3.png", "fidelity-general.png", "time-chain-n3.png"]
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_plot(tmp_path, capsys):
    results = tmp_path / "run.jsonl"
    for item in curve_records():
        append_record(results, item)
    assert main(["plot", str(results), "-o", str(tmp_path / "out")]) == 0
    assert "wrote" in capsys.readouterr().out
    assert (tmp_path / "out" / "fidelity-chain-n3.png").is_file()


def test_cli_plot_nothing_to_draw(tmp_path, capsys):
    results = tmp_path / "run.jsonl"
    append_record(results, record(status="failed"))
    assert main(["plot", str(results), "-o", str(tmp_path / "out")]) == 2
    assert "no figure written" in capsys.readouterr().err


@pytest.mark.parametrize("invert", [False, True])
def test_time_panel_keys(invert):
    key = "generate_rows_per_s" if invert else "fit_s"
    figure = time_figure([record(n=n, **{key: 2.0}) for n in SIZES], "asia")
    (ax,) = figure.axes
    np.testing.assert_allclose(lines_by_label(ax)["mle"].get_ydata(), [0.5 if invert else 2.0] * 3)
