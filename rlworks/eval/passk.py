"""pass@k, maj@k and coverage for sampled solutions (Chen et al. 2021, "Evaluating Large
Language Models Trained on Code", the unbiased pass@k estimator).

With ``n`` samples per problem of which ``c`` are correct, the probability that at least one of
``k`` samples drawn without replacement is correct is ``1 - C(n-c, k) / C(n, k)``. Computed in
log space as ``-expm1(sum_{i=n-c+1}^{n} log1p(-k / i))`` (the product form
``prod (1 - k/i)``), which stays finite and accurate for n and k in the thousands where the
binomials overflow a float.
"""

from __future__ import annotations

import numpy as np

__all__ = ["coverage", "maj_at_k", "pass_at_k"]


def _as_counts(x: np.ndarray | int, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "iu" and not (
        arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))
    ):
        raise ValueError(f"{name} must hold whole numbers, got {arr!r}")
    return arr.astype(np.int64)


def pass_at_k(num_samples: np.ndarray | int, num_correct: np.ndarray | int, k: int) -> np.ndarray:
    """Unbiased pass@k per problem. (P,), (P,), int -> (P,) (or scalars -> ())

    ``num_samples`` n >= k and ``0 <= num_correct`` c <= n. Where ``n - c < k`` every k-subset
    holds a correct sample and pass@k is exactly 1. Average the result over problems for the
    benchmark's pass@k.
    """
    n = _as_counts(num_samples, "num_samples")
    c = _as_counts(num_correct, "num_correct")
    n, c = np.broadcast_arrays(n, c)
    if not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if np.any(c < 0) or np.any(c > n):
        raise ValueError(f"need 0 <= num_correct <= num_samples, got c={c}, n={n}")
    if np.any(n < k):
        raise ValueError(f"need num_samples >= k={k}, got n={n}; draw more samples or lower k")
    k = int(k)
    top = int(n.max()) if n.size else k
    # cum[j] = sum_{i=k+1}^{k+j} log1p(-k / i); only terms with i > k are ever needed, since
    # i runs over (n-c, n] and n - c >= k on the branch that uses it.
    i = np.arange(k + 1, top + 1, dtype=np.float64)
    cum = np.concatenate([[0.0], np.cumsum(np.log1p(-k / i))])
    always = (n - c) < k
    lo = np.where(always, k, n - c) - k  # index of S(n - c)
    hi = np.where(always, k, n) - k  # index of S(n)
    log_ratio = cum[hi] - cum[lo]  # log C(n-c, k) / C(n, k)
    out = np.where(always, 1.0, -np.expm1(log_ratio))
    return out if out.ndim else out[()]


def maj_at_k(answers: np.ndarray, correct: np.ndarray, k: int) -> np.ndarray:
    """Majority vote over the first ``k`` samples: 1.0 where it equals the reference answer.

    answers: (P, n) integer-coded final answers (map strings to ids first); correct: (P,).
    Tie rule: among answers with the same top count, the one that appears first among the k
    samples wins (deterministic, and an answer stream's order is the sampling order).
    Returns (P,) of 0.0/1.0; the mean over problems is maj@k.
    """
    a = np.asarray(answers)
    ref = np.asarray(correct)
    if a.ndim != 2 or a.shape[1] == 0:
        raise ValueError(f"answers must be (num_problems, num_samples), got shape {a.shape}")
    if ref.shape != (a.shape[0],):
        raise ValueError(f"correct must be ({a.shape[0]},), got shape {ref.shape}")
    if not isinstance(k, int | np.integer) or not 1 <= k <= a.shape[1]:
        raise ValueError(f"k must be in 1..{a.shape[1]} (the samples per problem), got {k!r}")
    first = a[:, :k]  # (P, k)
    counts = (first[:, :, None] == first[:, None, :]).sum(axis=-1)  # (P, k): votes per sample
    # argmax returns the first position holding a top count: that is the first appearance of
    # the earliest-appearing tied answer.
    winner = first[np.arange(a.shape[0]), np.argmax(counts, axis=-1)]  # (P,)
    return (winner == ref).astype(np.float64)


def coverage(num_correct: np.ndarray) -> float:
    """Fraction of problems with at least one correct sample (pass@n). (P,) -> float"""
    c = _as_counts(num_correct, "num_correct")
    if c.ndim != 1 or c.size == 0:
        raise ValueError(f"num_correct must be a non-empty (P,) array, got shape {c.shape}")
    return float(np.mean(c > 0))
