"""Statistics plots: both files written, non-trivial PNGs, labels kept as SVG text, colours."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from rlworks.eval import statplots as sp

ALGOS = ("sac", "dqn", "ppo")  # unsorted on purpose: colours follow sorted names


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert len(data) > 5_000, f"{path} is only {len(data)} bytes"
    return struct.unpack(">II", data[16:24])


def _check(paths: tuple[Path, Path], *texts: str) -> str:
    png, svg = paths
    assert png.suffix == ".png" and svg.suffix == ".svg" and png.stem == svg.stem
    w, h = _png_size(png)
    assert w >= 600 and h >= 250, (w, h)
    text = svg.read_text()
    for t in texts:
        assert t in text, f"{t!r} not in {svg}"
    return text


def test_colors_follow_sorted_names() -> None:
    colors = sp.algorithm_colors(ALGOS)
    assert list(colors) == ["dqn", "ppo", "sac"]
    assert sp.algorithm_colors(["ppo", "dqn"])["dqn"] == colors["dqn"]
    assert len(set(colors.values())) == 3


def test_figure_paths() -> None:
    assert sp.figure_paths("out/fig.png") == (Path("out/fig.png"), Path("out/fig.svg"))
    assert sp.figure_paths("out/fig.svg") == (Path("out/fig.png"), Path("out/fig.svg"))
    # a dot inside a stem is not a suffix to strip
    assert sp.figure_paths("out/CartPole-v1.curve") == (Path("out/CartPole-v1.curve.png"),
                                                        Path("out/CartPole-v1.curve.svg"))


def test_interval_estimates(tmp_path: Path) -> None:
    g = np.random.default_rng(0)
    points = {a: g.uniform(0.3, 0.8, 4) for a in ALGOS}
    cis = {a: np.stack([p - 0.1, p + 0.1]) for a, p in points.items()}
    paths = sp.plot_interval_estimates(points, cis, ["mean", "median", "iqm", "optimality_gap"],
                                       tmp_path / "ie.png", xlabel="human normalized score")
    svg = _check(paths, "human normalized score", "IQM", "Optimality gap", "dqn", "sac")
    for color in sp.algorithm_colors(ALGOS).values():
        assert color.lower() in svg.lower()
    with pytest.raises(ValueError, match="must be"):
        sp.plot_interval_estimates(points, cis, ["mean"], tmp_path / "bad")


def test_probability_of_improvement(tmp_path: Path) -> None:
    pairs = {("dqn", "ppo"): (0.3, (0.2, 0.4)), "ppo>sac": (0.8, np.array([0.7, 0.9]))}
    paths = sp.plot_probability_of_improvement(pairs, tmp_path / "poi")
    _check(paths, "P(X &gt; Y)", "algorithm X", "algorithm Y", "sac")
    with pytest.raises(ValueError, match="pair key"):
        sp.plot_probability_of_improvement({"ppo-sac": (0.5, (0.4, 0.6))}, tmp_path / "bad")


def test_performance_profile(tmp_path: Path) -> None:
    taus = np.linspace(0, 1.2, 61)
    profiles = {a: np.clip(1 - taus / (1 + i), 0, 1) for i, a in enumerate(ALGOS)}
    cis = {a: np.stack([np.clip(p - 0.05, 0, 1), np.clip(p + 0.05, 0, 1)])
           for a, p in profiles.items()}
    _check(sp.plot_performance_profile(taus, profiles, cis, tmp_path / "pp",
                                       xlabel="normalized score tau"),
           "normalized score tau", "fraction of runs with score", "ppo")


def test_sample_efficiency_and_learning_curves(tmp_path: Path) -> None:
    steps = np.linspace(0, 50_000, 30)
    points = {a: 1 - np.exp(-steps / (10_000 * (i + 1))) for i, a in enumerate(ALGOS)}
    bands = {a: np.stack([p - 0.05, p + 0.05]) for a, p in points.items()}
    _check(sp.plot_sample_efficiency(steps, points, bands, tmp_path / "se",
                                     ylabel="IQM normalized score"),
           "IQM normalized score", "env steps", ">20k<")  # steps with SI suffixes
    panels = {env: {a: (steps, 100 * p, 100 * bands[a]) for a, p in points.items()}
              for env in ("CartPole-v1", "Acrobot-v1", "Pendulum-v1", "MountainCar-v0")}
    _check(sp.plot_learning_curves(panels, tmp_path / "lc", ylabel="IQM of episodic return"),
           "IQM of episodic return", "CartPole-v1", "MountainCar-v0", "dqn")
