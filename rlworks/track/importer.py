"""Import runs logged elsewhere (another tracker, a spreadsheet) into the run store.

Input is *long* format: one row per logged value. CSV needs a header line; JSON is a list of
row objects, ``{"rows": [...]}``, or the JSON of ``rlworks runs export`` (``{"run": ...,
"metrics": [...]}``). Columns (case-insensitive; aliases in brackets):

=============  ==========================================  ========
column         meaning                                      required
=============  ==========================================  ========
``step``       integer env step [global_step, timestep]      yes
``metric``     metric key, e.g. rollout/episodic_return      yes
               [key, tag, name]
``value``      number (``nan``/``inf`` allowed)              yes
``algorithm``  [algo]                                        yes
``env``        [env_id, environment, task]                   yes
``seed``       integer                                       yes
``run``        the run's name in the other tool              no
               [run_id, run_name]; default ``algo/env/seed``
=============  ==========================================  ========

So ``rlworks runs export`` CSVs (``run_id, algo, env_id, seed, step, key, value``) import
as they are. Each distinct (run, algorithm, env, seed) becomes one finished store run with
config ``{}`` (or ``config``), config hash ``"imported"``, tags ``("imported", <file name>)``
and a summary holding ``import_run`` (the run's name), ``import_source`` and ``final/<key>``
(the last finite value of each metric); a metric ``eval/return`` also sets
``eval_return_mean``, as the training driver does. Re-importing skips every run whose
(experiment, algorithm, env, seed, run name) is already imported. The whole file is checked
before anything is written; bad input raises :class:`UserError` naming the file and line.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from rlworks.core.errors import UserError
from rlworks.track.store import RunStore

COLUMNS: dict[str, tuple[str, ...]] = {
    "step": ("step", "global_step", "timestep", "timesteps"),
    "metric": ("metric", "key", "tag", "name"),
    "value": ("value",),
    "algorithm": ("algorithm", "algo"),
    "env": ("env", "env_id", "environment", "task"),
    "seed": ("seed",),
    "run": ("run", "run_id", "run_name"),
}
"""Canonical column -> accepted header names (compared case-insensitively)."""
REQUIRED = ("step", "metric", "value", "algorithm", "env", "seed")
IMPORT_TAG = "imported"
LAYOUT = "step,metric,value,algorithm,env,seed[,run]"


@dataclasses.dataclass(frozen=True)
class ImportedRun:
    """One run found in the file: its identity and its ``(step, key, value)`` rows."""

    name: str
    algo: str
    env_id: str
    seed: int
    rows: list[tuple[int, str, float]]


@dataclasses.dataclass(frozen=True)
class ImportResult:
    created: list[str]
    """Store ids of the runs written, in file order."""
    skipped: list[str]
    """Names of the runs already imported (nothing written for them)."""
    values: int
    """Metric values written."""


def import_runs(store: RunStore, path: str | Path, experiment: str | None = None,
                config: Mapping[str, Any] | None = None,
                tags: Iterable[str] = ()) -> ImportResult:
    """Read ``path`` (.csv or .json), validate all of it, then add one finished run per run."""
    path = Path(path)
    runs = read_runs(path)
    existing = {
        (r.algo, r.env_id, r.seed, str(r.summary.get("import_run")))
        for r in store.list_runs(experiment=experiment)
        if r.experiment == experiment and IMPORT_TAG in r.tags
    }
    created, skipped, values = [], [], 0
    for run in runs:
        if (run.algo, run.env_id, run.seed, run.name) in existing:
            skipped.append(run.name)
            continue
        run_id = store.create_run(run.algo, run.env_id, run.seed, dict(config or {}),
                                  "imported", experiment=experiment,
                                  tags=(IMPORT_TAG, path.name, *tags))
        try:
            values += store.log_metrics(run_id, run.rows)
            store.set_status(run_id, "finished", summary=_summary(run, path))
        except BaseException:
            store.delete_run(run_id)  # no half-imported run is left behind
            raise
        created.append(run_id)
    return ImportResult(created, skipped, values)


def _summary(run: ImportedRun, path: Path) -> dict[str, Any]:
    final: dict[str, float] = {}
    for _, key, value in sorted(run.rows, key=lambda r: r[0]):  # stable: logging order kept
        if math.isfinite(value):
            final[key] = value
    summary: dict[str, Any] = {"import_run": run.name, "import_source": path.name,
                               "global_step": max(r[0] for r in run.rows)}
    summary.update({f"final/{k}": v for k, v in sorted(final.items())})
    if "eval/return" in final:
        summary["eval_return_mean"] = final["eval/return"]
    return summary


# ----------------------------------------------------------------------------- reading
def read_runs(path: Path) -> list[ImportedRun]:
    """Parse and validate the whole file; the runs in order of first appearance."""
    if not path.is_file():
        raise UserError(f"import '{path}': no such file; give the path of a .csv or .json file")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        header, records = _read_csv(path)
        where = "line"
    elif suffix == ".json":
        header, records = _read_json(path)
        where = "row"
    else:
        raise UserError(f"import '{path}': unknown file type '{suffix or '(none)'}'; use a .csv "
                        f"file with header {LAYOUT} or a .json list of such row objects")
    if not records:
        raise UserError(f"import '{path}': no rows; expected a header {LAYOUT} and one row "
                        "per logged value")
    columns = _resolve_columns(path, header)
    runs: dict[tuple[str, str, str, int], ImportedRun] = {}
    for number, record in records:
        row = {canon: record.get(name) for canon, name in columns.items()}
        at = f"import '{path}' {where} {number}"
        step = _integer(row["step"], "step", at)
        seed = _integer(row["seed"], "seed", at)
        value = _number(row["value"], at)
        metric, algo, env = (_text(row[c], c, at) for c in ("metric", "algorithm", "env"))
        name = _text(row["run"], "run", at) if "run" in columns else f"{algo}/{env}/{seed}"
        key = (name, algo, env, seed)
        if key not in runs:
            runs[key] = ImportedRun(name, algo, env, seed, [])
        runs[key].rows.append((step, metric, value))
    return list(runs.values())


def _read_csv(path: Path) -> tuple[list[str], list[tuple[int, dict[str, Any]]]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = list(reader.fieldnames or [])
            records = []
            for record in reader:
                if None in record:  # more cells than header names
                    raise UserError(f"import '{path}' line {reader.line_num}: "
                                    f"{len(header) + len(record[None])} cells but the header "
                                    f"has {len(header)}; fix that row")
                if any(v not in (None, "") for v in record.values()):  # skip blank lines
                    records.append((reader.line_num, record))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise UserError(f"import '{path}': cannot read it as CSV ({err}); save it as "
                        "UTF-8 CSV") from None
    return header, records


def _read_json(path: Path) -> tuple[list[str], list[tuple[int, dict[str, Any]]]]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"import '{path}': not valid JSON ({err}); expected a list of row "
                        f"objects with {LAYOUT}") from None
    if isinstance(doc, dict) and isinstance(doc.get("run"), dict) and "metrics" in doc:
        run = doc["run"]  # `rlworks runs export --format json`
        ident = {k: run.get(k) for k in ("run_id", "algo", "env_id", "seed")}
        doc = [{**ident, **m} if isinstance(m, dict) else m for m in doc["metrics"] or []]
    elif isinstance(doc, dict) and "rows" in doc:
        doc = doc["rows"]
    if not isinstance(doc, list):
        raise UserError(f"import '{path}': expected a list of row objects or {{\"rows\": [...]}}"
                        f", got a JSON {type(doc).__name__}")
    records = []
    for i, record in enumerate(doc, start=1):
        if not isinstance(record, dict):
            raise UserError(f"import '{path}' row {i}: expected an object with {LAYOUT}, got "
                            f"{json.dumps(record)[:60]}")
        records.append((i, record))
    header = sorted({k for _, r in records for k in r})
    return header, records


def _resolve_columns(path: Path, header: list[str]) -> dict[str, str]:
    """Canonical column -> the file's header name for it."""
    lowered = {h.strip().lower(): h for h in header if h}
    columns = {}
    for canon, aliases in COLUMNS.items():
        found = [lowered[a] for a in aliases if a in lowered]
        if len(found) > 1:
            raise UserError(f"import '{path}': columns {found} all mean '{canon}'; keep one")
        if found:
            columns[canon] = found[0]
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        hints = "; ".join(f"'{c}' (or {', '.join(COLUMNS[c][1:])})" if len(COLUMNS[c]) > 1
                          else f"'{c}'" for c in missing)
        shown = ", ".join(header) or "(none)"
        raise UserError(f"import '{path}': missing column {hints}; found columns {shown}; "
                        f"expected {LAYOUT}")
    return columns


def _number(raw: Any, at: str) -> float:
    if isinstance(raw, bool) or raw is None or (isinstance(raw, str) and not raw.strip()):
        raise UserError(f"{at}: value is empty; write a number (or nan) or delete the row")
    try:
        return float(raw)
    except (TypeError, ValueError):
        raise UserError(f"{at}: value {raw!r} is not a number; fix or delete that row") from None


def _integer(raw: Any, column: str, at: str) -> int:
    if isinstance(raw, bool) or raw is None or (isinstance(raw, str) and not raw.strip()):
        raise UserError(f"{at}: {column} is empty; every row needs an integer {column}")
    try:
        value = float(raw)
        if not value.is_integer():
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise UserError(f"{at}: {column} {raw!r} is not an integer; fix that row") from None
    return int(value)


def _text(raw: Any, column: str, at: str) -> str:
    text = "" if raw is None else str(raw).strip()
    if not text:
        raise UserError(f"{at}: {column} is empty; every row needs a {column}")
    return text
