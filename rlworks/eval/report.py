"""``rlworks compare``: aggregate statistics and plots from stored runs (no training).

The score matrix of an algorithm is ``(R, T)`` = (runs, envs), as in :mod:`rlworks.eval.stats`.
A run's score is its ``summary["eval_return_mean"]`` (``score="eval"``, the final evaluation of
the training driver) or the mean of the last 10% of its logged points of ``metric``
(``score="final"``). Only finished runs count.

Normalisation (``normalize="auto"``): scores become ``(x - random) / (target - random)`` when
every compared env has reference scores in :data:`REFERENCE_SCORES`; otherwise, with more than
one env, ``(x - min) / (max - min)`` per env over all compared runs' scores; with one env the
raw scores are kept (and the optimality gap, which needs a scale, is left out). The report
says which rule was used.

Everything random comes from ``make_rng(seed, "compare", ...)``: the same store and seed
give the same report.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rlworks.core.errors import UserError, did_you_mean, unknown
from rlworks.core.seeding import make_rng
from rlworks.eval import stats
from rlworks.eval.bootstrap import get_interval_estimates
from rlworks.eval.report_md import aggregate_table as aggregate_table  # re-exported
from rlworks.eval.report_md import command_line, write_report
from rlworks.track.records import RunRecord

DEFAULT_METRIC = "rollout/episodic_return"
EVAL_METRIC = "eval/return"
SCORES = ("eval", "final")
NORMALIZATIONS = ("auto", "reference", "minmax", "none")
FINAL_FRACTION = 0.1
"""``score="final"`` averages this last fraction of a run's logged points (at least one)."""

REFERENCE_SCORES: dict[str, tuple[float, float]] = {
    "CartPole-v1": (21.4, 500.0),
    "Acrobot-v1": (-499.0, -60.0),
    "MountainCar-v0": (-200.0, -100.0),
    "MountainCarContinuous-v0": (-33.0, 95.0),
    "Pendulum-v1": (-1216.0, -150.0),
}
"""Env -> (random-policy return, target return) for the native envs. Random: mean over 500+
episodes of uniform random actions on rlworks' native envs. Target: the maximum (CartPole) or a
strong agent's return (Acrobot ~-60, MountainCar -100, MountainCarContinuous 95, Pendulum
-150), so a normalised score of 1 means "as good as a well-tuned agent" and can be exceeded."""

NORMALIZATION_TEXT = {
    "reference": "(score - random) / (target - random) per env, with the reference scores below",
    "minmax": "(score - min) / (max - min) per env, min and max over all compared runs' "
              "scores (no reference scores for every env)",
    "none": "none: raw scores (one env); the optimality gap is left out, as it needs a scale",
}


@dataclasses.dataclass(frozen=True)
class CompareResult:
    out_dir: Path
    report: Path
    """``report.md``; ``report.json`` beside it holds the same numbers."""
    algos: list[str]
    envs: list[str]
    """The envs in the aggregate (those every algorithm has runs on)."""
    normalization: str
    """"reference", "minmax" or "none"."""
    rows: list[dict[str, Any]]
    """Aggregates: ``{"algorithm", "metric", "estimate", "lower", "upper", "num_runs"}``."""
    pairs: list[dict[str, Any]]
    """``{"x", "y", "estimate", "lower", "upper"}``: P(X > Y) with its CI."""
    per_env: list[dict[str, Any]]
    """``{"algorithm", "env", "n", "mean", "std"}`` of raw scores, every scored run."""
    plots: dict[str, tuple[Path, Path]]
    notes: list[str]
    command: str


@dataclasses.dataclass
class _Scored:
    run: RunRecord
    score: float | None
    curve: tuple[np.ndarray, np.ndarray] | None  # steps, values of `metric` (finite only)


