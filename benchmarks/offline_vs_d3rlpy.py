"""Offline gradient updates per second: rlworks vs d3rlpy 2.8.1, IQL and CQL, side by side.

Both sides train on the SAME arrays: a synthetic Hopper-shaped dataset (11-D observations,
3-D actions in [-1, 1], 100 episodes x 1000 steps, written once to an npz file), batch 256,
[256, 256] hidden layers everywhere, two critics, one torch thread, CPU, fp32.

- IQL: expectile 0.7, temperature 3.0, weights clipped at 100, Gaussian actor, lr 3e-4.
- CQL(H): SAC-based, 10 sampled actions, conservative weight 5.0 with the Lagrangian weight
  on (threshold 10; d3rlpy's default, rlworks' ``--lagrange-threshold 10``), actor lr 1e-4,
  critic lr 3e-4, no entropy in the backup.

What is timed: d3rlpy's own training loop body (``dataset.sample_transition_batch(256)`` then
``algo.update(batch)``, what ``fit`` runs per step, without its logging) against rlworks'
``learner.iterate()`` (which samples its batches and runs ``steps_per_iter`` updates). Each
measurement is a fresh subprocess that runs ``--warmup`` updates, then times ``--steps``
updates; d3rlpy runs in its own virtual environment (it pins gymnasium 1.0.0):

    python3.11 -m venv .venv-d3rlpy && .venv-d3rlpy/bin/pip install torch==2.13.0 d3rlpy==2.8.1

Runs alternate rlworks, d3rlpy, rlworks, ... per algorithm; we report each side's median
updates/s and the median of the pairwise ratios. Nothing else should run meanwhile.

    python benchmarks/offline_vs_d3rlpy.py [--algos iql,cql] [--rounds 3] [--steps 1000]
        [--warmup 100] [--d3rlpy-python .venv-d3rlpy/bin/python] [--doc]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
TAG = "OFFLINE_BENCH_RESULT "
OBS_DIM, ACT_DIM, EPISODES, LENGTH = 11, 3, 100, 1000


def make_arrays(seed: int = 0) -> dict:
    """Hopper-shaped transitions; next_obs[t] = obs[t+1] inside each episode."""
    import numpy as np

    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(EPISODES, LENGTH + 1, OBS_DIM)).astype(np.float32)
    act = rng.uniform(-1, 1, size=(EPISODES, LENGTH, ACT_DIM)).astype(np.float32)
    rew = rng.normal(size=(EPISODES, LENGTH)).astype(np.float32)
    term = np.zeros((EPISODES, LENGTH), bool)
    trunc = np.zeros((EPISODES, LENGTH), bool)
    trunc[:, -1] = True
    return {
        "observations": obs[:, :-1].reshape(-1, OBS_DIM),
        "next_observations": obs[:, 1:].reshape(-1, OBS_DIM),
        "actions": act.reshape(-1, ACT_DIM),
        "rewards": rew.reshape(-1),
        "terminations": term.reshape(-1),
        "truncations": trunc.reshape(-1),
    }


def worker_rlworks(algo: str, data: str, steps: int, warmup: int) -> float:
    import torch

    torch.set_num_threads(1)
    from rlworks.algos.offline.configs import CQLConfig, IQLConfig
    from rlworks.algos.offline.cql import CQL
    from rlworks.algos.offline.iql import IQL

    chunk = warmup  # updates per iterate(); the timed part is steps // chunk iterations
    common = dict(dataset=data, env_id="Hopper-v5", batch_size=256, hidden_sizes=(256, 256),
                  torch_threads=1, seed=0, total_steps=warmup + steps, steps_per_iter=chunk)
    if algo == "iql":
        learner = IQL(IQLConfig(**common))
    else:
        learner = CQL(CQLConfig(**common, lagrange_threshold=10.0))
    learner.iterate()  # warm-up chunk
    t0 = time.perf_counter()
    for _ in range(steps // chunk):
        learner.iterate()
    return (steps // chunk) * chunk / (time.perf_counter() - t0)


def worker_d3rlpy(algo: str, data: str, steps: int, warmup: int) -> float:
    import numpy as np
    import torch

    torch.set_num_threads(1)
    import d3rlpy

    z = np.load(data)
    dataset = d3rlpy.dataset.MDPDataset(
        observations=z["observations"], actions=z["actions"], rewards=z["rewards"],
        terminals=z["terminations"].astype(np.float32),
        timeouts=z["truncations"].astype(np.float32),
    )
    enc = d3rlpy.models.encoders.VectorEncoderFactory(hidden_units=[256, 256])
    if algo == "iql":
        cfg = d3rlpy.algos.IQLConfig(
            batch_size=256, actor_encoder_factory=enc, critic_encoder_factory=enc,
            value_encoder_factory=enc, n_critics=2, expectile=0.7, weight_temp=3.0,
            max_weight=100.0, actor_learning_rate=3e-4, critic_learning_rate=3e-4,
        )
    else:
        cfg = d3rlpy.algos.CQLConfig(
            batch_size=256, actor_encoder_factory=enc, critic_encoder_factory=enc,
            n_critics=2, conservative_weight=5.0, n_action_samples=10, alpha_threshold=10.0,
            actor_learning_rate=1e-4, critic_learning_rate=3e-4,
        )
    algo_obj = cfg.create(device="cpu:0")
    algo_obj.build_with_dataset(dataset)
    for _ in range(warmup):
        algo_obj.update(dataset.sample_transition_batch(256))
    t0 = time.perf_counter()
    for _ in range(steps):
        algo_obj.update(dataset.sample_transition_batch(256))
    return steps / (time.perf_counter() - t0)


# The products of one update no implementation of the same maths can skip: those of the
# 256 x 256 hidden layer (the others are <= 14 x 256 wide), as (rows, count).
# IQL: forward: 2 critics + 2 target critics + value(s) + value(s') + actor on 256 rows (7);
#      backward: weight and input grads of 2 critics, the value and the actor (8).
# CQL: critic loss on 256 + 3 x 10 x 256 = 7936 rows (dataset actions, uniform, pi(s), pi(s')):
#      2 critics forward + weight and input grads (6 of 7936 rows); target: policy(s') and 2
#      target critics (3); actor loss: policy(s), 2 critics, their input grads, the policy's
#      weight and input grads (7); policy on s and s' for the sampled actions (2): 12 of 256.
FLOOR = {"iql": ((256, 15),), "cql": ((7936, 6), (256, 12))}


def worker_floor(algo: str, data: str, steps: int, warmup: int) -> float:
    """Updates/s if an update were only its unavoidable 256-wide matrix products."""
    import torch

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    w = torch.randn(256, 256, generator=g)
    xs = [(torch.randn(rows, 256, generator=g), count) for rows, count in FLOOR[algo]]

    def update() -> None:
        for x, count in xs:
            for _ in range(count):
                torch.mm(x, w)

    for _ in range(warmup):
        update()
    t0 = time.perf_counter()
    for _ in range(steps):
        update()
    return steps / (time.perf_counter() - t0)


def write_data(directory: Path) -> Path:
    import numpy as np

    from rlworks.data.dataset import Dataset
    from rlworks.data.formats import save_dataset

    arrays = make_arrays()
    ds = Dataset.from_arrays(**arrays, metadata={"env_id": "Hopper-v5", "kind": "synthetic"})
    path = save_dataset(ds, directory / "hopper_synthetic.npz")
    # d3rlpy reads the same arrays back from the same file
    with np.load(path) as z:
        assert np.array_equal(z["observations"], arrays["observations"])
    return path


def run_one(side: str, algo: str, data: Path, args: argparse.Namespace) -> float:
    python = args.d3rlpy_python if side == "d3rlpy" else sys.executable
    cmd = [python, __file__, "--worker", side, "--algos", algo, "--data", str(data),
           "--steps", str(args.steps), "--warmup", str(args.warmup)]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    for line in out.stdout.splitlines():
        if line.startswith(TAG):
            return float(json.loads(line[len(TAG):])["updates_per_s"])
    raise RuntimeError(f"{side} {algo} failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--algos", default="iql,cql")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--d3rlpy-python", default=str(ROOT / ".venv-d3rlpy" / "bin" / "python"))
    ap.add_argument("--worker", choices=("rlworks", "d3rlpy", "floor"), default=None)
    ap.add_argument("--data", default=None)
    ap.add_argument("--doc", action="store_true", help="write docs/benchmarks.md's section")
    args = ap.parse_args()

    if args.worker:
        fn = {"rlworks": worker_rlworks, "d3rlpy": worker_d3rlpy,
              "floor": worker_floor}[args.worker]
        ups = fn(args.algos, args.data, args.steps, args.warmup)
        print(TAG + json.dumps({"updates_per_s": ups}), flush=True)
        return 0

    from _report import machine, write_section

    results: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = write_data(Path(tmp))
        for algo in args.algos.split(","):
            res = results.setdefault(algo, {"rlworks": [], "d3rlpy": [], "floor": []})
            for r in range(args.rounds):
                for side in ("rlworks", "d3rlpy", "floor"):
                    ups = run_one(side, algo, data, args)
                    res[side].append(ups)
                    print(f"{algo} round {r} {side}: {ups:.1f} updates/s", flush=True)
    rows = []
    for algo, res in results.items():
        ratios = [a / b for a, b in zip(res["rlworks"], res["d3rlpy"], strict=True)]
        rows.append(
            f"| {algo.upper()} | {statistics.median(res['rlworks']):.1f} | "
            f"{statistics.median(res['d3rlpy']):.1f} | **{statistics.median(ratios):.2f}** | "
            f"{statistics.median(res['floor']):.1f} |"
        )
    raw = "; ".join(
        f"{algo}: rlworks {[round(x, 1) for x in res['rlworks']]}, "
        f"d3rlpy {[round(x, 1) for x in res['d3rlpy']]}"
        for algo, res in results.items()
    )
    body = (
        f"Gradient updates per second on the same synthetic Hopper-shaped dataset (100k "
        f"transitions), batch 256, [256, 256] networks, two critics, one torch thread, CPU; "
        f"{args.rounds} alternating rounds of fresh processes, {args.warmup} warm-up + "
        f"{args.steps} timed updates each; medians, and the median of the pairwise ratios. "
        f"d3rlpy 2.8.1 (its own venv). Settings in `benchmarks/offline_vs_d3rlpy.py`.\n\n"
        "| algorithm | rlworks updates/s | d3rlpy updates/s | rlworks / d3rlpy | matmul floor "
        "(updates/s) |\n|---|---:|---:|---:|---:|\n" + "\n".join(rows) + "\n\n"
        "The floor is the rate at which one thread runs only an update's unavoidable "
        "256-wide matrix products (`FLOOR` in the script: IQL 15 of 256 rows; CQL 6 of 7,936 "
        "rows, its conservative term's 3 x 10 sampled actions per state, and 12 of 256 "
        f"rows): no implementation of the same fp32 maths can beat it.\n\nRaw: {raw}.\n"
    )
    print(f"\n{machine()}\n{body}")
    if args.doc:
        write_section("offline_vs_d3rlpy", "Offline updates/s: rlworks vs d3rlpy", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
