"""What the run store holds: its SQLite schema, status vocabulary and the ``RunRecord`` type.

Kept apart from ``store.py`` (the behaviour) so the data model reads on one page.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

SCHEMA_VERSION = 1
DB_NAME = "runs.sqlite"
STATUSES = ("running", "finished", "failed", "interrupted", "pruned")
TERMINAL = ("finished", "failed", "interrupted")
DISPLAY_STATUSES = (*STATUSES, "unfinished")
STALE_AFTER_S = 600.0
"""A "running" run of another host whose heartbeat is older than this shows as "unfinished"."""
LOCK_TIMEOUT_S = 120.0
"""Total time a write keeps retrying on ``database is locked`` before giving up."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id       TEXT PRIMARY KEY,
    algo         TEXT NOT NULL,
    env_id       TEXT NOT NULL,
    seed         INTEGER NOT NULL,
    experiment   TEXT,
    status       TEXT NOT NULL,
    config       TEXT NOT NULL,
    config_hash  TEXT NOT NULL,
    summary      TEXT NOT NULL DEFAULT '{}',
    versions     TEXT NOT NULL DEFAULT '{}',
    git_rev      TEXT,
    command      TEXT,
    tags         TEXT NOT NULL DEFAULT '[]',
    host         TEXT,
    pid          INTEGER,
    pid_start    INTEGER,
    started_at   REAL NOT NULL,
    ended_at     REAL,
    heartbeat_at REAL NOT NULL,
    last_step    INTEGER
);
CREATE INDEX IF NOT EXISTS runs_by_experiment ON runs (experiment, algo, env_id);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    step   INTEGER NOT NULL,
    key    TEXT NOT NULL,
    value  REAL
);
CREATE INDEX IF NOT EXISTS metrics_by_run_key_step ON metrics (run_id, key, step);
CREATE TABLE IF NOT EXISTS artefacts (
    run_id     TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    kind       TEXT NOT NULL,
    path       TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS artefacts_by_run ON artefacts (run_id);
"""



@dataclasses.dataclass(frozen=True)
class RunRecord:
    """One run as stored, with ``status`` as displayed (see :meth:`RunStore.get_run`)."""

    run_id: str
    algo: str
    env_id: str
    seed: int
    experiment: str | None
    status: str
    """running | finished | failed | interrupted, or unfinished: stored as running but its
    process is gone (dead pid on this host; from another host, no heartbeat for
    ``STALE_AFTER_S``)."""
    config: dict[str, Any]
    config_hash: str
    summary: dict[str, Any]
    versions: dict[str, Any]
    git_rev: str | None
    """HEAD of the repository the run started in; ``<sha>-dirty`` with uncommitted changes."""
    started_at: float
    """Unix time (seconds); so are ``ended_at`` and ``heartbeat_at``."""
    ended_at: float | None
    host: str | None
    pid: int | None
    tags: tuple[str, ...]
    command: str | None = None
    heartbeat_at: float | None = None
    last_step: int | None = None
    """Largest step logged so far (``None`` before the first metric)."""

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to end (or to now while running, to the last heartbeat if lost)."""
        if self.ended_at is not None:
            return self.ended_at - self.started_at
        if self.status == "running":
            return time.time() - self.started_at
        return (self.heartbeat_at or self.started_at) - self.started_at

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["tags"] = list(self.tags)
        return d
