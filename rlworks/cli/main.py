"""The ``rlworks`` command.

Heavy modules (torch, gymnasium, matplotlib) are imported inside the handlers that need them,
so ``--help`` and bad-input errors answer in well under half a second. Bad input raises
``UserError``; :func:`main` prints it as one line and exits with code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from rlworks.cli._args import positive_int
from rlworks.core.errors import UserError, did_you_mean

EPILOG = """examples:
  rlworks quickstart                                  PPO vs DQN on CartPole: IQM, CIs, plots
  rlworks train ppo --env CartPole-v1 --seed 0        one tracked run
  rlworks train sac --env Pendulum-v1 --help          every SAC field, with its default
  rlworks train ppo --resume RUN_ID                   continue a killed run
  rlworks eval RUN_ID --episodes 20
  rlworks runs ls
  rlworks run experiments/cartpole.toml               a grid of algos x envs x seeds
  rlworks compare --experiment cartpole               report: IQM with CIs, plots
  rlworks llm pretrain --out tinylm                   pretrain TinyLM on ReasonGym (minutes)
  rlworks llm train grpo --model tinylm               RL post-training (GRPO family)"""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (via UserError) instead of usage + message."""

    def error(self, message: str) -> Any:
        hint = ""
        if message.startswith("unrecognized arguments:"):
            bad = message.split(":", 1)[1].split()[0]
            hint = did_you_mean(bad, _option_strings(self))
        raise UserError(f"{self.prog}: {message}{hint or f'; see {self.prog!r} --help'}")


def _option_strings(parser: argparse.ArgumentParser) -> list[str]:
    """Every ``--flag`` of ``parser`` and its subcommands (for "did you mean")."""
    found: list[str] = []
    for action in parser._actions:
        found += [o for o in action.option_strings if o.startswith("--")]
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found += _option_strings(child)
    return found


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rlworks", description="Reinforcement learning: train, evaluate and track runs.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", default=None, metavar="DIR",
                        help="run store directory (default: $RLWORKS_STORE or ./rlworks-runs)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_train(sub, argv)
    _add_eval(sub)
    _add_quickstart(sub)
    algos = sub.add_parser("algos", help="list the registered algorithms")
    algos.set_defaults(func=cmd_algos)
    envs = sub.add_parser("envs", help="list the native environments")
    envs.set_defaults(func=cmd_envs)
    from rlworks.cli import adastop_cmd, compare, data, llm, offline, run_cmd, runs, tune

    runs.register(sub)
    run_cmd.register(sub)
    compare.register(sub)
    tune.register(sub)
    adastop_cmd.register(sub)
    llm.register(sub, argv)
    data.register(sub, argv)
    offline.register(sub, argv)
    return parser


def _add_train(sub: Any, argv: Sequence[str]) -> None:
    import rlworks.algos.online  # noqa: F401  (lazy registrations only; no torch)
    from rlworks.algos.offline import OFFLINE_ALGOS  # `rlworks offline train` has those
    from rlworks.core.errors import unknown
    from rlworks.core.registry import ALGORITHMS

    online = [n for n in ALGORITHMS.names() if n not in OFFLINE_ALGOS]
    train = sub.add_parser(
        "train", help="train one tracked run of an algorithm",
        description="Train ALGO as one tracked run. `rlworks train ALGO --help` lists every "
                    f"config field of ALGO. Algorithms: {', '.join(online)}.")
    train.add_argument("algo", metavar="ALGO", help=f"one of {', '.join(online)}")
    train.add_argument("--env", dest="env_id", default=argparse.SUPPRESS, metavar="ENV",
                       help="environment id, e.g. CartPole-v1")
    train.add_argument("--config", metavar="FILE", help="TOML or YAML file setting any field")
    train.add_argument("--resume", metavar="RUN_ID", help="continue this unfinished run")
    train.add_argument("--experiment", help="group the run under this experiment name")
    train.add_argument("--json", action="store_true",
                       help="print the final metrics as one JSON object on the last line")
    train.add_argument("--tensorboard", metavar="DIR", help="also log to TensorBoard in DIR")
    train.add_argument("--no-progress", action="store_true", help="no progress output")
    train.set_defaults(func=cmd_train)
    # The algorithm's own flags come from its config dataclass, so find ALGO in argv first.
    words = [a for a in argv if not a.startswith("-")]  # (`--store DIR` has no "train")
    name = words[words.index("train") + 1] if words[:1] == ["train"] and len(words) > 1 else None
    if "--store" in argv and words[:1] != ["train"] and len(words) > 2 and words[1] == "train":
        name = words[2]  # rlworks --store DIR train ALGO
    if name is not None:
        from rlworks.core.config import add_config_arguments

        if name in OFFLINE_ALGOS:
            raise UserError(f"'{name}' is an offline algorithm; use `rlworks offline train "
                            f"{name} --dataset NAME`")
        if name not in online:
            raise unknown("algorithm", name, online)
        spec = ALGORITHMS.get(name)
        add_config_arguments(train, spec.config_class(), skip=("env_id",))


def _add_eval(sub: Any) -> None:
    ev = sub.add_parser("eval", help="evaluate a stored run's final policy")
    ev.add_argument("run_id", metavar="RUN_ID")
    ev.add_argument("--episodes", type=positive_int, default=20)
    ev.add_argument("--seed", type=int, default=None, help="evaluation seed (default: derived)")
    ev.add_argument("--best", action="store_true",
                    help="evaluate the policy kept by --keep-best instead of the final one")
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(func=cmd_eval)


