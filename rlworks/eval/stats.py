"""Aggregate performance over runs and tasks, with stratified bootstrap CIs (rliable, done fast).

Data convention (rliable's): ``scores[name]`` is ``(R, T)`` = ``(num_runs, num_tasks)``, one
array per algorithm; run counts may differ between algorithms. Learning curves are
``(R, T, C)`` with ``C`` checkpoints.

Every aggregate here is *batched*: it takes ``(..., R, T)`` and returns ``(...)``, so one call
evaluates a whole chunk of bootstrap resamples ``(B, R, T) -> (B,)``. The same functions give
the point estimates on ``scores[None]``. Reference: Agarwal et al. 2021, "Deep Reinforcement
Learning at the Edge of the Statistical Precipice"; the point estimates equal rliable 1.2.0's
``metrics.aggregate_*`` and ``probability_of_improvement`` (see tests/eval).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from rlworks.eval.bootstrap import (
    DEFAULT_MAX_BYTES,
    AggregateFn,
    Method,
    check_scores,
    get_interval_estimates,
)

__all__ = [
    "aggregate_iqm",
    "aggregate_mean",
    "aggregate_median",
    "aggregate_metrics",
    "aggregate_optimality_gap",
    "average_score_distribution",
    "get_interval_estimates",
    "normalize_scores",
    "performance_profile",
    "probability_of_improvement",
    "sample_efficiency_curve",
    "score_distribution",
]


# ----------------------------------------------------------------------------- normalisation
def normalize_scores(
    scores_dict: Mapping[str, np.ndarray], min_scores: np.ndarray, max_scores: np.ndarray
) -> dict[str, np.ndarray]:
    """``(x - min) / (max - min)`` per task, e.g. Atari human-normalised scores.

    scores (R, T) or (R, T, C); min_scores, max_scores: (T,) references (random, human).
    """
    lo = np.asarray(min_scores, dtype=np.float64)
    hi = np.asarray(max_scores, dtype=np.float64)
    if lo.ndim != 1 or lo.shape != hi.shape:
        raise ValueError(f"min_scores {lo.shape} and max_scores {hi.shape} must both be (T,)")
    span = hi - lo
    if not np.all(np.isfinite(span)) or np.any(span == 0):
        bad = int(np.flatnonzero(~np.isfinite(span) | (span == 0))[0])
        raise ValueError(
            f"task {bad}: max_scores[{bad}]={hi[bad]} and min_scores[{bad}]={lo[bad]} must be "
            "finite and distinct"
        )
    out = {}
    for name, scores in scores_dict.items():
        arr = check_scores(scores, name, ndim=None)
        if arr.shape[1] != lo.shape[0]:
            raise ValueError(
                f"scores {name!r} has {arr.shape[1]} tasks but the references have {lo.shape[0]}"
            )
        shape = (lo.shape[0],) + (1,) * (arr.ndim - 2)
        out[name] = (arr - lo.reshape(shape)) / span.reshape(shape)
    return out


# ----------------------------------------------------------------------------- aggregates
def aggregate_mean(scores: np.ndarray) -> np.ndarray:
    """Mean over tasks of the per-task mean over runs. (..., R, T) -> (...)"""
    return np.mean(np.mean(scores, axis=-2), axis=-1)


def aggregate_median(scores: np.ndarray) -> np.ndarray:
    """Median over tasks of the per-task mean over runs. (..., R, T) -> (...)"""
    return np.median(np.mean(scores, axis=-2), axis=-1)


def aggregate_iqm(scores: np.ndarray) -> np.ndarray:
    """Interquartile mean of all R*T scores. (..., R, T) -> (...)

    As ``scipy.stats.trim_mean(x, 0.25)`` on the flattened scores: ``floor(N / 4)`` values are
    cut from each end (N = R*T), so for N not divisible by 4 slightly more than half is kept
    (N=10: the middle 6). A full sort: numpy's vectorised float sort beats a two-point
    ``np.partition`` on bootstrap batches of a few hundred scores per row.
    """
    flat = np.reshape(scores, (*np.shape(scores)[:-2], -1))  # (..., N)
    n = flat.shape[-1]
    lo = n // 4  # == int(0.25 * n), scipy's rule
    hi = n - lo
    return np.mean(np.sort(flat, axis=-1)[..., lo:hi], axis=-1)


def aggregate_optimality_gap(scores: np.ndarray, gamma: float = 1.0) -> np.ndarray:
    """``gamma - mean(min(scores, gamma))`` over all runs and tasks. (..., R, T) -> (...)"""
    return gamma - np.mean(np.minimum(scores, gamma), axis=(-2, -1))


def all_aggregates(scores: np.ndarray, gamma: float = 1.0) -> np.ndarray:
    """Mean, median, IQM and optimality gap in one pass. (..., R, T) -> (..., 4)"""
    return np.stack(
        [aggregate_mean(scores), aggregate_median(scores), aggregate_iqm(scores),
         aggregate_optimality_gap(scores, gamma)],
        axis=-1,
    )


AGGREGATE_NAMES = ("mean", "median", "iqm", "optimality_gap")


def _count_below(sorted_pos: np.ndarray, is_y_first: bool, n_y: int) -> np.ndarray:
    """Sum over X of the number of Y before it in a stable sort of the pooled values."""
    is_y = sorted_pos < n_y if is_y_first else sorted_pos >= sorted_pos.shape[-1] - n_y
    ys_before = np.cumsum(is_y, axis=-1)  # (..., T, n+m); equals count before at X slots
    return np.sum(np.where(is_y, 0, ys_before), axis=-1)


def probability_of_improvement(scores_x: np.ndarray, scores_y: np.ndarray) -> np.ndarray:
    """P(X > Y) per task (ties count 1/2), averaged over tasks. (..., n, T), (..., m, T) -> (...)

    The Mann-Whitney U statistic of X over Y divided by ``n * m``, as rliable. Small samples
    compare all ``n * m`` pairs (boolean ``(..., T, n, m)``, as many bytes per task as the
    gathered scores take for ``n * m <= 24 (n + m)``); larger ones count from two stable sorts
    of the pooled values per task (memory linear in ``n + m``). Counts are exact integers.
    """
    x = np.moveaxis(np.asarray(scores_x, dtype=np.float64), -2, -1)  # (..., T, n)
    y = np.moveaxis(np.asarray(scores_y, dtype=np.float64), -2, -1)  # (..., T, m)
    n, m = x.shape[-1], y.shape[-1]
    if n * m <= 24 * (n + m):
        xx, yy = x[..., :, None], y[..., None, :]  # (..., T, n, 1), (..., T, 1, m)
        gt = np.count_nonzero(xx > yy, axis=(-2, -1))  # (..., T)
        lt = np.count_nonzero(xx < yy, axis=(-2, -1))
        # 2U = 2#gt + #eq = #gt - #lt + nm
        per_task = (gt - lt + n * m) / (2.0 * n * m)
    else:
        # Y first: ties sort Y before X -> #(y <= x). X first: X before Y -> #(y < x).
        y_first = np.argsort(np.concatenate([y, x], axis=-1), axis=-1, kind="stable")
        x_first = np.argsort(np.concatenate([x, y], axis=-1), axis=-1, kind="stable")
        le = _count_below(y_first, True, m)  # (..., T)
        lt = _count_below(x_first, False, m)  # (..., T)
        per_task = (le + lt) / (2.0 * n * m)
    return np.mean(per_task, axis=-1)


# ----------------------------------------------------------------------------- profiles
def _fraction_above(values: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """Fraction of ``values`` strictly above each tau. (..., N), (K,) -> (..., K)"""
    order = np.argsort(taus, kind="stable")
    st = taus[order]
    k = st.shape[0]
    lead = values.shape[:-1]
    rows = int(np.prod(lead, dtype=np.int64))
    bucket = np.searchsorted(st, values.reshape(rows, -1), side="left")  # (L, N): #taus < v
    key = bucket + (k + 1) * np.arange(rows)[:, None]
    hist = np.bincount(key.ravel(), minlength=rows * (k + 1)).reshape(rows, k + 1)
    above = np.cumsum(hist[:, ::-1], axis=1)[:, ::-1][:, 1:]  # (L, K): v > st[j] iff j < bucket
    out = np.empty_like(above, dtype=np.float64)
    out[:, order] = above / values.shape[-1]
    return out.reshape(*lead, k)


def score_distribution(scores: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """Fraction of all run scores above each tau. (..., R, T), (K,) -> (..., K)"""
    flat = np.reshape(scores, (*np.shape(scores)[:-2], -1))
    return _fraction_above(flat, np.asarray(taus, dtype=np.float64))


def average_score_distribution(scores: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """Fraction of tasks whose mean over runs is above each tau. (..., R, T), (K,) -> (..., K)"""
    return _fraction_above(np.mean(scores, axis=-2), np.asarray(taus, dtype=np.float64))


def performance_profile(
    scores_dict: Mapping[str, np.ndarray],
    taus: np.ndarray,
    rng: np.random.Generator,
    use_score_distribution: bool = True,
    reps: int = 2_000,
    confidence: float = 0.95,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Performance profiles over thresholds ``taus`` (K,) with pointwise CI bands.

    As rliable's ``create_performance_profile``: ``profiles[name]`` (K,) and ``cis[name]``
    (2, K). Run-score distributions by default; task-mean ones with
    ``use_score_distribution=False``.
    """
    tau_arr = np.asarray(taus, dtype=np.float64)
    if tau_arr.ndim != 1 or tau_arr.size == 0 or not np.all(np.isfinite(tau_arr)):
        raise ValueError(f"taus must be a non-empty finite 1-D grid, got shape {tau_arr.shape}")
    dist_fn = score_distribution if use_score_distribution else average_score_distribution
    return get_interval_estimates(
        scores_dict, lambda s: dist_fn(s, tau_arr), reps, rng, confidence, "percentile",
        max_bytes,
    )


