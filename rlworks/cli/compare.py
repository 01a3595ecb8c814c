"""``rlworks compare`` (statistics and plots from stored runs) and ``rlworks import FILE``.

The main CLI calls :func:`register` with its subparsers. Neither command imports torch:
``compare`` needs numpy and matplotlib, ``import`` only the store.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rlworks.cli._args import positive_int
from rlworks.core.errors import UserError

EXAMPLES = """examples:
  rlworks compare --experiment quickstart
  rlworks compare --algos ppo,dqn --envs CartPole-v1,Acrobot-v1 --reps 10000 --out report/
  rlworks compare --score final --metric charts/episodic_return
  rlworks import wandb_export.csv --experiment baselines"""


def register(subparsers: Any) -> None:
    """Add ``compare`` and ``import`` to the main CLI's subparsers."""
    cmp = subparsers.add_parser(
        "compare", help="aggregate statistics with 95%% CIs and plots from stored runs",
        description="Compare algorithms over the finished runs in the store: mean, median,\n"
                    "IQM and optimality gap with stratified-bootstrap 95% CIs, probability of\n"
                    "improvement, performance profiles and learning curves. Writes report.md,\n"
                    "report.json and PNG+SVG plots to --out. See docs/compare.md.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    cmp.add_argument("--experiment", metavar="NAME", help="only runs of this experiment")
    cmp.add_argument("--algos", metavar="A,B", type=_names,
                     help="comma-separated algorithms (default: every one)")
    cmp.add_argument("--envs", metavar="E1,E2", type=_names,
                     help="comma-separated env ids (default: every one)")
    cmp.add_argument("--metric", metavar="KEY", default=None,
                     help="metric for learning curves and --score final "
                          "(default: rollout/episodic_return)")
    cmp.add_argument("--score", choices=("eval", "final"), default="eval",
                     help="eval: each run's final evaluation (summary eval_return_mean); "
                          "final: mean of the last 10%% of --metric's points (default: eval)")
    cmp.add_argument("--normalize", choices=("auto", "reference", "minmax", "none"),
                     default="auto", help="per-env score normalisation (default: auto: "
                     "reference scores if known for every env, else min-max over the runs "
                     "when there are several envs)")
    cmp.add_argument("--out", metavar="DIR",
                     help="output directory (default: STORE/reports/EXPERIMENT or .../all)")
    cmp.add_argument("--reps", type=positive_int, default=2_000, metavar="N",
                     help="bootstrap repetitions (default: 2000)")
    cmp.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")
    cmp.add_argument("--no-plots", action="store_true",
                     help="write report.md and report.json only (faster)")
    cmp.set_defaults(func=cmd_compare)

    imp = subparsers.add_parser(
        "import", help="import runs from a CSV or JSON file of another tracker",
        description="Add the runs of FILE to the store as finished runs. FILE is long format, "
                    "one row per logged value, with columns step, metric, value, algorithm, "
                    "env, seed and optionally run (aliases: global_step, key, algo, env_id, "
                    "run_id, ...). Importing the same runs again adds nothing. See "
                    "docs/compare.md.")
    imp.add_argument("file", metavar="FILE", help="a .csv or .json file")
    imp.add_argument("--experiment", metavar="NAME", help="group the imported runs under NAME")
    imp.set_defaults(func=cmd_import)


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"'{text}' names nothing; give a comma-separated list")
    return names




def _open_store(args: argparse.Namespace) -> Any:
    """The store, which must already exist for ``compare`` (reading never creates one)."""
    from rlworks.track.store import DB_NAME, RunStore, default_store_path

    path = Path(args.store) if getattr(args, "store", None) else default_store_path()
    if not (path / DB_NAME).is_file():
        raise UserError(f"no run store at '{path}'; pass --store DIR or set RLWORKS_STORE to "
                        "the directory your runs were written to")
    return RunStore(path)


def cmd_compare(args: argparse.Namespace) -> int:
    from rlworks.eval.report import compare

    with _open_store(args) as store:
        result = compare(store, experiment=args.experiment, algos=args.algos, envs=args.envs,
                         metric=args.metric, score=args.score, out_dir=args.out,
                         reps=args.reps, seed=args.seed, normalize=args.normalize,
                         plots=not args.no_plots)
    print(f"{len(result.algos)} algorithms on {', '.join(result.envs)}; normalisation: "
          f"{result.normalization}; 95% CIs from {args.reps:,} bootstrap repetitions")
    print_result(result)
    print(f"report: {result.report}")
    return 0


def print_result(result: Any) -> None:
    """The aggregate table, each P(X > Y) with its CI, and the notes (on stderr)."""
    from rlworks.eval.report import aggregate_table

    print(aggregate_table(result))
    for p in result.pairs:
        print(f"P({p['x']} > {p['y']}) = {p['estimate']:.3f} "
              f"[{p['lower']:.3f}, {p['upper']:.3f}]")
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)


def cmd_import(args: argparse.Namespace) -> int:
    from rlworks.track.importer import import_runs
    from rlworks.track.store import RunStore

    with RunStore(args.store) as store:
        result = import_runs(store, args.file, experiment=args.experiment)
    where = f" into experiment '{args.experiment}'" if args.experiment else ""
    print(f"imported {len(result.created)} runs ({result.values} values){where}"
          + (f"; {len(result.skipped)} already imported, skipped" if result.skipped else ""))
    if result.created:
        print("ids: " + " ".join(result.created))
    return 0
