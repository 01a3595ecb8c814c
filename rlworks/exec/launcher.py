"""Run many specs: local worker processes (one per core by default) or a Ray cluster.

Resumable by construction: before launching, every spec is matched to the runs already in the
store (same experiment name and same full-config hash). A finished match is reused and never
run again; an unfinished, interrupted or failed one is resumed from its latest checkpoint
under its own run id; a match still running in a live process is waited for (then reused,
or resumed if that process died). So a grid killed half way and launched again finishes
without repeating any finished run.

Failures stay local to their run: a run that raises, or whose worker process dies (a segfault,
the OOM killer), is reported and the other runs go on; a replacement worker takes the next
run. The launch then raises :class:`RunsFailed`, and launching again resumes the failed runs.
On Ctrl-C (or SIGTERM in ``rlworks run``) each worker checkpoints its run and marks it
"interrupted"; a worker whose launcher dies without warning does the same within a second.

One launcher per experiment and store at a time (a lock file under ``<store>/locks/``):
two launchers planning the same grid would both start its new runs.

Workers are separate processes with one torch thread each (``torch_threads`` in the config),
each opening the store itself (the store is safe for concurrent writers).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

from rlworks.core.errors import UserError
from rlworks.exec.experiment import RunSpec

Action = Literal["done", "resume", "new", "running", "failed"]
Finished = Callable[["PlannedRun", "dict[str, Any] | None", "str | None"], None]


@dataclasses.dataclass
class PlannedRun:
    spec: RunSpec
    action: Action
    """done: finished already (or now); new/resume: to run; running: in another live
    process; failed: raised, or its worker died (the error says which)."""
    run_id: str | None = None
    config_hash: str = ""
    summary: dict[str, Any] | None = None
    error: str | None = None


class RunsFailed(UserError):
    """Some runs of a launch failed; the others finished. Exit code 1, not 2: the input
    was fine, the runs were not. ``planned`` holds every run's outcome."""

    exit_code = 1

    def __init__(self, message: str, planned: list[PlannedRun]) -> None:
        super().__init__(message)
        self.planned = planned


def plan(specs: Sequence[RunSpec], store: Any, *,
         check_configs: bool = False) -> list[PlannedRun]:
    """Match each spec to the store: what is done, what to resume, what to start.

    ``check_configs``: refuse (UserError) when the store holds a finished run of the same
    experiment, algo, env and seed under another config: launching would put two configs of
    one run under one experiment name (``rlworks run`` sets it; an edited file is the usual
    cause). Unfinished runs of another config are left alone.
    """
    from rlworks.core.config import config_hash

    records_of: dict[tuple[str, str], list[Any]] = {}
    cells: dict[tuple[str, str, str, int], list[Any]] = {}
    for exp in {s.experiment for s in specs}:
        for rec in store.list_runs(experiment=exp):
            records_of.setdefault((exp, rec.config_hash), []).append(rec)
            cells.setdefault((exp, rec.algo, rec.env_id, rec.seed), []).append(rec)
    planned = []
    seen: set[tuple[str, str]] = set()
    for spec in specs:
        cfg = spec.config()
        h = config_hash(cfg)
        key = (spec.experiment, h)
        if key in seen:
            raise UserError(f"experiment '{spec.experiment}' lists the same run twice "
                            f"({spec.label()}); remove the duplicate")
        seen.add(key)
        records = records_of.get(key, [])
        if check_configs and not records:
            others = [r for r in cells.get((spec.experiment, spec.algo, spec.env_id, spec.seed),
                                           []) if r.status in ("finished", "pruned")]
            if others:
                raise _other_config(spec, cfg, others[-1])
        planned.append(_match(spec, h, records))
    return planned


def _match(spec: RunSpec, h: str, records: list[Any]) -> PlannedRun:
    finished = [r for r in records if r.status in ("finished", "pruned")]
    live = [r for r in records if r.status == "running"]
    rest = [r for r in records if r.status not in ("finished", "pruned", "running")]
    if finished:
        return PlannedRun(spec, "done", finished[0].run_id, h, finished[0].summary)
    if live:
        return PlannedRun(spec, "running", live[0].run_id, h)
    if rest:  # the most recent unfinished attempt carries the most progress
        return PlannedRun(spec, "resume", rest[-1].run_id, h)
    return PlannedRun(spec, "new", None, h)


