"""End-to-end claim of the LLM core: RL after `rlworks llm pretrain` raises held-out pass@1 and
greedy accuracy, for GRPO (5 seeds) and RLOO, ReMax, Dr. GRPO (3 seeds each) at equal samples.

    python experiments/llm_e2e.py --base tinylm --methods grpo:5,rloo:3,remax:3,dr_grpo:3

Every run is a tracked `rlworks llm train PRESET` run in the store under one experiment name;
finished (preset, seed) runs are reused, so after a kill the same command continues. The report
gives, per method, the IQM over seeds of (final - start) for greedy accuracy and sampled pass@1
on the held-out split with a 95% percentile-bootstrap CI, written with date and machine into
the report file, plus a plot of both against RL steps.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "experiments"))

from _common import iqm_ci, run_commands  # noqa: E402


def parse_methods(spec: str) -> list[tuple[str, int]]:
    out = []
    for part in spec.split(","):
        name, _, n = part.partition(":")
        out.append((name.strip(), int(n or 3)))
    return out


def finished_runs(store, experiment: str) -> dict[tuple[str, int], object]:
    runs = {}
    for r in store.list_runs():
        if r.experiment == experiment and r.status == "finished":
            runs[(r.algo.removeprefix("llm-"), r.seed)] = r
    return runs


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--base", required=True, help="the pretrained model directory")
    ap.add_argument("--methods", default="grpo:5,rloo:3,remax:3,dr_grpo:3")
    ap.add_argument("--store", default=str(ROOT / "rlworks-runs"))
    ap.add_argument("--experiment", default="llm-e2e")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--report", default=str(ROOT / "docs" / "llm" / "results.md"))
    ap.add_argument("--plot", default=str(ROOT / "docs" / "llm" / "img" / "e2e_curves"))
    ap.add_argument(
        "--section",
        default=None,
        help="name of the marked section of --report that the table replaces (default 'e2e', "
        "or 'curricula' with --curriculum; another name keeps an earlier table beside it)",
    )
    ap.add_argument(
        "--curriculum",
        action="store_true",
        help="report samples to reach GRPO's final training reward instead "
        "(for grpo_filtered / grpo_dump against grpo)",
    )
    ap.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="--flag=value",
        help="extra `rlworks llm train` flags for every run",
    )
    ap.add_argument(
        "--report-only",
        action="store_true",
        help="write the report from the finished runs in the store; start no run",
    )
    args = ap.parse_args()
    args.section = args.section or ("curricula" if args.curriculum else "e2e")

    from rlworks.track.store import RunStore

    store = RunStore(args.store)
    methods = parse_methods(args.methods)
    done = finished_runs(store, args.experiment)
    jobs = []
    # Seed-major order, so that a run cut short leaves every method with as many seeds.
    for seed in range(max(n for _, n in methods)):
        for preset, n in methods:
            if seed >= n or (preset, seed) in done:
                continue
            jobs.append(
                [
                    sys.executable,
                    "-m",
                    "rlworks.cli.main",
                    "--store",
                    args.store,
                    "llm",
                    "train",
                    preset,
                    "--model",
                    args.base,
                    "--seed",
                    str(seed),
                    "--experiment",
                    args.experiment,
                    "--no-progress",
                    "--torch-threads",
                    str(args.threads),
                    *args.settings,
                ]
            )
    if not args.report_only:
        run_commands([(cmd, " ".join(cmd[3:])) for cmd in jobs], args.workers, args.threads)
    done = finished_runs(store, args.experiment)
    if args.curriculum:
        report_curriculum(store, done, methods, args)
    else:
        report(store, done, methods, args)
    return 0


def mixture_accuracy(counts: dict[str, tuple[np.ndarray, np.ndarray]], window: float) -> np.ndarray:
    """The policy's accuracy on the uniform mixture of task sources, one value per step.

    ``counts[source] = (correct, generated)``, each (T,) per step (0 where the source was not
    drawn). At step t each source's accuracy pools the trailing steps that together generated
    at least ``window`` samples (all sources counted); a source not drawn in that window keeps
    its last estimate. The mixture accuracy is the plain mean over sources, NaN until every
    source has an estimate. Measured on everything generated, before any filter, and weighted
    equally over sources, it compares a uniform sampler, a filter and DUMP's skewed sampler on
    one scale."""
    sources = sorted(counts)
    c = np.array([counts[s][0] for s in sources], dtype=float)  # (S, T)
    n = np.array([counts[s][1] for s in sources], dtype=float)
    total = np.concatenate([[0.0], np.cumsum(n.sum(0))])  # samples before step t
    cc = np.concatenate([np.zeros((len(sources), 1)), np.cumsum(c, 1)], 1)
    cn = np.concatenate([np.zeros((len(sources), 1)), np.cumsum(n, 1)], 1)
    steps = c.shape[1]
    last = np.full(len(sources), np.nan)
    out = np.full(steps, np.nan)
    for t in range(steps):
        # smallest trailing window [j, t] with at least `window` samples (or all of [0, t])
        j = int(np.searchsorted(total, total[t + 1] - window, side="right")) - 1
        j = max(j, 0)
        num, den = cc[:, t + 1] - cc[:, j], cn[:, t + 1] - cn[:, j]
        seen = den > 0
        last[seen] = num[seen] / den[seen]
        if np.isfinite(last).all():
            out[t] = last.mean()
    return out


def run_mixture_curve(store, run_id: str, window: float) -> tuple[np.ndarray, np.ndarray]:
    """(samples generated after each step, mixture accuracy) of one stored run."""
    m = store.metrics(run_id)
    steps = np.array(m["perf/samples_seen"][0])
    samples = np.array(m["perf/samples_seen"][1])
    counts = {}
    for key in m:
        if key.startswith("rollout/gen_n/"):
            src = key.removeprefix("rollout/gen_n/")
            per_step = []
            for name in (f"rollout/gen_correct/{src}", key):
                got = dict(zip(*m[name], strict=True))
                per_step.append(np.array([got.get(s, 0.0) for s in steps]))
            counts[src] = (per_step[0], per_step[1])
    return samples, mixture_accuracy(counts, window)


def report_curriculum(store, done, methods, args) -> None:
    """Samples (and steps) to reach plain GRPO's final training accuracy on the uniform
    mixture of sources, IQM over seeds with 95% CIs (a run that never reaches it counts with
    its whole budget; the table says how many did), the held-out gains, and a plot."""
    from _report import machine

    from rlworks.eval.statplots import plot_learning_curves

    window = 2560.0  # samples: 10 steps of plain GRPO
    curves = {k: run_mixture_curve(store, r.run_id, window) for k, r in done.items()}
    base = [k for k in done if k[0] == "grpo"]
    if not base:
        print("no finished grpo runs to define the target")
        return
    target = float(np.mean([curves[k][1][-1] for k in base]))
    cfg = done[base[0]].config
    lines = [
        f"## Curricula: samples to reach GRPO's final training accuracy "
        f"({dt.date.today().isoformat()})",
        "",
        f"Machine: {machine()}. Runs: `python experiments/llm_e2e.py --base {args.base} "
        f"--curriculum --methods {args.methods} --workers {args.workers} --threads "
        f"{args.threads} --experiment {args.experiment}{_sets(args)}`.",
        f"Training sources `{cfg['tasks']}` (pool of {cfg['pool_size']} train problems), "
        f"{cfg['prompts_per_step']} prompts x {cfg['num_generations']} samples per step, "
        f"every run stopped at {cfg['max_samples']:,} generated samples (filtered-out ones "
        "included), so filtering takes fewer steps.",
        "",
        "Training accuracy is measured on every generated sample before any filter, per "
        f"source over the last {window:,.0f} samples, averaged uniformly over the sources: one "
        "scale for the uniform sampler, the filter and DUMP's skewed sampler. Target: plain "
        f"GRPO's final value, **{target:.3f}** (mean of its {len(base)} runs). IQM over seeds "
        "with a 95% percentile-bootstrap CI; a run that never reaches the target counts with "
        "its whole budget. Held-out: test-split problems of "
        f"`{cfg['eval_tasks'] or cfg['tasks']}`, final minus start.",
        "",
        "| method | seeds | reached | samples to target, IQM [95% CI] | steps to target, IQM "
        "[95% CI] | final training accuracy | held-out greedy delta IQM [95% CI] "
        "| held-out pass@1 delta IQM [95% CI] |",
        "|---|---|---|---|---|---|---|---|",
    ]
    panel: dict[str, tuple] = {}
    for preset, n in methods:
        keys = [(preset, s) for s in range(n) if (preset, s) in done]
        if not keys:
            continue
        samples_at, steps_at, finals = [], [], []
        for k in keys:
            seen, acc = curves[k]
            hit = np.nonzero(acc >= target - 1e-12)[0]
            samples_at.append(seen[hit[0]] if hit.size else np.inf)
            steps_at.append(hit[0] + 1 if hit.size else np.inf)
            finals.append(acc[-1])
        reached = int(np.isfinite(samples_at).sum())
        budget = np.array([done[k].summary["samples_seen"] for k in keys], dtype=float)
        nsteps = np.array([done[k].summary["steps"] for k in keys], dtype=float)
        smp = iqm_ci(np.where(np.isfinite(samples_at), samples_at, budget), "llm-cur")
        stp = iqm_ci(np.where(np.isfinite(steps_at), steps_at, nsteps), "llm-cur")
        s = [done[k].summary for k in keys]
        g = iqm_ci([x["eval/greedy_acc"] - x["eval/greedy_acc_start"] for x in s], "llm-cur")
        p = iqm_ci([x["eval/pass@1"] - x["eval/pass@1_start"] for x in s], "llm-cur")
        lines.append(
            f"| {preset} | {len(keys)} | {reached} | {smp[0]:,.0f} [{smp[1]:,.0f}, "
            f"{smp[2]:,.0f}] | {stp[0]:.0f} [{stp[1]:.0f}, {stp[2]:.0f}] | "
            f"{np.mean(finals):.3f} | {g[0]:+.3f} [{g[1]:+.3f}, {g[2]:+.3f}] | "
            f"{p[0]:+.3f} [{p[1]:+.3f}, {p[2]:+.3f}] |"
        )
        grid = np.linspace(0, max(budget), 101)
        vals = np.array([np.interp(grid, *curves[k], left=np.nan) for k in keys])
        with warnings.catch_warnings():  # grid points before every source was seen: NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            panel[preset] = (grid, np.nanmean(vals, 0), None)
    plot = Path(args.plot).with_name("curricula")
    plot.parent.mkdir(parents=True, exist_ok=True)
    plot_learning_curves(
        {"training accuracy, uniform over sources": panel},
        plot,
        ylabel="accuracy (all generated samples)",
        xlabel="samples generated",
        title=f"Curricula at equal samples (mean over seeds; target {target:.3f})",
    )
    lines += ["", f"![curricula](img/{plot.name}.png)", ""]
    text = "\n".join(lines)
    print(text)
    write_section(Path(args.report), args.section, text)


def _sets(args) -> str:
    """The ``--set`` flags as typed, so that the command in a report can be run again."""
    return "".join(f" --set={x}" for x in args.settings)


def write_section(out: Path, name: str, text: str) -> None:
    from _report import replace_marked

    replace_marked(out, name, text, "# LLM post-training results\n\n")


def report(store, done, methods, args) -> None:
    from _report import machine

    from rlworks.eval.statplots import plot_learning_curves

    rows = []
    panels: dict[str, dict[str, tuple]] = {"greedy accuracy": {}, "pass@1 (T=1)": {}}
    cfg = None
    for preset, n in methods:
        runs = [done[(preset, s)] for s in range(n) if (preset, s) in done]
        if not runs:
            continue
        cfg = runs[0].config
        s = [r.summary for r in runs]
        d_greedy = np.array([x["eval/greedy_acc"] - x["eval/greedy_acc_start"] for x in s])
        d_pass = np.array([x["eval/pass@1"] - x["eval/pass@1_start"] for x in s])
        g, p = iqm_ci(d_greedy, "llm-e2e"), iqm_ci(d_pass, "llm-e2e")
        rows.append(
            (
                preset,
                len(runs),
                np.mean([x["eval/greedy_acc_start"] for x in s]),
                np.mean([x["eval/greedy_acc"] for x in s]),
                g,
                np.mean([x["eval/pass@1_start"] for x in s]),
                np.mean([x["eval/pass@1"] for x in s]),
                p,
                np.median([x["train_time_s"] for x in s]),
                np.mean([x["samples_seen"] for x in s]),
            )
        )
        for key, panel in (("eval/greedy_acc", "greedy accuracy"), ("eval/pass@1", "pass@1 (T=1)")):
            curves = [store.metrics(r.run_id, [key])[key] for r in runs]
            steps = np.array(curves[0][0])
            vals = np.array([c[1][: len(steps)] for c in curves])
            panels[panel][preset] = (steps, vals.mean(axis=0), None)
    if not rows:
        print("no finished runs")
        return
    Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
    plot_learning_curves(
        panels,
        args.plot,
        ylabel="held-out accuracy",
        xlabel="RL step",
        title="RL after pretraining: held-out accuracy (mean over seeds)",
    )
    lines = [
        f"## End to end: RL after pretraining ({dt.date.today().isoformat()})",
        "",
        f"Machine: {machine()}. Base: `{args.base}`. Runs: `python experiments/llm_e2e.py "
        f"--methods {args.methods} --workers {args.workers} --threads {args.threads}`"
        + _sets(args)
        + ".",
        f"Training split `{cfg['tasks']}` (train problems), evaluation on held-out test-split "
        f"problems of `{cfg['eval_tasks'] or cfg['tasks']}` ({cfg['eval_problems']} problems; "
        f"pass@1 from {cfg['eval_samples']} samples each at T={cfg['temperature']}). "
        f"{cfg['steps']} steps x {cfg['prompts_per_step']} prompts x {cfg['num_generations']} "
        f"samples, lr {cfg['lr']}, {cfg['num_iterations']} passes x {cfg['minibatches']} "
        "minibatches.",
        "",
        "Deltas are final minus start of each run; IQM over seeds with a 95% percentile "
        "bootstrap CI (20,000 resamples).",
        "",
        "| method | seeds | greedy start | greedy end | greedy delta IQM [95% CI] | pass@1 start "
        "| pass@1 end | pass@1 delta IQM [95% CI] | wall time per run (s) | samples |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, n, gs, ge, g, ps, pe, p, secs, samples in rows:
        lines.append(
            f"| {name} | {n} | {gs:.3f} | {ge:.3f} | {g[0]:+.3f} [{g[1]:+.3f}, "
            f"{g[2]:+.3f}] | {ps:.3f} | {pe:.3f} | {p[0]:+.3f} [{p[1]:+.3f}, {p[2]:+.3f}]"
            f" | {secs:.0f} | {samples:.0f} |"
        )
    lines += ["", f"![curves](img/{Path(args.plot).name}.png)", ""]
    text = "\n".join(lines)
    print(text)
    write_section(Path(args.report), args.section, text)
    print(json.dumps({"report": args.report}))


if __name__ == "__main__":
    raise SystemExit(main())