def compare(store: Any, experiment: str | None = None, algos: Sequence[str] | None = None,
            envs: Sequence[str] | None = None, metric: str | None = None,
            score: str = "eval", out_dir: str | Path | None = None, reps: int = 2_000,
            seed: int = 0, normalize: str = "auto", curve_points: int = 50,
            plots: bool = True) -> CompareResult:
    """Build the comparison of the finished runs matching the filters; write it to ``out_dir``.

    ``metric`` gives the learning curves and the ``score="final"`` scores; by default
    ``eval/return`` if every run logged periodic evaluations (``eval_every``), else
    :data:`DEFAULT_METRIC`. ``out_dir`` defaults to ``<store>/reports/<experiment or "all">``;
    ``plots=False`` writes only report.md and report.json (the numbers, in a fraction of the
    time).
    Returns the numbers and the paths; raises :class:`UserError` for filters nothing matches, a
    metric no run has (when it is named or needed for the scores), fewer than two scored runs or
    an algorithm with no env in common with the others.
    """
    named_metric = metric
    strict = metric is not None or score == "final"
    if score not in SCORES:
        raise unknown("score", score, SCORES)
    if normalize not in NORMALIZATIONS:
        raise unknown("normalization", normalize, NORMALIZATIONS)
    if int(reps) < 1:
        raise UserError(f"reps must be a positive number of bootstrap repetitions, got {reps}")
    out = Path(out_dir) if out_dir is not None else (
        Path(store.path) / "reports" / (experiment or "all"))
    command = command_line(store, experiment, algos, envs, named_metric, score, out, reps, seed,
                       normalize, plots)
    notes: list[str] = []
    runs = select_runs(store, experiment, algos, envs, notes)
    metric = metric or _default_metric(store, runs)
    scored = score_runs(store, runs, metric, score, notes, strict)

    cells: dict[tuple[str, str], list[_Scored]] = {}
    for s in scored:
        if s.score is not None:
            cells.setdefault((s.run.algo, s.run.env_id), []).append(s)
    names = sorted({a for a, _ in cells})
    all_envs = sorted({e for _, e in cells})
    if sum(len(v) for v in cells.values()) < 2:
        raise UserError("only one run has a score; a comparison needs at least two finished "
                        "runs (more seeds: `rlworks train ... --seed N`)")
    common = [e for e in all_envs if all((a, e) in cells for a in names)]
    for a in names:
        lacking = [e for e in all_envs if (a, e) not in cells]
        if lacking:
            notes.append(f"{a} has no scored run on {', '.join(lacking)}: "
                         f"{'that env is' if len(lacking) == 1 else 'those envs are'} left out "
                         "of the aggregate (still in the per-env table)")
    if not common:
        have = "; ".join(f"{a}: {', '.join(e for e in all_envs if (a, e) in cells)}"
                         for a in names)
        raise UserError(f"no env has scored runs of every algorithm ({have}); pick algorithms "
                        "with --algos or envs with --envs that overlap")

    raw = _matrices(cells, names, common, notes)
    used, norm = _normalize(raw, common, normalize, notes)
    metric_names = list(stats.AGGREGATE_NAMES if used != "none" else stats.AGGREGATE_NAMES[:3])
    rows, points, cis = _aggregates(norm, metric_names, reps, seed)
    pairs = _pairs(norm, reps, seed)
    per_env = []
    for (a, e), v in sorted(cells.items()):
        x = np.array([s.score for s in v], dtype=np.float64)
        per_env.append({"algorithm": a, "env": e, "n": x.size, "mean": float(x.mean()),
                        "std": float(x.std(ddof=1)) if x.size > 1 else 0.0})

    out.mkdir(parents=True, exist_ok=True)
    figures = _plots(out, scored, all_envs, norm, used, metric_names, points, cis, pairs, metric,
                     reps, seed, curve_points, notes) if plots else {}
    result = CompareResult(out, out / "report.md", names, common, used, rows, pairs, per_env,
                           figures, notes, command)
    write_report(result, experiment, metric, score, reps, seed)
    return result


