"""Aggregates, seeding, chunk invariance, unequal runs, profiles, curves and input errors."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from rlworks.eval import stats
from rlworks.eval.bootstrap import bootstrap_distribution, get_interval_estimates


def scores(seed: int, runs: int = 6, tasks: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(runs, tasks))  # (R, T)


def test_iqm_trims_floor_quarter_each_end() -> None:
    # N=10: floor(10/4)=2 cut from each end -> mean of the middle 6.
    x = np.arange(10.0).reshape(2, 5)
    assert stats.aggregate_iqm(x) == pytest.approx(np.mean(np.arange(2, 8)))
    # N=7: cut 1 each end.
    x = np.array([[0.0, 1, 2, 3, 4, 5, 100]])
    assert stats.aggregate_iqm(x) == pytest.approx(3.0)
    # N=3: cut 0 -> plain mean.
    assert stats.aggregate_iqm(np.array([[1.0, 2.0, 9.0]])) == pytest.approx(4.0)


def test_hand_computed_aggregates() -> None:
    x = np.array([[0.0, 2.0, 4.0], [2.0, 2.0, 0.0]])  # task means 1, 2, 2
    assert stats.aggregate_mean(x) == pytest.approx(5 / 3)
    assert stats.aggregate_median(x) == pytest.approx(2.0)
    assert stats.aggregate_optimality_gap(x) == pytest.approx(1 - 4 / 6)
    assert stats.aggregate_optimality_gap(x, gamma=2.0) == pytest.approx(2 - 8 / 6)
    # P(X > Y): task 0: x=(1,3) vs y=(1,): 0.5 + 1 -> 0.75; task 1: 0 vs 0 -> 0.5
    px = np.array([[1.0, 0.0], [3.0, 0.0]])
    py = np.array([[1.0, 0.0]])
    assert stats.probability_of_improvement(px, py) == pytest.approx((0.75 + 0.5) / 2)


def test_poi_sort_path_equals_pair_path() -> None:
    rng = np.random.default_rng(3)
    x = rng.integers(0, 4, size=(60, 3)).astype(float)  # 60*50 > 24*110: sort path
    y = rng.integers(0, 4, size=(50, 3)).astype(float)
    gt = (x[:, None, :] > y[None, :, :]).mean(axis=(0, 1))
    eq = (x[:, None, :] == y[None, :, :]).mean(axis=(0, 1))
    assert stats.probability_of_improvement(x, y) == pytest.approx(np.mean(gt + eq / 2), abs=1e-15)


def test_batched_aggregates_match_per_row() -> None:
    batch = np.random.default_rng(1).normal(size=(4, 5, 3))  # (B, R, T)
    for fn in (stats.aggregate_mean, stats.aggregate_median, stats.aggregate_iqm,
               stats.aggregate_optimality_gap):
        np.testing.assert_allclose(fn(batch), [fn(b) for b in batch], rtol=1e-14)


def test_rng_controls_result() -> None:
    d = {"a": scores(0)}

    def ci(seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return get_interval_estimates(d, stats.aggregate_iqm, reps=500, rng=rng)[1]["a"]

    np.testing.assert_array_equal(ci(1), ci(1))
    assert not np.array_equal(ci(1), ci(2))
    with pytest.raises(ValueError, match="rng is required"):
        get_interval_estimates(d, stats.aggregate_iqm, reps=10, rng=None)


def test_chunking_is_invariant() -> None:
    arrays = [scores(0, runs=7), scores(1, runs=3)]
    dists = [
        bootstrap_distribution(arrays, stats.probability_of_improvement, 1001,
                               np.random.default_rng(5), max_bytes=mb)
        for mb in (1, 4_000, 10_000, 10**9)  # 1 rep per chunk ... everything in one chunk
    ]
    for d in dists[1:]:
        np.testing.assert_array_equal(d, dists[0])


def test_unequal_run_counts() -> None:
    d = {"a": scores(0, runs=10), "b": scores(1, runs=3), "c": scores(2, runs=1)}
    rows = stats.aggregate_metrics(d, rng=np.random.default_rng(0), reps=300)
    assert len(rows) == 12
    assert {r["num_runs"] for r in rows} == {10, 3, 1}
    for r in rows:
        assert r["lower"] <= r["estimate"] + 1e-12 and r["estimate"] <= r["upper"] + 1e-12
    single = [r for r in rows if r["algorithm"] == "c"]
    assert all(r["lower"] == r["upper"] == r["estimate"] for r in single)  # one run: no spread
    p, ci = get_interval_estimates({"a>b": (d["a"], d["b"])}, stats.probability_of_improvement,
                                   reps=300, rng=np.random.default_rng(0))
    assert ci["a>b"].shape == (2,) and ci["a>b"][0] <= p["a>b"] <= ci["a>b"][1]


def test_bca_runs_and_differs_from_percentile() -> None:
    x = np.random.default_rng(0).exponential(size=(12, 4))  # skewed: BCa shifts the interval
    d = {"a": x}
    pct = get_interval_estimates(d, stats.aggregate_mean, 4000, np.random.default_rng(0))[1]
    bca = get_interval_estimates(d, stats.aggregate_mean, 4000, np.random.default_rng(0),
                                 method="bca")[1]
    assert not np.allclose(pct["a"], bca["a"])
    assert bca["a"][0] > pct["a"][0]  # right-skewed mean: BCa moves both ends up
    assert bca["a"][1] > pct["a"][1]


def test_100k_reps_bounded_memory() -> None:
    x = scores(0, runs=10, tasks=26)
    tracemalloc.start()
    p, ci = get_interval_estimates({"a": x}, stats.aggregate_iqm, reps=100_000,
                                   rng=np.random.default_rng(0), max_bytes=8 * 2**20)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # The gathered resamples alone would be 100k * 260 * 8 B = 208 MB.
    assert peak < 24 * 2**20
    assert ci["a"][0] < p["a"] < ci["a"][1]


def test_performance_profile_matches_direct_count() -> None:
    x = scores(4, runs=5, tasks=6)
    taus = np.array([0.5, -1.0, 0.0, x[0, 0]])  # unsorted, one tau equal to a score
    prof, cis = stats.performance_profile({"a": x}, taus, np.random.default_rng(0), reps=200)
    np.testing.assert_allclose(prof["a"], [(x > t).mean() for t in taus])
    avg, _ = stats.performance_profile({"a": x}, taus, np.random.default_rng(0), reps=10,
                                       use_score_distribution=False)
    np.testing.assert_allclose(avg["a"], [(x.mean(0) > t).mean() for t in taus])
    assert cis["a"].shape == (2, 4) and np.all(cis["a"][0] <= cis["a"][1])


def test_sample_efficiency_curve() -> None:
    curves = np.random.default_rng(0).normal(size=(5, 3, 7)).cumsum(axis=-1)  # (R, T, C)
    pts, cis = stats.sample_efficiency_curve({"a": curves}, stats.aggregate_iqm,
                                             np.random.default_rng(0), reps=300)
    np.testing.assert_allclose(pts["a"], [stats.aggregate_iqm(curves[..., c]) for c in range(7)])
    assert cis["a"].shape == (2, 7)
    # Each checkpoint's band equals the band of a bootstrap of that checkpoint alone with the
    # same resampled runs (same stream).
    one, ci1 = get_interval_estimates({"a": curves[..., 3]}, stats.aggregate_iqm, 300,
                                      np.random.default_rng(0))
    np.testing.assert_allclose(cis["a"][:, 3], ci1["a"])


def test_normalize_scores() -> None:
    x = np.array([[0.0, 10.0], [5.0, 30.0]])
    out = stats.normalize_scores({"a": x}, np.array([0.0, 10.0]), np.array([10.0, 30.0]))
    np.testing.assert_allclose(out["a"], [[0.0, 0.0], [0.5, 1.0]])
    with pytest.raises(ValueError, match="task 1"):
        stats.normalize_scores({"a": x}, np.array([0.0, 1.0]), np.array([1.0, 1.0]))


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (np.array([[1.0, np.nan]]), "'bad'.*non-finite"),
        (np.zeros(3), "'bad'.*ndim=1"),
        (np.zeros((0, 3)), "'bad'.*empty"),
        ([[1.0, 2.0], [3.0]], "'bad' is ragged"),
        ([["a", "b"]], "'bad' is not numeric"),
    ],
)
def test_errors_name_the_input(bad: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        stats.aggregate_metrics({"ok": scores(0), "bad": bad}, rng=np.random.default_rng(0),
                                reps=10)
