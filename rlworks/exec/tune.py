"""Hyperparameter optimisation with Optuna, tuning seeds kept apart from test seeds.

Following Eimer, Lindauer and Raileanu (2023, "Hyperparameters in Reinforcement Learning and
How To Tune Them", arXiv:2306.01324): configurations are compared on *tuning* seeds only, and
the chosen one is then re-run, with the default configuration, on *test* seeds that the search
never saw; only the test-seed numbers are reported. Selecting the best of many trials on the
same seeds it is reported on overstates it (the maximum of noisy estimates is biased upwards).

How the seeds are kept apart, by construction:

- :class:`TuneSpec` refuses overlapping ``tuning_seeds`` and ``test_seeds`` (also when built
  in code, not only from a file);
- the search reaches ``train()`` through one method, :meth:`TrialRunner.train_seed`, which
  refuses any seed that is not a tuning seed (:class:`SeedLeakError`), and trials loop over
  ``tuning_seeds`` only;
- test seeds are trained only by :func:`run_final`, through the launcher, after the search.

Layout under the store: ``tune/<name>/study.journal`` (the Optuna study, shared by the worker
processes), ``report.md`` and ``trials.png``; runs go to experiments ``<name>/tune`` (every
trial x tuning seed; each trial's run ids are in its Optuna user attributes), ``<name>/tuned``
and ``<name>/default`` (the test seeds). See docs/tuning.md.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import sys
import time
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rlworks.core.errors import UserError
from rlworks.exec.experiment import Experiment, RunSpec
from rlworks.exec.tune_spec import (
    REPORT_REPS,
    SAMPLERS,
    SeedLeakError,
    TuneSpec,
    _choice,
    parse_tune,
)


# ----------------------------------------------------------------------------- the search
def tune_dir(store_path: str | Path, name: str) -> Path:
    """``<store>/tune/<name>/`` (characters outside [A-Za-z0-9._-] become '_')."""
    return Path(store_path) / "tune" / re.sub(r"[^A-Za-z0-9._-]", "_", name)


def study_storage(directory: Path) -> Any:
    """The Optuna storage every worker opens: a journal file, safe for concurrent processes."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    directory.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(directory / "study.journal")))


