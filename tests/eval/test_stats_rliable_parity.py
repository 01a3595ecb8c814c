"""Parity with rliable 1.2.0: point estimates to 1e-9 (relative) and CI endpoints.

rliable draws from ``np.random``'s global state (its ``random_state`` is ignored), so it is
seeded with ``np.random.seed`` before each call; ours uses its own generator. The two CIs are
then independent Monte Carlo estimates of the same bootstrap quantiles, and each endpoint must
agree within 3% of rliable's interval width at 50,000 repetitions (the slow test). The
always-on test uses fewer repetitions with the tolerance widened by sqrt(50,000 / reps), the
rate at which Monte Carlo quantile error shrinks. rliable's per-repetition cost does not
depend much on the data size, but its probability of improvement calls scipy's Mann-Whitney U
once per task per repetition, so that comparison runs on the first tasks of each set only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import pytest

pytest.importorskip("rliable")
from rliable import library as rly  # noqa: E402
from rliable import metrics  # noqa: E402

from rlworks.eval import stats  # noqa: E402
from rlworks.eval.bootstrap import get_interval_estimates  # noqa: E402

NAMES = stats.AGGREGATE_NAMES  # mean, median, iqm, optimality_gap


def score_sets() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Five seeded (x, y) pairs; y has a different run count where the set allows it."""
    g = np.random.default_rng(20240611)
    atari_x = g.gamma(2.0, 0.5, size=(10, 26))
    atari_y = g.gamma(2.0, 0.45, size=(7, 26))
    one_x, one_y = g.normal(1.0, 0.5, size=(8, 1)), g.normal(0.8, 0.5, size=(6, 1))
    two_x, two_y = g.normal(0.5, 0.3, size=(2, 12)), g.normal(0.4, 0.3, size=(2, 12))
    # Half-integers: many ties, also across x/y. (A coarser lattice, e.g. integers over 6 runs,
    # puts the median's bootstrap atoms 4% of the width apart: no 3% comparison can pass.)
    ties_x = np.round(g.normal(0, 3, size=(12, 10)) * 2) / 2
    ties_y = np.round(g.normal(0.5, 3, size=(12, 10)) * 2) / 2
    # Tasks at 1e-12 and at 1e12 in one set. (Scales spread over many orders *within* a task
    # make the bootstrap distribution a few far-apart atoms, whose quantiles no Monte Carlo
    # estimate pins down: rliable disagrees with itself across seeds there.)
    scale = np.array([1e-12, 1e-12, 1e-12, 1e12, 1e12, 1e12])
    ext_x = g.normal(1.0, 1.0, size=(5, 6)) * scale
    ext_y = g.normal(0.8, 1.0, size=(4, 6)) * scale
    return {
        "atari": (atari_x, atari_y),
        "one_task": (one_x, one_y),
        "two_runs": (two_x, two_y),
        "ties": (ties_x, ties_y),
        "extremes": (ext_x, ext_y),
    }


def rliable_aggregates(s: np.ndarray) -> np.ndarray:
    return np.array([
        metrics.aggregate_mean(s), metrics.aggregate_median(s), metrics.aggregate_iqm(s),
        metrics.aggregate_optimality_gap(s),
    ])


@contextmanager
def global_seed(seed: int) -> Iterator[None]:
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def rliable_ci(value: object, func: Callable[..., np.ndarray], reps: int, seed: int,
               method: str = "percentile") -> tuple[np.ndarray, np.ndarray]:
    with global_seed(seed):
        p, ci = rly.get_interval_estimates({"k": value}, func, reps=reps, method=method)
    return np.asarray(p["k"], dtype=float).reshape(-1), np.asarray(ci["k"]).reshape(2, -1)


def deviation(ours: np.ndarray, theirs: np.ndarray) -> np.ndarray:
    """Max endpoint deviation over rliable's interval width, per statistic. (2, K) -> (K,)"""
    width = theirs[1] - theirs[0]
    dev = np.abs(ours - theirs).max(axis=0)
    return np.where(width > 0, dev / np.where(width > 0, width, 1.0), np.where(dev > 0, np.inf, 0))


