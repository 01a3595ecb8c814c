"""What the experiment scripts share: running commands a few at a time, and the IQM with its CI.

Not a script (its name starts with an underscore); the scripts import it from their own folder.
"""

from __future__ import annotations

import os
import subprocess
import time

import numpy as np


def run_commands(jobs: list[tuple[list[str], str]], workers: int, threads: int) -> int:
    """Run each ``(command, label)``, ``workers`` at a time, each process with ``threads``
    torch threads and its stdout dropped; print a line as each starts and ends. Returns how
    many failed."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "RLWORKS_QUIET": "1"}
    pending = list(jobs)
    running: list[tuple[subprocess.Popen[bytes], str, float]] = []
    failed = 0
    while pending or running:
        while pending and len(running) < workers:
            cmd, label = pending.pop(0)
            print("start:", label, flush=True)
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
            running.append((proc, label, time.time()))
        for item in list(running):
            proc, label, t0 = item
            if proc.poll() is not None:
                running.remove(item)
                failed += proc.returncode != 0
                state = "done" if proc.returncode == 0 else f"FAILED rc={proc.returncode}"
                print(f"{state} ({time.time() - t0:.0f}s):", label, flush=True)
        time.sleep(1)
    return failed


def iqm_ci(values: np.ndarray, stream: str) -> tuple[float, float, float]:
    """IQM over the runs ``values`` (one score each) and its 95% percentile-bootstrap CI
    (20,000 resamples, random stream ``stream``): ``(point, low, high)``."""
    from rlworks.core.seeding import make_rng
    from rlworks.eval.bootstrap import get_interval_estimates
    from rlworks.eval.stats import aggregate_iqm

    points, cis = get_interval_estimates({"x": np.asarray(values).reshape(-1, 1)},
                                         aggregate_iqm, reps=20_000, rng=make_rng(0, stream))
    return float(points["x"]), float(cis["x"][0]), float(cis["x"][1])
