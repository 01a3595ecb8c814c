"""``rlworks adastop``: compare algorithms with the AdaStop sequential test.

Trains ``n`` seeds of each algorithm per interim through the launcher until the test decides
(runs already in the store are reused, so the same command resumes after a kill), or, with
``--csv``, runs the test on score files and trains nothing. See docs/adastop.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rlworks.cli._args import jsonable
from rlworks.core.errors import UserError

_TRAINING_ONLY = (("env", "--env"), ("total_steps", "--total-steps"), ("settings", "--set"),
                  ("workers", "--workers"), ("experiment", "--experiment"))


def register(sub: Any) -> None:
    p = sub.add_parser(
        "adastop", help="compare algorithms with AdaStop: train seeds until the test decides",
        description="Train N seeds of every algorithm per interim, at most K interims, until "
                    "the AdaStop test (Mathieu et al., 2023) decides every pair: larger, "
                    "smaller or equal, with family-wise error <= alpha. A run's score is its "
                    "summary's eval_return_mean. Finished runs are reused: after a kill run "
                    "the same command again. With --csv, test score files instead (one per "
                    "interim, the adastop package's layout); nothing is trained.",
        epilog="example: rlworks adastop --algos ppo,dqn --env CartPole-v1 --n 5 --K 4 "
               "--total-steps 50000")
    p.add_argument("--algos", metavar="A,B,...",
                   help="algorithms to compare, comma-separated (with --csv: which columns, "
                        "default all)")
    p.add_argument("--env", metavar="ENV", help="environment id, e.g. CartPole-v1")
    p.add_argument("--n", type=int, default=None,
                   help="seeds per algorithm per interim (>= 2; with --csv: default the "
                        "files' rows)")
    p.add_argument("--K", type=int, required=True, help="maximum number of interims")
    p.add_argument("--B", type=int, default=10_000,
                   help="permutation budget (default: 10000)")
    p.add_argument("--alpha", type=float, default=0.05,
                   help="family-wise error level (default: 0.05)")
    p.add_argument("--beta", type=float, default=0.0,
                   help="early-acceptance level; 0: 'equal' only at the last interim "
                        "(default: 0)")
    p.add_argument("--comparisons", choices=("all", "first"), default="all",
                   help="all pairs, or the first algorithm against each other (default: all)")
    p.add_argument("--total-steps", type=int, default=None, metavar="N",
                   help="training steps per run (same as --set total_steps=N)")
    p.add_argument("--set", dest="settings", action="append", default=None,
                   metavar="KEY=VALUE",
                   help="a config field for every run (KEY) or one algorithm's runs "
                        "(ALGO.KEY); repeatable")
    p.add_argument("--workers", type=int, default=None,
                   help="local worker processes (default: one per core)")
    p.add_argument("--seed", type=int, default=0,
                   help="base seed: interim k trains seeds S+k*n..S+k*n+n-1 and seeds the "
                        "test's permutations (default: 0)")
    p.add_argument("--experiment", default=None,
                   help="store the runs under this name (default: adastop/ENV/A-B-...)")
    p.add_argument("--csv", nargs="+", metavar="FILE", default=None,
                   help="test these score files (one per interim) instead of training")
    p.add_argument("--json", action="store_true",
                   help="print the decisions as one JSON object instead of the table")
    p.set_defaults(func=cmd_adastop)


def cmd_adastop(args: argparse.Namespace) -> int:
    if args.csv is not None:
        return _cmd_csv(args)
    from rlworks.exec.adastop_runner import make_setup, parse_settings, run_adastop

    if not args.algos:
        raise UserError("--algos is required, e.g. --algos ppo,dqn (or test score files "
                        "with --csv FILE ...)")
    if not args.env:
        raise UserError("--env is required, e.g. --env CartPole-v1")
    if args.n is None:
        raise UserError("--n is required: seeds per algorithm per interim, e.g. --n 5")
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers must be >= 1, got {args.workers}")
    settings: dict[str, Any] = parse_settings(args.settings or [])
    if args.total_steps is not None:
        if "total_steps" in settings:
            raise UserError("total_steps is given by both --total-steps and --set; give it once")
        settings["total_steps"] = args.total_steps
    setup = make_setup(args.algos.split(","), args.env, args.n, args.K, B=args.B,
                       alpha=args.alpha, beta=args.beta, comparisons=args.comparisons,
                       seed=args.seed, experiment=args.experiment, overrides=settings)
    from rlworks.track.store import RunStore

    store = RunStore(args.store)
    print(f"AdaStop: {', '.join(setup.algos)} on {setup.env_id}, n={setup.n} seeds per "
          f"interim, at most K={setup.K} interims, alpha={setup.alpha}; experiment "
          f"'{setup.experiment}' in store '{store.path}'", file=sys.stderr)
    try:
        result = run_adastop(setup, store, workers=args.workers, on_interim=_print_interim)
    except KeyboardInterrupt:
        print("interrupted; finished runs are kept: run the same command again to continue "
              "the test", file=sys.stderr)
        return 130
    test = result.test
    if args.json:
        doc = _decisions_doc(test)
        doc.update(experiment=setup.experiment, env_id=setup.env_id, runs=result.runs,
                   trained=result.trained, reused=result.reused)
        print(json.dumps(jsonable(doc)))
        return 0
    _print_final(test, f"{result.trained} runs trained, {result.reused} reused from the "
                       f"store; see them with `rlworks runs ls --experiment {setup.experiment}`")
    return 0


def _cmd_csv(args: argparse.Namespace) -> int:
    from rlworks.exec.adastop_runner import compare_csv_files

    for attr, flag in _TRAINING_ONLY:
        if getattr(args, attr) is not None:
            raise UserError(f"--csv tests score files and trains nothing; drop {flag}")
    test = compare_csv_files(args.csv, args.K, n=args.n, B=args.B, alpha=args.alpha,
                             beta=args.beta, comparisons=args.comparisons, seed=args.seed,
                             algos=args.algos.split(",") if args.algos else None,
                             on_interim=_print_interim)
    unused = args.csv[test.k:]
    if unused:
        print(f"the test decided at interim {test.k}; not used: {', '.join(unused)}",
              file=sys.stderr)
    if args.json:
        doc = _decisions_doc(test)
        doc["files"] = list(args.csv[:test.k])
        print(json.dumps(jsonable(doc)))
        return 0
    _print_final(test, f"{test.k} score files used")
    return 0


def _print_interim(test: Any, report: Any) -> None:
    """One short line per interim (stderr): what ran, and every pair's state."""
    what = ", ".join(report.algos)
    if len(report.seeds):
        what += (f" seeds {report.seeds.start}-{report.seeds.stop - 1}: {report.trained} "
                 f"trained, {report.reused} reused")
    pairs = "; ".join(f"{r.a} vs {r.b} {r.decision}" for r in test.decisions)
    print(f"interim {report.interim}/{test.K} ({what}) -> {pairs}", file=sys.stderr, flush=True)


def _print_final(test: Any, footer: str) -> None:
    from rlworks.eval.adastop import format_decision_table

    state = (f"decided after interim {test.k} of {test.K}" if test.is_finished
             else f"not finished: {test.k} of {test.K} interims, give more score files")
    print(f"AdaStop ({state}; alpha={test.alpha}, n={test.n})")
    print(format_decision_table(test))
    print(footer)


def _decisions_doc(test: Any) -> dict[str, Any]:
    return {
        "algorithms": test.algorithms, "n": test.n, "K": test.K, "B": test.B,
        "alpha": test.alpha, "beta": test.beta, "interims": test.k,
        "finished": test.is_finished,
        "decisions": [{"a": r.a, "b": r.b, "decision": r.decision, "interim": r.interim,
                       "mean_a": r.mean_a, "mean_b": r.mean_b, "statistic": r.statistic,
                       "boundary": r.boundary} for r in test.decisions],
        "scores": {a: test.scores(a).tolist() for a in test.algorithms},
    }