# ----------------------------------------------------------------------------- curves
def sample_efficiency_curve(
    scores_dict: Mapping[str, np.ndarray],
    aggregate_fn: Callable[[np.ndarray], np.ndarray],
    rng: np.random.Generator,
    reps: int = 2_000,
    confidence: float = 0.95,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """An aggregate at every checkpoint of ``(R, T, C)`` scores, with CIs: (C,) and (2, C).

    A resampled run keeps its whole learning curve, so the band is coherent across checkpoints;
    each checkpoint's interval has the same distribution as rliable's (which resamples every
    checkpoint independently). ``aggregate_fn`` is a batched scalar aggregate, e.g.
    ``aggregate_iqm``.
    """
    for name, scores in scores_dict.items():
        check_scores(scores, name, ndim=3)

    def per_checkpoint(s: np.ndarray) -> np.ndarray:
        return aggregate_fn(np.moveaxis(s, -1, -3))  # (B, R, T, C) -> (B, C, R, T) -> (B, C)

    return get_interval_estimates(
        scores_dict, per_checkpoint, reps, rng, confidence, "percentile", max_bytes
    )


# ----------------------------------------------------------------------------- the table
def aggregate_metrics(
    scores_dict: Mapping[str, np.ndarray],
    rng: np.random.Generator,
    reps: int = 50_000,
    confidence: float = 0.95,
    gamma: float = 1.0,
    method: Method = "percentile",
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> list[dict[str, Any]]:
    """Mean, median, IQM and optimality gap with CIs, one row per (algorithm, metric).

    Each row: ``{"algorithm", "metric", "estimate", "lower", "upper", "num_runs",
    "num_tasks"}``. The four metrics share one bootstrap per algorithm.
    """
    fn: AggregateFn = lambda s: all_aggregates(s, gamma)  # noqa: E731
    points, cis = get_interval_estimates(scores_dict, fn, reps, rng, confidence, method,
                                         max_bytes)
    rows = []
    for name, scores in scores_dict.items():
        for k, metric in enumerate(AGGREGATE_NAMES):
            rows.append({
                "algorithm": name, "metric": metric, "estimate": float(points[name][k]),
                "lower": float(cis[name][0, k]), "upper": float(cis[name][1, k]),
                "num_runs": int(np.shape(scores)[0]), "num_tasks": int(np.shape(scores)[1]),
            })
    return rows
