"""``rlworks llm``: pretrain TinyLM, RL-train it (GRPO family presets), evaluate checkpoints.

    rlworks llm pretrain --out tinylm                 TinyLM on ReasonGym text (minutes)
    rlworks llm sft --model tinylm --data sft.jsonl   supervised fine-tuning
    rlworks llm train grpo --model tinylm            RL post-training with a preset
    rlworks llm eval tinylm RUN_ID ... --k 256       pass@k / maj@k curves of checkpoints
    rlworks llm presets                               the presets and what each one sets

Every run goes to the run store; models are saved with ``save_pretrained`` so plain
``transformers`` loads them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from rlworks.cli._args import positive_int
from rlworks.core.errors import UserError

_COMMON = {
    "config_class",
    "command",
    "func",
    "store",
    "llm_command",
    "config",
    "out",
    "experiment",
    "json",
    "no_progress",
    "preset",
    "resume",
}


def register(sub: Any, argv: Sequence[str]) -> None:
    from rlworks.algos.llm.configs import PretrainConfig, RLConfig, SFTConfig
    from rlworks.algos.llm.presets import PRESETS
    from rlworks.core.config import add_config_arguments

    llm = sub.add_parser(
        "llm",
        help="language models: pretrain TinyLM, RL post-training, pass@k",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    lsub = llm.add_subparsers(dest="llm_command", metavar="COMMAND")

    for name, cls, text in (
        ("pretrain", PretrainConfig, "pretrain TinyLM on ReasonGym chain-of-thought text"),
        ("sft", SFTConfig, "fine-tune a checkpoint on prompt/completion text (JSONL or ReasonGym)"),
    ):
        p = lsub.add_parser(name, help=text, description=cls.__doc__)
        p.add_argument("--out", metavar="DIR", help="also copy the model to DIR")
        _common(p)
        add_config_arguments(p, cls)
        p.set_defaults(func=cmd_text, config_class=cls)

    tr = lsub.add_parser(
        "train",
        help="RL-train a checkpoint with a preset (grpo, rloo, ...)",
        description=RLConfig.__doc__,
    )
    tr.add_argument(
        "preset",
        nargs="?",
        default="grpo",
        metavar="PRESET",
        help=f"one of {', '.join(PRESETS)} (default: grpo)",
    )
    tr.add_argument("--out", metavar="DIR", help="also copy the final model to DIR")
    tr.add_argument("--resume", metavar="RUN_ID", help="continue this unfinished run")
    _common(tr)
    add_config_arguments(tr, RLConfig)
    tr.set_defaults(func=cmd_train)

    ev = lsub.add_parser(
        "eval",
        help="pass@k, maj@k and per-source accuracy of checkpoints",
        description="Sample N completions per held-out problem for each model "
        "(a directory, or a run id whose saved model is used) and "
        "report greedy accuracy, pass@k and maj@k; with several "
        "models, one plot of pass@k against k.",
    )
    ev.add_argument(
        "models",
        nargs="+",
        metavar="MODEL",
        help="model directories or run ids, optionally labelled NAME=DIR (e.g. base=tinylm)",
    )
    ev.add_argument("--tasks", default="add:2", help="held-out problems (test split)")
    ev.add_argument("--problems", type=positive_int, default=100, help="problems (default 100)")
    ev.add_argument(
        "--k",
        type=positive_int,
        default=64,
        help="largest k; N = k samples per problem (default 64)",
    )
    ev.add_argument("--temperature", type=float, default=1.0)
    ev.add_argument("--max-new-tokens", type=positive_int, default=160)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--plot", metavar="FILE", help="write the pass@k curves (PNG and SVG)")
    ev.add_argument("--json", action="store_true", help="print the results as JSON")
    ev.add_argument("--torch-threads", type=positive_int, default=2)
    ev.set_defaults(func=cmd_eval)

    li = lsub.add_parser(
        "limr",
        help="LIMR: select the problems whose learning follows the "
        "model's (from a pilot run with --sampler epochs)",
        description="Learning Impact Measurement (Li et al. 2025): score each "
        "problem of a pilot run by how its per-epoch reward follows the "
        "average learning curve, keep the aligned ones, and write their ids "
        "for `rlworks llm train --pool-file FILE`.",
    )
    li.add_argument(
        "run_id", metavar="RUN_ID", help="the pilot run (trained with --sampler epochs)"
    )
    li.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="keep scores >= this (default 0.6 unless --top-frac)",
    )
    li.add_argument(
        "--top-frac",
        type=float,
        default=None,
        help="keep this fraction of the best-scoring problems instead",
    )
    li.add_argument("--out", required=True, metavar="FILE", help="where to write the ids (JSON)")
    li.set_defaults(func=cmd_limr)

    pr = lsub.add_parser("presets", help="list the RL presets and the fields each sets")
    pr.set_defaults(func=cmd_presets)
    llm.set_defaults(func=lambda args: (llm.print_help(), 0)[1])


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="TOML or YAML file setting any field")
    p.add_argument("--experiment", help="group the run under this experiment name")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    p.add_argument("--no-progress", action="store_true", help="no progress output")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if k not in _COMMON}


def _config(cls: type, base: dict[str, Any], args: argparse.Namespace) -> Any:
    from rlworks.core.config import config_from_dict, load_config_file

    cfg: Any = config_from_dict(cls, base, source="preset")
    if args.config:
        cfg = config_from_dict(cls, load_config_file(args.config), source=args.config, base=cfg)
    return config_from_dict(cls, _overrides(args), source="command line", base=cfg)


def _store(args: argparse.Namespace) -> Any:
    from rlworks.track.store import RunStore

    return RunStore(args.store)


def _print(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary, default=str))
        return
    for k, v in summary.items():
        print(f"{k:>24}: {v:.4f}" if isinstance(v, float) else f"{k:>24}: {v}")


def cmd_text(args: argparse.Namespace) -> int:
    from rlworks.exec.llm_train import text_run

    cfg = _config(args.config_class, {}, args)
    summary = text_run(
        args.llm_command,
        cfg,
        _store(args),
        out=args.out,
        progress=False if args.no_progress else None,
        experiment=args.experiment,
    )
    _print(summary, args.json)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from rlworks.algos.llm.configs import RLConfig
    from rlworks.algos.llm.presets import preset_overrides
    from rlworks.exec.llm_train import rl_resume, rl_run

    progress = False if args.no_progress else None
    if args.resume:
        if _overrides(args) or args.config:
            raise UserError("--resume continues a run with its stored config; drop the other flags")
        summary = rl_resume(args.resume, _store(args), progress=progress)
    else:
        cfg = _config(RLConfig, preset_overrides(args.preset), args)
        if not cfg.model:
            raise UserError(
                "--model is required: a local checkpoint directory, e.g. the "
                "--out of `rlworks llm pretrain`"
            )
        summary = rl_run(
            args.preset,
            cfg,
            _store(args),
            progress=progress,
            experiment=args.experiment,
            out=args.out,
        )
    _print(summary, args.json)
    return 0


def cmd_limr(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rlworks.exec.llm_train import limr_selection

    threshold = args.threshold if args.threshold is not None or args.top_frac else 0.6
    result = limr_selection(_store(args), args.run_id, threshold, args.top_frac)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(
        f"LIMR kept {result['selected']} of {result['pool']} problems "
        f"({result['epochs']} epochs); ids in {args.out}"
    )
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    from rlworks.algos.llm.presets import PRESETS

    for name, fields in PRESETS.items():
        sets = ", ".join(f"{k}={v}" for k, v in fields.items()) or "(the defaults)"
        print(f"{name:>18}: {sets}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rlworks.exec.llm_eval import evaluate_models

    if not args.temperature >= 0.0:
        raise UserError(f"--temperature must be >= 0, got {args.temperature}")
    store = None
    paths: list[tuple[str, Path]] = []
    for given in args.models:
        label, eq, m = given.partition("=")
        if not eq:
            label, m = "", given
        if Path(m).is_dir():
            paths.append((label or m, Path(m)))
            continue
        store = store or _store(args)
        record = store.get_run(m)  # UserError for an unknown run id
        models = [p for kind, p in store.artefacts(record.run_id) if kind == "model"]
        if not models:
            raise UserError(f"run '{record.run_id}' has no saved model (is it finished?)")
        paths.append((label or f"{record.algo}:{record.run_id[:8]}", models[-1]))
    results = evaluate_models(
        paths,
        args.tasks,
        args.problems,
        args.k,
        args.temperature,
        args.max_new_tokens,
        args.seed,
        args.torch_threads,
        args.plot,
    )
    if args.json:
        print(json.dumps(results))
    else:
        for name, res in results.items():
            shown = {k: v for k, v in res.items() if not k.startswith("curve")}
            print(name)
            for k, v in shown.items():
                print(f"  {k:>28}: {v:.4f}" if isinstance(v, float) else f"  {k:>28}: {v}")
        if args.plot:
            print(f"plot: {args.plot}", file=sys.stderr)
    return 0
