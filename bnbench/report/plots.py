"""Figures from records: fidelity and time versus context size N, on log-log axes.

One fidelity figure and one time figure per (network, tables). Each estimator is a
line through the mean over seeds, with a band of one standard error when there are
several seeds. The KL panel draws the asymptotic expected KL of the count MLE,
d / (2N), where d is the network's number of free parameters: for N large enough
that every parent configuration is seen, 2N * KL(true || MLE) tends to a chi-squared
variable with d degrees of freedom. An infinite value (an estimate with probability 0
where the truth has mass) cannot sit on a log axis, so it is drawn as an open triangle
on the top edge.

Figures are drawn on matplotlib's Agg canvas without pyplot, so importing this
module changes no global backend.
"""

from __future__ import annotations

import logging
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from bnbench.harness.records import latest_per_cell

logger = logging.getLogger(__name__)

#: Fidelity panels: metric key, axis label (with unit) and whether d/(2N) applies.
FIDELITY_PANELS = (
    ("kl", "KL(true || estimate) (nats)", True),
    ("kl_smoothed", "KL, smoothed estimate (nats)", True),
    ("tv", "conditional TV (probability)", False),
)
#: Time panels: metric key, axis label, scale from the stored unit, and whether to invert (rows/s to s/row).
TIME_PANELS = (
    ("fit_s", "fit time (s)", 1.0, False),
    ("conditional_s", "time per conditional (s)", 1.0, False),
    ("generate_rows_per_s", "generation time per row (s)", 1.0, True),
)


def write_plots(records: Iterable[dict[str, Any]], directory: Path) -> list[Path]:
    """Write ``fidelity-<network>.png`` and ``time-<network>.png`` per (network, tables); return the paths."""
    records = [r for r in latest_per_cell(records) if r.get("library") is None]
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for (network, tables), members in _by_network(records).items():
        suffix = slug(network if tables in (None, "fixed") else f"{network}-{tables}")
        title = network if tables in (None, "fixed") else f"{network}, tables {tables}"
        figure = fidelity_figure(members, title, free_parameters(members, network))
        if figure is not None:
            written.append(_save(figure, directory / f"fidelity-{suffix}.png"))
        figure = time_figure(members, title)
        if figure is not None:
            written.append(_save(figure, directory / f"time-{suffix}.png"))
    return written