def open_study(spec: TuneSpec, directory: Path, *, sampler: Any = None, create: bool = True,
               pruner: Any = None) -> Any:
    """Load (or create) the study of ``spec``; refuse one made from another [tune] table."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = study_storage(directory)
    exists = spec.name in optuna.get_all_study_names(storage)
    if not exists and not create:
        raise UserError(f"nothing to resume: no study '{spec.name}' in '{directory}'; run "
                        "without --resume to start one")
    study = optuna.create_study(storage=storage, study_name=spec.name, direction="maximize",
                                load_if_exists=True, sampler=sampler, pruner=pruner)
    mine = json.loads(json.dumps(spec.fingerprint()))
    theirs = study.user_attrs.get("rlworks_fingerprint")
    if theirs is None:
        study.set_user_attr("rlworks_fingerprint", mine)
    elif theirs != mine:
        changed = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
        raise UserError(f"the study in '{directory}' was made from a different [tune] table "
                        f"(changed: {', '.join(changed)}); restore it, rename [experiment] "
                        "name, or delete that directory to start over")
    return study


class TrialRunner:
    """The objective: one trial = the trial's config trained on every tuning seed.

    The only way the search reaches ``train()``; it refuses any seed outside ``tuning_seeds``.
    """

    def __init__(self, spec: TuneSpec, store: Any) -> None:
        self.spec, self.store = spec, store
        self.experiment = f"{spec.name}/tune"

    def train_seed(self, params: Mapping[str, Any], seed: int, trial: Any = None,
                   offset: int = 0) -> dict[str, Any]:
        """Train ``params`` on one tuning seed; reuse a finished identical run of the search,
        or resume an interrupted one."""
        if seed in self.spec.test_seeds or seed not in self.spec.tuning_seeds:
            raise SeedLeakError(f"seed {seed} is not a tuning seed of '{self.spec.name}' "
                                f"(tuning seeds {list(self.spec.tuning_seeds)}); test seeds "
                                "are trained only after the search")
        from rlworks.core.config import config_hash
        from rlworks.exec import train as driver

        cfg = self.spec.config(params, seed)
        h = config_hash(cfg)
        same = [r for r in self.store.list_runs(experiment=self.experiment) if r.config_hash == h]
        for rec in same:
            if rec.status == "finished" and rec.summary:
                return dict(rec.summary)
        callback = None if trial is None or self.spec.pruner == "none" else \
            _PruneCallback(trial, offset, self.spec.budget)
        stopped = [r for r in same if r.status in ("interrupted", "unfinished")]
        if stopped:
            return driver.resume(stopped[-1].run_id, self.store, progress=False,
                                 callback=callback)
        tags = () if trial is None else (f"trial-{trial.number}",)
        return driver.train(self.spec.algo, cfg, self.store, experiment=self.experiment,
                            progress=False, callback=callback, tags=tags)

    def __call__(self, trial: Any) -> float:
        """Run ``trial``; return its objective, or raise optuna.TrialPruned."""
        import optuna

        params = {p.name: p.suggest(trial) for p in self.spec.space}
        values, run_ids = [], {}
        for i, seed in enumerate(self.spec.tuning_seeds):
            summary = self.train_seed(params, seed, trial, offset=i * self.spec.budget)
            run_ids[str(seed)] = summary.get("run_id")
            trial.set_user_attr("run_ids", run_ids)
            if summary.get("pruned"):
                trial.set_user_attr("pruned_reason", summary.get("pruned_reason"))
                raise optuna.TrialPruned(summary.get("pruned_reason"))
            values.append(self._value(summary))
            trial.set_user_attr("seed_values", values)
        return float(sum(values) / len(values))

    def _value(self, summary: Mapping[str, Any]) -> float:
        if self.spec.objective == "final_eval":
            return float(summary["eval_return_mean"])
        curve = self.store.metrics(summary["run_id"], keys=["rollout/episodic_return"])
        returns = curve.get("rollout/episodic_return", ([], []))[1]
        return float(sum(returns) / len(returns)) if returns else float("nan")


class _PruneCallback:
    """Reports the recent training return to the pruner ~20 times per seed; StopRun if pruned.

    Intermediate step = seed index * budget + env step, so trials line up step for step.
    """

    def __init__(self, trial: Any, offset: int, budget: int) -> None:
        self.trial, self.offset, self.budget = trial, offset, budget
        self.every = max(budget // 20, 1)
        self.next = self.every
        self.recent: deque[float] = deque(maxlen=20)

    def __call__(self, step: int, metrics: dict[str, float]) -> None:
        from rlworks.exec.train import StopRun

        if "rollout/episodic_return" in metrics:
            self.recent.append(metrics["rollout/episodic_return"])
        if step < self.next or step >= self.budget or not self.recent:
            return
        self.next = (step // self.every + 1) * self.every
        self.trial.report(sum(self.recent) / len(self.recent), self.offset + step)
        if self.trial.should_prune():
            raise StopRun(f"pruned by the median pruner at step {self.offset + step}")


def make_sampler(spec: TuneSpec, worker: int, done: int) -> Any:
    """Seeded per worker and per resume point, so parallel workers do not propose twins."""
    import optuna

    from rlworks.core.seeding import derive_seed

    seed = derive_seed(spec.seed, "sampler", worker, done)
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    startup = max(2, min(10, spec.trials // 3))
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, constant_liar=True)


def make_pruner(spec: TuneSpec) -> Any:
    import optuna

    if spec.pruner == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=max(1, min(5, spec.trials // 4)),
                                       n_warmup_steps=spec.budget // 2)


def tune_worker(spec: TuneSpec, store_path: str, worker: int, verbose: bool = True) -> int:
    """Ask, run and tell trials until the study holds ``spec.trials`` complete, pruned or
    running ones; return how many this worker ran.

    Entry point of each worker process (and of the search itself with one worker). The count
    and the ask happen under one file lock, so W workers run exactly the trials missing.
    """
    import optuna

    from rlworks.track.store import RunStore

    directory = tune_dir(store_path, spec.name)
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED,
              optuna.trial.TrialState.RUNNING)
    ran = 0
    with RunStore(store_path) as store:
        study = open_study(spec, directory, pruner=make_pruner(spec))
        done = len(study.get_trials(deepcopy=False))
        study.sampler = make_sampler(spec, worker, done)
        runner = TrialRunner(spec, store)
        while True:
            with _file_lock(directory / "ask.lock"):
                if len(study.get_trials(deepcopy=False, states=states)) >= spec.trials:
                    return ran
                trial = study.ask()
            t0 = time.perf_counter()
            try:
                value = runner(trial)
            except optuna.TrialPruned as pruned:
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                _say(verbose, f"trial {trial.number}: {_fmt_params(trial.params)}: {pruned} "
                              f"({time.perf_counter() - t0:.0f} s)")
            except KeyboardInterrupt:
                raise  # left RUNNING: the next run_search queues it again
            except BaseException:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                raise
            else:
                study.tell(trial, value)
                _say(verbose, f"trial {trial.number}: {_fmt_params(trial.params)}: objective "
                              f"{value:.1f} ({time.perf_counter() - t0:.0f} s)")
            ran += 1


def run_search(spec: TuneSpec, store: Any, *, resume: bool = False,
               verbose: bool = True) -> Any:
    """The tuning phase: ``spec.trials`` trials in total; return the study.

    A rerun continues the same study: finished trials stay, trials left running by a killed
    search are marked failed and queued again with the same parameters.
    """
    import optuna

    from rlworks.exec.launcher import default_workers

    directory = tune_dir(store.path, spec.name)
    study = open_study(spec, directory, create=not resume)
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(t.number, state=optuna.trial.TrialState.FAIL)
        study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
    counted = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    done = len(study.get_trials(deepcopy=False, states=counted))
    todo = max(0, spec.trials - done)
    workers = min(spec.workers or default_workers(), todo)
    _say(verbose, f"study '{spec.name}': {done} of {spec.trials} trials done"
                  + (f", {todo} to run on {workers} worker(s)" if todo else "")
                  + f"; {spec.algo} on {spec.env_id}, tuning seeds {list(spec.tuning_seeds)}, "
                  f"{spec.budget} steps per run")
    if workers == 1:
        tune_worker(spec, str(store.path), 0, verbose)
    elif workers > 1:
        _run_workers(spec, str(store.path), workers, verbose)
    return open_study(spec, directory)


def _run_workers(spec: TuneSpec, store_path: str, workers: int, verbose: bool) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context("spawn")  # no forked torch/OpenMP state
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                             initializer=_worker_init) as pool:
        futures = [pool.submit(tune_worker, spec, store_path, w, verbose)
                   for w in range(workers)]
        errors = [f.exception() for f in futures]
    failed = [e for e in errors if e is not None]
    if failed:
        err = failed[0]
        if isinstance(err, UserError | SeedLeakError):
            raise err
        raise UserError(f"{len(failed)} of {workers} tuning workers failed, first: "
                        f"{type(err).__name__}: {err}; fix it and run again (finished trials "
                        "are kept)")


def _worker_init() -> None:
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    os.environ["RLWORKS_QUIET"] = "1"


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    import fcntl

    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextmanager
def exclusive_search(directory: Path) -> Iterator[None]:
    """One ``rlworks tune`` per study at a time (a second would fail the first one's trials)."""
    import fcntl

    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "tune.lock", "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"another `rlworks tune` is running on '{directory}'; wait for it "
                            "or stop it first") from None
        yield


