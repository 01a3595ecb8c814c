"""``rlworks data``: build, list, inspect and export offline datasets.

    rlworks data make hopper-medium              train SAC once per env, roll out, cache
    rlworks data make pendulum-expert --size 20000 --agent-steps 10000
    rlworks data ls                              cached datasets, then the envs and kinds
    rlworks data show hopper-medium              shapes, returns, reference scores, hash
    rlworks data export hopper-medium --out hopper-medium-v0 --format minari

Names are ENV-KIND (see ``rlworks.data.recipes``). Datasets are "D4RL-style": made by this
project's SAC at small budgets, so their scores are not comparable with published D4RL tables.
The cache is --cache-dir, else $RLWORKS_DATA, else ./rlworks-data.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlworks.cli._args import jsonable, positive_int
from rlworks.core.errors import UserError


def register(sub: Any, argv: Sequence[str]) -> None:
    """Add the ``data`` command to the top-level parser."""
    from rlworks.core.config import field_docs
    from rlworks.data.recipes import DATASET_ENVS, DATASET_KINDS, Budget

    data = sub.add_parser("data", help="offline datasets: make, ls, show, export",
                          description=__doc__,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    dsub = data.add_subparsers(dest="data_command", metavar="COMMAND")
    cache = argparse.ArgumentParser(add_help=False)
    cache.add_argument("--cache-dir", metavar="DIR", default=None,
                       help="dataset cache (default: $RLWORKS_DATA or ./rlworks-data)")

    fields = [f.name for f in dataclasses.fields(Budget)]
    rows = [["ENV", "ID", *(f.upper() for f in fields)]] + [
        [r.name, r.env_id, *(f"{getattr(r.budget, f):,}" for f in fields)]
        for r in DATASET_ENVS.values()]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    table = "\n".join(
        "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in rows)
    kinds = "\n".join(f"  {k:<14} {v}" for k, v in DATASET_KINDS.items())
    make = dsub.add_parser(
        "make", parents=[cache], help="build a dataset into the cache (reused if already built)",
        description="Build ENV-KIND. The SAC agent behind it is trained once per env, seed and "
                    "budget and shared by every kind. Each budget field can be overridden; "
                    "a custom budget gets its own cache name.",
        epilog=f"kinds:\n{kinds}\n\ndefault budgets (--agent-steps ... --reference-episodes):\n"
               f"{table}",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    make.add_argument("name", metavar="NAME", help="ENV-KIND, e.g. hopper-medium")
    make.add_argument("--seed", type=_seed, default=0, help="seed of every draw (default: 0)")
    make.add_argument("--force", action="store_true",
                      help="rebuild even if cached (the cached file is replaced only on success)")
    make.add_argument("--format", choices=("hdf5", "npz"), default="hdf5",
                      help="cache file format (default: hdf5, D4RL-style)")
    make.add_argument("--no-progress", action="store_true", help="no progress output")
    make.add_argument("--json", action="store_true", help="print the index entry as JSON")
    docs = field_docs(Budget)
    for f in dataclasses.fields(Budget):
        make.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=positive_int,
                          default=argparse.SUPPRESS, metavar="N",
                          help=f"{docs.get(f.name, '')} (default: per env, below)")
    make.set_defaults(func=cmd_make, budget_fields=[f.name for f in dataclasses.fields(Budget)])

    ls = dsub.add_parser("ls", parents=[cache], help="list the cached datasets")
    ls.add_argument("--json", action="store_true", help="one JSON list of index entries")
    ls.set_defaults(func=cmd_ls)

    show = dsub.add_parser("show", parents=[cache],
                           help="shape, size, episodes, returns, reference scores, hash")
    show.add_argument("name", metavar="NAME", help="a cached name or a dataset file/directory")
    show.add_argument("--json", action="store_true", help="print the summary as JSON")
    show.set_defaults(func=cmd_show)

    export = dsub.add_parser("export", parents=[cache],
                             help="write a dataset as D4RL-style HDF5, Minari or npz")
    export.add_argument("name", metavar="NAME", help="a cached name or a dataset file/directory")
    export.add_argument("--out", required=True, metavar="PATH",
                        help="new file (.hdf5, .npz) or Minari directory; never overwritten")
    export.add_argument("--format", choices=("hdf5", "minari", "npz"), default=None,
                        help="default: from --out's suffix (.hdf5/.h5, .npz; none: minari)")
    export.set_defaults(func=cmd_export)
    data.set_defaults(func=lambda args: _help(data))


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 0


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def cmd_make(args: argparse.Namespace) -> int:
    from rlworks.data.factory import list_datasets
    from rlworks.exec.datasets import make_dataset

    budget = {k: getattr(args, k) for k in args.budget_fields if hasattr(args, k)}
    path = make_dataset(args.name, seed=args.seed, budget=budget or None,
                        cache_dir=args.cache_dir, force=args.force,
                        progress=False if args.no_progress else None, format=args.format)
    entry = next((e for e in list_datasets(args.cache_dir) if Path(e["path"]) == path), None)
    if args.json:
        print(json.dumps(jsonable(entry)))
    elif entry is not None:
        norm = _normalised(entry["return_mean"], entry.get("reference_scores") or {})
        print(f"{entry['id']}: {entry['transitions']:,} transitions, {entry['episodes']:,} "
              f"episodes, mean return {entry['return_mean']:.1f}"
              + (f" (normalised {norm:.1f})" if norm is not None else "")
              + f", hash {entry['content_hash'][:12]}")
    print(path)
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    from rlworks.data.factory import cache_root, list_datasets
    from rlworks.data.recipes import DATASET_ENVS, DATASET_KINDS

    entries = list_datasets(args.cache_dir)
    if args.json:
        print(json.dumps(jsonable(entries)))
        return 0
    root = cache_root(args.cache_dir)
    if not entries:
        print(f"no datasets in {root}; build one with `rlworks data make pendulum-medium`")
    else:
        rows = [("ID", "ENV", "KIND", "SEED", "TRANSITIONS", "EPISODES", "RETURN", "NORM",
                 "HASH")]
        for e in entries:
            norm = _normalised(e["return_mean"], e.get("reference_scores") or {})
            rows.append((e["id"], e["env_id"], e["kind"], str(e["seed"]),
                         f"{e['transitions']:,}", f"{e['episodes']:,}",
                         f"{e['return_mean']:.1f}", "-" if norm is None else f"{norm:.1f}",
                         e["content_hash"][:12]))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        print(f"({len(entries)} in {root})")
    envs = ", ".join(f"{r.name} ({r.env_id})" for r in DATASET_ENVS.values())
    print(f"envs: {envs}\nkinds: {', '.join(DATASET_KINDS)}\n"
          "build one with `rlworks data make ENV-KIND` (D4RL-style; scores are not comparable "
          "with published D4RL tables)")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from rlworks.data.factory import resolve_dataset

    ds = resolve_dataset(args.name, cache_dir=args.cache_dir)
    summary = summarise(ds)
    if args.json:
        print(json.dumps(jsonable(summary)))
        return 0
    refs = summary["reference_scores"] or {}
    ret = summary["returns"]
    lines = [
        ("dataset", summary["name"] or args.name),
        ("env", summary["env_id"] or "-"),
        ("kind", summary["kind"] or "-"),
        ("observations", f"{summary['observations']['shape']} {summary['observations']['dtype']}"),
        ("actions", f"{summary['actions']['shape']} {summary['actions']['dtype']}"),
        ("transitions", f"{summary['transitions']:,}"),
        ("episodes", f"{summary['episodes']:,} ({summary['terminated']:,} terminated, "
                     f"{summary['episodes'] - summary['terminated']:,} truncated or cut)"),
        ("returns", f"min {ret['min']:.2f}  mean {ret['mean']:.2f}  max {ret['max']:.2f}"
         if ret else "-"),
        ("reference", ", ".join(f"{k} {refs[k]:.2f}" for k in ("random", "expert") if k in refs)
         or "-"),
        ("normalised", "-" if summary["normalised_mean"] is None
         else f"{summary['normalised_mean']:.1f} (100 = expert, 0 = random)"),
        ("hash", summary["content_hash"]),
    ]
    gen = summary["generator"]
    if gen:
        agent = gen.get("agent") or {}
        lines += [
            ("seed", str(gen.get("seed"))),
            ("budget", " ".join(f"{k}={v:,}" for k, v in (gen.get("budget") or {}).items())),
            ("policy", str(gen.get("policy"))),
            ("agent", f"{agent.get('algo')} medium snapshot at step {agent.get('medium_step')} "
                      f"(return {agent.get('medium_return', float('nan')):.2f}, target "
                      f"{agent.get('medium_target', float('nan')):.2f}), expert at step "
                      f"{agent.get('expert_step')}"),
            ("versions", " ".join(f"{k}={v}" for k, v in (gen.get("versions") or {}).items())),
        ]
    if summary.get("source"):
        lines.append(("source", summary["source"]))
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        print(f"{key:<{width}}  {value}")
    return 0


def summarise(ds: Any) -> dict[str, Any]:
    """The numbers ``rlworks data show`` prints, as a dict."""
    meta = dict(ds.metadata)
    returns = ds.episode_returns()
    ends = ds.episodes()[:, 1] - 1 if len(ds) else []
    refs = meta.get("reference_scores") or {}
    mean = float(returns.mean()) if len(returns) else None
    return {
        "name": meta.get("id") or meta.get("name"),
        "env_id": meta.get("env_id"), "kind": meta.get("kind"),
        "observations": {"shape": list(ds.observations.shape),
                         "dtype": str(ds.observations.dtype)},
        "actions": {"shape": list(ds.actions.shape), "dtype": str(ds.actions.dtype)},
        "transitions": len(ds), "episodes": ds.num_episodes,
        "terminated": int(ds.terminations[ends].sum()) if len(ds) else 0,
        "returns": {"min": float(returns.min()), "mean": mean, "max": float(returns.max())}
        if len(returns) else None,
        "reference_scores": refs or None,
        "normalised_mean": None if mean is None else _normalised(mean, refs),
        "content_hash": ds.content_hash(),
        "generator": meta.get("generator"), "source": meta.get("source"),
    }


def _normalised(value: float, refs: dict[str, Any]) -> float | None:
    """D4RL's normalised score, ``100 * (value - random) / (expert - random)``."""
    lo, hi = refs.get("random"), refs.get("expert")
    if lo is None or hi is None or hi == lo:
        return None
    return 100.0 * (value - lo) / (hi - lo)


