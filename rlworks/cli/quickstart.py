"""``rlworks quickstart``: PPO and DQN on CartPole-v1 over a few seeds, then an IQM comparison.

It is the whole system in one command: a small experiment grid run by the launcher (one worker
per core, resumable: run it again after a kill and finished runs are kept), each run tracked in
the store, then ``rlworks compare`` on the stored runs: the aggregate table with 95% bootstrap
CIs, the probability of improvement and the plots.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

EXPERIMENT = "quickstart"
ALGOS = ("ppo", "dqn")
ENV = "CartPole-v1"


def quickstart(store: Any, seeds: list[int], total_steps: int | None, out: str | None,
               workers: int | None = None) -> Path:
    from rlworks.cli.compare import print_result
    from rlworks.eval.report import compare
    from rlworks.exec.experiment import RunSpec
    from rlworks.exec.launcher import launch

    overrides: tuple[tuple[str, Any], ...] = (("backend", "native"),)
    if total_steps is not None:
        overrides += (("total_steps", total_steps),)
    specs = [RunSpec(EXPERIMENT, algo, ENV, seed, overrides) for algo in ALGOS for seed in seeds]
    budget = f"{total_steps:,} steps each" if total_steps else "each with its tuned budget"
    print(f"training PPO and DQN on {ENV}, seeds {', '.join(map(str, seeds))} ({budget}); "
          "one line per finished run:", file=sys.stderr, flush=True)
    planned = launch(specs, store, workers=workers)

    print()
    print(f"{'run':8s}  {'algo':4s}  {'seed':>4s}  {'steps':>7s}  {'train s':>7s}  "
          f"{'eval return (20 ep)':>20s}")
    for p in planned:
        r = p.summary or {}
        ret = f"{r.get('eval_return_mean', float('nan')):.1f} ± {r.get('eval_return_std', 0):.1f}"
        print(f"{r.get('run_id', ''):8s}  {p.spec.algo:4s}  {p.spec.seed:>4d}  "
              f"{r.get('global_step', 0):>7d}  {r.get('train_time_s', 0):>7.1f}  {ret:>20s}")
    print("(CartPole-v1 counts as solved at 475; the maximum is 500)")

    out_dir = Path(out) if out else Path(store.path) / EXPERIMENT
    result = compare(store, experiment=EXPERIMENT, algos=list(ALGOS), envs=[ENV],
                     out_dir=out_dir, reps=2_000, seed=0)
    scale = ("normalised: 0 = a uniformly random policy, 1 = the maximum, 500"
             if result.normalization == "reference" else result.normalization)
    print(f"\nFinal evaluation return over {len(seeds)} seeds ({scale}), with 95% "
          "stratified-bootstrap CIs:")
    print_result(result)
    png = result.plots.get("interval_estimates", (out_dir / "report.md",))[0]
    for p in planned:
        if p.run_id:
            for kind in ("interval_estimates", "learning_curves"):
                if kind in result.plots:
                    store.add_artefact(p.run_id, "plot", result.plots[kind][0])
    print(f"\nIQM plot:        {png}")
    if "learning_curves" in result.plots:
        print(f"learning curves: {result.plots['learning_curves'][0]}")
    print(f"report:          {result.report}")
    print("next: `rlworks runs ls`, `rlworks compare --experiment quickstart`, "
          "`rlworks run examples/experiments/cartpole.toml`")
    return Path(png)
