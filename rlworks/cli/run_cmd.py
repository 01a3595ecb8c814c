"""``rlworks run EXPERIMENT.toml``: run a grid of algorithms x envs x seeds, resumably."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    run = sub.add_parser(
        "run", help="run an experiment grid (TOML): algos x envs x seeds, resumable",
        description="Run every (algo, env, seed) of an experiment file. Runs already finished "
                    "in the store are reused, unfinished ones resumed: after a kill, run the "
                    "same command again. See docs/experiments.md for the file layout.")
    run.add_argument("experiment_file", metavar="EXPERIMENT.toml")
    run.add_argument("--workers", type=_positive_int, default=None,
                     help="local worker processes (default: [experiment] workers, else one "
                          "per core)")
    run.add_argument("--ray", metavar="ADDRESS", default=None,
                     help="run on a Ray cluster at ADDRESS, or 'local' to start one here")
    run.add_argument("--dry-run", action="store_true",
                     help="print what would run (and what is already done), run nothing")
    run.add_argument("--json", action="store_true",
                     help="print one JSON object per run (its summary) at the end")
    run.set_defaults(func=cmd_run)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def cmd_run(args: argparse.Namespace) -> int:
    import json

    from rlworks.exec.experiment import expand, load_experiment
    from rlworks.exec.launcher import launch, plan
    from rlworks.track.store import RunStore

    exp = load_experiment(args.experiment_file)
    specs = expand(exp)
    store = RunStore(args.store)
    if args.dry_run:
        for p in plan(specs, store):
            print(f"{p.action:8s} {p.spec.label():40s} {p.run_id or ''}")
        return 0
    planned = launch(specs, store, workers=args.workers or exp.workers, ray=args.ray)
    if args.json:
        for p in planned:
            print(json.dumps(p.summary or {"run_id": p.run_id, "status": p.action}))
    else:
        print(f"experiment '{exp.name}': {sum(p.action == 'done' for p in planned)} of "
              f"{len(planned)} runs finished; compare them with "
              f"`rlworks compare --experiment {exp.name}`")
    return 0
