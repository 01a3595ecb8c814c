"""``rlworks tune EXPERIMENT.toml``: hyperparameter search on tuning seeds, report on test seeds.

The search and the test live in ``rlworks.exec.tune``; this module parses the command line and
renders the result: ``tune/<name>/report.md`` (best parameters, tuned vs default on the test
seeds with IQM, 95% CIs and the probability of improvement, every trial), ``trials.png``
(objective per trial) and the tuned-vs-default table on stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rlworks.cli._args import positive_int


def register(sub: Any) -> None:
    tune = sub.add_parser(
        "tune", help="tune hyperparameters with Optuna; report tuned vs default on test seeds",
        description="Search the [tune.space] of an experiment file on its tuning seeds "
                    "(Optuna TPE or random search, median pruning, parallel workers), then "
                    "train the best and the default configuration on the test seeds and "
                    "report both with IQM and 95% bootstrap CIs. Rerunning the command "
                    "continues the study. See docs/tuning.md.")
    tune.add_argument("experiment_file", metavar="EXPERIMENT.toml")
    tune.add_argument("--trials", type=positive_int, default=None, metavar="N",
                      help="trials in total, counting those already done (default: [tune] "
                           "trials)")
    tune.add_argument("--workers", type=positive_int, default=None, metavar="W",
                      help="worker processes (default: [tune] workers, else one per core)")
    tune.add_argument("--sampler", choices=("tpe", "random"), default=None,
                      help="search algorithm (default: [tune] sampler, else tpe)")
    tune.add_argument("--resume", action="store_true",
                      help="continue an existing study (an error if there is none); a plain "
                           "rerun also continues one")
    tune.add_argument("--json", action="store_true",
                      help="print the result (best parameters, tuned vs default) as JSON")
    tune.set_defaults(func=cmd_tune)




def cmd_tune(args: argparse.Namespace) -> int:
    from rlworks.exec.experiment import load_experiment
    from rlworks.exec.tune import tune
    from rlworks.exec.tune_spec import parse_tune
    from rlworks.track.store import RunStore

    exp = load_experiment(args.experiment_file)
    parse_tune(exp)  # every input error before the store is touched
    store = RunStore(args.store)
    try:
        result = tune(exp, store, trials=args.trials, workers=args.workers,
                      sampler=args.sampler, resume=args.resume)
    except KeyboardInterrupt:
        print("interrupted; run the same command again to continue the study (finished "
              "trials and runs are kept)", file=sys.stderr)
        return 130
    plot = plot_trials(result.trials, result.directory / "trials.png")
    report = result.directory / "report.md"
    report.write_text(render_report(result, plot))
    if args.json:
        print(json.dumps({"best_trial": result.best.number, "best_value": result.best.value,
                          "best_params": result.best.params, "counts": result.counts(),
                          "test": result.comparison, "report": str(report),
                          "elapsed_s": round(result.elapsed_s, 1)}))
        return 0
    print(comparison_table(result))
    print(f"\nreport: {report}" + (f"\nplot:   {plot}" if plot else ""))
    return 0


# ----------------------------------------------------------------------------- rendering
def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    return str(v)


def _ci(row: Mapping[str, Any]) -> str:
    return f"[{row['ci'][0]:.1f}, {row['ci'][1]:.1f}]"


def comparison_table(result: Any) -> str:
    """Tuned vs default on the test seeds: a Markdown table plus P(tuned > default)."""
    c, spec = result.comparison, result.spec
    lines = ["| configuration | IQM | 95% CI | mean | runs |", "|---|---:|---|---:|---:|"]
    for name in ("tuned", "default"):
        row = c[name]
        lines.append(f"| {name} | {row['iqm']:.1f} | {_ci(row)} | {row['mean']:.1f} | "
                     f"{row['runs']} |")
    poi = c["p_improvement"]
    lines.append("")
    lines.append(f"P(tuned > default) = {poi['estimate']:.2f} "
                 f"[{poi['ci'][0]:.2f}, {poi['ci'][1]:.2f}] (95% CI), on test seeds "
                 f"{list(spec.test_seeds)}; final evaluation return of each run, "
                 f"{spec.budget} steps")
    return "\n".join(lines)


def render_report(result: Any, plot: Path | None = None) -> str:
    """The whole report as Markdown."""
    from rlworks.exec.tune_spec import OBJECTIVES

    spec, best = result.spec, result.best
    counts = ", ".join(f"{n} {state}" for state, n in sorted(result.counts().items()))
    out = [
        f"# Tuning report: {spec.name}",
        "",
        f"{spec.algo} on {spec.env_id}: {len(result.trials)} trials ({counts}), sampler "
        f"{spec.sampler}, pruner {spec.pruner}, {spec.budget} env steps "
        f"per run.",
        "",
        f"- Objective (tuning seeds {list(spec.tuning_seeds)}): {spec.objective}, "
        f"{OBJECTIVES[spec.objective]}.",
        f"- Test seeds {list(spec.test_seeds)}: never trained on during the search; the tuned "
        "and the default configuration are compared on them only.",
        "- Default configuration: the algorithm's defaults < tuned per-env defaults (zoo) < "
        "the experiment's [config].",
        "",
        f"## Best configuration: trial {best.number}",
        "",
        f"Objective {best.value:.1f} on the tuning seeds (an optimistic estimate: it is the "
        "best of many noisy trials; the test seeds below are the honest one).",
        "",
        "| parameter | searched | tuned | default |",
        "|---|---|---|---|",
    ]
    default_cfg = spec.config({}, spec.test_seeds[0])
    for p in spec.space:
        out.append(f"| {p.name} | {p.describe()} | {_fmt(best.params.get(p.name))} | "
                   f"{_fmt(getattr(default_cfg, p.name))} |")
    out += ["", "## Tuned vs default on the test seeds", "", comparison_table(result), "",
            "| configuration | seed | eval return | run |", "|---|---:|---:|---|"]
    for name in ("tuned", "default"):
        for s in result.final[name]:
            out.append(f"| {name} | {s.get('seed')} | {s.get('eval_return_mean', math.nan):.1f}"
                       f" | {s.get('run_id')} |")
    out += ["", "IQM: interquartile mean over runs; CIs: 95% stratified bootstrap "
            "(Agarwal et al., 2021); P(tuned > default): probability that a tuned run beats a "
            "default run (Mann-Whitney U / n m).", ""]
    if plot is not None:
        out += [f"![objective per trial]({plot.name})", ""]
    out += ["## All trials", "", _trials_table(result.trials, spec), ""]
    return "\n".join(out)


def _trials_table(trials: list[Any], spec: Any) -> str:
    names = [p.name for p in spec.space]
    head = ["trial", "state", "objective", *names, "per tuning seed", "time (s)", "runs"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for t in trials:
        seeds = t.user_attrs.get("seed_values") or []
        duration = (t.datetime_complete - t.datetime_start).total_seconds() \
            if t.datetime_complete and t.datetime_start else math.nan
        if t.state.name == "COMPLETE":
            value = f"{t.value:.1f}"
        elif t.state.name == "PRUNED" and t.intermediate_values:
            step = max(t.intermediate_values)
            value = f"pruned at step {step} (train return {t.intermediate_values[step]:.1f})"
        else:
            value = "-"
        runs = " ".join(str(r) for r in (t.user_attrs.get("run_ids") or {}).values())
        cells = [str(t.number), t.state.name.lower(), value,
                 *[_fmt(t.params.get(n, "-")) for n in names],
                 " ".join(f"{v:.1f}" for v in seeds) or "-", f"{duration:.0f}", runs]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_trials(trials: list[Any], path: Path) -> Path | None:
    """Objective per trial (pruned ones at their last intermediate value) and best so far."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    # Optuna gives a pruned trial its last intermediate value as value: keep them apart.
    done = [(t.number, t.value) for t in trials if t.state.name == "COMPLETE"]
    pruned = [(t.number, t.intermediate_values[max(t.intermediate_values)])
              for t in trials if t.state.name == "PRUNED" and t.intermediate_values]
    if not done:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    ax.plot(*zip(*done, strict=True), "o", color="C0", label="objective (complete)")
    if pruned:
        ax.plot(*zip(*pruned, strict=True), "x", color="C3",
                label="pruned (last training return)")
    best, line = -math.inf, []
    for n, v in done:
        best = max(best, v)
        line.append((n, best))
    line.append((trials[-1].number, best))
    ax.step(*zip(*line, strict=True), where="post", color="C1", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel("objective (tuning seeds)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3, fontsize=8,
              frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
