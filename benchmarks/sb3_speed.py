"""Wall-clock of rlworks vs Stable-Baselines3 on the same hyperparameters, side by side.

PPO: 100k CartPole-v1 steps with rl-baselines3-zoo's settings (8 envs x 32 steps, one
minibatch of 256, 20 epochs, gamma 0.98, lambda 0.8, lr 1e-3 and clip 0.2 annealed).
SAC: 20k Pendulum-v1 steps with SB3's defaults (lr 3e-4, batch 256, [256, 256], 1 env,
learning_starts 100, one gradient step per env step, automatic entropy).

Each measurement is a fresh subprocess timing env construction + training (no evaluation).
Both libraries run with one torch thread (on this 2-core machine small networks train faster
that way; SB3 was measured with 1 and 2 threads on PPO, see ``--sb3-threads``). Runs alternate
A B A B ...; we report each side's median and the median of the pairwise ratios.

    python benchmarks/sb3_speed.py [--reps 3] [--sac-reps 2] [--only ppo|sac]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section  # noqa: E402

RLWORKS_PPO = """
import time, torch; torch.set_num_threads({threads})
t = time.perf_counter()
from rlworks.exec.train import build_config
from rlworks.algos.online.ppo import PPO
cfg = build_config("ppo", {{"env_id": "CartPole-v1", "backend": "native", "seed": {seed}}})
learner = PPO(cfg)
while learner.global_step < cfg.total_steps:
    learner.iterate()
print(time.perf_counter() - t)
"""

SB3_PPO = """
import time, torch; torch.set_num_threads({threads})
t = time.perf_counter()
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
lin = lambda v: (lambda progress: progress * v)
env = make_vec_env("CartPole-v1", n_envs=8, seed={seed})
model = PPO("MlpPolicy", env, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98,
            n_epochs=20, ent_coef=0.0, learning_rate=lin(1e-3), clip_range=lin(0.2),
            seed={seed}, device="cpu")
model.learn(total_timesteps=100_000)
print(time.perf_counter() - t)
"""

RLWORKS_SAC = """
import time, torch; torch.set_num_threads({threads})
t = time.perf_counter()
from rlworks.algos.online.configs import SACConfig
from rlworks.algos.online.sac import SAC
cfg = SACConfig(env_id="Pendulum-v1", backend="native", total_steps=20_000, seed={seed})
learner = SAC(cfg)
while learner.global_step < cfg.total_steps:
    learner.iterate()
print(time.perf_counter() - t)
"""

SB3_SAC = """
import time, torch; torch.set_num_threads({threads})
t = time.perf_counter()
import gymnasium as gym
from stable_baselines3 import SAC
model = SAC("MlpPolicy", gym.make("Pendulum-v1"), seed={seed}, device="cpu")
model.learn(total_timesteps=20_000)
print(time.perf_counter() - t)
"""


def timed(code: str, **fmt: int) -> float:
    env = {"OMP_NUM_THREADS": str(fmt["threads"]), "MKL_NUM_THREADS": str(fmt["threads"]),
           "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", code.format(**fmt)], capture_output=True,
                          text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return float(proc.stdout.strip().splitlines()[-1])


def side_by_side(name: str, ours: str, theirs: str, reps: int, sb3_threads: int) -> dict:
    a, b = [], []
    for rep in range(reps):
        a.append(timed(ours, threads=1, seed=rep))
        b.append(timed(theirs, threads=sb3_threads, seed=rep))
        print(f"{name} rep {rep}: rlworks {a[-1]:.1f} s, SB3 {b[-1]:.1f} s", flush=True)
    ratios = [x / y for x, y in zip(a, b, strict=True)]
    return {"name": name, "rlworks_s": a, "sb3_s": b, "rlworks_median": statistics.median(a),
            "sb3_median": statistics.median(b), "ratio_median": statistics.median(ratios),
            "sb3_threads": sb3_threads}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--sac-reps", type=int, default=2)
    ap.add_argument("--sb3-threads", type=int, default=1)
    ap.add_argument("--only", choices=["ppo", "sac"])
    args = ap.parse_args()
    results = []
    if args.only in (None, "ppo"):
        results.append(side_by_side("PPO CartPole-v1 100k (rl-zoo settings)", RLWORKS_PPO, SB3_PPO,
                                    args.reps, args.sb3_threads))
    if args.only in (None, "sac"):
        results.append(side_by_side("SAC Pendulum-v1 20k (SB3 defaults)", RLWORKS_SAC, SB3_SAC,
                                    args.sac_reps, args.sb3_threads))
    print(json.dumps(results, indent=1))
    rows = ["| run | rlworks (s) | SB3 (s) | median ratio rlworks/SB3 | target |",
            "|---|---|---|---|---|"]
    for r in results:
        ours = ", ".join(f"{x:.1f}" for x in r["rlworks_s"])
        theirs = ", ".join(f"{x:.1f}" for x in r["sb3_s"])
        verdict = "met" if r["ratio_median"] <= 0.5 else "NOT met"
        rows.append(f"| {r['name']} | {ours} (median {r['rlworks_median']:.1f}) | {theirs} "
                    f"(median {r['sb3_median']:.1f}) | **{r['ratio_median']:.2f}** | "
                    f"<= 0.5: {verdict} |")
    body = ("\n".join(rows) + "\n\nFresh subprocess per run, env construction + training, no "
            f"evaluation; alternating rlworks/SB3; both with 1 torch thread "
            f"(SB3 threads: {results[0]['sb3_threads']}).")
    write_section(f"sb3_speed_{args.only or 'all'}", "Wall-clock against Stable-Baselines3", body)


if __name__ == "__main__":
    main()