def check_set(name: str, reps: int, poi_tasks: int, poi_reps: int) -> dict[str, float]:
    x, y = score_sets()[name]
    tol = 0.03 * np.sqrt(50_000 / reps)
    p_their, ci_their = rliable_ci(x, rliable_aggregates, reps, seed=1)
    p_our, ci_our = get_interval_estimates({"k": x}, stats.all_aggregates, reps,
                                           np.random.default_rng(1))
    np.testing.assert_allclose(p_our["k"], p_their, rtol=1e-9, atol=1e-12)
    dev = deviation(ci_our["k"], ci_their)
    out = dict(zip(NAMES, dev.tolist(), strict=True))
    assert np.all(dev <= tol), f"{name}: CI deviation {out} > {tol:.3f} of width"

    xs, ys = x[:, :poi_tasks], y[:, :poi_tasks]
    pair = (xs, ys)
    assert stats.probability_of_improvement(xs, ys) == pytest.approx(
        metrics.probability_of_improvement(xs, ys), rel=1e-9, abs=1e-12)
    tol_poi = 0.03 * np.sqrt(50_000 / poi_reps)
    p_their, ci_their = rliable_ci(pair, metrics.probability_of_improvement, poi_reps, seed=2)
    p_our, ci_our = get_interval_estimates({"k": pair}, stats.probability_of_improvement,
                                           poi_reps, np.random.default_rng(2))
    assert float(p_our["k"]) == pytest.approx(float(p_their[0]), rel=1e-9, abs=1e-12)
    out["poi"] = float(deviation(ci_our["k"].reshape(2, 1), ci_their)[0])
    assert out["poi"] <= tol_poi, f"{name}: PoI CI deviation {out['poi']} > {tol_poi:.3f}"
    return out


SETS = list(score_sets())


@pytest.mark.parametrize("name", SETS)
def test_point_estimates_all_tasks(name: str) -> None:
    x, y = score_sets()[name]
    np.testing.assert_allclose(stats.all_aggregates(x), rliable_aggregates(x), rtol=1e-9,
                               atol=1e-12)
    assert stats.aggregate_optimality_gap(x, gamma=0.5) == pytest.approx(
        metrics.aggregate_optimality_gap(x, gamma=0.5), rel=1e-9, abs=1e-12)
    assert stats.probability_of_improvement(x, y) == pytest.approx(
        metrics.probability_of_improvement(x, y), rel=1e-9, abs=1e-12)
    assert stats.probability_of_improvement(x, x) == metrics.probability_of_improvement(x, x)


@pytest.mark.parametrize("name", SETS)
def test_ci_parity_fast(name: str) -> None:
    """Always on: 3,000 repetitions (2,000 for PoI on one task), tolerance widened."""
    check_set(name, reps=3_000, poi_tasks=1, poi_reps=2_000)


def test_bca_parity_fast() -> None:
    x = score_sets()["atari"][0]
    reps = 3_000
    for ours, theirs in ((stats.aggregate_mean, metrics.aggregate_mean),
                         (stats.aggregate_iqm, metrics.aggregate_iqm)):
        _, ci_their = rliable_ci(x, lambda s, f=theirs: np.array([f(s)]), reps, 3, "bca")
        _, ci_our = get_interval_estimates({"k": x}, ours, reps, np.random.default_rng(3),
                                           method="bca")
        dev = deviation(ci_our["k"].reshape(2, 1), ci_their)[0]
        assert dev <= 0.03 * np.sqrt(50_000 / reps), f"BCa {ours.__name__}: {dev}"


@pytest.mark.slow
@pytest.mark.parametrize("name", SETS)
def test_ci_parity_50k(name: str) -> None:
    """The acceptance criterion: 50,000 repetitions, 3% of the interval width."""
    out = check_set(name, reps=50_000, poi_tasks=1, poi_reps=50_000)
    print(f"\n{name}: max CI endpoint deviation / width: "
          + ", ".join(f"{k}={v:.4f}" for k, v in out.items()))
