"""Plots of aggregate statistics with their confidence intervals (rliable's figures).

Every function writes the figure twice, ``<stem>.png`` (for looking at) and ``<stem>.svg``
(for papers; text is kept as text, so labels stay searchable and editable), and returns both
paths. ``path`` is a stem or a ``.png``/``.svg`` path. matplotlib is imported inside the
functions, with the non-interactive Agg backend, so importing this module costs nothing.

Colours: one per algorithm, derived from the *sorted* algorithm names
(:func:`algorithm_colors`), so an algorithm has the same colour in every plot of a report.
Pass ``colors`` to override.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

# Okabe-Ito (colour-blind safe), then tab10 for the rest.
_PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442",
            "#000000", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
            "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")

METRIC_TITLES = {"mean": "Mean", "median": "Median", "iqm": "IQM",
                 "optimality_gap": "Optimality gap (lower is better)"}


def algorithm_colors(names: Iterable[str]) -> dict[str, str]:
    """A colour per algorithm, assigned in sorted-name order (stable across plots)."""
    return {name: _PALETTE[i % len(_PALETTE)] for i, name in enumerate(sorted(set(names)))}


# ----------------------------------------------------------------------------- interval estimates
def plot_interval_estimates(
    points: Mapping[str, Any],
    intervals: Mapping[str, Any],
    metric_names: Sequence[str],
    path: str | Path,
    *,
    xlabel: str = "normalized score",
    title: str | None = None,
    colors: Mapping[str, str] | None = None,
) -> tuple[Path, Path]:
    """One panel per aggregate metric; per algorithm a bar spanning the CI, a tick at the point.

    ``points[algo]``: ``(M,)`` (or a scalar for one metric); ``intervals[algo]``: ``(2, M)``
    (row 0 lower, row 1 upper), as :func:`rlworks.eval.bootstrap.get_interval_estimates`
    returns them for ``stats.all_aggregates``. ``metric_names``: the M panel titles
    (``"iqm"`` is shown as "IQM").
    """
    plt = _pyplot()
    algos = sorted(points)
    colors = _colors(colors, algos)
    m = len(metric_names)
    pts = {a: np.atleast_1d(np.asarray(points[a], dtype=float)) for a in algos}
    cis = {a: np.asarray(intervals[a], dtype=float).reshape(2, -1) for a in algos}
    for a in algos:
        if pts[a].shape != (m,) or cis[a].shape != (2, m):
            raise ValueError(f"{a!r}: points {pts[a].shape} and intervals {cis[a].shape} must be "
                             f"({m},) and (2, {m}) for metrics {list(metric_names)}")
    height = 1.3 + 0.45 * len(algos)
    fig, axes = plt.subplots(1, m, figsize=(2.9 * m + 1.0, height), squeeze=False)
    ys = np.arange(len(algos))[::-1]  # first algorithm on top
    for k, (ax, metric) in enumerate(zip(axes[0], metric_names, strict=True)):
        for y, a in zip(ys, algos, strict=True):
            lo, hi = cis[a][:, k]
            ax.barh(y, width=max(hi - lo, 1e-12), left=lo, height=0.6, color=colors[a],
                    alpha=0.75, edgecolor=colors[a])
            ax.vlines(pts[a][k], y - 0.36, y + 0.36, color="black", lw=2.2)
        ax.set_yticks(ys)
        ax.set_yticklabels(algos if k == 0 else [])
        ax.set_ylim(-0.6, len(algos) - 0.4)
        ax.set_title(METRIC_TITLES.get(metric, metric), fontsize=12)
        ax.set_xlabel(xlabel)
        ax.grid(axis="x", alpha=0.3)
        ax.spines[["top", "right", "left"]].set_visible(False)
        ax.tick_params(axis="y", length=0)
        ax.xaxis.set_major_locator(_max_n_locator(4))
    fig.suptitle(title or "Aggregate metrics with 95% CIs (bar: CI, black tick: point)",
                 fontsize=12)
    return _save(fig, path)


# ----------------------------------------------------------------------------- P(X > Y)
def plot_probability_of_improvement(
    pairs: Mapping[Any, tuple[float, Any]],
    path: str | Path,
    *,
    title: str | None = None,
    colors: Mapping[str, str] | None = None,
) -> tuple[Path, Path]:
    """P(X > Y) with its CI for each pair: X named on the left, Y on the right.

    ``pairs[(x, y)] = (point, ci)`` with ``ci`` ``(2,)``; a key may also be a string
    ``"x>y"``. Bars are coloured by X; the dashed line at 0.5 means "no difference".
    """
    plt = _pyplot()
    keys = [_split_pair(k) for k in pairs]
    colors = _colors(colors, [x for x, _ in keys] + [y for _, y in keys])
    n = len(keys)
    fig, ax = plt.subplots(figsize=(7.2, 1.0 + 0.5 * n))
    ys = np.arange(n)[::-1]
    for y, key, (point, ci) in zip(ys, keys, pairs.values(), strict=True):
        lo, hi = np.asarray(ci, dtype=float).reshape(2)
        ax.barh(y, width=max(hi - lo, 1e-12), left=lo, height=0.6, color=colors[key[0]],
                alpha=0.75, edgecolor=colors[key[0]])
        ax.vlines(float(point), y - 0.36, y + 0.36, color="black", lw=2.2)
    ax.axvline(0.5, color="gray", ls="--", lw=1.2)
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(-0.6, n - 0.4)
    ax.set_yticks(ys)
    ax.set_yticklabels([x for x, _ in keys])
    ax.set_ylabel("algorithm X")
    right = ax.twinx()
    right.set_ylim(ax.get_ylim())
    right.set_yticks(ys)
    right.set_yticklabels([y for _, y in keys])
    right.set_ylabel("algorithm Y")
    for axis in (ax, right):
        axis.spines[["top"]].set_visible(False)
        axis.tick_params(axis="y", length=0)
    ax.set_xlabel("P(X > Y): probability that a run of X beats a run of Y")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title or "Probability of improvement with 95% CIs (0.5 = no difference)",
                 fontsize=12)
    return _save(fig, path)


def _split_pair(key: Any) -> tuple[str, str]:
    if isinstance(key, tuple) and len(key) == 2:
        return str(key[0]), str(key[1])
    text = str(key)
    if ">" in text:
        x, y = text.split(">", 1)
        return x.strip(), y.strip()
    raise ValueError(f"pair key {key!r} must be (x, y) or 'x>y'")


# ----------------------------------------------------------------------------- profiles
def plot_performance_profile(
    taus: Any,
    profiles: Mapping[str, Any],
    cis: Mapping[str, Any] | None,
    path: str | Path,
    *,
    xlabel: str = "normalized score τ",
    ylabel: str = "fraction of runs with score > τ",
    title: str | None = None,
    colors: Mapping[str, str] | None = None,
) -> tuple[Path, Path]:
    """Score distributions: one curve per algorithm with its pointwise CI band.

    ``taus`` ``(K,)``; ``profiles[algo]`` ``(K,)``; ``cis[algo]`` ``(2, K)`` or ``cis=None``
    (as :func:`rlworks.eval.stats.performance_profile` returns them).
    """
    plt = _pyplot()
    t = np.asarray(taus, dtype=float)
    algos = sorted(profiles)
    colors = _colors(colors, algos)
    fig, ax = plt.subplots(figsize=(8.2, 4.4))
    for a in algos:
        ax.plot(t, np.asarray(profiles[a], dtype=float), color=colors[a], lw=2.2, label=a)
        if cis is not None and a in cis:
            band = np.asarray(cis[a], dtype=float)
            ax.fill_between(t, band[0], band[1], color=colors[a], alpha=_band_alpha(len(algos)),
                            lw=0)
    ax.set_xlim(t.min(), t.max())
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    _legend_right(ax)
    ax.set_title(title or "Performance profile", fontsize=12)
    return _save(fig, path)


# ----------------------------------------------------------------------------- curves
def plot_sample_efficiency(
    steps: Any,
    points: Mapping[str, Any],
    intervals: Mapping[str, Any] | None,
    path: str | Path,
    *,
    ylabel: str = "IQM normalized score",
    xlabel: str = "env steps",
    title: str | None = None,
    colors: Mapping[str, str] | None = None,
) -> tuple[Path, Path]:
    """An aggregate over checkpoints with its CI band, one line per algorithm.

    ``steps``: ``(C,)`` shared by all algorithms, or ``{algo: (C_a,)}``; ``points[algo]``
    ``(C_a,)``; ``intervals[algo]`` ``(2, C_a)`` (or ``None``: no bands). Also a learning-curve
    plot: pass the per-checkpoint IQM over runs (:func:`stats.sample_efficiency_curve`).
    """
    plt = _pyplot()
    algos = sorted(points)
    colors = _colors(colors, algos)
    fig, ax = plt.subplots(figsize=(8.2, 4.4))
    _draw_curves(ax, steps, points, intervals, colors)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    _legend_right(ax)
    ax.set_title(title or "Sample efficiency", fontsize=12)
    return _save(fig, path)


def plot_learning_curves(
    panels: Mapping[str, Mapping[str, tuple[Any, Any, Any]]],
    path: str | Path,
    *,
    ylabel: str = "IQM of episodic return",
    xlabel: str = "env steps",
    title: str | None = None,
    colors: Mapping[str, str] | None = None,
) -> tuple[Path, Path]:
    """One panel per environment: ``panels[env][algo] = (steps (C,), point (C,), ci (2, C))``.

    Each panel has its own y-axis (returns differ in scale between envs); the legend is shared.
    """
    plt = _pyplot()
    algos = sorted({a for curves in panels.values() for a in curves})
    colors = _colors(colors, algos)
    n = len(panels)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols + 0.4, 3.4 * rows + 1.0),
                             squeeze=False, layout="constrained")
    for ax, (env, curves) in zip(axes.flat, panels.items(), strict=False):
        steps = {a: c[0] for a, c in curves.items()}
        _draw_curves(ax, steps, {a: c[1] for a, c in curves.items()},
                     {a: c[2] for a, c in curves.items() if c[2] is not None}, colors)
        ax.set_title(env, fontsize=11)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    handles = [plt.Line2D([0], [0], color=colors[a], lw=2.4) for a in algos]
    fig.legend(handles, algos, loc="outside lower center", ncol=min(len(algos), 6),
               frameon=False)
    fig.suptitle(title or "Learning curves (line: IQM over runs, band: 95% bootstrap CI)",
                 fontsize=12)
    return _save(fig, path, tight=False)


def _draw_curves(ax: Any, steps: Any, points: Mapping[str, Any],
                 intervals: Mapping[str, Any] | None, colors: Mapping[str, str]) -> None:
    for a in sorted(points):
        x = np.asarray(steps[a] if isinstance(steps, Mapping) else steps, dtype=float)
        y = np.asarray(points[a], dtype=float)
        ax.plot(x, y, color=colors[a], lw=2.2, label=a)
        if intervals is not None and a in intervals:
            band = np.asarray(intervals[a], dtype=float)
            ax.fill_between(x, band[0], band[1], color=colors[a], alpha=_band_alpha(len(points)),
                            lw=0)
    from matplotlib.ticker import EngFormatter

    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    ax.xaxis.set_major_locator(_max_n_locator(5))
    ax.grid(alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)


# ----------------------------------------------------------------------------- helpers
def _band_alpha(n: int) -> float:
    """CI bands fade as more of them overlap, so every line stays visible."""
    return 0.22 if n <= 3 else 0.14


def _legend_right(ax: Any) -> None:
    """Legend outside the axes, on the right: it never hides a curve."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
              title="algorithm\n(band: 95% CI)", alignment="left")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _max_n_locator(n: int) -> Any:
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(nbins=n, steps=[1, 2, 2.5, 5, 10])


