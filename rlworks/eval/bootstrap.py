"""Stratified bootstrap confidence intervals, vectorised over repetitions and memory-bounded.

The resampling is rliable's ``StratifiedBootstrap`` (Agarwal et al. 2021, "Deep RL at the Edge
of the Statistical Precipice"): for every repetition and every task, the runs of that task are
drawn with replacement, independently of the other tasks. A multi-array input (e.g. the two
algorithms of a probability of improvement) is resampled independently per array
(rliable's ``StratifiedIndependentBootstrap``), so run counts may differ between arrays.

Differences from rliable, on purpose:

- All repetitions of a chunk are drawn and evaluated at once: indices ``(B, R, T)`` are gathered
  into ``(B, R, T)`` scores and the aggregate is computed along the last two axes. There is no
  Python loop per repetition.
- Memory is bounded: repetitions are processed in chunks of at most ``max_bytes`` of working
  memory, so 100,000 repetitions cost the same peak memory as a few hundred.
- The generator really controls the result (rliable ignores its ``random_state`` and uses
  ``np.random``'s global state). Every input array gets its own child generator
  (``rng.spawn``) and each repetition consumes exactly ``R * T`` doubles from it, in order, so
  the result does not depend on the chunk size: ``max_bytes`` changes speed and memory only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from statistics import NormalDist
from typing import Literal

import numpy as np

#: A batched aggregate: one ``(B, R_i, T, ...)`` array per input -> ``(B,)`` or ``(B, K)``.
AggregateFn = Callable[..., np.ndarray]
Method = Literal["percentile", "bca"]

DEFAULT_MAX_BYTES = 64 * 2**20
# Working arrays per resampled element: the uniforms, the indices, the gathered scores and
# about three temporaries inside an aggregate (a partition copy, a sort, a comparison).
_BYTES_PER_ELEMENT = 8 * 6


def check_scores(scores: np.ndarray, name: str, ndim: int | None = 2) -> np.ndarray:
    """Validate one score array ``(R, T)`` (``(R, T, C)`` for ``ndim=3``; ``None``: >= 2 axes).

    Raises ValueError naming ``name`` for a wrong ndim, an empty array or a non-finite value.
    """
    try:
        arr = np.asarray(scores, dtype=np.float64)
    except (ValueError, TypeError) as err:  # a ragged nested list, or text
        kind = "ragged (rows of different lengths)" if "inhomogeneous" in str(err) else \
            f"not numeric ({err})"
        raise ValueError(f"scores {name!r} is {kind}; give every run a score on every "
                         "task as one (num_runs, num_tasks) array") from None
    axes = "(num_runs, num_tasks)" if ndim == 2 else "(num_runs, num_tasks, num_checkpoints)"
    if (arr.ndim != ndim) if ndim is not None else (arr.ndim < 2):
        raise ValueError(
            f"scores {name!r} must have shape {axes}, got ndim={arr.ndim} shape={arr.shape}; "
            f"reshape a single task's runs with x[:, None]"
        )
    if arr.size == 0:
        raise ValueError(f"scores {name!r} is empty (shape {arr.shape}); need >= 1 run and task")
    bad = ~np.isfinite(arr)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"scores {name!r} contains a non-finite value {arr[where]} at index {where}; "
            "drop or impute failed runs before computing statistics"
        )
    return arr


def chunk_size(elements_per_rep: int, max_bytes: int) -> int:
    """Repetitions per chunk so that a chunk's working memory stays under ``max_bytes``."""
    if max_bytes <= 0:
        raise ValueError(f"max_bytes must be positive, got {max_bytes}")
    return max(1, int(max_bytes) // (_BYTES_PER_ELEMENT * max(1, elements_per_rep)))


def _spawn(rng: np.random.Generator, n: int) -> list[np.random.Generator]:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng must be a numpy.random.Generator, got {type(rng).__name__}; "
            "use rlworks.core.seeding.make_rng(seed, 'stats')"
        )
    try:
        return list(rng.spawn(n))
    except (TypeError, ValueError):  # a bit generator without a SeedSequence
        seeds = rng.integers(0, 2**63, size=(n, 4), dtype=np.uint64)
        return [np.random.default_rng(s) for s in seeds]


