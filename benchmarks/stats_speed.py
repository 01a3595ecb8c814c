"""Bootstrap CI speed: rlworks.eval.stats vs rliable 1.2.0, side by side, alternating A B A B.

Workload (rliable's Atari-100k shape): 5 algorithms x 10 runs x 26 tasks.
  1. IQM CIs for all 5 algorithms, 2,000 repetitions (``get_interval_estimates``).
  2. Probability of improvement of one pair with CIs, 2,000 repetitions.
  3. Ours only: IQM CIs of one algorithm at 100,000 repetitions, with the peak memory
     (tracemalloc, numpy allocations included) and process peak RSS.

Each timing is the median of ``--rounds`` alternating rounds (rliable, ours, rliable, ours, ...),
so drifts in machine load hit both sides. ``--quick`` shrinks everything for a smoke run.
    python benchmarks/stats_speed.py [--quick] [--rounds 3] [--no-write]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import write_section  # noqa: E402

from rlworks.eval import stats  # noqa: E402
from rlworks.eval.bootstrap import get_interval_estimates  # noqa: E402


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, seconds; no doc write")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()

    from rliable import library as rly
    from rliable import metrics

    algos, runs, tasks = 5, 10, 26
    reps, poi_reps, big_reps = 2_000, 2_000, 100_000
    rounds = args.rounds
    if args.quick:
        reps, poi_reps, big_reps, rounds = 200, 20, 5_000, 1
    g = np.random.default_rng(0)
    scores = {f"algo{i}": g.gamma(2.0, 0.5 + 0.05 * i, size=(runs, tasks)) for i in range(algos)}
    pair = (scores["algo0"], scores["algo1"])

    def rly_iqm() -> object:
        np.random.seed(0)
        return rly.get_interval_estimates(
            scores, lambda s: np.array([metrics.aggregate_iqm(s)]), reps=reps)

    def our_iqm() -> object:
        return get_interval_estimates(scores, stats.aggregate_iqm, reps, np.random.default_rng(0))

    def rly_poi() -> object:
        np.random.seed(0)
        return rly.get_interval_estimates({"0>1": pair}, metrics.probability_of_improvement,
                                          reps=poi_reps)

    def our_poi() -> object:
        return get_interval_estimates({"0>1": pair}, stats.probability_of_improvement, poi_reps,
                                      np.random.default_rng(0))

    our_iqm(), our_poi()  # warm-up (imports, first-touch)
    times: dict[str, list[float]] = {k: [] for k in ("rly_iqm", "our_iqm", "rly_poi", "our_poi")}
    for r in range(rounds):
        for key, fn in (("rly_iqm", rly_iqm), ("our_iqm", our_iqm), ("rly_poi", rly_poi),
                        ("our_poi", our_poi)):
            times[key].append(timed(fn))
        line = ", ".join(f"{k}={v[-1]:.3f}s" for k, v in times.items())
        print(f"round {r + 1}/{rounds}: {line}")
    med = {k: statistics.median(v) for k, v in times.items()}

    tracemalloc.start()
    t_big = timed(lambda: get_interval_estimates({"algo0": scores["algo0"]}, stats.aggregate_iqm,
                                                 big_reps, np.random.default_rng(0)))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def row(label: str, n: int, theirs: str, ours: str) -> str:
        return (f"| {label} | {n:,} | {med[theirs]:.3f} | {med[ours]:.4f} "
                f"| {med[theirs] / med[ours]:.0f}x |")

    body = f"""
Workload: {algos} algorithms x {runs} runs x {tasks} tasks; median of {rounds} alternating
rounds (rliable, ours, ...). Oracle: rliable 1.2.0 `get_interval_estimates` (percentile).

| task | reps | rliable (s) | rlworks (s) | speed-up |
|---|---:|---:|---:|---:|
{row(f"IQM CIs, {algos} algorithms", reps, "rly_iqm", "our_iqm")}
{row("P(X > Y) CI, one pair", poi_reps, "rly_poi", "our_poi")}

IQM CIs of one algorithm at {big_reps:,} repetitions (default `max_bytes` = 64 MiB):
{t_big:.2f} s, tracemalloc peak {peak / 2**20:.1f} MiB, process peak RSS {rss_mb:.0f} MiB.
"""
    print(body)
    if not (args.quick or args.no_write):
        write_section("stats_speed", "Bootstrap statistics vs rliable", body)


if __name__ == "__main__":
    main()
