"""Run an AdaStop comparison by training: interim by interim, through the launcher.

``rlworks adastop`` is this module. :func:`make_setup` validates everything (algorithms, env,
test parameters, config overrides) before anything is trained; :func:`run_adastop` then
trains ``n`` seeds of every algorithm still in an undecided comparison, feeds their scores to
:class:`~rlworks.eval.adastop.AdaStop`, and repeats until the test decides (at most ``K``
interims). :func:`compare_csv_files` runs the same test on score files instead (one file per
interim, the ``adastop`` package's CSV layout), with no training.

Seeds and scores. Interim ``k`` (0-based) trains seeds ``seed + k*n ... seed + k*n + n-1`` of
each algorithm it needs; a run's score is ``summary["eval_return_mean"]`` (the mean return of
the final policy over ``eval_episodes`` evaluation episodes, see ``rlworks.exec.train``).

Resumable by replaying, not by saving the test. Every run goes through
:func:`rlworks.exec.launcher.launch` under one experiment name, and the launcher never reruns a
finished run with the same experiment and config. The test itself is a deterministic function
of its parameters, its rng seed and the scores it was fed. So a second call with the same
setup re-plans interim 1, finds all its runs finished, feeds the same scores, takes the same
decisions, asks for the same algorithms at interim 2, ... and trains only from the first
interim that was not complete (an interrupted run in it is resumed from its checkpoint). After
a kill, run the same command again; after the test finished, the same command prints the
result without training. Nothing beyond the run store is kept.

Caveat: runs are matched by experiment + config (+ seed), not by the test parameters. Rerunning
with another ``n``, ``K`` or ``alpha`` under the same experiment name reuses the runs you have
already seen, which is the peeking that a sequential test exists to prevent; start a new
test under a new ``experiment`` name instead.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rlworks.core.errors import UserError, did_you_mean, unknown
from rlworks.eval.adastop import AdaStop, read_adastop_csv
from rlworks.exec.experiment import RunSpec

METRIC = "eval_return_mean"
"""The summary key used as a run's score."""

LaunchFn = Callable[..., list[Any]]
"""``launch(specs, store, *, workers, verbose, on_finish) -> [PlannedRun]``, as
:func:`rlworks.exec.launcher.launch`; injectable for tests."""


@dataclasses.dataclass(frozen=True)
class AdaStopSetup:
    """A validated AdaStop comparison by training (build it with :func:`make_setup`)."""

    algos: tuple[str, ...]
    env_id: str
    n: int
    """Seeds per algorithm per interim."""
    K: int
    """Maximum number of interims."""
    B: int = 10_000
    alpha: float = 0.05
    beta: float = 0.0
    comparisons: str = "all"
    """``"all"`` pairs or ``"first"`` (the first algorithm against each other one)."""
    seed: int = 0
    """Base seed: training seeds start here, and the test's rng is ``make_rng(seed, "adastop")``."""
    experiment: str = ""
    overrides: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()
    """Per algorithm, the config fields set for all its runs (sorted, typed)."""

    def seeds(self, interim: int) -> range:
        """The training seeds of interim ``interim`` (0-based)."""
        start = self.seed + interim * self.n
        return range(start, start + self.n)

    def specs(self, interim: int, algos: Sequence[str]) -> list[RunSpec]:
        """The runs of one interim for ``algos``, algorithm-major."""
        over = dict(self.overrides)
        return [RunSpec(self.experiment, algo, self.env_id, s, over.get(algo, ()))
                for algo in algos for s in self.seeds(interim)]

    def new_test(self) -> AdaStop:
        return AdaStop(self.n, self.K, self.B, self.alpha, self.beta, self.comparisons,
                       algorithms=list(self.algos), rng=self.seed)


def default_experiment(env_id: str, algos: Sequence[str]) -> str:
    return f"adastop/{env_id}/{'-'.join(algos)}"


def check_test_params(n: int, K: int, B: int, alpha: float, beta: float,
                      comparisons: str, seed: int) -> None:
    """The test's parameters, with the messages of the CLI flags of the same names."""
    if not isinstance(n, int) or n < 2:
        raise UserError(f"n must be an integer >= 2 (scores per algorithm per interim; with "
                        f"one the permutation test can hardly ever reject), got {n!r}")
    if not isinstance(K, int) or K < 1:
        raise UserError(f"K must be an integer >= 1 (the maximum number of interims), got {K!r}")
    if not isinstance(B, int) or B < 2:
        raise UserError(f"B must be an integer >= 2 (the permutation budget, e.g. 10000), "
                        f"got {B!r}")
    if not 0.0 < alpha < 1.0:
        raise UserError(f"alpha must be in (0, 1) (the family-wise error level, e.g. 0.05), "
                        f"got {alpha!r}")
    if not 0.0 <= beta < 1.0:
        raise UserError(f"beta must be in [0, 1) (0 disables early 'equal' decisions), "
                        f"got {beta!r}")
    if comparisons not in ("all", "first"):
        raise unknown("comparisons", str(comparisons), ("all", "first"))
    if not isinstance(seed, int) or seed < 0:
        raise UserError(f"seed must be an integer >= 0, got {seed!r}")