def _colors(given: Mapping[str, str] | None, names: Iterable[str]) -> dict[str, str]:
    names = list(names)
    derived = algorithm_colors(names)
    return {**derived, **dict(given or {})}


def figure_paths(path: str | Path) -> tuple[Path, Path]:
    """``(stem.png, stem.svg)`` for a stem or a ``.png``/``.svg``/``.pdf`` path."""
    p = Path(path)
    stem = p.with_suffix("") if p.suffix.lower() in (".png", ".svg", ".pdf") else p
    return Path(f"{stem}.png"), Path(f"{stem}.svg")


def _save(fig: Any, path: str | Path, tight: bool = True) -> tuple[Path, Path]:
    import matplotlib.pyplot as plt

    png, svg = figure_paths(path)
    png.parent.mkdir(parents=True, exist_ok=True)
    try:
        if tight:
            fig.tight_layout()
        fig.savefig(png, dpi=150, bbox_inches="tight")
        with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "rlworks"}):
            fig.savefig(svg, bbox_inches="tight", metadata={"Date": None})
    finally:
        plt.close(fig)
    return png, svg


def plot_pass_at_k(
    curves: Mapping[str, tuple[Any, Any, Any]],
    path: str | Path,
    *,
    title: str | None = None,
    colors: Mapping[str, str] | None = None,
) -> tuple[Path, Path]:
    """pass@k against k (log2 axis) for several models: ``curves[name] = (ks, pass, ci)``
    with ``ci`` of shape (2, len(ks)) or None."""
    plt = _pyplot()
    names = list(curves)
    colors = _colors(colors, names)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name in names:
        ks, values, ci = curves[name]
        ax.plot(ks, values, marker="o", ms=3.5, lw=2.0, color=colors[name], label=name)
        if ci is not None:
            ax.fill_between(ks, ci[0], ci[1], color=colors[name], alpha=0.2, lw=0)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("k (samples per problem)")
    ax.set_ylabel("pass@k")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, loc="lower right")
    ax.set_title(title or "pass@k (band: 95% bootstrap CI over problems)", fontsize=11)
    return _save(fig, path)
