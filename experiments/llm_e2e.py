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
    args = ap.parse_args()
    args.section = args.section or ("curricula" if args.curriculum else "e2e")

    from rlworks.track.store import RunStore

    store = RunStore(args.store)
    methods = parse_methods(args.methods)
    done = finished_runs(store, args.experiment)
    jobs = []
    for preset, n in methods:
        for seed in range(n):
            if (preset, seed) in done:
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
    run_commands([(cmd, " ".join(cmd[3:])) for cmd in jobs], args.workers, args.threads)
    done = finished_runs(store, args.experiment)
    if args.curriculum:
        report_curriculum(store, done, methods, args)
    else:
        report(store, done, methods, args)
    return 0


def samples_to_reach(store, run_id: str, target: float, window: int = 10) -> float:
    """Samples generated (filtered-out ones included) when the run's training accuracy,
    averaged over ``window`` steps, first reaches ``target`` (inf if never)."""
    m = store.metrics(run_id, ["rollout/accuracy", "perf/samples_seen"])
    acc = np.array(m["rollout/accuracy"][1])
    seen = np.array(m["perf/samples_seen"][1])
    smooth = np.convolve(acc, np.ones(window) / window, mode="valid")
    hit = np.nonzero(smooth >= target)[0]
    return float(seen[hit[0] + window - 1]) if hit.size else float("inf")


def report_curriculum(store, done, methods, args) -> None:
    """Samples to reach plain GRPO's final training accuracy (mean of its runs' last 10
    steps), IQM over seeds with 95% CIs (a run that never reaches it counts as its whole
    budget, and the table says how many did)."""
    from _report import machine

    base = [done[k] for k in done if k[0] == "grpo"]
    if not base:
        print("no finished grpo runs to define the target")
        return
    finals = [
        np.mean(store.metrics(r.run_id, ["rollout/accuracy"])["rollout/accuracy"][1][-10:])
        for r in base
    ]
    target = float(np.mean(finals))
    lines = [
        f"## Curricula: samples to reach GRPO's final training accuracy "
        f"({dt.date.today().isoformat()})",
        "",
        f"Machine: {machine()}. Target: plain GRPO's final training accuracy "
        f"{target:.3f} (mean of its {len(base)} runs' last 10 steps). Samples include "
        "those generated and filtered out. IQM over seeds, 95% bootstrap CI; a run that "
        "never reaches the target counts with its whole budget.",
        "",
        "| method | seeds | reached | samples to target, IQM [95% CI] |",
        "|---|---|---|---|",
    ]
    for preset, n in methods:
        runs = [done[(preset, s)] for s in range(n) if (preset, s) in done]
        if not runs:
            continue
        vals = np.array([samples_to_reach(store, r.run_id, target) for r in runs])
        budget = np.array([r.summary["samples_seen"] for r in runs], dtype=float)
        reached = int(np.isfinite(vals).sum())
        vals = np.where(np.isfinite(vals), vals, budget)
        point, lo, hi = iqm_ci(vals, "llm-e2e")
        lines.append(
            f"| {preset} | {len(runs)} | {reached} | {point:,.0f} [{lo:,.0f}, {hi:,.0f}] |"
        )
    text = "\n".join(lines)
    print(text)
    write_section(Path(args.report), args.section, text)


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
        + (f" {' '.join(args.settings)}" if args.settings else "")
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