def _plots(out: Path, scored: list[_Scored], all_envs: list[str], norm: dict[str, np.ndarray],
           used: str, metric_names: list[str], points: dict[str, Any], cis: dict[str, Any],
           pairs: list[dict[str, Any]], metric: str, reps: int, seed: int, curve_points: int,
           notes: list[str]) -> dict[str, tuple[Path, Path]]:
    from rlworks.eval import statplots as sp

    colors = sp.algorithm_colors(norm)
    unit = {"reference": "normalized score", "minmax": "min-max normalized score",
            "none": "score"}[used]
    plots = {"interval_estimates": sp.plot_interval_estimates(
        points, cis, metric_names, out / "interval_estimates", xlabel=unit, colors=colors)}
    if pairs:
        plots["probability_of_improvement"] = sp.plot_probability_of_improvement(
            {(p["x"], p["y"]): (p["estimate"], (p["lower"], p["upper"])) for p in pairs},
            out / "probability_of_improvement", colors=colors)
    taus = _tau_grid(norm, used)
    prof, bands = stats.performance_profile(norm, taus, make_rng(seed, "compare", "profile"),
                                            reps=reps)
    plots["performance_profile"] = sp.plot_performance_profile(
        taus, prof, bands, out / "performance_profile", xlabel=f"{unit} τ",
        ylabel="fraction of runs with score > τ", colors=colors)
    panels = _learning_curves(scored, all_envs, reps, seed, curve_points, notes)
    if panels:
        plots["learning_curves"] = sp.plot_learning_curves(
            panels, out / "learning_curves", ylabel=f"IQM of {metric}", colors=colors)
    else:
        notes.append(f"no learning curves: no run has two or more points of '{metric}'")
    return plots


# ----------------------------------------------------------------------------- selection
def _default_metric(store: Any, runs: list[RunRecord]) -> str:
    """Periodic evaluations (``eval/return``, from ``eval_every``) when every run has them:
    sample-efficiency curves of the deterministic policy; else the training returns."""
    for run in runs:
        steps = store.metrics(run.run_id, [EVAL_METRIC]).get(EVAL_METRIC, ([], []))[0]
        if len(steps) < 3:
            return DEFAULT_METRIC
    return EVAL_METRIC


def select_runs(store: Any, experiment: str | None, algos: Sequence[str] | None,
                envs: Sequence[str] | None, notes: list[str]) -> list[RunRecord]:
    """The finished runs matching the filters; a filter value nothing has is an error."""
    everything = store.list_runs()
    if not everything:
        raise UserError(f"store '{store.path}' holds no runs; train some (`rlworks train`) or "
                        "import them (`rlworks import FILE`), or pass --store DIR")
    pool = everything
    if experiment is not None:
        pool = [r for r in everything if r.experiment == experiment]
        if not pool:
            named = {r.experiment for r in everything if r.experiment}
            if not named:
                raise UserError(f"no run in store '{store.path}' belongs to an experiment, so "
                                f"none to '{experiment}'; drop --experiment to compare all runs")
            raise unknown("experiment", experiment, named)
    for kind, attr, wanted in (("algorithm", "algo", algos), ("env", "env_id", envs)):
        if wanted:
            present = {getattr(r, attr) for r in pool}
            for name in wanted:
                if name not in present:
                    where = f" in experiment '{experiment}'" if experiment else ""
                    err = unknown(kind, name, present)
                    raise UserError(f"{err}{where}")
            pool = [r for r in pool if getattr(r, attr) in set(wanted)]
    finished = [r for r in pool if r.status == "finished"]
    if not finished:
        counts = _counts(r.status for r in pool)
        raise UserError(f"none of the {len(pool)} matching runs is finished ({counts}); "
                        "compare needs finished runs")
    if len(finished) < len(pool):
        notes.append(f"{len(pool) - len(finished)} matching runs are not finished and are left "
                     f"out ({_counts(r.status for r in pool if r.status != 'finished')})")
    return finished


