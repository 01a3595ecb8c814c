"""The run store: runs, configs, metrics and artefacts in one embedded SQLite database.

Layout of a store directory (``--store DIR``, ``$RLWORKS_STORE``, or ``./rlworks-runs``)::

    runs.sqlite                 runs, metrics, artefacts, schema_version (+ -wal/-shm files)
    artefacts/<run_id>/         checkpoints, plots, ... (:meth:`RunStore.run_dir`)

Concurrency: the database is in WAL mode, so readers never block the writer and a process
killed mid-write leaves the last committed state. Every write is one short ``BEGIN
IMMEDIATE`` transaction with a 30 s busy timeout and retries on top; one writer per store is
the design rule (workers hand results to the driver), but several writing processes are safe.

This module imports no numerical package: ``rlworks runs ls`` must answer instantly.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import math
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from rlworks.core.errors import UserError, did_you_mean, unknown
from rlworks.track import provenance
from rlworks.track.records import (  # noqa: F401  (re-exported: the store's public names)
    _SCHEMA,
    DB_NAME,
    DISPLAY_STATUSES,
    LOCK_TIMEOUT_S,
    SCHEMA_VERSION,
    STALE_AFTER_S,
    STATUSES,
    TERMINAL,
    RunRecord,
)

T = TypeVar("T")

def default_store_path() -> Path:
    """``$RLWORKS_STORE`` if set, else ``./rlworks-runs``."""
    return Path(os.environ.get("RLWORKS_STORE") or "rlworks-runs")


class RunStore:
    """A directory holding ``runs.sqlite`` and ``artefacts/<run_id>/``.

    ``path``: the directory, or ``None`` for :func:`default_store_path`. It is created if
    missing; a path that cannot be written raises :class:`UserError` here, not later.
    ``stale_after_s``: heartbeat age after which a "running" run is shown as "unfinished".
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *,
                 stale_after_s: float = STALE_AFTER_S) -> None:
        raw = default_store_path() if path is None else Path(path)
        if str(raw).startswith(("postgresql:", "postgres:")):
            raise UserError(f"store '{raw}': PostgreSQL stores are not supported yet; "
                            "pass a directory with --store DIR or RLWORKS_STORE")
        self.path = raw.expanduser().absolute()
        self.db_path = self.path / DB_NAME
        self.stale_after_s = stale_after_s
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._conn_pid = -1
        try:
            if self.path.exists() and not self.path.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, "it exists and is not a directory")
            self.path.mkdir(parents=True, exist_ok=True)
            if not os.access(self.path, os.W_OK):
                raise PermissionError(errno.EACCES, "the directory is read-only")
            (self.path / "artefacts").mkdir(exist_ok=True)
            self._connection()  # creates the database and schema: proves we can write
        except (OSError, sqlite3.Error) as err:
            self.close()
            reason = getattr(err, "strerror", None) or str(err)
            raise UserError(
                f"cannot use '{self.path}' as a run store ({reason}); pass a writable "
                "directory with --store DIR or set RLWORKS_STORE"
            ) from None

    def __repr__(self) -> str:
        return f"RunStore('{self.path}')"

    # ----------------------------------------------------------------- connections

    def _connection(self) -> sqlite3.Connection:
        """This process's connection (reopened after a fork: SQLite handles do not survive)."""
        if self._conn is not None and self._conn_pid == os.getpid():
            return self._conn
        conn = sqlite3.connect(self.db_path, timeout=30.0, isolation_level=None,
                               check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout = 30000")
            _retry_locked(lambda: conn.execute("PRAGMA journal_mode = WAL"), self.path)
            conn.execute("PRAGMA synchronous = NORMAL")  # durable across crashes, not power cuts
            conn.execute("PRAGMA foreign_keys = ON")
            self._conn, self._conn_pid = conn, os.getpid()
            self._write(self._create_schema)
        except BaseException:
            conn.close()
            self._conn = None
            raise
        return conn

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
        if row[0] is None:
            conn.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
        elif row[0] > SCHEMA_VERSION:
            raise UserError(f"store '{self.path}' has schema version {row[0]}, newer than this "
                            f"rlworks understands ({SCHEMA_VERSION}); upgrade rlworks")

    def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in one ``BEGIN IMMEDIATE`` transaction, retrying while the db is locked."""
        with self._lock:
            conn = self._conn if self._conn_pid == os.getpid() else None
            conn = conn or self._connection()

            def attempt() -> T:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                return result

            return _retry_locked(attempt, self.path)

    def _read(self, sql: str,
              params: Iterable[Any] | Mapping[str, Any] = ()) -> list[tuple[Any, ...]]:
        args = params if isinstance(params, Mapping) else tuple(params)
        with self._lock:
            conn = self._connection()
            return _retry_locked(lambda: conn.execute(sql, args).fetchall(), self.path)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._conn_pid == os.getpid():
                self._conn.close()
            self._conn = None

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- writing

    def create_run(self, algo: str, env_id: str, seed: int, config: Mapping[str, Any],
                   config_hash: str, experiment: str | None = None,
                   tags: Iterable[str] | None = None) -> str:
        """Record a new run as "running" with its provenance; return its 8-hex-digit id."""
        prov = provenance.collect()
        now = time.time()
        values = (
            algo, env_id, int(seed), experiment, "running", _dumps(dict(config)), config_hash,
            _dumps(prov["versions"]), prov["git_rev"], prov["command"],
            _dumps(list(tags or ())), prov["host"], prov["pid"], prov["pid_start"], now, now,
        )

        def insert(conn: sqlite3.Connection) -> str:
            while True:
                run_id = uuid.uuid4().hex[:8]
                try:
                    conn.execute(
                        "INSERT INTO runs (run_id, algo, env_id, seed, experiment, status, "
                        "config, config_hash, versions, git_rev, command, tags, host, pid, "
                        "pid_start, started_at, heartbeat_at) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (run_id, *values),
                    )
                    return run_id
                except sqlite3.IntegrityError:  # 1 in 4 billion: draw another id
                    continue

        return self._write(insert)

    def run_dir(self, run_id: str) -> Path:
        """``<store>/artefacts/<run_id>/``, created on demand."""
        path = self.path / "artefacts" / run_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def log_metrics(self, run_id: str, rows: Iterable[tuple[int, str, float]]) -> int:
        """Append ``(step, key, value)`` rows in one transaction; return how many.

        Non-finite values are kept: NaN is stored as NULL (read back as NaN), +-inf as is.
        Also counts as a heartbeat.
        """
        batch = [(run_id, int(step), str(key), _to_float(value)) for step, key, value in rows]
        if not batch:
            return 0
        top = max(r[1] for r in batch)

        def insert(conn: sqlite3.Connection) -> None:
            cur = conn.execute(
                "UPDATE runs SET heartbeat_at = ?, "
                "last_step = MAX(COALESCE(last_step, ?), ?) WHERE run_id = ?",
                (time.time(), top, top, run_id),
            )
            if cur.rowcount == 0:
                raise self._unknown_run(run_id)
            conn.executemany("INSERT INTO metrics (run_id, step, key, value) "
                             "VALUES (?, ?, ?, ?)", batch)

        self._write(insert)
        return len(batch)

    def delete_metrics_after(self, run_id: str, step: int) -> int:
        """Drop the run's metric rows with ``step > step`` (resuming from a checkpoint)."""

        def delete(conn: sqlite3.Connection) -> int:
            n = conn.execute("DELETE FROM metrics WHERE run_id = ? AND step > ?",
                             (run_id, int(step))).rowcount
            conn.execute("UPDATE runs SET last_step = (SELECT MAX(step) FROM metrics "
                         "WHERE run_id = ?) WHERE run_id = ?", (run_id, run_id))
            return n

        return self._write(delete)

    def heartbeat(self, run_id: str) -> None:
        self._update(run_id, "UPDATE runs SET heartbeat_at = ? WHERE run_id = ?",
                     (time.time(), run_id))

    def set_status(self, run_id: str, status: str,
                   summary: Mapping[str, Any] | None = None) -> None:
        """Set the stored status and merge ``summary`` into the run's summary.

        A terminal status (finished, failed, interrupted) sets ``ended_at``; "running"
        (a resume) clears it and claims the run for this process (pid, host, heartbeat).
        """
        if status not in STATUSES:
            raise unknown("run status", status, STATUSES)
        now = time.time()

        def update(conn: sqlite3.Connection) -> None:
            row = conn.execute("SELECT summary FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                raise self._unknown_run(run_id)
            merged = {**json.loads(row[0]), **(summary or {})}
            if status == "running":
                pid = os.getpid()
                conn.execute(
                    "UPDATE runs SET status = ?, summary = ?, ended_at = NULL, heartbeat_at = ?, "
                    "host = ?, pid = ?, pid_start = ? WHERE run_id = ?",
                    (status, _dumps(merged), now, provenance.host_name(), pid,
                     provenance.process_start_time(pid), run_id),
                )
            else:
                conn.execute("UPDATE runs SET status = ?, summary = ?, ended_at = ?, "
                             "heartbeat_at = ? WHERE run_id = ?",
                             (status, _dumps(merged), now, now, run_id))

        self._write(update)

    def add_artefact(self, run_id: str, kind: str, path: str | os.PathLike[str]) -> None:
        """Record a file of the run. Paths inside ``run_dir`` are stored relative to it, so a
        store directory can be moved or copied whole."""
        p = Path(path)
        base = self.path / "artefacts" / run_id
        if p.is_absolute() and p.is_relative_to(base):
            p = p.relative_to(base)
        self._update(run_id, "INSERT INTO artefacts (run_id, kind, path, created_at) "
                             "SELECT run_id, ?, ?, ? FROM runs WHERE run_id = ?",
                     (kind, str(p), time.time(), run_id))

    def delete_run(self, run_id: str) -> None:
        """Delete the run, its metrics, artefact records and artefacts directory."""
        import shutil

        self._update(run_id, "DELETE FROM runs WHERE run_id = ?", (run_id,))
        shutil.rmtree(self.path / "artefacts" / run_id, ignore_errors=True)

    def _update(self, run_id: str, sql: str, params: tuple[Any, ...]) -> None:
        def run(conn: sqlite3.Connection) -> None:
            if conn.execute(sql, params).rowcount == 0:
                raise self._unknown_run(run_id)

        self._write(run)

    # ----------------------------------------------------------------- reading

    def get_run(self, run_id_or_prefix: str) -> RunRecord:
        """The run with this id, or the only run whose id starts with it."""
        key = run_id_or_prefix.strip()
        rows = self._read(f"SELECT {_COLUMNS} FROM runs WHERE run_id = ?", (key,))
        if not rows and key:
            rows = self._read(f"SELECT {_COLUMNS} FROM runs WHERE substr(run_id, 1, ?) = ? "
                              "ORDER BY started_at LIMIT 6", (len(key), key))
        if not rows:
            raise self._unknown_run(key)
        if len(rows) > 1:
            shown = ", ".join(r[0] for r in rows[:5]) + (", ..." if len(rows) > 5 else "")
            raise UserError(f"run id prefix '{key}' is ambiguous: it matches {shown}; "
                            "give more characters")
        return self._record(rows[0])

    def list_runs(self, algo: str | None = None, env_id: str | None = None,
                  status: str | None = None, experiment: str | None = None) -> list[RunRecord]:
        """Runs matching every given filter, oldest first. ``status`` is the displayed one
        (so ``status="unfinished"`` finds crashed runs)."""
        if status is not None and status not in DISPLAY_STATUSES:
            raise unknown("run status", status, DISPLAY_STATUSES)
        where, params = [], []
        for column, value in (("algo", algo), ("env_id", env_id), ("experiment", experiment)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        sql = f"SELECT {_COLUMNS} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        records = [self._record(r) for r in self._read(sql + " ORDER BY started_at", params)]
        return [r for r in records if status is None or r.status == status]

    def metrics(self, run_id: str,
                keys: Iterable[str] | None = None) -> dict[str, tuple[list[int], list[float]]]:
        """``{key: (steps, values)}`` in step order (then logging order); NaN for NULL."""
        sql = "SELECT key, step, value FROM metrics WHERE run_id = ?"
        params: list[Any] = [run_id]
        if keys is not None:
            wanted = list(keys)
            sql += f" AND key IN ({', '.join('?' * len(wanted))})"
            params += wanted
        out: dict[str, tuple[list[int], list[float]]] = {}
        for key, step, value in self._read(sql + " ORDER BY key, step, rowid", params):
            steps, values = out.setdefault(key, ([], []))
            steps.append(step)
            values.append(math.nan if value is None else value)
        return out

    def last_metrics(self, run_id: str) -> dict[str, tuple[int, float]]:
        """``{key: (step, value)}``: the value logged last at the largest step of each key."""
        # Walk the (run_id, key, step) index: one seek per key, not a scan of every row.
        rows = self._read(
            "WITH RECURSIVE k(key) AS ("
            " SELECT MIN(key) FROM metrics WHERE run_id = :run"
            " UNION ALL SELECT (SELECT MIN(key) FROM metrics WHERE run_id = :run AND key > k.key)"
            " FROM k WHERE k.key IS NOT NULL) "
            "SELECT k.key, m.step, m.value FROM k JOIN metrics m ON m.rowid = ("
            " SELECT rowid FROM metrics WHERE run_id = :run AND key = k.key"
            " ORDER BY step DESC, rowid DESC LIMIT 1) ORDER BY k.key", {"run": run_id})
        return {k: (s, math.nan if v is None else v) for k, s, v in rows}

    def count_metrics(self, run_id: str | None = None) -> int:
        if run_id is None:
            return int(self._read("SELECT COUNT(*) FROM metrics")[0][0])
        return int(self._read("SELECT COUNT(*) FROM metrics WHERE run_id = ?", (run_id,))[0][0])

    def artefacts(self, run_id: str) -> list[tuple[str, Path]]:
        """``[(kind, absolute path)]`` in the order they were added."""
        base = self.path / "artefacts" / run_id
        rows = self._read("SELECT kind, path FROM artefacts WHERE run_id = ? ORDER BY rowid",
                          (run_id,))
        return [(kind, base / p) for kind, p in rows]  # an absolute p replaces base

    def _record(self, row: tuple[Any, ...]) -> RunRecord:
        d = dict(zip(_FIELDS, row, strict=True))
        pid_start = d.pop("pid_start")
        for name in ("config", "summary", "versions"):
            d[name] = json.loads(d[name])
        d["tags"] = tuple(json.loads(d["tags"]))
        if d["status"] == "running" and self._lost(d, pid_start):
            d["status"] = "unfinished"
        return RunRecord(**d)

    def _lost(self, d: dict[str, Any], pid_start: int | None) -> bool:
        """Stored as running, but its process is gone.

        On this host the pid decides (a live process in a long silent phase, such as a big
        evaluation, is still running); for a run from another host, only its heartbeat can.
        """
        if d["host"] == provenance.host_name() and d["pid"] is not None:
            return not provenance.process_alive(d["pid"], pid_start)
        return time.time() - d["heartbeat_at"] > self.stale_after_s

    def _unknown_run(self, key: str) -> UserError:
        ids = [r[0] for r in self._read("SELECT run_id FROM runs ORDER BY started_at DESC")]
        if not ids:
            return UserError(f"unknown run id '{key}': store '{self.path}' holds no runs; "
                             "'rlworks runs ls' lists them (--store DIR picks another store)")
        hint = did_you_mean(key, ids)
        return UserError(f"unknown run id '{key}'{hint or ';'} 'rlworks runs ls' lists them")


_FIELDS = ("run_id", "algo", "env_id", "seed", "experiment", "status", "config", "config_hash",
           "summary", "versions", "git_rev", "started_at", "ended_at", "host", "pid", "tags",
           "command", "heartbeat_at", "last_step", "pid_start")
_COLUMNS = ", ".join(_FIELDS)


def _retry_locked(fn: Callable[[], T], path: Path) -> T:
    """Call ``fn``, retrying with backoff while SQLite reports the database busy or locked.

    ``busy_timeout`` already waits inside SQLite; this covers the cases it does not (a lock
    held at connection setup, a WAL checkpoint in another process, ``BEGIN IMMEDIATE`` races).
    """
    deadline = time.monotonic() + LOCK_TIMEOUT_S
    delay = 0.01
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as err:
            msg = str(err)
            if "locked" not in msg and "busy" not in msg:
                raise
            if time.monotonic() > deadline:
                raise UserError(f"run store '{path}' stayed locked for {LOCK_TIMEOUT_S:.0f} s "
                                "by another process; retry when it is done") from None
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


def _to_float(value: Any) -> float | None:
    v = float(value)
    return None if math.isnan(v) else v


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, set | frozenset):
        return sorted(obj)
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in a run record: {obj!r}")


def _dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=_json_default)
