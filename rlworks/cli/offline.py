"""``rlworks offline``: train offline RL algorithms on a fixed dataset.

    rlworks offline train iql --dataset pendulum-medium            one tracked run
    rlworks offline train riql --dataset data/hopper.hdf5 --corrupt SPEC
    rlworks offline train td3bc --dataset NAME --reweight SPEC --total-steps 50000
    rlworks offline train iql --resume RUN_ID                        continue a killed run
    rlworks offline train wsrl --init RUN_ID                         fine-tune a cql run online
    rlworks offline algos                                            the algorithms and presets

``--dataset`` takes a generated name (`rlworks data ls`) or the path of a D4RL-style .hdf5, an
.npz file or a Minari directory. The evaluation env is the dataset's ``env_id`` unless
``--env-id`` says otherwise; the summary reports the D4RL-style normalised score when the
dataset records reference scores. Every run goes to the run store.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from rlworks.cli._args import jsonable
from rlworks.core.errors import UserError, unknown

_KEYS = {"command", "func", "store", "offline_command", "algo", "config", "resume", "init",
         "experiment", "json", "tensorboard", "no_progress"}


def register(sub: Any, argv: Sequence[str]) -> None:
    """Add the ``offline`` command to the top-level parser (no torch import)."""
    from rlworks.algos.offline import OFFLINE_ALGOS
    from rlworks.core.registry import ALGORITHMS

    names = sorted(OFFLINE_ALGOS)
    off = sub.add_parser("offline", help="offline RL: BC, TD3+BC, IQL/RIQL, CQL, AWAC on a "
                                         "dataset; WSRL and fine-tuning online",
                         description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    osub = off.add_subparsers(dest="offline_command", metavar="COMMAND")
    train = osub.add_parser(
        "train", help="train one tracked run of an offline algorithm",
        description="Train ALGO on --dataset as one tracked run. `rlworks offline train ALGO "
                    f"--help` lists every config field of ALGO. Algorithms: {', '.join(names)}.")
    train.add_argument("algo", metavar="ALGO", help=f"one of {', '.join(names)}")
    train.add_argument("--config", metavar="FILE", help="TOML or YAML file setting any field")
    train.add_argument("--resume", metavar="RUN_ID", help="continue this unfinished run")
    train.add_argument("--init", metavar="RUN_ID",
                       help="(wsrl, finetune) start from the latest checkpoint of this cql run; "
                            "sets init_checkpoint, and dataset, env_id and hidden_sizes to the "
                            "run's")
    train.add_argument("--experiment", help="group the run under this experiment name")
    train.add_argument("--json", action="store_true",
                       help="print the final metrics as one JSON object on the last line")
    train.add_argument("--tensorboard", metavar="DIR", help="also log to TensorBoard in DIR")
    train.add_argument("--no-progress", action="store_true", help="no progress output")
    train.set_defaults(func=cmd_train)
    name = _algo_in(argv)
    if name is not None:
        if name not in OFFLINE_ALGOS:
            if name in ALGORITHMS:
                raise UserError(f"'{name}' is an online algorithm; use `rlworks train {name}`, "
                                f"or one of {', '.join(names)}")
            raise unknown("offline algorithm", name, names)
        from rlworks.core.config import add_config_arguments

        spec = ALGORITHMS.get(name)
        if spec.overrides:
            sets = ", ".join(f"{k}={v}" for k, v in spec.overrides)
            train.description = f"{train.description} Preset {name} sets: {sets}."
        add_config_arguments(train, spec.config_class())
    algos = osub.add_parser("algos", help="list the offline algorithms and presets")
    algos.set_defaults(func=cmd_algos)
    off.set_defaults(func=lambda args: (off.print_help(), 0)[1])


def _algo_in(argv: Sequence[str]) -> str | None:
    """ALGO of ``... offline train ALGO ...``, or None."""
    argv = list(argv)
    if "offline" not in argv:
        return None
    rest = argv[argv.index("offline") + 1:]
    if rest[:1] != ["train"]:
        return None
    return rest[1] if len(rest) > 1 and not rest[1].startswith("-") else None


def cmd_train(args: argparse.Namespace) -> int:
    from rlworks.exec import train as driver
    from rlworks.track.store import RunStore

    overrides = {k: v for k, v in vars(args).items() if k not in _KEYS}
    progress = False if args.no_progress else None
    if args.resume:
        if overrides or args.config or args.init:
            raise UserError("--resume continues a run with its stored config; drop the other flags")
        summary = driver.resume(args.resume, RunStore(args.store), progress=progress)
    else:
        init_config = _init_run(args, overrides) if args.init else None
        if init_config is not None:
            overrides = {**{k: init_config[k] for k in _INIT_FIELDS}, **overrides,
                         "init_checkpoint": init_config["init_checkpoint"]}
        cfg = driver.build_config(args.algo, overrides, args.config)
        _check_init(args, cfg, init_config)
        if not cfg.dataset:
            raise UserError("rlworks offline train needs --dataset: a generated name (see "
                            "`rlworks data ls`) or the path of a .hdf5/.npz file or Minari "
                            "directory")
        from rlworks.algos.offline.common import complete_config

        cfg = complete_config(cfg)  # bad dataset or env: one line, before any store is made
        sinks: tuple[Any, ...] = ()
        if args.tensorboard:
            from rlworks.track.logger import TensorBoardSink

            sinks = (TensorBoardSink(args.tensorboard),)
        summary = driver.train(args.algo, cfg, RunStore(args.store), experiment=args.experiment,
                               progress=progress, sinks=sinks)
    _report(summary, args.json)
    return 0


_INIT_FIELDS = ("dataset", "env_id", "hidden_sizes")


def _init_run(args: argparse.Namespace, overrides: dict[str, Any]) -> dict[str, Any]:
    """The config of ``--init RUN_ID``'s run plus its latest checkpoint's path, checked to be a
    run the fine-tuning algorithms can start from; every failure is one UserError line."""
    from rlworks.algos.offline import FINETUNE_ALGOS, INIT_ALGOS
    from rlworks.track.checkpoint import latest_checkpoint
    from rlworks.track.store import RunStore

    if args.algo not in FINETUNE_ALGOS:
        raise UserError(f"--init starts {' and '.join(sorted(FINETUNE_ALGOS))} from a pretrained "
                        f"run; {args.algo} trains from scratch: drop --init")
    if "init_checkpoint" in overrides:
        raise UserError("give --init RUN_ID or --init-checkpoint PATH, not both")
    store = RunStore(args.store)
    record = store.get_run(args.init)  # unknown or ambiguous id: a UserError
    if record.algo not in INIT_ALGOS:
        raise UserError(f"run '{record.run_id}' is a {record.algo} run; {args.algo} starts from "
                        f"a {' or '.join(INIT_ALGOS)} run (`rlworks offline train cql "
                        "--dataset NAME`)")
    path = latest_checkpoint(store.run_dir(record.run_id) / "checkpoints")
    if path is None:
        raise UserError(f"run '{record.run_id}' has no checkpoint yet ({record.status}); resume "
                        "or finish it first")
    return {**record.config, "run_id": record.run_id, "init_checkpoint": str(path)}


def _check_init(args: argparse.Namespace, cfg: Any, init_config: dict[str, Any] | None) -> None:
    """The fine-tuning algorithms need a pretrained agent, and one that fits the run's config."""
    from rlworks.algos.offline import FINETUNE_ALGOS

    if args.algo in FINETUNE_ALGOS and not cfg.init_checkpoint:
        raise UserError(f"{args.algo} fine-tunes a pretrained agent: pass --init RUN_ID (a cql "
                        "run, see `rlworks runs ls`) or --init-checkpoint PATH")
    if init_config is None:
        return
    for key in _INIT_FIELDS:
        want, got = init_config[key], getattr(cfg, key)
        if key == "hidden_sizes":
            want = tuple(want)
        if got != want:
            raise UserError(f"run '{init_config['run_id']}' was trained with {key} {want!r}, "
                            f"this config has {got!r}; drop --{key.replace('_', '-')} (--init "
                            "sets it) or pass another run")


def cmd_algos(args: argparse.Namespace) -> int:
    from rlworks.algos.offline import OFFLINE_ALGOS
    from rlworks.core.registry import ALGORITHMS

    width = max(len(n) for n in OFFLINE_ALGOS)
    for name in sorted(OFFLINE_ALGOS):
        spec = ALGORITHMS.get(name)
        summary = spec.summary.removeprefix("(offline) ")
        print(f"{name:{width}s}  {summary}")
        if spec.overrides:
            base = spec.config_class().__name__.removesuffix("Config").lower()
            print(f"{'':{width}s}    = {base} with "
                  + ", ".join(f"{k}={v}" for k, v in spec.overrides))
    return 0


def _report(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(jsonable(summary)))
        return
    width = max(len(k) for k in summary)
    for key, value in summary.items():
        shown = f"{value:.3f}" if isinstance(value, float) else value
        print(f"{key:<{width}}  {shown}")