def score_runs(store: Any, runs: list[RunRecord], metric: str, score: str,
               notes: list[str], strict: bool = True) -> list[_Scored]:
    """Each run's score (``None`` if it has none) and its curve of ``metric``.

    ``strict``: a metric that no run logged is an error (else the curves are just missing).
    """
    out = []
    for r in runs:
        steps, values = store.metrics(r.run_id, [metric]).get(metric, ([], []))
        s, v = np.asarray(steps, dtype=np.float64), np.asarray(values, dtype=np.float64)
        keep = np.isfinite(v)
        curve = (s[keep], v[keep]) if keep.any() else None
        if score == "eval":
            value = r.summary.get("eval_return_mean")
            ok = isinstance(value, int | float) and math.isfinite(value)
            out.append(_Scored(r, float(value) if ok and value is not None else None, curve))
        else:
            tail = None
            if curve is not None:
                k = max(1, math.ceil(FINAL_FRACTION * curve[1].size))
                tail = float(np.mean(curve[1][-k:]))
            out.append(_Scored(r, tail, curve))
    if strict and all(s.curve is None for s in out):
        keys = sorted({k for r in runs for k in store.last_metrics(r.run_id)})
        hint = did_you_mean(metric, keys) or (
            f"; the runs log: {', '.join(keys[:12])}" if keys else "; the runs log no metrics")
        raise UserError(f"no selected run logged metric '{metric}'{hint} (--metric KEY)")
    missing = [s.run for s in out if s.score is None]
    if len(missing) == len(out):
        why = ("has summary eval_return_mean (a final evaluation); use --score final to score "
               f"runs by the last {FINAL_FRACTION:.0%} of '{metric}'") if score == "eval" else (
               f"logged a finite '{metric}'")
        raise UserError(f"no selected run {why}")
    if missing:
        what = "no eval_return_mean in its summary" if score == "eval" else f"no '{metric}'"
        notes.append(f"{len(missing)} runs have {what} and are not scored: "
                     + ", ".join(f"{r.run_id} ({r.algo} {r.env_id} seed {r.seed})"
                                 for r in missing[:6]) + (", ..." if len(missing) > 6 else ""))
    return out


def _counts(statuses: Any) -> str:
    counts: dict[str, int] = {}
    for s in statuses:
        counts[s] = counts.get(s, 0) + 1
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))


# ----------------------------------------------------------------------------- the numbers
def _matrices(cells: dict[tuple[str, str], list[_Scored]], names: list[str], envs: list[str],
              notes: list[str]) -> dict[str, np.ndarray]:
    """``(R, T)`` per algorithm; R = its smallest run count over ``envs`` (lowest seeds kept)."""
    out = {}
    for a in names:
        per_env = [sorted(cells[(a, e)], key=lambda s: (s.run.seed, s.run.started_at))
                   for e in envs]
        r = min(len(v) for v in per_env)
        dropped = [s.run for v in per_env for s in v[r:]]
        if dropped:
            notes.append(f"{a}: {r} runs per env enter the aggregate (the matrix is runs x envs); "
                         f"left out there: " + ", ".join(f"{d.run_id} ({d.env_id} seed {d.seed})"
                                                          for d in dropped))
        out[a] = np.array([[v[i].score for v in per_env] for i in range(r)], dtype=np.float64)
    return out