def fidelity_figure(records: Sequence[dict[str, Any]], title: str, free_parameters: int | None) -> Figure | None:
    """Draw one panel per fidelity metric present in ``records``; return None when none is."""
    panels = [(key, label, theory) for key, label, theory in FIDELITY_PANELS if _has_metric(records, key)]
    if not panels:
        return None
    figure = Figure(figsize=(4.6 * len(panels) + 1.8, 4.2), layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for ax, (key, label, theory) in zip(axes, panels):
        _draw_metric(ax, records, key, scale=1.0, invert=False)
        if theory and free_parameters:
            _draw_theory(ax, records, free_parameters)
        _finish(ax, label)
    _legend(figure, axes)
    figure.suptitle(f"{title}: fidelity versus context size")
    return figure


def time_figure(records: Sequence[dict[str, Any]], title: str) -> Figure | None:
    """Draw one panel per time metric present in ``records``; return None when none is."""
    panels = [panel for panel in TIME_PANELS if _has_metric(records, panel[0])]
    if not panels:
        return None
    figure = Figure(figsize=(4.6 * len(panels) + 1.8, 4.2), layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for ax, (key, label, scale, invert) in zip(axes, panels):
        _draw_metric(ax, records, key, scale=scale, invert=invert)
        _finish(ax, label)
    _legend(figure, axes)
    figure.suptitle(f"{title}: time versus context size")
    return figure


def series(records: Sequence[dict[str, Any]], key: str) -> dict[str, dict[int, list[float]]]:
    """Values of ``key`` per estimator and N, one per seed (benchmark entries of a case count once)."""
    by_seed: dict[str, dict[int, dict[Any, float]]] = defaultdict(lambda: defaultdict(dict))
    for record in records:
        metrics = record.get("metrics")
        size = record.get("context_size")
        value = metrics.get(key) if isinstance(metrics, dict) else None
        if record.get("status") != "ok" or not isinstance(size, int) or isinstance(value, bool):
            continue
        if not isinstance(value, (int, float)):
            continue
        seed = record.get("seed", record.get("cell"))
        by_seed[str(record.get("estimator"))][size][seed] = float(value)
    return {estimator: {size: list(values.values()) for size, values in sizes.items()} for estimator, sizes in by_seed.items()}


def free_parameters(records: Sequence[dict[str, Any]], network: str | None) -> int | None:
    """d from the records' ``free_parameters`` (benchmarks store it) or from loading the network."""
    for record in records:
        metrics = record.get("metrics") if isinstance(record.get("metrics"), dict) else {}
        value = record.get("free_parameters", metrics.get("free_parameters"))
        if isinstance(value, (int, float)) and value > 0:
            return int(value)
    return None if network is None else _network_free_parameters(network)


def slug(text: str) -> str:
    """A file-name-safe version of a network spec (``chain:n=5`` -> ``chain-n5``)."""
    cleaned = re.sub(r"[^A-Za-z0-9._]+", "-", text.replace("=", "")).strip("-")
    return cleaned or "network"


@lru_cache(maxsize=64)
def _network_free_parameters(network: str) -> int | None:
    from bnbench.networks import load_network

    try:
        return load_network(network).structure.num_free_parameters
    except (KeyError, ValueError, OSError) as error:
        logger.warning("no d/(2N) line for network %r: cannot load it (%s)", network, error)
        return None


def _by_network(records: Sequence[dict[str, Any]]) -> dict[tuple, list[dict[str, Any]]]:
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        if record.get("network") is not None:
            groups[(record.get("network"), record.get("tables"))].append(record)
    return dict(sorted(groups.items(), key=lambda item: (str(item[0][0]), str(item[0][1]))))


def _has_metric(records: Sequence[dict[str, Any]], key: str) -> bool:
    return any(values for sizes in series(records, key).values() for values in sizes.values())


def _draw_metric(ax: Axes, records: Sequence[dict[str, Any]], key: str, scale: float, invert: bool) -> None:
    """Mean line with a standard-error band per estimator.

    A log axis cannot show an infinite or zero mean: infinite means are open
    triangles on the top edge, zero means open triangles on the bottom edge.
    """
    edges = {"top": False, "bottom": False}
    for estimator, sizes in sorted(series(records, key).items()):
        points = []
        for size in sorted(sizes):
            values = [_convert(v, scale, invert) for v in sizes[size]]
            points.append((size, sum(values) / len(values) if not any(math.isnan(v) for v in values) else math.nan, values))
        color = _draw_estimator(ax, estimator, points)
        for edge, position, marker, test in (("top", 0.97, "^", math.isinf), ("bottom", 0.03, "v", lambda m: m == 0)):
            at_edge = [size for size, mean, _ in points if test(mean)]
            if at_edge:
                edges[edge] = True
                ax.plot(at_edge, [position] * len(at_edge), linestyle="none", marker=marker, markersize=8,
                        markerfacecolor="none", color=color, transform=ax.get_xaxis_transform(), clip_on=False)
    if edges["top"]:
        ax.plot([], [], linestyle="none", marker="^", markerfacecolor="none", color="0.3", label="infinite (drawn at top)")
    if edges["bottom"]:
        ax.plot([], [], linestyle="none", marker="v", markerfacecolor="none", color="0.3", label="zero (drawn at bottom)")


def _convert(value: float, scale: float, invert: bool) -> float:
    if invert:
        value = 1.0 / value if value > 0 else math.inf
    return value * scale


def _draw_estimator(ax: Axes, estimator: str, points: list[tuple[int, float, list[float]]]) -> str:
    """Draw the finite positive means of one estimator; return its color."""
    sizes, means, lower, upper = [], [], [], []
    for size, mean, values in points:
        if not (math.isfinite(mean) and mean > 0):
            continue
        error = 0.0
        if len(values) > 1:
            variance = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
            error = math.sqrt(variance / len(values))
        sizes.append(size)
        means.append(mean)
        lower.append(max(mean - error, mean * 1e-3))
        upper.append(mean + error)
    (line,) = ax.plot(sizes, means, marker="o", markersize=4, label=estimator)
    if any(u > l for l, u in zip(lower, upper)):
        ax.fill_between(sizes, lower, upper, color=line.get_color(), alpha=0.15, linewidth=0)
    return line.get_color()


def _draw_theory(ax: Axes, records: Sequence[dict[str, Any]], free_parameters: int) -> None:
    sizes = sorted({r["context_size"] for r in records if isinstance(r.get("context_size"), int) and r["context_size"] > 0})
    if len(sizes) < 1:
        return
    ax.plot(sizes, [free_parameters / (2 * n) for n in sizes], color="black", linestyle="--", linewidth=1,
            label=f"d/(2N), d = {free_parameters}")


def _finish(ax: Axes, label: str) -> None:
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("context size N (rows)")
    ax.set_ylabel(label)
    ax.grid(True, which="major", alpha=0.3)
    _span_a_decade(ax)


def _span_a_decade(ax: Axes) -> None:
    """Widen a log y-axis whose data span less than 1.5 decades, so that power-of-ten ticks label it."""
    low, high = ax.get_ylim()
    if low > 0 and high / low < 10**1.5:
        center = math.sqrt(low * high)
        ax.set_ylim(center / 10**0.75, center * 10**0.75)


def _legend(figure: Figure, axes: Sequence[Axes]) -> None:
    """Place one legend for all panels to their right, where it cannot hide data."""
    handles: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    if handles:
        figure.legend(list(handles.values()), list(handles), loc="outside right upper", fontsize="small")


def _save(figure: Figure, path: Path) -> Path:
    figure.savefig(path, dpi=120)
    logger.info("wrote %s", path)
    return path