def check_algo_names(algos: Sequence[str]) -> tuple[str, ...]:
    """At least two distinct names (registered or not: the caller checks that)."""
    algos = tuple(a.strip() for a in algos)
    if any(not a for a in algos):
        raise UserError(f"algos: empty name in {list(algos)}; give names like ppo,dqn")
    if len(algos) < 2:
        raise UserError(f"algos: AdaStop compares at least 2 algorithms, got {list(algos)}; "
                        "give e.g. ppo,dqn")
    dup = sorted({a for a in algos if algos.count(a) > 1})
    if dup:
        raise UserError(f"algos: {', '.join(dup)} listed twice; give each algorithm once")
    return algos


def make_setup(algos: Sequence[str], env_id: str, n: int, K: int, *, B: int = 10_000,
               alpha: float = 0.05, beta: float = 0.0, comparisons: str = "all", seed: int = 0,
               experiment: str | None = None,
               overrides: Mapping[str, Any] | None = None) -> AdaStopSetup:
    """Validate a comparison before anything runs; raise a one-line UserError otherwise.

    ``overrides`` sets config fields of every run: ``{"total_steps": 50_000}`` for all
    algorithms, ``{"ppo.learning_rate": 3e-4}`` for one. Values may be strings (as from
    ``--set key=value``); they are converted to the field's type here.
    """
    import rlworks.algos.online  # noqa: F401  (lazy registrations; no torch)
    from rlworks.core.registry import ALGORITHMS
    from rlworks.envs.registry import check_backend, check_env_id

    algos = check_algo_names(algos)
    for algo in algos:
        if algo not in ALGORITHMS:
            raise unknown("algorithm", algo, ALGORITHMS.names())
    check_env_id(env_id)
    check_test_params(n, K, B, alpha, beta, comparisons, seed)
    name = default_experiment(env_id, algos) if experiment is None else experiment.strip()
    if not name:
        raise UserError("experiment name is empty; give one, or leave it out for "
                        f"'{default_experiment(env_id, algos)}'")
    per_algo = _split_overrides(overrides or {}, algos)
    setup = AdaStopSetup(algos, env_id, n, K, B, alpha, beta, comparisons, seed, name,
                         tuple((a, tuple(sorted(per_algo[a].items()))) for a in algos))
    for spec in setup.specs(0, algos)[::n]:  # one full config per algorithm
        check_backend(spec.config().backend)
    return setup


