"""Parity of ``rlworks.eval.adastop`` with the ``adastop==0.1.3`` package (the test oracle).

Both are run with ``package_compat=True`` on the same seeded synthetic scores, interim by
interim, and must take the same decisions (direction and interim) for every pair.

- Enumerated scenarios (``B > binom(2n, n)**K``: every permutation path is enumerated, no
  randomness): agreement must be exact.
- Sampled scenarios (later interims extend the paths by random splits): the two differ only by
  Monte-Carlo draws. A disagreement must be borderline: the statistic ``|T|`` must lie within
  3 Monte-Carlo standard deviations of the package's boundary, the deviation measured by
  re-running ours with 8 other seeds.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from rlworks.eval.adastop import AdaStop

adastop = pytest.importorskip("adastop")


def make_scores(seed: int, L: int, n: int, K: int, kind: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    if kind == "equal":
        means = np.zeros(L)
    elif kind == "winner":
        means = np.r_[3.0, np.zeros(L - 1)]
    else:  # "spread"
        means = rng.normal(size=L) * 1.5
    return {f"algo{i}": rng.normal(means[i], 1.0, size=n * K) for i in range(L)}


def run_package(data: dict[str, np.ndarray], n: int, K: int, B: int, beta: float,
                first: bool, seed: int) -> tuple[dict[tuple[int, int], tuple[str, int]], list]:
    L = len(data)
    comps = np.array([(0, j) for j in range(1, L)]) if first else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c = adastop.MultipleAgentsComparator(n=n, K=K, B=B, comparisons=comps, alpha=0.05,
                                             beta=beta, seed=seed)
        decided: dict[tuple[int, int], tuple[str, int]] = {}
        for k in range(K):
            c.partial_compare({a: v[: (k + 1) * n] for a, v in data.items()}, verbose=False)
            for pair in c.comparisons:
                d = c.decisions[str(pair)]
                key = (int(pair[0]), int(pair[1]))
                if d != "continue" and key not in decided:
                    decided[key] = (d, k + 1)
            if c.is_finished:
                break
    return decided, c.boundary


def run_ours(data: dict[str, np.ndarray], n: int, K: int, B: int, beta: float, first: bool,
             seed: int, stop_after: int | None = None) -> AdaStop:
    test = AdaStop(n, K, B, alpha=0.05, beta=beta, comparisons="first" if first else "all",
                   algorithms=list(data), rng=seed, package_compat=True)
    while not test.is_finished and test.k < (stop_after or K):
        k = test.k
        test.partial_compare({a: data[a][k * n:(k + 1) * n] for a in test.algorithms_to_run})
    return test


def as_table(test: AdaStop) -> dict[tuple[int, int], tuple[str, int]]:
    return {pair: (r.decision, int(r.interim or 0)) for pair, r in zip(test.pairs,
                                                                        test.decisions,
                                                                        strict=True)}


# (L algorithms, n, K, B, beta, compare-to-first, kind); B > C(2n, n)**K: fully enumerated.
ENUMERATED = [
    (2, 2, 1, 10_000, 0.0, False, "equal"), (2, 2, 3, 10_000, 0.0, False, "winner"),
    (2, 2, 4, 10_000, 0.0, False, "spread"), (3, 2, 4, 10_000, 0.0, False, "winner"),
    (4, 2, 3, 10_000, 0.0, False, "spread"), (5, 2, 2, 10_000, 0.0, False, "spread"),
    (5, 2, 3, 10_000, 0.0, True, "winner"), (2, 3, 2, 10_000, 0.0, False, "equal"),
    (2, 3, 3, 10_000, 0.0, False, "winner"), (3, 3, 2, 10_000, 0.0, False, "spread"),
    (3, 3, 3, 10_000, 0.0, False, "spread"), (4, 3, 2, 10_000, 0.0, False, "winner"),
    (4, 3, 2, 10_000, 0.0, True, "spread"), (5, 3, 1, 10_000, 0.0, False, "spread"),
    (2, 4, 2, 10_000, 0.0, False, "spread"), (3, 4, 2, 10_000, 0.0, False, "equal"),
    (3, 4, 1, 10_000, 0.0, False, "winner"), (4, 5, 1, 10_000, 0.0, False, "spread"),
    (2, 3, 3, 10_000, 0.3, False, "equal"), (5, 2, 3, 10_000, 0.3, False, "equal"),
    (3, 2, 4, 10_000, 0.3, False, "spread"), (4, 2, 3, 10_000, 0.4, False, "equal"),
    (2, 5, 1, 10_000, 0.0, False, "winner"), (3, 2, 5, 10_000, 0.0, False, "equal"),
]
# Paths sampled after the first interim(s): C(2n, n)**K >= B.
SAMPLED = [
    (2, 5, 3, 10_000, 0.0, False, "spread"), (3, 5, 3, 10_000, 0.0, False, "winner"),
    (3, 5, 2, 10_000, 0.0, False, "equal"), (4, 4, 3, 2_000, 0.0, False, "spread"),
    (3, 3, 4, 2_000, 0.0, True, "spread"), (2, 2, 6, 2_000, 0.0, False, "spread"),
]


def test_enumerated_scenarios_agree_exactly() -> None:
    disagreements = []
    for seed, (L, n, K, B, beta, first, kind) in enumerate(ENUMERATED):
        data = make_scores(seed, L, n, K, kind)
        ref, _ = run_package(data, n, K, B, beta, first, seed)
        ours = as_table(run_ours(data, n, K, B, beta, first, seed))
        if ours != ref:
            disagreements.append((seed, L, n, K, ref, ours))
    print(f"\nadastop parity (enumerated): {len(ENUMERATED) - len(disagreements)}"
          f"/{len(ENUMERATED)} scenarios agree exactly")
    assert len(ENUMERATED) >= 20
    assert not disagreements


def test_enumerated_scenarios_cover_decisions() -> None:
    """The scenarios exercise rejections both ways, equality and early acceptance."""
    seen: set[tuple[str, bool]] = set()
    for seed, (L, n, K, B, beta, first, kind) in enumerate(ENUMERATED):
        test = run_ours(make_scores(seed, L, n, K, kind), n, K, B, beta, first, seed)
        for r in test.decisions:
            seen.add((r.decision, r.decision == "equal" and (r.interim or 0) < K))
    assert {("larger", False), ("smaller", False), ("equal", False), ("equal", True)} <= seen


def test_sampled_scenarios_agree_or_are_borderline() -> None:
    exact, borderline = 0, []
    for i, (L, n, K, B, beta, first, kind) in enumerate(SAMPLED):
        seed = 100 + i
        data = make_scores(seed, L, n, K, kind)
        ref, ref_bounds = run_package(data, n, K, B, beta, first, seed)
        ours = as_table(run_ours(data, n, K, B, beta, first, seed))
        if ours == ref:
            exact += 1
            continue
        # First interim at which some pair's decision differs.
        k = min(min(ref[p][1], ours[p][1]) for p in ref if ref[p] != ours[p])
        names = list(data)
        pairs = [p for p in ref if ref[p] != ours[p] and min(ref[p][1], ours[p][1]) == k]
        m = k * n
        stats = [k * abs(data[names[a]][:m].mean() - data[names[b]][:m].mean())
                 for a, b in pairs]
        reseeded = [run_ours(data, n, K, B, beta, first, 1000 + s, stop_after=k).boundaries
                    for s in range(8)]
        sup = [b[k - 1][1] for b in reseeded if len(b) >= k]
        sd = float(np.std(sup))
        dist = min(abs(t - ref_bounds[k - 1][1]) for t in stats)
        borderline.append((i, k, dist, sd))
        assert dist <= 3 * sd + 1e-9, (i, ref, ours, dist, sd)
    print(f"\nadastop parity (sampled): {exact}/{len(SAMPLED)} agree exactly; borderline "
          f"(scenario, interim, |T|-boundary distance, boundary MC sd): {borderline}")
