"""The text of a comparison: the Markdown report, the aggregate table, the command line.

``rlworks.eval.report`` computes a :class:`~rlworks.eval.report.CompareResult`; this module
writes it down (``report.md``, ``report.json``) and formats its tables for the terminal.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rlworks.eval.report import CompareResult

def command_line(store: Any, experiment: str | None, algos: Sequence[str] | None,
             envs: Sequence[str] | None, metric: str | None, score: str, out: Path, reps: int,
             seed: int, normalize: str, plots: bool) -> str:
    argv = ["rlworks", "--store", str(store.path), "compare"]
    if experiment is not None:
        argv += ["--experiment", experiment]
    if algos:
        argv += ["--algos", ",".join(algos)]
    if envs:
        argv += ["--envs", ",".join(envs)]
    if metric is not None:
        argv += ["--metric", metric]
    argv += ["--score", score, "--out", str(out), "--reps", str(int(reps)), "--seed",
             str(int(seed))]
    if normalize != "auto":
        argv += ["--normalize", normalize]
    if not plots:
        argv.append("--no-plots")
    return shlex.join(argv)


def aggregate_table(result: CompareResult, markdown: bool = False) -> str:
    """The aggregates, one row per algorithm: ``estimate [lower, upper]`` per metric."""
    metrics = list(dict.fromkeys(r["metric"] for r in result.rows))
    titles = {"mean": "mean", "median": "median", "iqm": "IQM", "optimality_gap": "opt. gap"}
    header = ["algorithm", "runs", *(titles[m] for m in metrics)]
    fmt = _fmt(result.normalization)
    table = [header]
    for a in result.algos:
        rows = {r["metric"]: r for r in result.rows if r["algorithm"] == a}
        table.append([a, str(rows[metrics[0]]["num_runs"])] + [
            f"{fmt(rows[m]['estimate'])} [{fmt(rows[m]['lower'])}, {fmt(rows[m]['upper'])}]"
            for m in metrics])
    return _table(table, markdown)


def _fmt(normalization: str) -> Any:
    return (lambda v: f"{v:.3f}") if normalization != "none" else (lambda v: f"{v:.4g}")


def _table(rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(r) + " |" for r in rows]
        lines.insert(1, "|" + "|".join("---" if i == 0 else "---:" for i in range(len(rows[0])))
                     + "|")
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip()
                     for r in rows)


def write_report(res: CompareResult, experiment: str | None, metric: str, score: str,
                  reps: int, seed: int) -> None:
    from rlworks.eval.report import FINAL_FRACTION, NORMALIZATION_TEXT, REFERENCE_SCORES

    envs_all = sorted({p["env"] for p in res.per_env})
    what = ("`eval_return_mean` from each run's summary (its final evaluation)" if score == "eval"
            else f"mean of the last {FINAL_FRACTION:.0%} of each run's logged `{metric}` points")
    n_runs = sum(p["n"] for p in res.per_env)
    lines = [
        f"# Comparison: {experiment or 'all runs'}", "",
        f"- **Runs**: {n_runs} finished runs; algorithms {', '.join(res.algos)}; "
        f"envs {', '.join(envs_all)} (aggregate over {', '.join(res.envs)})",
        f"- **Score**: {what}",
        f"- **Normalisation**: {NORMALIZATION_TEXT[res.normalization]}",
        f"- **Bootstrap**: stratified over runs per env, {reps:,} repetitions, 95% percentile "
        f"CIs, seed {seed}",
        f"- **Regenerate**: `{res.command}`", "",
    ]
    if res.normalization == "reference":
        lines += ["| env | random | target |", "|---|---:|---:|"]
        lines += [f"| {e} | {REFERENCE_SCORES[e][0]:g} | {REFERENCE_SCORES[e][1]:g} |"
                  for e in res.envs]
        lines.append("")
    lines += ["## Aggregate performance (95% CIs)", "",
              aggregate_table(res, markdown=True), "",
              "IQM: mean of the middle 50% of all run x env scores; optimality gap: how far "
              "below 1 the scores fall on average (lower is better).", "",
              _figure(res, "interval_estimates", "Interval estimates: the bar spans the 95% CI, "
                      "the black tick is the point estimate."),
              "## Per environment (raw scores, mean ± sample std, n runs)", ""]
    cells = {(p["algorithm"], p["env"]): p for p in res.per_env}
    table = [["env", *res.algos]]
    for e in envs_all:
        scale = max(abs(c["mean"]) for c in res.per_env if c["env"] == e)
        digits = 1 if scale >= 10 else 3
        table.append([e] + [f"{c['mean']:.{digits}f} ± {c['std']:.{digits}f} (n={c['n']})"
                            if (c := cells.get((a, e))) else "-" for a in res.algos])
    lines += [_table(table, markdown=True), ""]
    lines += ["## Probability of improvement", ""]
    if res.pairs:
        table = [["X", "Y", "P(X > Y)", "95% CI"]]
        table += [[p["x"], p["y"], f"{p['estimate']:.3f}",
                   f"[{p['lower']:.3f}, {p['upper']:.3f}]"] for p in res.pairs]
        lines += [_table(table, markdown=True), "",
                  "P(X > Y): the probability that a run of X scores higher than a run of Y on "
                  "a random env of the aggregate (ties count half); 0.5 means no difference.", "",
                  _figure(res, "probability_of_improvement", "Probability of improvement.")]
    else:
        lines += ["One algorithm only: no pairs to compare.", ""]
    lines += ["## Performance profile", "",
              _figure(res, "performance_profile", "The fraction of runs (all envs) scoring "
                      "above each threshold τ, with 95% CI bands; a curve above another "
                      "dominates it.")]
    lines += ["## Learning curves", ""]
    lines.append(_figure(res, "learning_curves", f"IQM over runs of `{metric}` on a common "
                         "step grid (linear interpolation between logged points), with a 95% "
                         "bootstrap CI band; one panel per env."))
    if res.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in res.notes] + [""]
    res.report.write_text("\n".join(lines))
    doc = {"command": res.command, "normalization": res.normalization, "envs": res.envs,
           "algorithms": res.algos, "score": score, "metric": metric, "reps": reps,
           "seed": seed, "aggregates": res.rows, "probability_of_improvement": res.pairs,
           "per_env": res.per_env, "notes": res.notes}
    (res.out_dir / "report.json").write_text(json.dumps(doc, indent=1) + "\n")


def _figure(res: CompareResult, name: str, caption: str) -> str:
    if name not in res.plots:
        return "(not plotted; see the notes)\n" if res.plots else "(plots off: --no-plots)\n"
    png, svg = res.plots[name]
    return f"![{name}]({png.name})\n\n{caption} ([SVG]({svg.name}))\n"
