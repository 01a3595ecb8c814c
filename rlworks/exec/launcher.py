"""Run many specs: a local process pool (one worker per core by default) or a Ray cluster.

Resumable by construction: before launching, every spec is matched to the runs already in the
store (same experiment name and same full-config hash). A finished match is reused and never
run again; an unfinished, interrupted or failed one is resumed from its latest checkpoint
under its own run id; a match still running in a live process is left alone. So a grid killed
half way and launched again finishes without repeating any finished run.

Workers are separate processes with one torch thread each (``torch_threads`` in the config),
each opening the store itself (the store is safe for concurrent writers).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

from rlworks.core.errors import UserError
from rlworks.exec.experiment import RunSpec

Action = Literal["done", "resume", "new", "running"]


@dataclasses.dataclass
class PlannedRun:
    spec: RunSpec
    action: Action
    run_id: str | None = None
    config_hash: str = ""
    summary: dict[str, Any] | None = None


def plan(specs: Sequence[RunSpec], store: Any) -> list[PlannedRun]:
    """Match each spec to the store: what is done, what to resume, what to start."""
    from rlworks.core.config import config_hash

    by_key: dict[tuple[str, str], list[Any]] = {}
    for exp in {s.experiment for s in specs}:
        for rec in store.list_runs(experiment=exp):
            by_key.setdefault((exp, rec.config_hash), []).append(rec)
    planned = []
    seen: set[tuple[str, str]] = set()
    for spec in specs:
        h = config_hash(spec.config())
        key = (spec.experiment, h)
        if key in seen:
            raise UserError(f"experiment '{spec.experiment}' lists the same run twice "
                            f"({spec.label()}); remove the duplicate")
        seen.add(key)
        records = by_key.get(key, [])
        finished = [r for r in records if r.status in ("finished", "pruned")]
        live = [r for r in records if r.status == "running"]
        rest = [r for r in records if r.status not in ("finished", "pruned", "running")]
        if finished:
            planned.append(PlannedRun(spec, "done", finished[0].run_id, h, finished[0].summary))
        elif live:
            planned.append(PlannedRun(spec, "running", live[0].run_id, h))
        elif rest:  # the most recent unfinished attempt carries the most progress
            planned.append(PlannedRun(spec, "resume", rest[-1].run_id, h))
        else:
            planned.append(PlannedRun(spec, "new", None, h))
    return planned


def run_one(spec_dict: dict[str, Any], store_path: str, run_id: str | None) -> dict[str, Any]:
    """Train (or resume) one spec in this process; return its summary. Worker entry point."""
    os.environ.setdefault("RLWORKS_QUIET", "1")
    from rlworks.exec import train as driver
    from rlworks.track.store import RunStore

    spec = RunSpec.from_dict(spec_dict)
    with RunStore(store_path) as store:
        if run_id is not None:
            return driver.resume(run_id, store, progress=False)
        return driver.train(spec.algo, spec.config(), store, experiment=spec.experiment,
                            progress=False)


def _worker_init() -> None:
    # One BLAS/OpenMP thread per worker: on small nets more threads are slower, and far
    # slower when the other cores are busy with sibling workers.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    os.environ["RLWORKS_QUIET"] = "1"


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else (os.cpu_count() or 1))


def launch(specs: Sequence[RunSpec], store: Any, *, workers: int | None = None,
           ray: str | None = None, verbose: bool = True,
           on_finish: Callable[[PlannedRun], None] | None = None) -> list[PlannedRun]:
    """Run every spec not finished yet; return the plan with each run's summary filled in.

    ``workers``: local processes (default one per core); ``ray``: a Ray address, or "local"
    to start a single-machine Ray instance (the store path must be visible to every node).
    A run that fails is reported and the others go on; failures raise at the end.
    """
    planned = plan(specs, store)
    todo = [p for p in planned if p.action in ("new", "resume")]
    done = sum(p.action == "done" for p in planned)
    busy = [p for p in planned if p.action == "running"]
    say = _Reporter(len(planned), done, verbose)
    say.line(f"{len(planned)} runs: {done} finished already, {len(todo)} to run"
             + (f" ({sum(p.action == 'resume' for p in todo)} resumed)" if todo else "")
             + (f", {len(busy)} running in another process (left alone)" if busy else ""))
    if not todo:
        return planned
    failures: list[tuple[PlannedRun, str]] = []

    def finished(p: PlannedRun, summary: dict[str, Any] | None, error: str | None) -> None:
        if error is not None:
            failures.append((p, error))
            say.run(p, None, error)
            return
        p.summary, p.run_id, p.action = summary, (summary or {}).get("run_id"), "done"
        say.run(p, summary, None)
        if on_finish is not None:
            on_finish(p)

    store_path = str(store.path)
    if ray is not None:
        _launch_ray(todo, store_path, ray, workers, finished)
    elif (workers or default_workers()) == 1 or len(todo) == 1:
        for p in todo:
            try:
                finished(p, run_one(p.spec.to_dict(), store_path, p.run_id), None)
            except KeyboardInterrupt:
                raise
            except Exception as err:  # noqa: BLE001  (report it, go on with the others)
                finished(p, None, _describe(err))
    else:
        _launch_pool(todo, store_path, workers or default_workers(), finished)
    say.close()
    if failures:
        first = failures[0]
        raise UserError(f"{len(failures)} of {len(todo)} runs failed, first: "
                        f"{first[0].spec.label()}: {first[1]}; fix it and launch again "
                        "(finished runs are kept)")
    return planned


def _launch_pool(todo: list[PlannedRun], store_path: str, workers: int,
                 finished: Callable[[PlannedRun, Any, str | None], None]) -> None:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ctx = multiprocessing.get_context("spawn")  # no forked torch/OpenMP state
    with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=ctx,
                             initializer=_worker_init) as pool:
        pending = {pool.submit(run_one, p.spec.to_dict(), store_path, p.run_id): p
                   for p in todo}
        try:
            while pending:
                ready, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in ready:
                    p = pending.pop(fut)
                    err = fut.exception()
                    finished(p, None if err else fut.result(),
                             _describe(err) if err else None)
        except KeyboardInterrupt:
            for fut in pending:
                fut.cancel()
            raise


def _launch_ray(todo: list[PlannedRun], store_path: str, address: str, workers: int | None,
                finished: Callable[[PlannedRun, Any, str | None], None]) -> None:
    try:
        import ray
    except ImportError:
        raise UserError("--ray needs Ray: pip install 'rlworks[dist]'") from None
    kwargs: dict[str, Any] = {"ignore_reinit_error": True, "include_dashboard": False,
                              "log_to_driver": False}
    if address == "local":
        kwargs["num_cpus"] = workers or default_workers()
    else:
        kwargs["address"] = address
    kwargs["runtime_env"] = {"env_vars": {"OMP_NUM_THREADS": "1", "RLWORKS_QUIET": "1"}}
    try:
        ray.init(**kwargs)
    except ConnectionError as err:
        raise UserError(f"cannot reach the Ray cluster at '{address}': {err}; start one with "
                        "`ray start --head` or use --ray local") from None
    remote = ray.remote(num_cpus=1, max_retries=0)(run_one)
    pending = {remote.remote(p.spec.to_dict(), store_path, p.run_id): p for p in todo}
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                p = pending.pop(ref)
                try:
                    finished(p, ray.get(ref), None)
                except Exception as err:  # noqa: BLE001
                    finished(p, None, _describe(err))
    finally:
        if address == "local":
            ray.shutdown()


def _describe(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[-1] if text else ''}"


class _Reporter:
    """One line per finished run (stderr): works in logs and on a terminal alike."""

    def __init__(self, total: int, done: int, verbose: bool) -> None:
        self.total, self.count, self.verbose = total, done, verbose
        self.t0 = time.perf_counter()

    def line(self, text: str) -> None:
        if self.verbose:
            print(text, file=sys.stderr, flush=True)

    def run(self, p: PlannedRun, summary: dict[str, Any] | None, error: str | None) -> None:
        self.count += 1
        if error is not None:
            self.line(f"[{self.count}/{self.total}] {p.spec.label()}: FAILED: {error}")
            return
        s = summary or {}
        self.line(f"[{self.count}/{self.total}] {p.spec.label()}: eval return "
                  f"{s.get('eval_return_mean', float('nan')):.1f} in "
                  f"{s.get('train_time_s', 0):.0f} s (run {s.get('run_id')}; "
                  f"{time.perf_counter() - self.t0:.0f} s elapsed)")

    def close(self) -> None:
        pass
