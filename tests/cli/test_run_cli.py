"""`rlworks run`: bad input (one line, exit 2, store untouched), --dry-run, a second run of a
finished grid, and the acceptance test: a 2 x 2 x 5 grid killed half way and run again
finishes without repeating any finished run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rlworks.cli.main import main
from rlworks.exec.launcher import _lock_experiments
from rlworks.track.store import RunStore

TINY = """
[experiment]
name = "{name}"
algos = [{algos}]
envs = [{envs}]
seeds = {seeds}

[config]
total_steps = {steps}
eval_episodes = 2
checkpoint_every = 128
hidden_sizes = [32, 32]
[config.dqn]
learning_starts = 100
train_freq = 64
gradient_steps = 4
[config.ppo]
num_envs = 4
num_steps = 32
update_epochs = 4
"""


def write_grid(path: Path, name="tiny", algos=("ppo",), envs=("CartPole-v1",), seeds=2,
               steps=256) -> Path:
    quote = lambda names: ", ".join(f'"{n}"' for n in names)  # noqa: E731
    path.write_text(TINY.format(name=name, algos=quote(algos), envs=quote(envs), seeds=seeds,
                                steps=steps))
    return path


def rlworks_cmd(store: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "rlworks.cli.main", "--store", str(store), *args]


def snapshot(store: Path, experiment: str) -> dict[str, dict]:
    """Everything a retrained run would change: status, summary, end time, metric rows."""
    s = RunStore(store)
    out = {}
    for r in s.list_runs(experiment=experiment):
        out[r.run_id] = {"cell": (r.algo, r.env_id, r.seed), "status": r.status,
                         "summary": r.summary, "ended_at": r.ended_at,
                         "rows": s.count_metrics(r.run_id), "last": s.last_metrics(r.run_id)}
    s.close()
    return out


# ----------------------------------------------------------------------------- bad input
@pytest.fixture()
def store(tmp_path):
    """A store holding one finished run: bad input must leave it exactly as it was."""
    s = RunStore(tmp_path / "store")
    run_id = s.create_run(algo="ppo", env_id="CartPole-v1", seed=0, config={"a": 1},
                          config_hash="x", experiment="tiny")
    s.log_metrics(run_id, [(1, "rollout/episodic_return", 10.0)])
    s.set_status(run_id, "finished", summary={"eval_return_mean": 10.0})
    s.close()
    return tmp_path / "store"


def bad_files(tmp_path: Path) -> dict[str, tuple[Path | str, str]]:
    def toml(name: str, text: str) -> Path:
        (tmp_path / name).write_text(text)
        return tmp_path / name

    head = '[experiment]\nalgos = ["ppo", "dqn"]\nenvs = ["CartPole-v1"]\n'
    return {
        "missing file": (tmp_path / "nope.toml", "does not exist"),
        "malformed": (toml("m.toml", "[experiment\n"), "malformed"),
        "unknown algo": (toml("a.toml", head.replace("dqn", "dqm")), "did you mean 'dqn'"),
        "unknown env": (toml("e.toml", head.replace("CartPole-v1", "CartPol-v1")),
                        "did you mean 'CartPole-v1'"),
        "unknown key": (toml("k.toml", head + "[config]\ngama = 0.9\n"),
                        "did you mean 'gamma'"),
        "key of one algo": (toml("o.toml", head + "[config]\nnum_steps = 8\n"),
                            "move it under [config.ppo]"),
        "wrong type": (toml("t.toml", head + '[config]\ntotal_steps = "many"\n'),
                       "must be an integer"),
    }


@pytest.mark.parametrize("case", ["missing file", "malformed", "unknown algo", "unknown env",
                                  "unknown key", "key of one algo", "wrong type"])
@pytest.mark.parametrize("extra", [[], ["--dry-run"]])
def test_bad_experiment_is_one_line_exit_2_store_untouched(case, extra, store, tmp_path,
                                                            capsys):
    path, needle = bad_files(tmp_path)[case]
    before = snapshot(store, "tiny")
    assert main(["--store", str(store), "run", str(path), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: ") and needle in err, err
    assert snapshot(store, "tiny") == before


def test_bad_input_does_not_create_a_store(tmp_path, capsys):
    path, _ = bad_files(tmp_path)["unknown algo"]
    assert main(["--store", str(tmp_path / "fresh"), "run", str(path)]) == 2
    assert not (tmp_path / "fresh").exists()


@pytest.mark.parametrize("flag", [["--workers", "0"], ["--workers", "two"]])
def test_bad_workers_flag(flag, tmp_path, capsys):
    path = write_grid(tmp_path / "g.toml")
    assert main(["--store", str(tmp_path / "s"), "run", str(path), *flag]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--workers" in err, err


def test_a_second_launcher_of_the_same_experiment_is_refused(tmp_path, capsys):
    path = write_grid(tmp_path / "g.toml")
    s = RunStore(tmp_path / "s")
    with _lock_experiments(s, {"tiny"}):
        assert main(["--store", str(s.path), "run", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "experiment 'tiny' is being launched" in err and f"pid {os.getpid()}" in err, err
    assert s.list_runs() == []


# ----------------------------------------------------------------------------- runs
def test_dry_run_then_run_then_nothing_left_to_train(tmp_path, capsys):
    path = write_grid(tmp_path / "g.toml", algos=("ppo", "dqn"), seeds=1)
    store = tmp_path / "s"
    assert main(["--store", str(store), "run", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["new      ppo CartPole-v1 seed 0", "new      dqn CartPole-v1 seed 0",
                   "2 runs: 0 done, 0 resume, 2 new, 0 running"]
    assert RunStore(store).list_runs() == []  # a dry run trains nothing

    assert main(["--store", str(store), "run", str(path), "--workers", "1", "--json"]) == 0
    summaries = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(s["algo"], s["env_id"], s["seed"]) for s in summaries] == [
        ("ppo", "CartPole-v1", 0), ("dqn", "CartPole-v1", 0)]
    before = snapshot(store, "tiny")
    assert sorted(before) == sorted(s["run_id"] for s in summaries)
    assert all(r["status"] == "finished" for r in before.values())

    assert main(["--store", str(store), "run", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == [f"done     ppo CartPole-v1 seed 0 {summaries[0]['run_id']}",
                       f"done     dqn CartPole-v1 seed 0 {summaries[1]['run_id']}"]

    assert main(["--store", str(store), "run", str(path), "--workers", "2"]) == 0
    captured = capsys.readouterr()
    assert "2 runs: 2 finished already, 0 to run" in captured.err
    assert "2 of 2 runs finished" in captured.out
    assert snapshot(store, "tiny") == before  # nothing retrained, nothing added


def test_an_edited_grid_is_refused_rather_than_mixed(tmp_path, capsys):
    path = write_grid(tmp_path / "g.toml", seeds=1, steps=128)
    store = tmp_path / "s"
    assert main(["--store", str(store), "run", str(path), "--workers", "1"]) == 0
    before = snapshot(store, "tiny")
    write_grid(path, seeds=1, steps=256)
    capsys.readouterr()
    assert main(["--store", str(store), "run", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "with another config (total_steps 128 -> 256)" in err, err
    assert snapshot(store, "tiny") == before


def test_failed_runs_exit_1_and_the_others_finish(tmp_path, capsys):
    """DQN cannot act in Pendulum's continuous action space: that run fails, the CartPole
    run finishes, and the failure is one line with exit code 1 (the input parsed fine)."""
    path = write_grid(tmp_path / "g.toml", algos=("dqn",), envs=("Pendulum-v1", "CartPole-v1"),
                      seeds=1, steps=128)
    store = tmp_path / "s"
    assert main(["--store", str(store), "run", str(path), "--workers", "1", "--json"]) == 1
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()[-1]
    assert err.startswith("error: 1 of 2 runs failed, first: dqn Pendulum-v1 seed 0: "), err
    assert "discrete action space" in err
    outcomes = {(d.get("env_id")): d for d in map(json.loads, captured.out.splitlines())}
    assert outcomes["Pendulum-v1"]["status"] == "failed"
    assert outcomes["CartPole-v1"]["eval_episodes"] == 2
    statuses = {r["cell"][1]: r["status"] for r in snapshot(store, "tiny").values()}
    assert statuses == {"Pendulum-v1": "failed", "CartPole-v1": "finished"}


# ----------------------------------------------------------------------------- kill, rerun
def run_killed_half_way(tmp_path: Path, algos, envs, seeds: int, steps: int) -> None:
    """Launch the grid in its own process group, SIGKILL the group once about half of the
    runs are finished and at least one is mid-flight, launch it again; check that nothing
    finished is repeated and the runs in flight resumed under their own ids."""
    total = len(algos) * len(envs) * seeds
    path = write_grid(tmp_path / "grid.toml", name="killed", algos=algos, envs=envs,
                      seeds=seeds, steps=steps)
    store_path = tmp_path / "s"
    cmd = rlworks_cmd(store_path, "run", str(path), "--workers", "2")
    env = {**os.environ, "RLWORKS_QUIET": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)
    killed = False
    try:
        deadline = time.monotonic() + 300
        store = None
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
            if store is None:
                if not (store_path / "runs.sqlite").exists():
                    continue
                store = RunStore(store_path)
            runs = store.list_runs(experiment="killed")
            done = sum(r.status == "finished" for r in runs)
            in_flight = [r for r in runs if r.status == "running" and r.last_step]
            if done >= total // 2 and in_flight:
                os.killpg(proc.pid, signal.SIGKILL)
                killed = True
                break
    finally:
        if not killed and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
    assert killed, "the grid ended before it could be killed half way"
    for _ in range(100):  # the workers die with the group; wait until they are gone
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)

    before = snapshot(store_path, "killed")
    finished_before = {i: r for i, r in before.items() if r["status"] == "finished"}
    cut = {r["cell"]: i for i, r in before.items() if r["status"] != "finished"}
    assert total // 2 <= len(finished_before) < total
    assert cut and all(before[i]["status"] == "unfinished" for i in cut.values()), before

    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stderr
    assert (f"{total} runs: {len(finished_before)} finished already, "
            f"{total - len(finished_before)} to run ({len(cut)} resumed)") in again.stderr

    after = snapshot(store_path, "killed")
    assert all(r["status"] == "finished" for r in after.values())
    cells = [r["cell"] for r in after.values()]
    assert len(cells) == total and len(set(cells)) == total  # one run per (algo, env, seed)
    for run_id, r in finished_before.items():  # still there, and not trained again
        assert after[run_id] == r
    for cell, run_id in cut.items():  # resumed under its own id, not duplicated
        assert after[run_id]["cell"] == cell
        assert after[run_id]["summary"]["resumed"] is True
        assert after[run_id]["summary"]["global_step"] >= steps


def test_grid_killed_half_way_and_rerun_repeats_no_finished_run(tmp_path):
    """The acceptance test: 2 algorithms x 2 envs x 5 seeds, 2 workers."""
    run_killed_half_way(tmp_path, ("ppo", "dqn"), ("CartPole-v1", "Acrobot-v1"), seeds=5,
                        steps=512)
