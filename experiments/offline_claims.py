"""The offline core's claims, each a grid of tracked `rlworks offline train` runs and a report.

    python experiments/offline_claims.py medium --datasets pendulum-medium,idp-medium,NAME
    python experiments/offline_claims.py riql --datasets pendulum-medium
    python experiments/offline_claims.py reweight --low pendulum-random --high pendulum-expert
    python experiments/offline_claims.py wsrl --datasets pendulum-medium

* ``medium``: BC, TD3+BC and IQL on the medium datasets: do IQL and TD3+BC beat BC?
* ``riql``: IQL vs RIQL under RIQL-style random dynamics corruption (``--corrupt``).
* ``reweight``: a mixed dataset (every episode of ``--low`` plus whole ``--high`` episodes,
  ``--fraction`` of the result's episodes) trained with uniform vs return-weighted sampling.
* ``wsrl``: one CQL agent per seed pretrained on the dataset, then fine-tuned online from the
  same checkpoint twice, by WSRL (no offline data, warm-up) and by fine-tuning with the offline
  data retained, for the same number of online steps.

Every run is a tracked run in the store under one experiment name per claim; finished runs
are found again by (algo, dataset, corruption, weighting, seed), so after a kill the same
command continues where it stopped. The score of a run is the D4RL-style normalised score of
its final deterministic evaluation (``eval_normalised_score``). The report gives, per cell,
the IQM over seeds with a 95% percentile-bootstrap CI, and P(X > Y) against the baseline with
its CI; it is written with date, machine and commands into ``docs/offline/results.md``.
Nothing here is tuned on the seeds it reports: every setting is a default of the algorithm
or a budget chosen before the runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "experiments"))

from _common import iqm_ci, run_commands  # noqa: E402


@dataclass
class Job:
    """One run of a claim: its identity in the store and the command that makes it."""

    algo: str
    dataset: str
    seed: int
    corrupt: str = ""
    reweight: str = ""
    label: str = ""
    """The column this run reports under (the algorithm, or algorithm + variant)."""
    flags: list[str] = field(default_factory=list)
    init: str = ""
    """(wsrl, finetune) run id of the pretrained agent."""

    def key(self) -> tuple[Any, ...]:
        return (self.algo, self.dataset, self.corrupt, self.reweight, self.seed, self.init)


def run_key(record: Any) -> tuple[Any, ...]:
    c = record.config
    init = ""
    if c.get("init_checkpoint"):  # .../runs/<run_id>/checkpoints/step_N.json
        parts = Path(c["init_checkpoint"]).parts
        init = parts[parts.index("checkpoints") - 1] if "checkpoints" in parts else ""
    return (record.algo, c.get("dataset", ""), c.get("corrupt", ""), c.get("reweight", ""),
            record.seed, init)


def finished(store: Any, experiment: str) -> dict[tuple[Any, ...], Any]:
    return {run_key(r): r for r in store.list_runs()
            if r.experiment == experiment and r.status == "finished"}


def command(job: Job, args: argparse.Namespace, experiment: str) -> list[str]:
    cmd = [sys.executable, "-m", "rlworks.cli.main", "--store", args.store, "offline", "train",
           job.algo, "--experiment", experiment, "--seed", str(job.seed), "--no-progress",
           "--torch-threads", "1"]
    if job.init:
        cmd += ["--init", job.init]
    else:
        cmd += ["--dataset", job.dataset]
    if job.corrupt:
        cmd += ["--corrupt", job.corrupt]
    if job.reweight:
        cmd += ["--reweight", job.reweight]
    return cmd + job.flags


def launch(jobs: list[Job], args: argparse.Namespace, experiment: str) -> Any:
    """Run the jobs not yet finished in the store, ``args.workers`` at a time, one thread each;
    return the store, read afresh, to report from."""
    from rlworks.track.store import RunStore

    store = RunStore(args.store)
    done = finished(store, experiment)
    pending = [j for j in jobs if j.key() not in done]
    print(f"{experiment}: {len(jobs) - len(pending)} of {len(jobs)} runs already finished",
          flush=True)
    if args.report_only:
        return store
    cmds = [command(j, args, experiment) for j in pending]
    failed = run_commands([(c, " ".join(c[5:])) for c in cmds], args.workers, threads=1)
    if failed:
        raise SystemExit(f"{failed} runs failed; rerun the same command to retry them")
    return RunStore(args.store)


def p_improve(x: np.ndarray, y: np.ndarray, stream: str) -> tuple[float, float, float]:
    """P(X > Y) (ties count half) with a 95% bootstrap CI, resampling seeds of each side."""
    from rlworks.core.seeding import make_rng
    from rlworks.eval.bootstrap import get_interval_estimates
    from rlworks.eval.stats import probability_of_improvement

    pair = {"x,y": (x.reshape(-1, 1), y.reshape(-1, 1))}
    points, cis = get_interval_estimates(pair, probability_of_improvement, reps=20_000,
                                         rng=make_rng(0, stream))
    return float(points["x,y"]), float(cis["x,y"][0]), float(cis["x,y"][1])


def scores(store: Any, experiment: str, jobs: list[Job]) -> dict[str, np.ndarray]:
    """Final normalised scores by label, in seed order (only finished runs)."""
    done = finished(store, experiment)
    out: dict[str, list[float]] = {}
    for job in jobs:
        rec = done.get(job.key())
        if rec is not None:
            out.setdefault(job.label, []).append(float(rec.summary["eval_normalised_score"]))
    return {k: np.array(v) for k, v in out.items()}


def fmt(ci: tuple[float, float, float]) -> str:
    return f"{ci[0]:.1f} [{ci[1]:.1f}, {ci[2]:.1f}]"


def iqms(by_label: dict[str, np.ndarray], stream: str) -> dict[str, tuple[float, float, float]]:
    """The IQM with its CI of every label, each from its own random stream."""
    return {label: iqm_ci(vals, f"{stream}-{label}") for label, vals in by_label.items()}


def table(by_label: dict[str, np.ndarray], baseline: str, stream: str,
          iqm: dict[str, tuple[float, float, float]] | None = None) -> list[str]:
    """Markdown rows: per label its scores, IQM [CI] (``iqm``, or computed) and P(X > baseline)."""
    iqm = iqm or iqms(by_label, stream)
    lines = ["| method | seeds | per-seed scores | IQM [95% CI] "
             f"| P(method > {baseline}) [95% CI] |",
             "|---|---|---|---|---|"]
    for label, vals in by_label.items():
        per_seed = ", ".join(f"{v:.1f}" for v in vals)
        if label == baseline or baseline not in by_label:
            p = "-"
        else:
            pi = p_improve(vals, by_label[baseline], f"{stream}-{label}")
            p = f"{pi[0]:.2f} [{pi[1]:.2f}, {pi[2]:.2f}]"
        lines.append(f"| {label} | {len(vals)} | {per_seed} | {fmt(iqm[label])} | {p} |")
    return lines


def header(args: argparse.Namespace, title: str, what: str) -> list[str]:
    from _report import machine

    argv = " ".join(sys.argv[1:])
    return [f"## {title} ({dt.date.today().isoformat()})", "",
            f"Machine: {machine()}. Command: `python experiments/offline_claims.py {argv}`.",
            what, ""]


def write_section(name: str, text: str, args: argparse.Namespace) -> None:
    from _report import replace_marked

    replace_marked(Path(args.report), name, text, "# Offline RL results\n")
    print(text, flush=True)


def report_groups(section: str, lines: list[str], store: Any, exp: str, jobs: list[Job],
                  group: Any, baseline: Any, title: str, args: argparse.Namespace) -> None:
    """Append a table per group of jobs (``group(job)`` names it; ``baseline(g)`` is the label
    its P(X > Y) compares with), plot every group's IQM, and write the report section."""
    panels = {}
    for g in dict.fromkeys(group(j) for j in jobs):
        by = scores(store, exp, [j for j in jobs if group(j) == g])
        if not by:  # nothing finished yet (--report-only during a run)
            continue
        panels[g] = (by, iqms(by, f"{section}-{g}"))
        lines += [f"**{g}**", "", *table(by, baseline(g), f"{section}-{g}", panels[g][1]), ""]
    lines.append(plot(panels, Path(args.img) / f"offline_{section}", title))
    write_section(section, "\n".join(lines), args)