def _draw(rng: np.random.Generator, reps: int, num_runs: int, num_tasks: int) -> np.ndarray:
    """Flat offsets ``run * T + task`` into an ``(R*T, ...)`` view, shape ``(reps, R, T)``.

    Runs are uniform on ``0..R-1`` (``Generator.integers`` with 64-bit output: Lemire's method,
    one unbuffered 64-bit word per index plus rare rejections, in order), drawn
    repetition-major, so k chunks of a stream give the same indices as one draw of their total
    size. (32-bit or smaller dtypes are buffered within one call and would not be.)
    """
    idx = rng.integers(0, num_runs, size=(reps, num_runs, num_tasks), dtype=np.uint64)
    off = idx.view(np.int64)  # values < R: the view is exact and free
    off *= num_tasks
    off += np.arange(num_tasks)
    return off


def bootstrap_distribution(
    arrays: Sequence[np.ndarray],
    aggregate_fn: AggregateFn,
    reps: int,
    rng: np.random.Generator,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> np.ndarray:
    """The aggregate on ``reps`` stratified resamples: ``(reps,)`` or ``(reps, K)``.

    ``arrays``: one or more ``(R_i, T, ...)`` arrays (same ``T``); each is resampled over runs
    within each task, independently of the others and of the trailing axes' values (a resampled
    run keeps its whole trailing vector, e.g. its learning curve).
    """
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")
    gens = _spawn(rng, len(arrays))
    per_rep = sum(a.size for a in arrays)
    chunk = chunk_size(per_rep, max_bytes)
    flats = [a.reshape(a.shape[0] * a.shape[1], *a.shape[2:]) for a in arrays]  # (R*T, ...)
    out: list[np.ndarray] = []
    for start in range(0, reps, chunk):
        b = min(chunk, reps - start)
        resampled = []
        for a, flat, g in zip(arrays, flats, gens, strict=True):
            off = _draw(g, b, a.shape[0], a.shape[1])  # (b, R, T)
            resampled.append(flat.take(off, axis=0))  # (b, R, T, ...)
        out.append(np.asarray(aggregate_fn(*resampled), dtype=np.float64))
    return np.concatenate(out, axis=0)


def _percentile_interval(dist: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Linear-interpolation percentiles (numpy's default, as arch uses) per column.

    dist: (reps, K); lo, hi: (K,) in percent -> (2, K)
    """
    out = np.empty((2, dist.shape[1]))
    for k in range(dist.shape[1]):  # over statistics, not repetitions
        out[:, k] = np.percentile(dist[:, k], [lo[k], hi[k]])
    return out


def _jackknife(arr: np.ndarray, aggregate_fn: AggregateFn) -> np.ndarray:
    """Leave-one-run-out estimates ``(R, K)`` (arch's ``_loo_jackknife`` over runs)."""
    r = arr.shape[0]
    if r < 2:
        raise ValueError("BCa needs >= 2 runs for its jackknife; use method='percentile'")
    keep = np.array([np.delete(np.arange(r), i) for i in range(r)])  # (R, R-1)
    return np.asarray(aggregate_fn(arr[keep]), dtype=np.float64).reshape(r, -1)


def confidence_interval(
    dist: np.ndarray,
    point: np.ndarray,
    confidence: float = 0.95,
    method: Method = "percentile",
    jackknife: np.ndarray | None = None,
) -> np.ndarray:
    """Two-sided interval ``(2, K)`` (row 0 lower, row 1 upper) from a bootstrap distribution.

    dist: (reps, K); point: (K,); jackknife: (R, K), needed for ``method="bca"`` (Efron 1987;
    the formulas of arch's ``IIDBootstrap.conf_int``, with the acceleration per statistic).
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence}")
    alpha = (1.0 - confidence) / 2.0
    k = dist.shape[1]
    if method == "percentile":
        lo = np.full(k, 100 * alpha)
        hi = np.full(k, 100 * (1 - alpha))
        return _percentile_interval(dist, lo, hi)
    if method != "bca":
        raise ValueError(f"unknown method {method!r}; use 'percentile' or 'bca'")
    if jackknife is None:
        raise ValueError("method='bca' needs jackknife estimates")
    norm = NormalDist()
    p = (dist < point).mean(axis=0)  # (K,)
    if p.min() <= 0.0 or p.max() >= 1.0:
        raise ValueError(
            "BCa bias correction undefined: every bootstrap estimate lies on one side of the "
            "point estimate (a degenerate statistic); use method='percentile'"
        )
    bias = np.array([norm.inv_cdf(float(q)) for q in p])  # (K,)
    u = jackknife.mean(axis=0) - jackknife  # (R, K)
    denom = 6.0 * np.sum(u**2, axis=0) ** 1.5
    accel = np.divide(np.sum(u**3, axis=0), denom, out=np.zeros(k), where=denom > 0)
    z = np.array([norm.inv_cdf(alpha), norm.inv_cdf(1 - alpha)])  # (2,)
    shifted = bias[:, None] + z[None, :]  # (K, 2)
    adj = bias[:, None] + shifted / (1.0 - accel[:, None] * shifted)
    pct = 100 * np.vectorize(norm.cdf)(adj)  # (K, 2)
    return _percentile_interval(dist, pct[:, 0], pct[:, 1])


def get_interval_estimates(
    scores_dict: Mapping[str, np.ndarray | Sequence[np.ndarray]],
    aggregate_fn: AggregateFn,
    reps: int = 50_000,
    rng: np.random.Generator | None = None,
    confidence: float = 0.95,
    method: Method = "percentile",
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Point estimates and stratified-bootstrap CIs of ``aggregate_fn`` for every entry.

    ``scores_dict[name]`` is one ``(R, T)`` array-like (or ``(R, T, C)`` for curves), or a tuple of
    such arrays (e.g. ``(scores_x, scores_y)`` for a probability of improvement; run counts may
    differ). ``aggregate_fn`` is batched: it receives one ``(B, R_i, T, ...)`` array per input
    and returns ``(B,)`` or ``(B, K)`` (see ``rlworks.eval.stats``).

    Returns ``(points, intervals)``: ``points[name]`` has shape ``()`` or ``(K,)`` and
    ``intervals[name]`` ``(2,)`` or ``(2, K)``, row 0 the lower and row 1 the upper bound.
    ``rng`` is required in spirit (pass one from ``make_rng``); ``None`` is refused.
    """
    if rng is None:
        raise ValueError("rng is required: pass rlworks.core.seeding.make_rng(seed, 'stats')")
    if not scores_dict:
        raise ValueError("scores_dict is empty; pass {'algorithm': scores (R, T)}")
    checked: dict[str, list[np.ndarray]] = {}
    for name, value in scores_dict.items():  # validate everything before any bootstrap
        # A tuple holds several arrays (e.g. a pair for P(X > Y)); anything else is one array.
        raw = tuple(value) if isinstance(value, tuple) else (value,)
        if not raw:
            raise ValueError(f"scores {name!r} is an empty tuple of arrays")
        checked[name] = [check_scores(a, name, ndim=None) for a in raw]
        if len({a.shape[1] for a in checked[name]}) > 1:
            shapes = [a.shape for a in checked[name]]
            raise ValueError(f"scores {name!r}: arrays disagree on num_tasks {shapes}")
    points: dict[str, np.ndarray] = {}
    intervals: dict[str, np.ndarray] = {}
    for name, arrays in checked.items():
        point = np.asarray(aggregate_fn(*[a[None] for a in arrays]), dtype=np.float64)[0]
        dist = bootstrap_distribution(arrays, aggregate_fn, reps, rng, max_bytes)
        dist2 = dist.reshape(reps, -1)  # (reps, K)
        jk = None
        if method == "bca":
            if len(arrays) > 1:
                raise ValueError(
                    f"scores {name!r}: BCa is defined here for one array; use 'percentile'"
                )
            jk = _jackknife(arrays[0], aggregate_fn)
        ci = confidence_interval(dist2, point.reshape(-1), confidence, method, jk)
        points[name] = point
        intervals[name] = ci.reshape((2, *point.shape))
    return points, intervals