def _add_quickstart(sub: Any) -> None:
    qs = sub.add_parser(
        "quickstart", help="train PPO and DQN on CartPole-v1, compare them (IQM, CIs, plots)",
        description="Train PPO and DQN on CartPole-v1 over a few seeds (one worker per core; "
                    "rerun after a kill to continue), then compare them from the store: IQM "
                    "with 95%% bootstrap CIs, probability of improvement, plots.")
    qs.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default: 0,1,2)")
    qs.add_argument("--total-steps", type=positive_int, default=None,
                    help="env steps per run (default: each algorithm's tuned CartPole budget: "
                         "PPO 100k, DQN 50k)")
    qs.add_argument("--workers", type=positive_int, default=None,
                    help="parallel training processes (default: one per core)")
    qs.add_argument("--out", default=None,
                    help="where to write the report and plots (default: STORE/quickstart)")
    qs.set_defaults(func=cmd_quickstart)




def _store(args: argparse.Namespace) -> Any:
    from rlworks.track.store import RunStore

    return RunStore(args.store)


_TRAIN_KEYS = {"command", "func", "store", "algo", "config", "resume", "experiment", "json",
               "tensorboard", "no_progress"}


def cmd_train(args: argparse.Namespace) -> int:
    from rlworks.exec import train as driver

    overrides = {k: v for k, v in vars(args).items() if k not in _TRAIN_KEYS}
    sinks: tuple[Any, ...] = ()
    if args.resume:
        if overrides or args.config:
            raise UserError("--resume continues a run with its stored config; drop the other flags")
        store = _store(args)
        summary = driver.resume(args.resume, store,
                                progress=False if args.no_progress else None)
    else:
        cfg = driver.build_config(args.algo, overrides, args.config)
        from rlworks.envs.registry import check_backend, check_env_id

        check_env_id(cfg.env_id)
        check_backend(cfg.backend)
        store = _store(args)
        if args.tensorboard:
            from rlworks.track.logger import TensorBoardSink

            sinks = (TensorBoardSink(args.tensorboard),)
        summary = driver.train(args.algo, cfg, store, experiment=args.experiment,
                               progress=False if args.no_progress else None, sinks=sinks)
    _report(summary, args.json)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    import rlworks.algos.online  # noqa: F401
    from rlworks.core.config import config_from_dict
    from rlworks.core.registry import ALGORITHMS
    from rlworks.core.seeding import derive_seed
    from rlworks.eval.evaluate import evaluate
    from rlworks.exec.train import BEST_DIR, CHECKPOINT_DIR
    from rlworks.track.checkpoint import latest_checkpoint, load_checkpoint

    store = _store(args)
    record = store.get_run(args.run_id)
    path = latest_checkpoint(store.run_dir(record.run_id) /
                             (BEST_DIR if args.best else CHECKPOINT_DIR))
    if path is None and args.best:
        raise UserError(f"run '{record.run_id}' kept no best policy; train with --eval-every N "
                        "--keep-best true, or drop --best to evaluate the final policy")
    if path is None:
        raise UserError(f"run '{record.run_id}' has no checkpoint to evaluate yet")
    spec = ALGORITHMS.get(record.algo)
    cfg: Any = config_from_dict(spec.config_class(), record.config, source=f"run {record.run_id}")
    import torch

    torch.set_num_threads(cfg.torch_threads)
    learner = spec.learner_class()(cfg)
    step, state, _meta = load_checkpoint(path)
    learner.load_state_dict(state)
    seed = args.seed if args.seed is not None else derive_seed(cfg.seed, "eval")
    returns = evaluate(learner, cfg.env_id, args.episodes, seed=seed, backend=cfg.backend)
    learner.close()
    _report({"run_id": record.run_id, "algo": record.algo, "env_id": cfg.env_id,
             "eval_episodes": len(returns), "eval_return_mean": float(returns.mean()),
             "eval_return_std": float(returns.std()), "eval_seed": seed,
             "checkpoint_step": step}, args.json)
    return 0


def cmd_quickstart(args: argparse.Namespace) -> int:
    from rlworks.cli.quickstart import quickstart

    seeds = [int(s) for s in str(args.seeds).split(",") if s.strip()]
    if not seeds:
        raise UserError("--seeds needs at least one integer, e.g. --seeds 0,1,2")
    quickstart(_store(args), seeds, args.total_steps, args.out, workers=args.workers)
    return 0


def cmd_algos(args: argparse.Namespace) -> int:
    import rlworks.algos.online  # noqa: F401
    from rlworks.core.registry import ALGORITHMS

    for name in ALGORITHMS.names():
        print(f"{name:8s} {ALGORITHMS.get(name).summary}")
    return 0


def cmd_envs(args: argparse.Namespace) -> int:
    from rlworks.envs.registry import native_ids

    print("native (numpy-batched):", ", ".join(native_ids()))
    print("any gymnasium id works with --backend gymnasium-sync|gymnasium-async;"
          " EnvPool ids with --backend envpool")
    return 0


def _report(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary))
        return
    width = max(len(k) for k in summary)
    for key, value in summary.items():
        shown = f"{value:.3f}" if isinstance(value, float) else value
        print(f"{key:<{width}}  {shown}")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser(argv)
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 0
        return int(args.func(args) or 0)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted; the run is checkpointed: continue it with --resume RUN_ID",
              file=sys.stderr)
        return 130
    except BrokenPipeError:  # `rlworks runs ls | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
