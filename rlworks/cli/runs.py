"""``rlworks runs``: list, inspect, export and delete the runs in a store.

The main CLI calls :func:`register` with its subparsers; each command's handler takes the
parsed ``args`` (``args.store`` is the global ``--store DIR``, maybe ``None``) and returns the
exit code. Bad input raises :class:`UserError`, which the main CLI prints as one line.
Nothing here imports torch: these commands answer in a fraction of a second.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from rlworks.cli._args import jsonable
from rlworks.core.errors import UserError, unknown
from rlworks.track.store import DB_NAME, DISPLAY_STATUSES, RunRecord, RunStore, default_store_path


def register(subparsers: Any) -> None:
    """Add ``runs`` and its commands to the main CLI's subparsers."""
    runs = subparsers.add_parser(
        "runs", help="list, inspect, export and delete tracked runs",
        description="Inspect the run store (--store DIR, $RLWORKS_STORE, or ./rlworks-runs).",
    )
    runs.set_defaults(func=lambda args: _usage(runs))
    sub = runs.add_subparsers(dest="runs_command", metavar="COMMAND")

    ls = sub.add_parser("ls", help="a table of runs, oldest first")
    ls.add_argument("--algo", help="only runs of this algorithm")
    ls.add_argument("--env", help="only runs on this environment id")
    ls.add_argument("--status", help=f"only runs with this status ({', '.join(DISPLAY_STATUSES)})")
    ls.add_argument("--experiment", help="only runs of this experiment")
    ls.add_argument("--json", action="store_true", help="print the run records as JSON")
    ls.set_defaults(func=cmd_ls)

    show = sub.add_parser("show", help="config, provenance, summary, last metrics, artefacts")
    show.add_argument("run_id", metavar="ID", help="run id or a unique prefix of one")
    show.add_argument("--json", action="store_true", help="print as JSON")
    show.set_defaults(func=cmd_show)

    export = sub.add_parser("export", help="a run's record and metrics as CSV or JSON")
    export.add_argument("run_id", metavar="ID", help="run id or a unique prefix of one")
    export.add_argument("--format", choices=("csv", "json"), default=None,
                        help="csv: one row per value (run_id, algo, env_id, seed, step, key, "
                             "value); json: the full record plus the rows (default: from the "
                             "-o suffix, else csv)")
    export.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    export.set_defaults(func=cmd_export)

    rm = sub.add_parser("rm", help="delete runs, their metrics and artefacts")
    rm.add_argument("run_ids", metavar="ID", nargs="+", help="run ids or unique prefixes")
    rm.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    rm.set_defaults(func=cmd_rm)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _store_path(args: argparse.Namespace) -> Path:
    store = getattr(args, "store", None)
    return Path(store) if store else default_store_path()


def _open(args: argparse.Namespace) -> RunStore:
    """The store, which must already exist (inspecting never creates one)."""
    path = _store_path(args)
    if not (path / DB_NAME).is_file():
        raise UserError(f"no run store at '{path}'; pass --store DIR or set RLWORKS_STORE "
                        "to the directory your runs were written to")
    return RunStore(path)


# ---------------------------------------------------------------------------- ls


def cmd_ls(args: argparse.Namespace) -> int:
    if not (_store_path(args) / DB_NAME).is_file():
        if args.json:
            print("[]")
        else:
            print(f"no runs yet in store '{_store_path(args)}'", file=sys.stderr)
        return 0
    with _open(args) as store:
        runs = store.list_runs(algo=args.algo, env_id=args.env, status=args.status,
                               experiment=args.experiment)
        if not runs:
            _explain_empty(store, args)
    if args.json:
        print(json.dumps([jsonable(r.to_dict()) for r in runs], indent=2))
        return 0
    if runs:
        print(format_table(runs))
    return 0


def _explain_empty(store: RunStore, args: argparse.Namespace) -> None:
    """No match: a filter value that no run has is a typo until proven otherwise."""
    everything = store.list_runs()
    if not everything:
        print(f"no runs yet in store '{store.path}'", file=sys.stderr)
        return
    for kind, attr, value in (("algo", "algo", args.algo), ("env", "env_id", args.env),
                              ("experiment", "experiment", args.experiment)):
        present = {str(getattr(r, attr)) for r in everything if getattr(r, attr) is not None}
        if value is not None and value not in present:
            raise unknown(kind, value, present)
    print("no runs match these filters", file=sys.stderr)


