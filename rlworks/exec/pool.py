"""The launcher's local backend: spawned worker processes, one run at a time each.

Not a ProcessPoolExecutor: when one of its workers dies, every pending run fails with
BrokenProcessPool and the pool kills the other workers mid-run. Here a dead worker fails only
the run it held and a fresh worker takes its place; on Ctrl-C every worker checkpoints its run
and marks it "interrupted"; an orphaned worker (its launcher killed) does the same by itself.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from typing import Any

from rlworks.exec.launcher import Finished, PlannedRun, _describe, _Reporter, run_one

INTERRUPT_GRACE_S = 60.0
"""How long interrupted workers get to checkpoint their runs before they are killed."""


def run_local(todo: list[PlannedRun], store_path: str, workers: int, finished: Finished,
                  say: _Reporter) -> None:
    """Run ``todo`` on ``workers`` spawned processes, one run at a time each.

    Not a ProcessPoolExecutor: when one of its workers dies, every pending run fails with
    BrokenProcessPool and the pool kills the other workers mid-run. Here a dead worker
    fails only the run it held, and a fresh worker takes its place.
    """
    import multiprocessing
    from multiprocessing.connection import wait

    ctx = multiprocessing.get_context("spawn")  # no forked torch/OpenMP state
    queue = list(todo)
    pool = [_Worker(ctx, store_path) for _ in range(min(workers, len(queue)))]
    try:
        while queue or any(w.task is not None for w in pool):
            for i, w in enumerate(pool):
                if w.task is None and queue:
                    if not w.process.is_alive():
                        pool[i] = w = _Worker(ctx, store_path)
                    w.give(queue.pop(0))
            wait([obj for w in pool if w.task is not None
                  for obj in (w.conn, w.process.sentinel)])
            for w in pool:
                outcome = w.outcome()
                if outcome is not None:
                    task, summary, error = outcome
                    finished(task, summary, error)
    except BaseException:
        _interrupt(pool, say)
        raise
    for w in pool:
        w.close()


class _Worker:
    """One spawned worker process and the pipe it takes runs from and answers on."""

    def __init__(self, ctx: Any, store_path: str) -> None:
        self.conn, child = ctx.Pipe()
        self.store_path = store_path
        # Not daemonic: a run may start processes of its own (gymnasium-async envs).
        self.process = ctx.Process(target=_worker_main, args=(child, os.getpid()),
                                   name="rlworks-worker")
        self.process.start()
        child.close()
        self.task: PlannedRun | None = None

    def give(self, p: PlannedRun) -> None:
        self.task = p
        self.conn.send((p.spec.to_dict(), self.store_path, p.run_id))

    def outcome(self) -> tuple[PlannedRun, dict[str, Any] | None, str | None] | None:
        """(run, summary, error) once the run it holds has ended, else None."""
        task = self.task
        if task is None:
            return None
        if self.conn.poll():
            try:
                kind, payload = self.conn.recv()
            except (EOFError, OSError):
                kind, payload = "died", None
            if kind != "died":
                self.task = None
                return (task, payload, None) if kind == "ok" else (task, None, payload)
        elif self.process.is_alive():
            return None
        self.process.join(5)
        self.task = None
        return task, None, (f"its worker process died ({_exit_reason(self.process.exitcode)}); "
                            "the run is left unfinished and resumes on the next launch")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(None)
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


def _interrupt(pool: list[_Worker], say: _Reporter) -> None:
    """Ask every worker to checkpoint its run and stop; kill those that take too long."""
    alive = [w for w in pool if w.process.is_alive()]
    if not alive:
        return
    say.line(f"interrupted: {len(alive)} workers are checkpointing their runs "
             "(Ctrl-C again to kill them)")
    try:
        for w in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(w.process.pid, signal.SIGINT)
        deadline = time.monotonic() + INTERRUPT_GRACE_S
        for w in alive:
            w.process.join(max(0.0, deadline - time.monotonic()))
    except KeyboardInterrupt:
        pass
    finally:
        for w in alive:
            if w.process.is_alive():
                w.process.kill()
                w.process.join()


def _worker_main(conn: Any, parent_pid: int) -> None:
    """A worker's loop: take a run, train it, answer ("ok", summary) or ("error", text)."""
    # One BLAS/OpenMP thread per worker (set before torch is imported): on small nets more
    # threads are slower, and far slower when the other cores are busy with sibling workers.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    os.environ["RLWORKS_QUIET"] = "1"
    # The first SIGINT (Ctrl-C in the terminal, or from the launcher) interrupts the run,
    # which checkpoints and marks itself "interrupted"; a second must not cut that short.
    signal.signal(signal.SIGINT, _interrupt_once)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if task is None:
            return
        try:
            summary = run_one(*task)
        except KeyboardInterrupt:
            return
        except BaseException as err:  # noqa: BLE001  (the launcher reports it)
            conn.send(("error", _describe(err)))
        else:
            conn.send(("ok", summary))


def _interrupt_once(signum: int, frame: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def _watch_parent(parent_pid: int) -> None:
    """An orphaned worker (its launcher was killed) interrupts its own run and stops,
    rather than training on unseen; the next launch resumes the run from its checkpoint."""
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGINT)


def _exit_reason(code: int | None) -> str:
    if code is None:
        return "no exit code"
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        oom = " (out of memory?)" if -code == signal.SIGKILL else ""
        return f"killed by {name}{oom}"
    return f"exit code {code}"
