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
import typing
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from rlworks.core.errors import UserError, did_you_mean
from rlworks.exec.experiment import Experiment, RunSpec

_TUNE_KEYS = ("algo", "env", "trials", "tuning_seeds", "test_seeds", "sampler", "pruner",
              "workers", "objective", "budget", "seed", "space")
_SPACE_KEYS = ("low", "high", "log", "step", "choices")
SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "none")
OBJECTIVES = {
    "final_eval": "mean over the tuning seeds of each run's final evaluation return "
                  "(deterministic policy, eval_episodes episodes)",
    "mean_train_return": "mean over the tuning seeds of the mean training episodic return "
                         "over the whole run (area under the learning curve)",
}
_NOT_TUNABLE = {
    "env_id": "name it with [tune] env",
    "seed": "seeds come from [tune] tuning_seeds and test_seeds",
    "total_steps": "the budget is fixed for every trial: set [tune] budget",
    "eval_episodes": "it sets how the objective is measured; set it in [config]",
}
REPORT_REPS = 20_000


class SeedLeakError(RuntimeError):
    """A test seed (or any non-tuning seed) reached training during the search."""


@dataclasses.dataclass(frozen=True)
class Param:
    """One dimension of the search space: a float/int range or a list of choices."""

    name: str
    kind: Literal["float", "int", "choice"]
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        if self.kind == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log,
                                       step=self.step)
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log,
                                     step=int(self.step or 1))
        return trial.suggest_categorical(self.name, list(self.choices))

    def describe(self) -> str:
        if self.kind == "choice":
            return f"one of {', '.join(map(str, self.choices))}"
        scale = "log " if self.log else ""
        return f"{self.kind} in [{self.low:g}, {self.high:g}] ({scale}uniform)"


