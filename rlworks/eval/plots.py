"""Plots people would rather look at than read. matplotlib is imported only here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


def learning_curves(curves: Mapping[str, Sequence[tuple[np.ndarray, np.ndarray]]], path: str | Path,
                    title: str, ylabel: str = "episodic return", xlabel: str = "env steps",
                    grid_points: int = 100) -> Path:
    """One line per group (its mean over runs) with the per-run curves faint behind it.

    ``curves[group]`` is a list of ``(steps, values)`` per run; runs are interpolated onto a
    common grid before averaging. Writes PNG (and SVG when ``path`` ends in .svg).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for i, (group, runs) in enumerate(curves.items()):
        color = f"C{i}"
        runs = [(np.asarray(s), np.asarray(v)) for s, v in runs if len(s)]
        if not runs:
            continue
        hi = min(s[-1] for s, _ in runs)
        grid = np.linspace(max(s[0] for s, _ in runs), hi, grid_points)
        interp = np.stack([np.interp(grid, s, _smooth(v)) for s, v in runs])
        for s, v in runs:
            ax.plot(s, _smooth(v), color=color, alpha=0.2, lw=0.8)
        ax.plot(grid, interp.mean(0), color=color, lw=2.2, label=f"{group} (mean of {len(runs)})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", frameon=False)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _smooth(values: np.ndarray, window: int = 5) -> np.ndarray:
    if len(values) < window:
        return values
    kernel = np.ones(window) / window
    padded = np.concatenate([np.full(window - 1, values[0]), values])
    return np.convolve(padded, kernel, mode="valid")