_SUFFIX_FORMATS = {".hdf5": "hdf5", ".h5": "hdf5", ".npz": "npz"}


def cmd_export(args: argparse.Namespace) -> int:
    from rlworks.data.factory import resolve_dataset

    out = Path(args.out).expanduser()
    if out.exists() or out.is_symlink():
        raise UserError(f"--out '{out}' already exists; choose a new path or delete it first")
    by_suffix = _SUFFIX_FORMATS.get(out.suffix.lower(), "minari")
    fmt = args.format or by_suffix
    if fmt != by_suffix:
        want = {"hdf5": "a .hdf5 file", "npz": "a .npz file", "minari": "a directory without "
                "a .hdf5/.h5/.npz suffix"}[fmt]
        raise UserError(f"--out '{out}' does not fit --format {fmt}: give {want}, so that the "
                        "format can be read back from the path")
    ds = resolve_dataset(args.name, cache_dir=args.cache_dir)
    _write_new(ds, out, fmt)
    print(out)
    return 0


def _write_new(ds: Any, out: Path, fmt: str) -> None:
    """Write ``ds`` to ``out`` via a temporary sibling renamed into place (never over a file)."""
    import shutil

    from rlworks.data.formats import save_dataset
    from rlworks.data.formats.minari_io import save_minari

    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"cannot write --out '{out}': '{parent}' is a file, not a "
                                "directory; choose another path")
            break
    tmp = out.with_name(f".{out.name}.{os.getpid()}.partial{out.suffix}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "minari":
            save_minari(ds, tmp, dataset_id=out.name)
        else:
            save_dataset(ds, tmp, format=fmt)
        if out.exists():
            raise UserError(f"--out '{out}' appeared while writing; the export was not written")
        os.replace(tmp, out)
    except OSError as err:
        raise UserError(f"cannot write --out '{out}' ({err.strerror or err}); choose a "
                        "writable path") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        for leftover in (tmp, tmp.with_name(tmp.name + ".partial")):
            with contextlib.suppress(OSError):
                leftover.unlink()