def format_table(runs: Sequence[RunRecord]) -> str:
    """A compact, aligned table of runs."""
    with_experiment = any(r.experiment for r in runs)
    header = ["ID", "ALGO", "ENV", "SEED", "STATUS", "STEPS", "RETURN", "STARTED", "DURATION"]
    if with_experiment:
        header.insert(1, "EXPERIMENT")
    rows = [header]
    for r in runs:
        ret = r.summary.get("eval_return_mean")
        row = [
            r.run_id, r.algo, r.env_id, str(r.seed), r.status,
            _human_int(r.last_step) if r.last_step is not None else "-",
            f"{ret:.1f}" if isinstance(ret, int | float) else "-",
            time.strftime("%Y-%m-%d %H:%M", time.localtime(r.started_at)),
            _duration(r.duration_s),
        ]
        if with_experiment:
            row.insert(1, r.experiment or "-")
        rows.append(row)
    numeric = {header.index(c) for c in ("SEED", "STEPS", "RETURN")}
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for row in rows:
        cells = [c.rjust(w) if i in numeric else c.ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _human_int(n: int) -> str:
    for div, suffix in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if abs(n) >= div:
            return f"{n / div:.1f}".rstrip("0").rstrip(".") + suffix
    return str(n)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = max(int(seconds), 0)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


# ---------------------------------------------------------------------------- show


def cmd_show(args: argparse.Namespace) -> int:
    with _open(args) as store:
        run = store.get_run(args.run_id)
        last = store.last_metrics(run.run_id)
        artefacts = store.artefacts(run.run_id)
    if args.json:
        doc = {**run.to_dict(),
               "last_metrics": {k: {"step": s, "value": v} for k, (s, v) in last.items()},
               "artefacts": [{"kind": k, "path": str(p)} for k, p in artefacts]}
        print(json.dumps(jsonable(doc), indent=2))
        return 0
    print(format_show(run, last, artefacts))
    return 0


def format_show(run: RunRecord, last: dict[str, tuple[int, float]],
                artefacts: list[tuple[str, Path]]) -> str:
    def when(t: float | None) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "-"

    lines = [f"run {run.run_id}: {run.algo} on {run.env_id}, seed {run.seed}  [{run.status}]"]
    fields = [
        ("experiment", run.experiment or "-"),
        ("tags", ", ".join(run.tags) or "-"),
        ("started", when(run.started_at)),
        ("ended", when(run.ended_at)),
        ("duration", _duration(run.duration_s)),
        ("last beat", when(run.heartbeat_at)),
        ("host / pid", f"{run.host or '-'} / {run.pid if run.pid is not None else '-'}"),
        ("command", run.command or "-"),
        ("git", run.git_rev or "- (not run inside a git repository)"),
        ("versions", ", ".join(f"{k} {v}" for k, v in run.versions.items() if v)),
    ]
    lines += [f"  {name:<11} {value}" for name, value in fields]
    lines.append(f"config (hash {run.config_hash})")
    lines += _kv_lines(run.config)
    lines.append("summary")
    lines += _kv_lines(run.summary)
    lines.append("metrics (last value)")
    width = max((len(k) for k in last), default=0)
    lines += [f"  {k:<{width}}  {v:>12.6g}  at step {s}" for k, (s, v) in last.items()]
    if not last:
        lines.append("  -")
    lines.append("artefacts")
    lines += [f"  {kind:<11} {path}" for kind, path in artefacts] or ["  -"]
    return "\n".join(lines)


def _kv_lines(d: dict[str, Any]) -> list[str]:
    if not d:
        return ["  -"]
    width = max(len(k) for k in d)
    return [f"  {k:<{width}} = {json.dumps(v, default=str)}" for k, v in d.items()]


# ---------------------------------------------------------------------------- export


def cmd_export(args: argparse.Namespace) -> int:
    fmt = args.format
    if fmt is None:
        suffix = Path(args.output).suffix.lower() if args.output else ""
        fmt = "json" if suffix == ".json" else "csv"
    with _open(args) as store:
        run = store.get_run(args.run_id)
        metrics = store.metrics(run.run_id)
    if args.output is None:
        write_export(run, metrics, fmt, sys.stdout)
        return 0
    try:
        with open(args.output, "w", newline="") as fh:
            n = write_export(run, metrics, fmt, fh)
    except OSError as err:
        raise UserError(f"cannot write '{args.output}' ({err.strerror}); choose another "
                        "-o FILE") from None
    print(f"exported run {run.run_id} ({n} metric values) to {args.output}", file=sys.stderr)
    return 0


def write_export(run: RunRecord, metrics: dict[str, tuple[list[int], list[float]]],
                 fmt: str, out: TextIO) -> int:
    """Write the export to ``out``; return the number of metric values.

    CSV is tidy long format with the run's identity on every row, so the exports of many runs
    concatenate into one table; non-finite values are written ``nan``/``inf``/``-inf``.
    JSON is ``{"run": record, "metrics": [{"step", "key", "value"}, ...]}``, strict JSON:
    non-finite values become ``null``.
    """
    rows = [(step, key, value) for key, (steps, values) in metrics.items()
            for step, value in zip(steps, values, strict=True)]
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["run_id", "algo", "env_id", "seed", "step", "key", "value"])
        for step, key, value in rows:
            writer.writerow([run.run_id, run.algo, run.env_id, run.seed, step, key, repr(value)])
    elif fmt == "json":
        doc = {"run": run.to_dict(),
               "metrics": [{"step": s, "key": k, "value": v} for s, k, v in rows]}
        json.dump(jsonable(doc), out, indent=1, allow_nan=False)
        out.write("\n")
    else:
        raise unknown("export format", fmt, ("csv", "json"))
    return len(rows)




# ---------------------------------------------------------------------------- rm


def cmd_rm(args: argparse.Namespace, stdin: TextIO | None = None) -> int:
    stdin = stdin or sys.stdin
    with _open(args) as store:
        runs = [store.get_run(i) for i in args.run_ids]  # every id checked before deleting
        for r in runs:
            if r.status == "running":
                raise UserError(f"run {r.run_id} is still running (pid {r.pid} on {r.host}); "
                                "stop it before deleting it")
        names = ", ".join(f"{r.run_id} ({r.algo} {r.env_id} seed {r.seed})" for r in runs)
        if not args.yes:
            if not stdin.isatty():
                raise UserError(f"refusing to delete {names} without confirmation: input is "
                                "not a terminal; pass --yes to delete")
            print(f"delete {names} with its metrics and artefacts? [y/N] ", end="", flush=True)
            if stdin.readline().strip().lower() not in ("y", "yes"):
                print("nothing deleted", file=sys.stderr)
                return 1
        for r in runs:
            store.delete_run(r.run_id)
    print(f"deleted {names}", file=sys.stderr)
    return 0

