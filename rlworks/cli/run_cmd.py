"""``rlworks run EXPERIMENT.toml``: run a grid of algorithms x envs x seeds, resumably.

Exit codes: 0 every run finished; 1 some runs failed (the others finished; launching again
resumes the failed ones); 2 bad input (nothing is run, the store is not touched);
130 interrupted (running runs were checkpointed; launching again resumes them).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
from collections.abc import Iterator
from typing import Any

from rlworks.cli._args import positive_int


def register(sub: Any) -> None:
    run = sub.add_parser(
        "run", help="run an experiment grid (TOML): algos x envs x seeds, resumable",
        description="Run every (algo, env, seed) of an experiment file. Runs already finished "
                    "in the store are reused, unfinished ones resumed: after a kill, run the "
                    "same command again. See docs/experiments.md for the file layout.")
    run.add_argument("experiment_file", metavar="EXPERIMENT.toml")
    run.add_argument("--workers", type=positive_int, default=None,
                     help="local worker processes (default: [experiment] workers, else one "
                          "per core; 1 trains in this process)")
    run.add_argument("--ray", metavar="ADDRESS", default=None,
                     help="run on a Ray cluster at ADDRESS (e.g. 10.0.0.1:6379), or 'local' "
                          "to start one here; the store must be visible to every node")
    run.add_argument("--dry-run", action="store_true",
                     help="print what would run (and what is already done), run nothing")
    run.add_argument("--json", action="store_true",
                     help="print one JSON object per run (its summary) at the end")
    run.set_defaults(func=cmd_run)




def cmd_run(args: argparse.Namespace) -> int:
    from rlworks.exec.experiment import expand, load_experiment
    from rlworks.exec.launcher import RunsFailed, launch, plan
    from rlworks.track.store import RunStore

    exp = load_experiment(args.experiment_file)  # bad input fails before the store opens
    specs = expand(exp)
    store = RunStore(args.store)
    if args.dry_run:
        _print_plan(plan(specs, store, check_configs=True), args.json)
        return 0
    try:
        with _sigterm_as_interrupt():
            planned = launch(specs, store, workers=args.workers or exp.workers, ray=args.ray,
                             check_configs=True)
    except RunsFailed as failed:
        if args.json:
            _print_json(failed.planned)
        raise
    except KeyboardInterrupt:
        print(f"interrupted: running runs are checkpointed; `rlworks run "
              f"{args.experiment_file}` again resumes them", file=sys.stderr)
        return 130
    if args.json:
        _print_json(planned)
    else:
        print(f"experiment '{exp.name}': {sum(p.action == 'done' for p in planned)} of "
              f"{len(planned)} runs finished; compare them with "
              f"`rlworks compare --experiment {exp.name}`")
    return 0


def _print_plan(planned: list[Any], as_json: bool) -> None:
    if as_json:
        for p in planned:
            print(json.dumps({**p.spec.to_dict(), "action": p.action, "run_id": p.run_id}))
        return
    width = max(len(p.spec.label()) for p in planned)
    for p in planned:
        print(f"{p.action:8s} {p.spec.label():{width}s} {p.run_id or ''}".rstrip())
    counts = {a: sum(p.action == a for p in planned) for a in ("done", "resume", "new",
                                                                 "running")}
    print(f"{len(planned)} runs: " + ", ".join(f"{n} {a}" for a, n in counts.items()))


def _print_json(planned: list[Any]) -> None:
    for p in planned:
        if p.action == "done" and p.summary:
            print(json.dumps(p.summary))
        else:
            print(json.dumps({"run_id": p.run_id, "status": p.action, "error": p.error,
                              **p.spec.to_dict()}))


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a scheduler's time limit, `kill`) stops a launch the way Ctrl-C does: the
    workers checkpoint their runs first."""

    import threading

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set signal handlers
        return
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