def plot(panels: dict[str, tuple[dict[str, np.ndarray], dict[str, tuple[float, float, float]]]],
         path: Path, title: str) -> str:
    """Per group a panel of the labels' IQM (tick) and CI (bar), the seeds as dots, from the
    table's own estimates; returns the markdown image line."""
    from rlworks.eval.statplots import _pyplot, algorithm_colors

    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 0.6 + 0.5 * max(
        len(by) for by, _ in panels.values())), squeeze=False)
    for ax, (name, (by_label, iqm)) in zip(axes[0], panels.items(), strict=True):
        colors = algorithm_colors(by_label)
        for i, label in enumerate(by_label):
            point, lo, hi = iqm[label]
            ax.barh(i, hi - lo, left=lo, height=0.6, color=colors[label], alpha=0.75)
            ax.vlines(point, i - 0.3, i + 0.3, color="k", lw=1.5)
            ax.plot(by_label[label], np.full(len(by_label[label]), i), "k.", ms=3, alpha=0.6)
        ax.set_yticks(range(len(by_label)), list(by_label))
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("normalised score (IQM, 95% CI; dots: seeds)")
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path.with_suffix(".png"), dpi=120)
    fig.savefig(path.with_suffix(".svg"))
    plt.close(fig)
    return f"![{path.stem}](img/{path.stem}.png)"


