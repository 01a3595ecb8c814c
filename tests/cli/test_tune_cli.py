"""``rlworks tune``: bad input is one line with exit code 2 (answered without importing torch
or optuna), and a tiny real end-to-end tune of PPO's learning rate on CartPole with two worker
processes reports tuned vs default on the test seeds."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rlworks.cli.main import main
from rlworks.core.config import config_hash, config_to_dict
from rlworks.exec import train as driver
from rlworks.exec.train import StopRun
from rlworks.track.store import RunStore

GOOD = """
[experiment]
name = "tiny-tune"
algos = ["ppo"]
envs = ["CartPole-v1"]

[config]
eval_episodes = 2

[tune]
trials = 3
tuning_seeds = [0, 1]
test_seeds = {test_seeds}
budget = 512
workers = 2
[tune.space]
{space}
"""
LR = "learning_rate = {low = 1e-4, high = 1e-2, log = true}"


def write(tmp_path: Path, test_seeds: str = "[100, 101]", space: str = LR) -> Path:
    path = tmp_path / "tune.toml"
    path.write_text(textwrap.dedent(GOOD).format(test_seeds=test_seeds, space=space))
    return path


BAD = {
    "overlapping seeds": (dict(test_seeds="[1, 100]"), [], "share seeds [1]"),
    "unknown field": (dict(space="learning_rat = {low = 1e-4, high = 1e-3}"), [],
                      "did you mean 'learning_rate'"),
    "low >= high": (dict(space="clip_eps = {low = 0.3, high = 0.1}"), [], "must be below"),
    "log with low 0": (dict(space="ent_coef = {low = 0.0, high = 0.1, log = true}"), [],
                       "log scale needs low > 0"),
    "bad sampler flag": ({}, ["--sampler", "cmaes"], "invalid choice"),
    "bad trials flag": ({}, ["--trials", "0"], "must be positive"),
    "resume nothing": ({}, ["--resume"], "nothing to resume"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_exit_2(case, tmp_path, capsys):
    file_kw, flags, needle = BAD[case]
    path = write(tmp_path, **file_kw)
    assert main(["--store", str(tmp_path / "s"), "tune", str(path), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: ") and needle in err, err


def test_errors_answer_without_torch_or_optuna(tmp_path):
    path = write(tmp_path, space="learning_rat = {low = 1e-4, high = 1e-3}")
    code = ("import sys; from rlworks.cli.main import main; "
            f"rc = main(['--store', {str(tmp_path / 's')!r}, 'tune', {str(path)!r}]); "
            "print(rc, 'torch' in sys.modules, 'optuna' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.split() == ["2", "False", "False"], out.stderr


def fake_train(algo, cfg, store, *, experiment=None, callback=None, **kw):
    """Return 500 at learning_rate 1e-3, less away from it; report a rising training curve."""
    run_id = store.create_run(algo=algo, env_id=cfg.env_id, seed=cfg.seed,
                              config=config_to_dict(cfg), config_hash=config_hash(cfg),
                              experiment=experiment)
    value = 500.0 - 150.0 * abs(math.log10(cfg.learning_rate) + 3.0)
    base = {"run_id": run_id, "seed": cfg.seed}
    try:
        for step in range(32, cfg.total_steps + 1, 32):
            if callback is not None:
                callback(step, {"rollout/episodic_return": value * step / cfg.total_steps})
    except StopRun as stop:
        store.set_status(run_id, "pruned", summary={**base, "pruned": True,
                                                   "pruned_reason": str(stop)})
        return {**base, "pruned": True, "pruned_reason": str(stop)}
    summary = {**base, "eval_return_mean": value}
    store.set_status(run_id, "finished", summary=summary)
    return summary


def test_report_and_plot_of_a_search_with_pruned_trials(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(driver, "train", fake_train)
    path = write(tmp_path, space="learning_rate = {low = 1e-7, high = 1e-2, log = true}")
    path.write_text(path.read_text().replace("trials = 3", "trials = 10\nsampler = \"random\""))
    assert main(["--store", str(tmp_path / "s"), "tune", str(path), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "| tuned |" in out and "P(tuned > default)" in out
    directory = tmp_path / "s" / "tune" / "tiny-tune"
    report = (directory / "report.md").read_text()
    rows = [line for line in report.splitlines() if line.startswith("| ") and " | pruned | "
            in line]
    assert rows and all("pruned at step" in r for r in rows), report
    assert "| tuned | 100 |" in report and "| default | 101 |" in report
    assert report.count("| complete |") + len(rows) == 10
    assert (directory / "trials.png").read_bytes()[:4] == b"\x89PNG"


def test_end_to_end_two_workers_reports_tuned_vs_default(tmp_path, capsys):
    """Acceptance in miniature: 3 trials x 2 tuning seeds on 2 worker processes, then tuned and
    default on 2 test seeds, a report with IQM, CIs and P(improvement); a rerun trains nothing."""
    path = write(tmp_path)
    store_path = tmp_path / "s"
    t0 = time.perf_counter()
    assert main(["--store", str(store_path), "tune", str(path), "--json"]) == 0
    elapsed = time.perf_counter() - t0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert sum(result["counts"].values()) == 3
    test = result["test"]
    for name in ("tuned", "default"):
        lo, hi = test[name]["ci"]
        assert lo <= test[name]["iqm"] <= hi and test[name]["runs"] == 2
    assert 0.0 <= test["p_improvement"]["estimate"] <= 1.0

    with RunStore(store_path) as store:
        runs = store.list_runs()
        by_exp: dict[str, set[int]] = {}
        for r in runs:
            by_exp.setdefault(r.experiment, set()).add(r.seed)
        assert by_exp["tiny-tune/tune"] <= {0, 1}
        assert by_exp["tiny-tune/tuned"] == by_exp["tiny-tune/default"] == {100, 101}
        tuned_cfg = store.list_runs(experiment="tiny-tune/tuned")[0].config
        assert tuned_cfg["learning_rate"] == pytest.approx(result["best_params"]["learning_rate"])
        assert tuned_cfg["total_steps"] == 512
        # Trials ran in two worker processes.
        assert len({r.pid for r in store.list_runs(experiment="tiny-tune/tune")}) == 2

    directory = store_path / "tune" / "tiny-tune"
    report = (directory / "report.md").read_text()
    for needle in ("## Best configuration", "| tuned |", "| default |", "P(tuned > default)",
                   "## All trials", "learning_rate"):
        assert needle in report, needle
    assert (directory / "trials.png").read_bytes()[:4] == b"\x89PNG"

    # Rerun: the study is complete and the test runs are reused; nothing new is trained.
    assert main(["--store", str(store_path), "tune", str(path)]) == 0
    assert "| tuned |" in capsys.readouterr().out
    with RunStore(store_path) as store:
        assert len(store.list_runs()) == len(runs)
    assert elapsed < 120, f"tiny end-to-end tune took {elapsed:.0f} s"
