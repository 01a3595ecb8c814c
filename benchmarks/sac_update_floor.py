"""How close SAC's update is to its matmul floor, next to Stable-Baselines3's update.

SAC on Pendulum-v1 with SB3's defaults does one gradient step per env step on a batch of 256
through [256, 256] MLPs (an actor and two critics). Each step needs 16 matrix products of
shape (256 x 256) @ (256 x 256) that no implementation can skip:

  forward  (8): actor on obs and on next_obs; both target critics on (next_obs, a');
                both critics on (obs, a); both critics on (obs, pi(obs))
  backward (8): critic loss: both critics' hidden-layer weight grads and input grads (4);
                actor loss: both critics' input grads (2; no critic weight grads needed);
                the actor's hidden-layer weight grad and input grad (2)

(SB3 also computes the critics' weight grads in the actor loss: 2 more.) This script times,
in one process, alternating: (a) those 16 products alone (the floor), (b) one rlworks SAC
update, (c) one SB3 SAC gradient step (``model.train(gradient_steps=1)``), each over the same
number of steps after a warm-up, with one torch thread.

    python benchmarks/sac_update_floor.py [--steps 300] [--rounds 5] [--no-write]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import write_section  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()

    import numpy as np
    import torch

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    a = torch.randn(16, 256, 256, generator=g)
    b = torch.randn(16, 256, 256, generator=g)

    def floor() -> None:
        for i in range(16):
            torch.mm(a[i], b[i])

    from rlworks.algos.online.sac import SAC
    from rlworks.exec.train import build_config

    cfg = build_config("sac", {"env_id": "Pendulum-v1", "backend": "native", "seed": 0,
                               "total_steps": 10_000, "learning_starts": 1_000})
    ours = SAC(cfg)
    while ours.global_step <= cfg.learning_starts:
        ours.iterate()

    def ours_step() -> None:
        ours._update(ours.buffer.sample(cfg.batch_size, ours.rng))

    import gymnasium as gym
    from stable_baselines3 import SAC as SB3SAC

    sb3 = SB3SAC("MlpPolicy", gym.make("Pendulum-v1"), learning_rate=cfg.learning_rate, seed=0,
                 learning_starts=1_000, verbose=0)
    sb3.learn(1_001)  # fills the replay buffer with the random warm-up, one update

    def sb3_step() -> None:
        sb3.train(gradient_steps=1, batch_size=256)

    def per_step_ms(fn: object) -> float:
        t0 = time.perf_counter()
        for _ in range(args.steps):
            fn()  # type: ignore[operator]
        return (time.perf_counter() - t0) / args.steps * 1e3

    for fn in (floor, ours_step, sb3_step):  # warm-up
        for _ in range(20):
            fn()
    rows: dict[str, list[float]] = {"floor": [], "rlworks": [], "sb3": []}
    for _ in range(args.rounds):
        rows["floor"].append(per_step_ms(floor))
        rows["rlworks"].append(per_step_ms(ours_step))
        rows["sb3"].append(per_step_ms(sb3_step))
    med = {k: statistics.median(v) for k, v in rows.items()}
    ratios = [o / s for o, s in zip(rows["rlworks"], rows["sb3"], strict=True)]
    gflops = 16 * 2 * 256**3 / (med["floor"] / 1e3) / 1e9
    body = "\n".join([
        f"One SAC gradient step on Pendulum-v1 (batch 256, [256, 256], 1 torch thread), "
        f"median of {args.rounds} alternating rounds of {args.steps} steps:",
        "",
        "| | ms per gradient step |",
        "|---|---:|",
        f"| 16 products (256x256)@(256x256) alone: the floor | {med['floor']:.2f} "
        f"({gflops:.0f} GFLOP/s) |",
        f"| rlworks SAC update | {med['rlworks']:.2f} |",
        f"| SB3 SAC `train(gradient_steps=1)` | {med['sb3']:.2f} |",
        "",
        f"rlworks / SB3 per update: median pairwise ratio {statistics.median(ratios):.2f}; "
        f"floor / SB3: {med['floor'] / med['sb3']:.2f}; rlworks / floor: "
        f"{med['rlworks'] / med['floor']:.2f}. An update that did nothing but the unavoidable "
        "matrix products would take the floor's fraction of SB3's time.",
        f"Raw (ms): floor {np.round(rows['floor'], 2).tolist()}, rlworks "
        f"{np.round(rows['rlworks'], 2).tolist()}, sb3 {np.round(rows['sb3'], 2).tolist()}.",
    ])
    print(body)
    if not args.no_write:
        write_section("sac_update_floor", "SAC update: the matmul floor vs rlworks vs SB3", body)


if __name__ == "__main__":
    main()
