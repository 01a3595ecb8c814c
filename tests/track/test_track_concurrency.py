"""Several processes on one store, and a process killed in the middle of a write."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from rlworks.track.store import RunStore

WORKER = Path(__file__).with_name("store_worker.py")


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(WORKER), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_two_writer_processes_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "store"
    RunStore(path).close()
    go = tmp_path / "go"
    n_runs, n_batches, n_rows = 3, 40, 25
    procs = [_spawn("write", str(path), str(go), str(n_runs), str(n_batches), str(n_rows))
             for _ in range(2)]
    for p in procs:  # both are up and hold a connection: start them together
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    go.touch()
    outputs = [p.communicate(timeout=60) for p in procs]
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
    ids = [i for out, _ in outputs for i in out.split()]
    assert len(set(ids)) == 2 * n_runs

    store = RunStore(path)
    runs = store.list_runs(experiment="conc")
    assert sorted(r.run_id for r in runs) == sorted(ids)
    assert {r.status for r in runs} == {"finished"}
    assert store.count_metrics() == 2 * n_runs * n_batches * n_rows
    for run_id in ids:
        m = store.metrics(run_id)
        assert len(m) == n_rows
        assert all(steps == list(range(n_batches)) for steps, _ in m.values())
        assert store.get_run(run_id).last_step == n_batches - 1


def test_sigkill_mid_write_leaves_store_consistent(tmp_path: Path) -> None:
    path = tmp_path / "store"
    rows_per_batch = 2000  # large transactions: the kill most likely lands inside one
    proc = _spawn("loop", str(path), str(rows_per_batch))
    assert proc.stdout is not None
    run_id = proc.stdout.readline().strip()
    assert run_id, proc.stderr.read() if proc.stderr else ""
    store = RunStore(path)
    deadline = time.monotonic() + 20
    while store.count_metrics(run_id) < 5 * rows_per_batch and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    store.close()

    with sqlite3.connect(path / "runs.sqlite") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store = RunStore(path)
    (run,) = store.list_runs()
    assert run.run_id == run_id
    assert run.status == "unfinished"  # stored "running", but its pid is dead
    assert store.list_runs(status="unfinished") == [run]
    n = store.count_metrics(run_id)
    assert n >= 5 * rows_per_batch
    assert n % rows_per_batch == 0  # every transaction is all or nothing
    assert run.last_step == n // rows_per_batch - 1
    # The store is still writable, and the run resumable.
    store.delete_metrics_after(run_id, 1)
    store.set_status(run_id, "running")
    assert store.get_run(run_id).status == "running"
    assert store.count_metrics(run_id) == 2 * rows_per_batch