def steps_flags(args: argparse.Namespace) -> list[str]:
    return ["--total-steps", str(args.steps), "--eval-episodes", str(args.eval_episodes)]


def claim_medium(args: argparse.Namespace) -> None:
    exp = f"{args.prefix}-medium"
    datasets = args.datasets.split(",")
    algos = args.algos.split(",")
    jobs = [Job(a, d, s, label=a, flags=steps_flags(args))
            for d in datasets for s in range(args.seeds) for a in algos]
    store = launch(jobs, args, exp)
    lines = header(args, "IQL and TD3+BC against BC on the medium datasets",
                   f"{args.steps:,} gradient steps per run (batch 256, [256, 256] networks, each "
                   f"algorithm's defaults), final deterministic evaluation over "
                   f"{args.eval_episodes} episodes, {args.seeds} seeds per cell. Scores are "
                   "D4RL-style normalised scores of this project's datasets (not comparable with "
                   "published D4RL tables).")
    report_groups(args.section, lines, store, exp, jobs, lambda j: j.dataset, lambda g: "bc",
                  "Medium datasets: final normalised score", args)


def claim_riql(args: argparse.Namespace) -> None:
    exp = f"{args.prefix}-riql"
    jobs = []
    for d in args.datasets.split(","):
        for s in range(args.seeds):
            for a in ("iql", "riql"):
                jobs.append(Job(a, d, s, corrupt=args.corrupt, label=a, flags=steps_flags(args)))
                if args.clean:
                    jobs.append(Job(a, d, s, label=f"{a} (clean data)", flags=steps_flags(args)))
    store = launch(jobs, args, exp)
    lines = header(args, f"RIQL vs IQL under corruption `{args.corrupt}`",
                   f"Corruption `{args.corrupt}` (KIND:RATE:SCALE, RIQL's random corruption; each "
                   f"run corrupts with its own seed), {args.steps:,} gradient steps, "
                   f"{args.seeds} seeds, each preset's defaults.")
    report_groups(args.section, lines, store, exp, jobs, lambda j: j.dataset, lambda g: "iql",
                  f"RIQL vs IQL, {args.corrupt}", args)


def mixed_dataset(args: argparse.Namespace) -> str:
    """Make (once) the mixed dataset file and return its path."""
    from rlworks.data.factory import resolve_dataset
    from rlworks.data.formats import save_dataset
    from rlworks.data.transforms import mix_datasets

    out = Path(args.data_dir) / (f"mixed-{args.low}-{args.high}-{args.fraction}.hdf5")
    if not out.exists():
        low, high = resolve_dataset(args.low), resolve_dataset(args.high)
        ds = mix_datasets(low, high, args.fraction, seed=0)
        out.parent.mkdir(parents=True, exist_ok=True)
        save_dataset(ds, out)
        print(f"mixed dataset: {out} ({ds.num_episodes} episodes, "
              f"{int(ds.infos['from_high'].sum())} transitions from {args.high})", flush=True)
    return str(out)


def claim_reweight(args: argparse.Namespace) -> None:
    exp = f"{args.prefix}-reweight"
    path = mixed_dataset(args)
    jobs = []
    for s in range(args.seeds):
        for a in args.algos.split(","):
            jobs.append(Job(a, path, s, label=f"{a} uniform", flags=steps_flags(args)))
            jobs.append(Job(a, path, s, reweight=args.weighting, label=f"{a} {args.weighting}",
                            flags=steps_flags(args)))
    store = launch(jobs, args, exp)
    lines = header(args, "Return-weighted sampling on a mixed dataset",
                   f"Dataset: every episode of `{args.low}` plus whole `{args.high}` episodes, "
                   f"{args.fraction:.0%} of the episodes (`mix_datasets`, seed 0). Uniform vs "
                   f"`{args.weighting}` sampling, {args.steps:,} gradient steps, {args.seeds} "
                   "seeds, each algorithm's defaults.")
    report_groups(args.section, lines, store, exp, jobs, lambda j: j.algo,
                  lambda g: f"{g} uniform", "Mixed dataset: uniform vs return-weighted sampling",
                  args)