def _split_overrides(overrides: Mapping[str, Any],
                     algos: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """``{"key": v, "algo.key": v}`` -> per algorithm ``{field: typed value}``."""
    from rlworks.core.config import coerce, field_types
    from rlworks.core.registry import ALGORITHMS

    out: dict[str, dict[str, Any]] = {a: {} for a in algos}
    # Keys for all algorithms first, so an ``algo.key`` given as well wins for that one.
    for key, value in sorted(overrides.items(), key=lambda kv: "." in kv[0]):
        algo, _, field = key.rpartition(".")
        field = field.strip().replace("-", "_")
        if algo and algo not in algos:
            raise UserError(f"--set {key}: '{algo}' is not one of the compared algorithms "
                            f"{list(algos)}{did_you_mean(algo, algos)}")
        if field in ("env_id", "seed"):
            raise UserError(f"--set {key}: the {'env' if field == 'env_id' else 'seeds'} "
                            f"{'is' if field == 'env_id' else 'are'} set by "
                            f"{'--env' if field == 'env_id' else '--seed, --n and the interim'}"
                            "; drop it")
        for a in (algo,) if algo else algos:
            types = field_types(ALGORITHMS.get(a).config_class())
            if field not in types:
                tip = did_you_mean(field, types)
                if not tip and not algo:
                    tip = f"; to set it for one algorithm use --set ALGO.{field}=VALUE"
                raise UserError(f"--set {key}: '{field}' is not a {a} config field{tip}")
            out[a][field] = coerce(value, types[field], field, source=f"--set {key}")
    return out


def parse_settings(items: Sequence[str]) -> dict[str, str]:
    """``["key=value", "ppo.key=value"]`` (the ``--set`` flags) -> a dict; a key given twice
    or an item without ``=`` is an error."""
    out: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise UserError(f"--set '{item}': expected KEY=VALUE, e.g. --set total_steps=50000 "
                            "or --set ppo.learning_rate=3e-4")
        if key in out:
            raise UserError(f"--set {key} is given twice; give each key once")
        out[key] = value.strip()
    return out


# ----------------------------------------------------------------------------- running
@dataclasses.dataclass(frozen=True)
class InterimReport:
    """What one interim did (passed to ``on_interim`` after the test took its decisions)."""

    interim: int
    """1-based."""
    algos: tuple[str, ...]
    """The algorithms that got ``n`` new scores."""
    seeds: range
    trained: int
    """Runs trained (or resumed) at this interim; the others were already in the store."""
    reused: int


@dataclasses.dataclass
class AdaStopResult:
    test: AdaStop
    runs: dict[str, list[str]]
    """Per algorithm, the run ids whose scores were used, in interim order."""
    trained: int = 0
    reused: int = 0


def run_adastop(setup: AdaStopSetup, store: Any, *, workers: int | None = None,
                verbose: bool = True, launch_fn: LaunchFn | None = None,
                on_interim: Callable[[AdaStop, InterimReport], None] | None = None
                ) -> AdaStopResult:
    """Train interim by interim until the test decides; see the module docstring.

    Interims whose runs are all in the store are replayed without training, so calling this
    again after an interruption (or after the end) continues (or just reports) the test.
    """
    if launch_fn is None:
        from rlworks.exec import launcher

        launch_fn = launcher.launch
    test = setup.new_test()
    result = AdaStopResult(test, {a: [] for a in setup.algos})
    while not test.is_finished:
        k = test.k
        algos = tuple(test.algorithms_to_run)
        specs = setup.specs(k, algos)
        trained: list[Any] = []
        planned = launch_fn(specs, store, workers=workers, verbose=verbose,
                            on_finish=trained.append)
        scores: dict[str, list[float]] = {a: [] for a in algos}
        for p in planned:
            scores[p.spec.algo].append(_score(p))
            result.runs[p.spec.algo].append(str(p.run_id))
        test.partial_compare({a: np.array(v) for a, v in scores.items()})
        result.trained += len(trained)
        result.reused += len(planned) - len(trained)
        if on_interim is not None:
            on_interim(test, InterimReport(k + 1, algos, setup.seeds(k), len(trained),
                                           len(planned) - len(trained)))
    return result


def _score(p: Any) -> float:
    if p.summary is None:
        if p.action == "running":
            raise UserError(f"run {p.run_id} ({p.spec.label()}) is still running in another "
                            "process; wait for it to finish and run the same command again")
        raise UserError(f"run {p.spec.label()} has no summary; run the same command again")
    value = p.summary.get(METRIC)
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise UserError(f"run {p.run_id} ({p.spec.label()}) has no finite '{METRIC}' in its "
                        f"summary (got {value!r}); delete it with `rlworks runs rm "
                        f"{p.run_id}` and run the same command again")
    return float(value)


# ----------------------------------------------------------------------------- score files
def compare_csv_files(paths: Sequence[str | Path], K: int, *, n: int | None = None,
                      B: int = 10_000, alpha: float = 0.05, beta: float = 0.0,
                      comparisons: str = "all", seed: int = 0,
                      algos: Sequence[str] | None = None,
                      on_interim: Callable[[AdaStop, InterimReport], None] | None = None
                      ) -> AdaStop:
    """Run the test on score files, one per interim, in the ``adastop`` package's layout
    (``read_adastop_csv``). Every file is read and checked before the test starts.

    The algorithms are ``algos`` or else the first file's columns, in order; ``n`` defaults to
    the first file's number of rows. A file may hold columns for algorithms no longer compared
    (they are ignored), as the ``adastop`` CLI allows. Files after the test decided are not
    used: ``test.k`` tells how many were.
    """
    if not paths:
        raise UserError("--csv needs at least one score file")
    tables = [read_adastop_csv(p) for p in paths]
    names = list(tables[0])
    if algos is not None:
        algos = check_algo_names(algos)
        for a in algos:
            if a not in names:
                raise UserError(f"algos: '{a}' is not a column of '{paths[0]}'"
                                f"{did_you_mean(a, names)}; its columns are {names}")
        names = list(algos)
    else:
        check_algo_names(names)
    if n is None:
        n = len(next(iter(tables[0].values())))
    check_test_params(n, K, B, alpha, beta, comparisons, seed)
    if len(paths) > K:
        raise UserError(f"{len(paths)} score files but K = {K} interims; give at most K files "
                        "or raise K (K must be fixed before the first interim)")
    for path, table in zip(paths, tables, strict=True):
        rows = len(next(iter(table.values())))
        if rows != n:
            raise UserError(f"'{path}' holds {rows} scores per algorithm, expected n = {n}; "
                            "every interim needs the same n")
    test = AdaStop(n, K, B, alpha, beta, comparisons, algorithms=names, rng=seed)
    for path, table in zip(paths, tables, strict=True):
        if test.is_finished:
            break
        need = test.algorithms_to_run
        missing = [a for a in need if a not in table]
        if missing:
            raise UserError(f"'{path}' has no column for {', '.join(missing)}; interim "
                            f"{test.k + 1} needs scores of {need}")
        test.partial_compare({a: table[a] for a in need})
        if on_interim is not None:
            on_interim(test, InterimReport(test.k, tuple(need), range(0), 0, 0))
    return test
