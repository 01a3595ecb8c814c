"""``rlworks quickstart``: PPO on CartPole-v1 over a few seeds, a result table and a plot."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np


def quickstart(store: Any, seeds: list[int], total_steps: int, out: str | None) -> Path:
    from rlworks.eval.plots import learning_curves
    from rlworks.exec.train import build_config, train

    rows = []
    curves = []
    for seed in seeds:
        cfg = build_config("ppo", {"env_id": "CartPole-v1", "seed": seed,
                                   "total_steps": total_steps, "backend": "native"})
        print(f"training PPO on CartPole-v1, seed {seed} ({total_steps:,} steps)...",
              file=sys.stderr, flush=True)
        summary = train("ppo", cfg, store, experiment="quickstart")
        rows.append(summary)
        steps, values = store.metrics(summary["run_id"], ["rollout/episodic_return"]).get(
            "rollout/episodic_return", ([], []))
        curves.append((np.asarray(steps), np.asarray(values)))

    print()
    print(f"{'run':8s}  {'seed':>4s}  {'steps':>7s}  {'train s':>7s}  {'eval return (20 ep)':>20s}")
    for r in rows:
        ret = f"{r['eval_return_mean']:.1f} ± {r['eval_return_std']:.1f}"
        print(f"{r['run_id']:8s}  {r['seed']:>4d}  {r['global_step']:>7d}  "
              f"{r['train_time_s']:>7.1f}  {ret:>20s}")
    means = np.array([r["eval_return_mean"] for r in rows])
    print(f"\nmean over {len(rows)} seeds: {means.mean():.1f}"
          "  (CartPole-v1 counts as solved at 475; the maximum is 500)")

    out_dir = Path(out) if out else Path(store.path) / "quickstart"
    png = learning_curves({"PPO": curves}, out_dir / "learning_curve.png",
                          title=f"PPO on CartPole-v1 ({len(seeds)} seeds)")
    for r in rows:
        store.add_artefact(r["run_id"], "plot", png)
    print(f"learning curve: {png}")
    print("next: `rlworks runs ls`, `rlworks runs show RUN_ID`, `rlworks train ppo --help`")
    return png