def _other_config(spec: RunSpec, cfg: Any, record: Any) -> UserError:
    from rlworks.core.config import config_to_dict

    new = config_to_dict(cfg)
    changed = sorted(k for k in new.keys() | record.config.keys()
                     if new.get(k, "<absent>") != record.config.get(k, "<absent>"))
    shown = ", ".join(f"{k} {record.config.get(k, '<absent>')!r} -> {new.get(k, '<absent>')!r}"
                      for k in changed[:3]) + (", ..." if len(changed) > 3 else "")
    return UserError(
        f"experiment '{spec.experiment}' already has run {record.run_id} ({spec.label()}) "
        f"with another config ({shown}); rename [experiment] name to keep both, or delete "
        f"the old runs (`rlworks runs rm`) to replace them")


def run_one(spec_dict: dict[str, Any], store_path: str, run_id: str | None) -> dict[str, Any]:
    """Train (or resume) one spec in this process; return its summary. Worker entry point."""
    from rlworks.exec import train as driver
    from rlworks.track.store import RunStore

    spec = RunSpec.from_dict(spec_dict)
    with RunStore(store_path) as store:  # a run that raises is marked "failed" by the driver
        if run_id is not None:
            return driver.resume(run_id, store, progress=False)
        return driver.train(spec.algo, spec.config(), store, experiment=spec.experiment,
                            progress=False)


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else (os.cpu_count() or 1))


def launch(specs: Sequence[RunSpec], store: Any, *, workers: int | None = None,
           ray: str | None = None, verbose: bool = True,
           on_finish: Callable[[PlannedRun], None] | None = None,
           check_configs: bool = False, poll_s: float = 5.0) -> list[PlannedRun]:
    """Run every spec not finished yet; return the plan with each run's summary filled in.

    ``workers``: local processes (default one per core; 1 trains in this process); ``ray``: a
    Ray address, or "local" to start a single-machine Ray instance (the store path must be
    visible to every node). A run that fails is reported and the others go on; the failures
    raise :class:`RunsFailed` at the end. Runs found running in another process are waited
    for, polling the store every ``poll_s`` seconds.
    """
    with _lock_experiments(store, {s.experiment for s in specs}):
        planned = plan(specs, store, check_configs=check_configs)
        todo = [p for p in planned if p.action in ("new", "resume")]
        busy = [p for p in planned if p.action == "running"]
        done = len(planned) - len(todo) - len(busy)
        say = _Reporter(len(planned), done, verbose)
        resumed = sum(p.action == "resume" for p in todo)
        say.line(f"{len(planned)} runs: {done} finished already, {len(todo)} to run"
                 + (f" ({resumed} resumed)" if resumed else "")
                 + (f", {len(busy)} running in another process (waited for)" if busy else ""))

        def finished(p: PlannedRun, summary: dict[str, Any] | None, error: str | None) -> None:
            if error is not None:
                p.action, p.error = "failed", error
                say.run(p, None, error)
                return
            p.summary, p.action = summary, "done"
            p.run_id = (summary or {}).get("run_id", p.run_id)
            say.run(p, summary, None)
            if on_finish is not None:
                on_finish(p)

        attempted = 0
        while todo or busy:
            attempted += len(todo)
            if todo:
                _execute(todo, store, workers, ray, finished, say)
            todo, busy = _recheck(busy, store, say, poll_s) if busy else ([], [])
    failures = [p for p in planned if p.action == "failed"]
    if failures:
        first = failures[0]
        raise RunsFailed(f"{len(failures)} of {attempted} runs failed, first: "
                         f"{first.spec.label()}: {first.error}; fix it and launch again "
                         "(finished runs are kept, failed ones resume)", planned)
    return planned


def _execute(todo: list[PlannedRun], store: Any, workers: int | None, ray: str | None,
             finished: Finished, say: _Reporter) -> None:
    store_path = str(store.path)
    n = workers or default_workers()
    if ray is not None:
        _launch_ray(todo, store_path, ray, workers, finished)
    elif n == 1 or len(todo) == 1:
        for p in todo:
            try:
                summary = run_one(p.spec.to_dict(), store_path, p.run_id)
            except Exception as err:  # noqa: BLE001  (report it, go on with the others)
                finished(p, None, _describe(err))
            else:
                finished(p, summary, None)
    else:
        from rlworks.exec.pool import run_local

        run_local(todo, store_path, n, finished, say)