@dataclasses.dataclass(frozen=True)
class TuneSpec:
    """A validated ``[tune]`` table (see :func:`parse_tune` and docs/tuning.md)."""

    name: str
    algo: str
    env_id: str
    tuning_seeds: tuple[int, ...]
    test_seeds: tuple[int, ...]
    space: tuple[Param, ...]
    budget: int
    trials: int = 20
    sampler: str = "tpe"
    pruner: str = "median"
    objective: str = "final_eval"
    workers: int | None = None
    seed: int = 0
    """Seeds the samplers and the report's bootstrap (not any training run)."""
    base: tuple[tuple[str, Any], ...] = ()
    """The experiment's [config] values for this (algo, env): the *default* configuration."""

    def __post_init__(self) -> None:
        overlap = sorted(set(self.tuning_seeds) & set(self.test_seeds))
        if overlap:
            raise UserError(f"[tune] tuning_seeds and test_seeds share seeds {overlap}; they "
                            "must be disjoint, or the report is biased by the selection")

    def overrides(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Config fields set for a run: defaults < zoo < [config] < budget < ``params``."""
        return {**dict(self.base), "total_steps": self.budget, **params}

    def config(self, params: Mapping[str, Any], seed: int) -> Any:
        from rlworks.exec.train import build_config

        return build_config(self.algo, {**self.overrides(params), "env_id": self.env_id,
                                        "seed": seed})

    def fingerprint(self) -> dict[str, Any]:
        """What gives trial values their meaning; a study made from another one is refused."""
        return {"algo": self.algo, "env": self.env_id, "tuning_seeds": list(self.tuning_seeds),
                "budget": self.budget, "objective": self.objective,
                "space": [dataclasses.asdict(p) for p in self.space],
                "config": _jsonable(dict(self.base))}


# ----------------------------------------------------------------------------- validation
def parse_tune(exp: Experiment) -> TuneSpec:
    """Validate ``exp.tune`` against the experiment; every error is one line."""
    import rlworks.algos.online  # noqa: F401  (registrations only; no torch)
    from rlworks.core.registry import ALGORITHMS

    where = f"experiment file '{exp.source}'"
    raw = exp.tune
    if not raw:
        raise UserError(f"{where} has no [tune] table; see docs/tuning.md for an example")
    for key in raw:
        if key not in _TUNE_KEYS:
            raise UserError(f"{where}: unknown key '{key}' in [tune]{_hint(key, _TUNE_KEYS)}")
    algo = _pick(raw.get("algo"), exp.algos, "algo", where)
    env_id = _pick(raw.get("env"), exp.envs, "env", where)
    tuning = _seed_list(raw.get("tuning_seeds"), "tuning_seeds", where, "[0, 1, 2]", 1)
    test = _seed_list(raw.get("test_seeds"), "test_seeds", where, "[100, 101, 102, 103, 104]", 2)
    overlap = sorted(set(tuning) & set(test))
    if overlap:
        raise UserError(f"{where}: [tune] tuning_seeds and test_seeds share seeds {overlap}; "
                        "make them disjoint (a test seed used for tuning biases the report)")
    trials = _positive(raw.get("trials", 20), "trials", where)
    workers = raw.get("workers", exp.workers)
    workers = None if workers is None else _positive(workers, "workers", where)
    sampler = _choice(raw.get("sampler", "tpe"), SAMPLERS, "sampler", where)
    pruner = _choice(raw.get("pruner", "median"), PRUNERS, "pruner", where)
    objective = _choice(raw.get("objective", "final_eval"), tuple(OBJECTIVES), "objective",
                        where)
    seed = raw.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise UserError(f"{where}: [tune] seed must be an integer, got {seed!r}")
    base = exp.overrides(algo, env_id)
    from rlworks.exec.train import build_config

    budget = raw.get("budget", base.get("total_steps"))
    if budget is None:
        budget = build_config(algo, {"env_id": env_id}).total_steps
    budget = _positive(budget, "budget", where)
    space_raw = raw.get("space")
    if not isinstance(space_raw, dict) or not space_raw:
        raise UserError(f"{where}: [tune.space] is missing or empty; add one entry per config "
                        "field, e.g. learning_rate = {low = 1e-4, high = 3e-3, log = true}")
    cls = ALGORITHMS.get(algo).config_class()
    try:
        default = build_config(algo, {**base, "total_steps": budget, "env_id": env_id,
                                      "seed": tuning[0]})
    except UserError as err:
        raise UserError(f"{where}: the default configuration is invalid: {err}") from None
    space = tuple(_parse_param(name, entry, cls, default, f"{where}: [tune.space] {name}")
                  for name, entry in space_raw.items())
    return TuneSpec(exp.name, algo, env_id, tuning, test, space, budget, trials, sampler, pruner,
                    objective, workers, seed, tuple(sorted(base.items())))


def _pick(value: Any, options: tuple[str, ...], key: str, where: str) -> str:
    plural = "algos" if key == "algo" else "envs"
    if value is None:
        if len(options) == 1:
            return options[0]
        raise UserError(f"{where}: [experiment] lists {len(options)} {plural}; name the one to "
                        f"tune with [tune] {key} = \"{options[0]}\"")
    if value not in options:
        raise UserError(f"{where}: [tune] {key} = {value!r} is not in [experiment] {plural}"
                        f"{did_you_mean(str(value), options) or ': ' + ', '.join(options)}")
    return str(value)


def _seed_list(value: Any, key: str, where: str, example: str, least: int) -> tuple[int, ...]:
    ok = (isinstance(value, list) and len(value) >= least
          and all(isinstance(s, int) and not isinstance(s, bool) for s in value))
    if not ok:
        raise UserError(f"{where}: [tune] {key} must be a list of at least {least} integer "
                        f"seed{'s' if least > 1 else ''}, e.g. {key} = {example}, got {value!r}")
    if len(set(value)) != len(value):
        raise UserError(f"{where}: [tune] {key} lists a seed twice: {value}")
    return tuple(value)


def _positive(value: Any, key: str, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise UserError(f"{where}: [tune] {key} must be a positive integer, got {value!r}")
    return value


def _choice(value: Any, options: tuple[str, ...], key: str, where: str) -> str:
    if value not in options:
        raise UserError(f"{where}: [tune] {key} = {value!r}; choose one of "
                        f"{', '.join(options)}{did_you_mean(str(value), options)}")
    return str(value)


def _hint(key: str, choices: tuple[str, ...]) -> str:
    return did_you_mean(key, choices) or f"; valid: {', '.join(choices)}"


def _parse_param(name: str, entry: Any, cls: type, default: Any, where: str) -> Param:
    from rlworks.core.config import config_from_dict, field_types

    types = field_types(cls)
    if name not in types:
        raise UserError(f"{where}: '{name}' is not a {cls.__name__} field"
                        f"{_hint(name, tuple(types))}")
    if name in _NOT_TUNABLE:
        raise UserError(f"{where}: '{name}' cannot be tuned; {_NOT_TUNABLE[name]}")
    if not isinstance(entry, dict):
        raise UserError(f"{where} must be a table, e.g. {name} = {{low = 1e-4, high = 1e-2, "
                        f"log = true}} or {name} = {{choices = [...]}}")
    for key in entry:
        if key not in _SPACE_KEYS:
            raise UserError(f"{where}: unknown key '{key}'{_hint(key, _SPACE_KEYS)}")

    def check(value: Any) -> None:  # the value must make a valid config (types, __post_init__)
        config_from_dict(cls, {name: value}, source=where, base=default)

    if "choices" in entry:
        param = _parse_choices(name, entry, where)
        for c in param.choices:
            check(c)
        return param
    tp = types[name]
    args = [a for a in typing.get_args(tp) if a is not type(None)] or [tp]
    if args[0] not in (int, float):
        raise UserError(f"{where}: '{name}' is not a number; use choices = [...]")
    param = _parse_range(name, "int" if args[0] is int else "float", entry, where)
    check(param.low)
    check(param.high)
    return param


def _parse_choices(name: str, entry: dict[str, Any], where: str) -> Param:
    if set(entry) - {"choices"}:
        raise UserError(f"{where}: give either choices or low/high, not both")
    choices = entry["choices"]
    if not isinstance(choices, list) or not choices:
        raise UserError(f"{where}: choices must be a non-empty list, got {choices!r}")
    # Optuna stores only scalars: a list choice (hidden_sizes) becomes "64,64".
    flat = tuple(",".join(map(str, c)) if isinstance(c, list) else c for c in choices)
    if len(set(flat)) != len(flat):
        raise UserError(f"{where}: choices lists a value twice: {choices}")
    return Param(name, "choice", choices=flat)


def _parse_range(name: str, kind: Literal["int", "float"], entry: dict[str, Any],
                 where: str) -> Param:
    if "low" not in entry or "high" not in entry:
        raise UserError(f"{where} needs low and high (or choices = [...])")
    low, high, log, step = entry["low"], entry["high"], entry.get("log", False), entry.get("step")
    numbers = [("low", low), ("high", high)] + ([("step", step)] if step is not None else [])
    for label, v in numbers:
        if isinstance(v, bool) or not isinstance(v, int if kind == "int" else int | float):
            what = "an integer" if kind == "int" else "a number"
            raise UserError(f"{where}: {label} must be {what}, got {v!r}")
    if not isinstance(log, bool):
        raise UserError(f"{where}: log must be true or false, got {log!r}")
    if low >= high:
        raise UserError(f"{where}: low ({low}) must be below high ({high})")
    if log and low <= 0:
        raise UserError(f"{where}: a log scale needs low > 0, got low = {low}")
    if step is not None and (step <= 0 or log):
        raise UserError(f"{where}: step must be positive and cannot be combined with log")
    if kind == "float":
        low, high = float(low), float(high)
    return Param(name, kind, low, high, log, step)


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


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(d, default=list))


def _say(verbose: bool, text: str) -> None:
    if verbose:
        print(text, file=sys.stderr, flush=True)