# ----------------------------------------------------------------------------- the test
def run_final(spec: TuneSpec, store: Any, best_params: Mapping[str, Any], *,
              verbose: bool = True) -> dict[str, list[dict]]:
    """Train the tuned and the default configuration on every test seed (resumably)."""
    from rlworks.exec.launcher import launch

    specs = []
    for label, params in (("tuned", dict(best_params)), ("default", {})):
        over = tuple(sorted(spec.overrides(params).items()))
        specs += [RunSpec(f"{spec.name}/{label}", spec.algo, spec.env_id, s, over)
                  for s in spec.test_seeds]
    planned = launch(specs, store, workers=spec.workers, verbose=verbose)
    out: dict[str, list[dict]] = {"tuned": [], "default": []}
    for p in planned:
        out[p.spec.experiment.rsplit("/", 1)[1]].append(dict(p.summary or {}))
    return out


def compare_scores(tuned: list[float], default: list[float], seed: int,
                   reps: int = REPORT_REPS) -> dict[str, Any]:
    """IQM with 95% stratified-bootstrap CIs of both, and P(tuned > default) with its CI."""
    import numpy as np

    from rlworks.core.seeding import make_rng
    from rlworks.eval.stats import (
        aggregate_iqm,
        get_interval_estimates,
        probability_of_improvement,
    )

    x = np.asarray(tuned, dtype=np.float64)[:, None]  # (R, 1): one task
    y = np.asarray(default, dtype=np.float64)[:, None]
    rng = make_rng(seed, "tune", "report")
    points, cis = get_interval_estimates({"tuned": x, "default": y}, aggregate_iqm, reps, rng)
    poi, poi_ci = get_interval_estimates({"poi": (x, y)}, probability_of_improvement, reps, rng)
    out: dict[str, Any] = {
        name: {"iqm": float(points[name]), "ci": [float(v) for v in cis[name]],
               "mean": float(arr.mean()), "runs": int(arr.shape[0]),
               "returns": [float(v) for v in arr[:, 0]]}
        for name, arr in (("tuned", x), ("default", y))}
    out["p_improvement"] = {"estimate": float(poi["poi"]),
                            "ci": [float(v) for v in poi_ci["poi"]]}
    return out