def claim_wsrl(args: argparse.Namespace) -> None:
    exp = f"{args.prefix}-wsrl"
    d = args.datasets.split(",")[0]
    pre = [Job("cql", d, s, label="cql", flags=["--total-steps", str(args.steps),
                                               "--checkpoint-every", str(args.steps)])
           for s in range(args.seeds)]
    store = launch(pre, args, exp)
    done = finished(store, exp)
    online = ["--total-steps", str(args.online_steps), "--eval-every", str(args.eval_every),
              "--eval-episodes", str(args.eval_episodes)]
    jobs = []
    for p in pre:
        init = done[p.key()].run_id
        jobs.append(Job("wsrl", d, p.seed, init=init, label="wsrl",
                        flags=[*online, "--warmup-steps", str(args.warmup)]))
        jobs.append(Job("finetune", d, p.seed, init=init, label="finetune", flags=online))
    store = launch(jobs, args, exp)
    by = scores(store, exp, jobs)
    pre_scores = scores(store, exp, pre)
    lines = header(args, "WSRL vs fine-tuning with retained offline data",
                   f"Per seed, one CQL agent pretrained on `{d}` for {args.steps:,} gradient "
                   f"steps (its final score is the first row), then fine-tuned online from that "
                   f"same checkpoint for {args.online_steps:,} env steps by WSRL ("
                   f"{args.warmup:,} warm-up steps, no offline data) and by fine-tuning with "
                   "the offline data retained (no warm-up), each with the authors' defaults "
                   "otherwise.")
    lines += table({"cql (offline, start)": pre_scores["cql"], **by}, "finetune", "wsrl")
    lines.append("")
    lines.append(curves(store, exp, jobs, Path(args.img) / "offline_wsrl"))
    write_section(args.section, "\n".join(lines), args)


def curves(store: Any, exp: str, jobs: list[Job], path: Path) -> str:
    """IQM of eval/normalised_score against online steps, with 95% bootstrap bands."""
    from rlworks.core.seeding import make_rng
    from rlworks.eval.statplots import plot_learning_curves
    from rlworks.eval.stats import aggregate_iqm, sample_efficiency_curve

    done = finished(store, exp)
    panel = {}
    for label in dict.fromkeys(j.label for j in jobs):
        runs = [done[j.key()] for j in jobs if j.label == label and j.key() in done]
        series = [store.metrics(r.run_id, ["eval/normalised_score"])["eval/normalised_score"]
                  for r in runs]
        steps = np.array(series[0][0])
        vals = np.array([s[1][: len(steps)] for s in series])  # (seeds, points)
        pts, cis = sample_efficiency_curve({"x": vals[:, None, :]}, aggregate_iqm,
                                           rng=make_rng(0, f"curve-{label}"), reps=5_000)
        panel[label] = (steps, pts["x"], cis["x"])
    plot_learning_curves({"online fine-tuning": panel}, path, ylabel="normalised score (IQM)",
                         xlabel="online env steps", title="WSRL vs retained-data fine-tuning")
    return f"![{path.stem}](img/{path.stem}.png)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("claim", choices=["medium", "riql", "reweight", "wsrl"])
    ap.add_argument("--datasets", default="pendulum-medium")
    ap.add_argument("--algos", default="bc,td3bc,iql")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10_000, help="gradient steps per offline run")
    ap.add_argument("--eval-episodes", type=int, default=10)
    ap.add_argument("--corrupt", default="dynamics:0.3:1.0")
    ap.add_argument("--clean", action="store_true", help="(riql) also run both on clean data")
    ap.add_argument("--low", default="pendulum-random")
    ap.add_argument("--high", default="pendulum-expert")
    ap.add_argument("--fraction", type=float, default=0.1)
    ap.add_argument("--weighting", default="return:0.1")
    ap.add_argument("--online-steps", type=int, default=10_000)
    ap.add_argument("--eval-every", type=int, default=1_000)
    ap.add_argument("--warmup", type=int, default=5_000,
                    help="(wsrl) env steps of the frozen pretrained policy before updates "
                    "(the authors' 5,000 is five episodes of their 1,000-step tasks)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--prefix", default="offline",
                    help="experiment names are PREFIX-CLAIM; a new prefix starts a new grid")
    ap.add_argument("--report-only", action="store_true",
                    help="write the report from the runs finished so far; start no run")
    ap.add_argument("--section", default=None,
                    help="marked section of --report (and plot name) to write; default: the "
                    "claim's name (another name keeps the earlier table beside it)")
    ap.add_argument("--store", default=str(ROOT / "rlworks-runs"))
    ap.add_argument("--data-dir", default=str(ROOT / "rlworks-data" / "mixed"))
    ap.add_argument("--report", default=str(ROOT / "docs" / "offline" / "results.md"))
    ap.add_argument("--img", default=str(ROOT / "docs" / "offline" / "img"))
    args = ap.parse_args()
    args.section = args.section or args.claim
    {"medium": claim_medium, "riql": claim_riql, "reweight": claim_reweight,
     "wsrl": claim_wsrl}[args.claim](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