def _normalize(raw: dict[str, np.ndarray], envs: list[str], mode: str,
               notes: list[str]) -> tuple[str, dict[str, np.ndarray]]:
    known = all(e in REFERENCE_SCORES for e in envs)
    if mode == "auto":
        mode = "reference" if known else ("minmax" if len(envs) > 1 else "none")
    if mode == "none":
        return mode, raw
    if mode == "reference":
        if not known:
            missing = [e for e in envs if e not in REFERENCE_SCORES]
            raise UserError(f"no reference scores for {', '.join(missing)}; use --normalize "
                            "minmax (or auto)")
        lo = np.array([REFERENCE_SCORES[e][0] for e in envs])
        hi = np.array([REFERENCE_SCORES[e][1] for e in envs])
        return mode, stats.normalize_scores(raw, lo, hi)
    pooled = np.concatenate(list(raw.values()), axis=0)  # (sum R, T)
    lo, hi = pooled.min(axis=0), pooled.max(axis=0)
    flat = hi == lo
    for e in np.asarray(envs)[flat]:
        notes.append(f"every compared run scored the same on {e}; its normalized score is 0")
    span = np.where(flat, 1.0, hi - lo)
    return mode, {a: (x - lo) / span for a, x in raw.items()}


def _aggregates(norm: dict[str, np.ndarray], metric_names: list[str], reps: int,
                seed: int) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    k = len(metric_names)
    points, cis = get_interval_estimates(
        norm, lambda s: stats.all_aggregates(s)[..., :k], reps,
        make_rng(seed, "compare", "aggregates"))
    rows = [{"algorithm": a, "metric": m, "estimate": float(points[a][i]),
             "lower": float(cis[a][0, i]), "upper": float(cis[a][1, i]),
             "num_runs": int(norm[a].shape[0]), "num_envs": int(norm[a].shape[1])}
            for a in sorted(norm) for i, m in enumerate(metric_names)]
    return rows, points, cis


def _pairs(norm: dict[str, np.ndarray], reps: int, seed: int) -> list[dict[str, Any]]:
    names = sorted(norm)
    combos = {f"{x}>{y}": (norm[x], norm[y]) for i, x in enumerate(names) for y in names[i + 1:]}
    if not combos:
        return []
    points, cis = get_interval_estimates(combos, stats.probability_of_improvement, reps,
                                         make_rng(seed, "compare", "improvement"))
    return [{"x": key.split(">")[0], "y": key.split(">")[1], "estimate": float(points[key]),
             "lower": float(cis[key][0]), "upper": float(cis[key][1])} for key in combos]


def _tau_grid(norm: dict[str, np.ndarray], used: str) -> np.ndarray:
    pooled = np.concatenate([x.ravel() for x in norm.values()])
    lo, hi = float(pooled.min()), float(pooled.max())
    if used != "none":
        lo, hi = min(lo, 0.0), max(hi, 1.0)
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    pad = 0.02 * (hi - lo)
    return np.linspace(lo - pad, hi + pad, 101)


def _learning_curves(scored: list[_Scored], envs: list[str], reps: int, seed: int,
                     points: int, notes: list[str]) -> dict[str, dict[str, tuple[Any, Any, Any]]]:
    """Per env and algorithm: IQM over runs of the curves on a common step grid, with CI."""
    panels: dict[str, dict[str, tuple[Any, Any, Any]]] = {}
    for env in envs:
        by_algo: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        for s in scored:
            if s.run.env_id == env and s.curve is not None and s.curve[0].size >= 2:
                by_algo.setdefault(s.run.algo, []).append(s.curve)
        for algo, curves in sorted(by_algo.items()):
            # The grid spans the steps every run reached, so no curve is extrapolated.
            lo = max(float(c[0][0]) for c in curves)
            hi = min(float(c[0][-1]) for c in curves)
            if hi <= lo:
                notes.append(f"learning curve of {algo} on {env} left out: its runs' step "
                             "ranges do not overlap")
                continue
            grid = np.linspace(lo, hi, points)
            ys = np.stack([np.interp(grid, st, v) for st, v in curves])[:, None, :]  # (R, 1, C)
            point, band = stats.sample_efficiency_curve(
                {algo: ys}, stats.aggregate_iqm, make_rng(seed, "compare", "curve", env, algo),
                reps=reps)
            panels.setdefault(env, {})[algo] = (grid, point[algo], band[algo])
    return panels


# ----------------------------------------------------------------------------- output
