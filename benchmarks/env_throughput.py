"""Vector-env throughput: rlworks native envs against gymnasium and EnvPool.

    python benchmarks/env_throughput.py           # full run (about 4 minutes on 2 cores)
    python benchmarks/env_throughput.py --quick   # a short run (about 30 s)

What is measured: env steps per second (vector steps x num_envs) with uniformly random actions
drawn before the timed loop, for

* ``native``   ``rlworks.envs.make_vec(id, n)``: the numpy envs *including* the episode
  statistics wrapper that make_vec always adds;
* ``sync``     ``gymnasium.make_vec(id, n, vectorization_mode="sync")`` (SyncVectorEnv), raw;
* ``async``    ``... "async"`` (one process per sub-env; only up to 8 envs here);
* ``vector``   ``... "vector_entry_point"`` (gymnasium's own numpy CartPole), raw;
* ``envpool``  ``envpool.make(id, env_type="gymnasium", num_envs=n, num_threads=t)``, raw;

at num_envs 1, 8, 64, 512, in a fresh process per thread setting t (1 and 2) with
OMP/MKL/OPENBLAS threads = t (EnvPool's num_threads = t). Peers are measured in alternation
(A B C A B C ...), each for a fixed wall time per turn, ``--reps`` rounds; the table gives the
median steps/s and, for ratios, the median over rounds of native / peer measured in the same
round. The section written into docs/benchmarks.md notes the load average and the busiest
other processes at the start, since the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from statistics import median
from typing import Any

ENVS = ["CartPole-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0", "Pendulum-v1"]
SIZES = [1, 8, 64, 512]
ASYNC_MAX = 8  # one process per sub-env: more than this on a 2-core machine measures the OS


def make_backend(name: str, env_id: str, n: int, threads: int) -> Any:
    import gymnasium as gym

    if name == "native":
        from rlworks.envs import make_vec

        return make_vec(env_id, n, backend="native", seed=0)
    if name in ("sync", "async", "vector"):
        mode = {"sync": "sync", "async": "async", "vector": "vector_entry_point"}[name]
        return gym.make_vec(env_id, n, vectorization_mode=mode)
    import envpool

    return envpool.make(env_id, env_type="gymnasium", num_envs=n, num_threads=threads, seed=0)


def random_actions(env: Any, env_id: str, n: int) -> Any:
    import numpy as np

    rng = np.random.default_rng(0)
    if env_id in ("MountainCarContinuous-v0", "Pendulum-v1"):
        high = 1.0 if env_id.startswith("Mountain") else 2.0
        return rng.uniform(-high, high, size=(64, n, 1)).astype(np.float32)
    return rng.integers(0, 2 if env_id == "CartPole-v1" else 3, size=(64, n))


def time_steps(env: Any, actions: Any, seconds: float) -> float:
    """Steps/s of one turn: step until ``seconds`` of wall time have passed."""
    n = actions.shape[1]
    steps = 0
    start = time.perf_counter()
    while True:
        for _ in range(8):
            env.step(actions[steps & 63])
            steps += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return steps * n / elapsed


def worker(args: argparse.Namespace) -> None:
    """Measure every (env, size) for one thread setting; print JSON lines."""
    import warnings

    warnings.filterwarnings("ignore")
    for env_id in args.envs:
        for n in args.sizes:
            names = ["native", "sync", "envpool"]
            if env_id == "CartPole-v1":
                names.insert(1, "vector")
            if n <= ASYNC_MAX:
                names.append("async")
            envs = {name: make_backend(name, env_id, n, args.threads) for name in names}
            actions = random_actions(envs["native"], env_id, n)
            for env in envs.values():
                env.reset()
                time_steps(env, actions, 0.02)  # warm up
            rounds: dict[str, list[float]] = {name: [] for name in names}
            for _ in range(args.reps):
                for name in names:
                    rounds[name].append(time_steps(envs[name], actions, args.seconds))
            for env in envs.values():
                env.close()
            print(json.dumps({"env": env_id, "n": n, "threads": args.threads, "sps": rounds}),
                  flush=True)


def busiest_processes() -> str:
    """Other processes using CPU now (``ps`` %CPU is averaged over each one's lifetime)."""
    try:
        lines = subprocess.run(["ps", "-eo", "pid,pcpu,args", "--sort=-pcpu"],
                               capture_output=True, text=True, check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    busy = []
    for line in lines[1:]:
        pid, pcpu, cmd = line.split(None, 2)
        if int(pid) != os.getpid() and float(pcpu) >= 5.0:
            busy.append(f"`{cmd[:48]}` {pcpu}%")
    return ", ".join(busy[:5]) or "none above 5% CPU"


def fmt(sps: float) -> str:
    return f"{sps / 1e6:.2f}M" if sps >= 1e6 else f"{sps / 1e3:.0f}k"


def table(results: list[dict[str, Any]]) -> str:
    peers = ["vector", "envpool", "sync", "async"]
    head = ("| env | threads | num_envs | native | " + " | ".join(peers)
            + " | native/vector | native/envpool | native/sync |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        sps = r["sps"]
        med = {k: median(v) for k, v in sps.items()}
        cells = [fmt(med[p]) if p in med else "-" for p in peers]
        ratios = []
        for p in ("vector", "envpool", "sync"):
            if p in sps:
                pairs = zip(sps["native"], sps[p], strict=True)
                ratios.append(f"{median(a / b for a, b in pairs):.1f}x")
            else:
                ratios.append("-")
        lines.append(f"| {r['env']} | {r['threads']} | {r['n']} | {fmt(med['native'])} | "
                     + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 envs, 2 sizes, 1 thread")
    parser.add_argument("--reps", type=int, default=3, help="alternating rounds (>= 3)")
    parser.add_argument("--seconds", type=float, default=None, help="wall time per turn")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--envs", nargs="*", default=ENVS, help=argparse.SUPPRESS)
    parser.add_argument("--sizes", nargs="*", type=int, default=SIZES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    envs, sizes, thread_settings = ENVS, SIZES, [1, 2]
    seconds = args.seconds or 0.12
    if args.quick:
        envs, sizes, thread_settings = ["CartPole-v1", "Pendulum-v1"], [8, 512], [1]
        seconds = args.seconds or 0.08
    others = busiest_processes()
    started = time.time()
    results: list[dict[str, Any]] = []
    root = Path(__file__).resolve().parent.parent
    for threads in thread_settings:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
               "OPENBLAS_NUM_THREADS": str(threads), "PYTHONPATH": str(root)}
        cmd = [sys.executable, __file__, "--worker", "--threads", str(threads),
               "--reps", str(max(3, args.reps)), "--seconds", str(seconds),
               "--envs", *envs, "--sizes", *map(str, sizes)]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            results.append(json.loads(line))
            r = results[-1]
            print(f"{r['env']:26s} threads={threads} n={r['n']:4d} "
                  + " ".join(f"{k}={fmt(median(v))}" for k, v in r["sps"].items()), flush=True)
        if proc.wait() != 0:
            raise SystemExit(f"worker (threads={threads}) failed")
    body = (f"{table(results)}\n\nSteps/s = vector steps x num_envs, random actions, "
            f"{max(3, args.reps)} alternating rounds of {seconds:g} s per backend; medians, "
            "ratios are medians of same-round ratios. `native` includes make_vec's episode "
            "statistics; the peers are raw. async only up to 8 envs. "
            f"{'Quick run. ' if args.quick else ''}Busiest processes at the start: {others}. "
            f"Took {time.time() - started:.0f} s.")
    print("\n" + body)
    if not args.no_write:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from _report import write_section

        write_section("env_throughput", "Vector-env throughput (benchmarks/env_throughput.py)",
                      body)


if __name__ == "__main__":
    main()