@dataclasses.dataclass
class TuneResult:
    """What ``rlworks tune`` reports (``rlworks.cli.tune`` renders it as report.md)."""

    spec: TuneSpec
    best: Any
    """The best trial (an ``optuna.trial.FrozenTrial``), chosen on the tuning seeds."""
    trials: list[Any]
    """Every trial of the study, in order."""
    final: dict[str, list[dict[str, Any]]]
    """Run summaries on the test seeds: ``{"tuned": [...], "default": [...]}``."""
    comparison: dict[str, Any]
    """:func:`compare_scores` of the two."""
    directory: Path
    elapsed_s: float

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.trials:
            out[t.state.name.lower()] = out.get(t.state.name.lower(), 0) + 1
        return out


def tune(exp: Experiment, store: Any, *, trials: int | None = None, workers: int | None = None,
         sampler: str | None = None, resume: bool = False, verbose: bool = True) -> TuneResult:
    """Search on the tuning seeds, then test tuned vs default on the test seeds.

    Rerunning continues where it stopped and repeats no finished trial or run.
    """
    t0 = time.perf_counter()
    spec = parse_tune(exp)
    if sampler is not None:
        _choice(sampler, SAMPLERS, "sampler", "--sampler")
    spec = dataclasses.replace(spec, trials=trials or spec.trials,
                               workers=workers or spec.workers, sampler=sampler or spec.sampler)
    directory = tune_dir(store.path, spec.name)
    with exclusive_search(directory):
        study = run_search(spec, store, resume=resume, verbose=verbose)
        try:
            best = study.best_trial
        except ValueError:
            raise UserError(f"study '{spec.name}' has no completed trial (all pruned or "
                            "failed); run more trials or use pruner = \"none\"") from None
        _say(verbose, f"best: trial {best.number} ({_fmt_params(best.params)}), objective "
                      f"{best.value:.1f} on the tuning seeds; now tuned vs default on test "
                      f"seeds {list(spec.test_seeds)}")
        final = run_final(spec, store, best.params, verbose=verbose)
        comparison = compare_scores([s["eval_return_mean"] for s in final["tuned"]],
                                    [s["eval_return_mean"] for s in final["default"]],
                                    spec.seed)
    return TuneResult(spec, best, study.get_trials(), final, comparison, directory,
                      time.perf_counter() - t0)


def _fmt_params(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in params.items())


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    return str(v)


def _say(verbose: bool, text: str) -> None:
    if verbose:
        print(text, file=sys.stderr, flush=True)