def _recheck(busy: list[PlannedRun], store: Any, say: _Reporter,
             poll_s: float) -> tuple[list[PlannedRun], list[PlannedRun]]:
    """Wait for runs of other processes; return (to run now, still busy)."""
    say.line(f"waiting for {len(busy)} runs running in another process: "
             + ", ".join(f"{p.spec.label()} (run {p.run_id})" for p in busy[:3])
             + (", ..." if len(busy) > 3 else ""))
    while True:
        time.sleep(poll_s)
        fresh = plan([p.spec for p in busy], store)
        if any(q.action != "running" for q in fresh):
            break
    todo, still = [], []
    for p, q in zip(busy, fresh, strict=True):
        p.action, p.run_id = q.action, q.run_id
        if q.action == "done":  # finished by that process: reported, not ``on_finish``ed
            p.summary = q.summary
            say.run(p, q.summary, None)
        elif q.action == "running":
            still.append(p)
        else:  # its process died: resume it here
            todo.append(p)
    return todo, still


@contextlib.contextmanager
def _lock_experiments(store: Any, experiments: set[str]) -> Iterator[None]:
    """Hold ``<store>/locks/<experiment>.lock`` for each experiment (released on any exit,
    even SIGKILL, since the kernel drops a dead process's flocks)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock
        yield
        return
    directory = store.path / "locks"
    directory.mkdir(exist_ok=True)
    held = []
    try:
        for name in sorted(experiments):
            slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:60]
            path = directory / f"{slug}-{hashlib.sha1(name.encode()).hexdigest()[:8]}.lock"
            fh = open(path, "a+")  # noqa: SIM115  (held until the launch ends)
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                holder = fh.read().strip() or "another process"
                fh.close()
                raise UserError(f"experiment '{name}' is being launched on store "
                                f"'{store.path}' by {holder}; wait for it to end, or stop it "
                                "and launch again") from None
            held.append(fh)
            fh.seek(0)
            fh.truncate()
            fh.write(f"pid {os.getpid()} on {os.uname().nodename}")
            fh.flush()
        yield
    finally:
        for fh in held:
            fh.close()


# ----------------------------------------------------------------------------- Ray
def _launch_ray(todo: list[PlannedRun], store_path: str, address: str, workers: int | None,
                finished: Finished) -> None:
    ray = _ray_init(address, workers)
    remote = ray.remote(num_cpus=1, max_retries=0)(run_one)
    pending = {remote.remote(p.spec.to_dict(), store_path, p.run_id): p for p in todo}
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                p = pending.pop(ref)
                try:
                    summary = ray.get(ref)
                except Exception as err:  # noqa: BLE001  (RayTaskError, WorkerCrashedError)
                    finished(p, None, _describe(err))
                else:
                    finished(p, summary, None)
    except BaseException:
        for ref in pending:  # KeyboardInterrupt inside each task: it checkpoints and stops
            with contextlib.suppress(Exception):
                ray.cancel(ref)
        raise
    finally:
        if address == "local":
            ray.shutdown()


def _ray_init(address: str, workers: int | None) -> Any:
    """Import Ray and connect (or start one, for "local"); every failure is a UserError."""
    try:
        import ray
    except ImportError:
        raise UserError("--ray needs Ray, which is not installed: pip install 'rlworks[dist]' "
                        "(or drop --ray to use local worker processes)") from None
    kwargs: dict[str, Any] = {"ignore_reinit_error": True, "include_dashboard": False,
                              "log_to_driver": False,
                              "runtime_env": {"env_vars": {"OMP_NUM_THREADS": "1",
                                                           "RLWORKS_QUIET": "1"}}}
    if address == "local":
        kwargs["num_cpus"] = workers or default_workers()
    else:
        _check_reachable(address)
        kwargs["address"] = address
    try:
        ray.init(**kwargs)
    except (ConnectionError, ValueError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"cannot connect to Ray at '{address}': {first}; start a cluster with "
                        "`ray start --head` and pass its address, or use --ray local") from None
    return ray


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast on a HOST:PORT nobody listens on: ``ray.init`` waits minutes there."""
    import socket

    match = re.fullmatch(r"(?:ray://)?\[?([^\]\s]+?)\]?:(\d+)", address.strip())
    if match is None:
        return  # "auto" and other forms: Ray answers those quickly itself
    host, port = match.group(1), int(match.group(2))
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise UserError(f"cannot reach the Ray cluster at '{address}' ({reason}); start one "
                        "with `ray start --head` and pass its address, or use --ray local"
                        ) from None


# ----------------------------------------------------------------------------- reporting
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
            # A closed stderr (`rlworks run ... 2>&1 | head`) must not stop the runs.
            with contextlib.suppress(OSError):
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
