"""The launcher: matching specs to the store, failures that stay with their run (an error, a
worker killed hard), interrupts that checkpoint, orphaned workers, waiting for runs of
other processes, and Ray (local instance; clear errors when it cannot be used)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from rlworks.core.config import config_hash, config_to_dict
from rlworks.core.errors import UserError
from rlworks.exec.experiment import RunSpec, expand, parse_experiment
from rlworks.exec.launcher import RunsFailed, launch, plan
from rlworks.exec.pool import _exit_reason
from rlworks.track.store import RunStore

FAST = {"eval_episodes": 2, "checkpoint_every": 128, "hidden_sizes": [32, 32],
        "ppo": {"num_envs": 4, "num_steps": 32, "update_epochs": 2},
        "dqn": {"learning_starts": 100, "train_freq": 64, "gradient_steps": 4}}


def grid(algos=("ppo",), envs=("CartPole-v1",), seeds=2, steps=256, name="g",
         **extra) -> list[RunSpec]:
    config = {**FAST, "total_steps": steps, **extra}
    config = {k: v for k, v in config.items() if not isinstance(v, dict) or k in algos}
    return expand(parse_experiment({"experiment": {"name": name, "algos": list(algos),
                                                   "envs": list(envs), "seeds": seeds},
                                    "config": config}))


@pytest.fixture()
def store(tmp_path):
    s = RunStore(tmp_path / "store")
    yield s
    s.close()


def record(store: RunStore, spec: RunSpec, status: str | None = None) -> str:
    """A run of ``spec`` in the store, owned by this (live) process."""
    cfg = spec.config()
    run_id = store.create_run(algo=spec.algo, env_id=spec.env_id, seed=spec.seed,
                              config=config_to_dict(cfg), config_hash=config_hash(cfg),
                              experiment=spec.experiment)
    if status is not None:
        store.set_status(run_id, status, summary={"mark": status})
    return run_id


def record_from(store: RunStore, spec: RunSpec, hold_s: float = 0.0,
                finish: bool = False) -> tuple[str, Any]:
    """A "running" run of ``spec`` created by another process, alive for ``hold_s``; if
    ``finish``, that process then marks it finished."""
    cfg = spec.config()
    code = (
        "import sys, time\nfrom rlworks.track.store import RunStore\n"
        f"s = RunStore({str(store.path)!r})\n"
        f"print(s.create_run(algo={spec.algo!r}, env_id={spec.env_id!r}, seed={spec.seed}, "
        f"config={config_to_dict(cfg)!r}, config_hash={config_hash(cfg)!r}, "
        f"experiment={spec.experiment!r}))\n"
        "sys.stdout.flush()\n"
        f"time.sleep({hold_s})\n"
        + ("r = s.list_runs()[0].run_id\ns.set_status(r, 'finished', "
           "summary={'run_id': r, 'by': 'other'})\n" if finish else ""))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    return proc.stdout.readline().strip(), proc


# ----------------------------------------------------------------------------- plan
def test_plan_matches_each_spec_to_the_store(store):
    specs = grid(seeds=6)
    done = record(store, specs[0], "finished")
    failed = record(store, specs[1], "failed")
    record(store, specs[2], "interrupted")
    time.sleep(0.01)
    newer = record(store, specs[2], "interrupted")
    live = record(store, specs[3])  # "running", and this process is alive
    dead, proc = record_from(store, specs[4])  # "running", its process has exited
    proc.wait()
    planned = plan(specs, store)
    assert [(p.action, p.run_id) for p in planned] == [
        ("done", done), ("resume", failed), ("resume", newer), ("running", live),
        ("resume", dead), ("new", None)]
    assert planned[0].summary == {"mark": "finished"}
    assert all(p.config_hash == config_hash(s.config()) for p, s in zip(planned, specs,
                                                                         strict=True))


def test_plan_keeps_experiments_apart(store):
    record(store, grid(name="other")[0], "finished")
    assert [p.action for p in plan(grid(), store)] == ["new", "new"]


def test_plan_refuses_the_same_run_twice(store):
    spec = grid(seeds=1)[0]
    with pytest.raises(UserError, match=r"lists the same run twice \(ppo CartPole-v1 seed 0\)"):
        plan([spec, spec], store)


def test_another_config_for_a_finished_run_is_refused_when_asked(store):
    old = record(store, grid(seeds=1, steps=128)[0], "finished")
    specs = grid(seeds=1, steps=256)
    assert [p.action for p in plan(specs, store)] == ["new"]  # the library default
    with pytest.raises(UserError) as info:
        plan(specs, store, check_configs=True)
    assert f"already has run {old} (ppo CartPole-v1 seed 0) with another config " \
           "(total_steps 128 -> 256)" in str(info.value)
    record(store, grid(seeds=1, steps=512)[0], "failed")  # unfinished ones do not count
    with pytest.raises(UserError, match=old):
        plan(specs, store, check_configs=True)


def test_exit_reasons():
    assert _exit_reason(-9) == "killed by SIGKILL (out of memory?)"
    assert _exit_reason(-11) == "killed by SIGSEGV"
    assert _exit_reason(3) == "exit code 3"


# ----------------------------------------------------------------------------- launch
def test_launch_in_process_then_again_trains_nothing(store):
    specs = grid(algos=("ppo", "dqn"), seeds=1)
    seen = []
    planned = launch(specs, store, workers=1, verbose=False, on_finish=seen.append)
    assert [p.action for p in planned] == ["done", "done"]
    assert [p.spec for p in seen] == specs
    runs = {r.run_id: r for r in store.list_runs(experiment="g")}
    assert sorted(runs) == sorted(p.run_id for p in planned)
    assert all(r.status == "finished" and r.summary["global_step"] >= 256
               for r in runs.values())
    rows = {i: store.count_metrics(i) for i in runs}

    again = launch(specs, store, workers=2, verbose=False, on_finish=seen.append)
    assert len(seen) == 2  # nothing ran
    assert [(p.action, p.run_id, p.summary) for p in again] == [
        ("done", p.run_id, p.summary) for p in planned]
    assert {i: store.count_metrics(i) for i in runs} == rows


def test_failures_stay_with_their_run(store):
    """On 2 worker processes: one run raises (DQN cannot act in Pendulum), the worker of
    another is SIGKILLed mid-run; the third run still finishes, a fresh worker taking the
    dead one's place. Launching again resumes the killed run under its own id."""
    specs = [*grid(algos=("dqn",), envs=("Pendulum-v1",), seeds=1),
             *grid(seeds=2, steps=2048)]
    killed: list[str] = []

    def kill_one_ppo_worker() -> None:
        watcher = RunStore(store.path)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            for r in watcher.list_runs(experiment="g", algo="ppo"):
                if r.status == "running" and r.last_step and r.pid != os.getpid():
                    os.kill(r.pid, signal.SIGKILL)
                    killed.append(r.run_id)
                    break
            time.sleep(0.02)
        watcher.close()

    thread = threading.Thread(target=kill_one_ppo_worker)
    thread.start()
    with pytest.raises(RunsFailed) as info:
        launch(specs, store, workers=2, verbose=False)
    thread.join()
    assert killed, "no PPO run was caught running"
    assert str(info.value).startswith("2 of 3 runs failed")
    by_seed = {(p.spec.env_id, p.spec.seed): p for p in info.value.planned}
    pendulum = by_seed["Pendulum-v1", 0]
    assert pendulum.action == "failed" and "discrete action space" in pendulum.error
    victim = next(p for p in info.value.planned if p.spec.algo == "ppo" and p.action == "failed")
    assert "killed by SIGKILL" in victim.error
    survivor = next(p for p in info.value.planned if p.spec.algo == "ppo" and p.action == "done")
    assert survivor.summary["global_step"] >= 2048
    statuses = {r.run_id: r.status for r in store.list_runs(experiment="g")}
    assert statuses[killed[0]] == "unfinished" and statuses[survivor.run_id] == "finished"
    assert sorted(statuses.values()) == ["failed", "finished", "unfinished"]

    ppo = [s for s in specs if s.algo == "ppo"]
    (resumed,) = [p for p in launch(ppo, store, workers=1, verbose=False)
                  if p.run_id == killed[0]]
    assert resumed.summary["resumed"] is True and resumed.summary["global_step"] >= 2048
    assert len(store.list_runs(experiment="g", algo="ppo")) == 2  # no duplicate


def test_waits_for_a_run_of_another_process_then_resumes_it(store):
    (spec,) = grid(seeds=1)
    run_id, proc = record_from(store, spec, hold_s=1.5)
    assert plan([spec], store)[0].action == "running"
    (p,) = launch([spec], store, workers=1, verbose=False, poll_s=0.2)
    assert proc.poll() is not None  # it waited for the other process to end
    assert (p.action, p.run_id) == ("done", run_id)
    assert p.summary["resumed"] is True
    assert [r.run_id for r in store.list_runs()] == [run_id]


def test_waits_for_a_run_another_process_finishes_and_reuses_it(store):
    (spec,) = grid(seeds=1)
    run_id, proc = record_from(store, spec, hold_s=1.0, finish=True)
    seen: list = []
    (p,) = launch([spec], store, workers=1, verbose=False, poll_s=0.2, on_finish=seen.append)
    proc.wait()
    assert (p.action, p.run_id, p.summary) == ("done", run_id, {"run_id": run_id, "by": "other"})
    assert seen == []  # trained by the other process, not by this launch
    assert store.count_metrics(run_id) == 0


def test_a_second_launch_of_the_same_experiment_is_refused(store):
    specs = grid(seeds=1)
    inner: list[BaseException] = []

    def launch_again(_p) -> None:
        try:
            launch(specs, store, workers=1, verbose=False)
        except UserError as err:
            inner.append(err)

    launch(specs, store, workers=1, verbose=False, on_finish=launch_again)
    (err,) = inner
    assert f"experiment 'g' is being launched on store '{store.path}' by pid {os.getpid()}" \
        in str(err)


# ----------------------------------------------------------------------------- interrupts
def start_long_grid(tmp_path: Path) -> tuple[subprocess.Popen, Path, list]:
    """`rlworks run` on 2 PPO runs far too long to finish; returns once both are training."""
    path = tmp_path / "long.toml"
    path.write_text('[experiment]\nname = "long"\nalgos = ["ppo"]\nenvs = ["CartPole-v1"]\n'
                    "seeds = 2\n[config]\ntotal_steps = 10_000_000\ncheckpoint_every = 256\n"
                    "hidden_sizes = [32, 32]\n[config.ppo]\nnum_envs = 4\nnum_steps = 32\n"
                    "update_epochs = 2\n")
    store_path = tmp_path / "s"
    cmd = [sys.executable, "-m", "rlworks.cli.main", "--store", str(store_path), "run",
           str(path), "--workers", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.1)
        if (store_path / "runs.sqlite").exists():
            runs = RunStore(store_path).list_runs()
            if len(runs) == 2 and all(r.last_step and r.last_step > 256 for r in runs):
                return proc, store_path, runs
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError("the runs did not start")


def wait_until(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_sigterm_checkpoints_the_runs_and_exits_130(tmp_path):
    proc, store_path, runs = start_long_grid(tmp_path)
    try:
        proc.send_signal(signal.SIGTERM)  # the launcher only, as a scheduler would
        _, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "again resumes them" in err
    store = RunStore(store_path)
    for r in runs:
        assert store.get_run(r.run_id).status == "interrupted"
        assert list((store.run_dir(r.run_id) / "checkpoints").glob("step_*.json"))
        assert not _alive(r.pid)


def test_workers_of_a_killed_launcher_checkpoint_and_stop(tmp_path):
    """SIGKILL to the launcher alone: its workers notice and interrupt their own runs, which
    end "interrupted" (checkpointed) rather than training on unseen."""
    proc, store_path, runs = start_long_grid(tmp_path)
    try:
        proc.kill()
        proc.communicate(timeout=30)
        store = RunStore(store_path)
        stopped = wait_until(lambda: all(store.get_run(r.run_id).status == "interrupted"
                                         for r in runs), 60)
        assert stopped, [store.get_run(r.run_id).status for r in runs]
        assert wait_until(lambda: not any(_alive(r.pid) for r in runs), 30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    from rlworks.track.provenance import process_alive

    return process_alive(pid)


# ----------------------------------------------------------------------------- Ray
@pytest.mark.slow
@pytest.mark.ci_slow  # starting Ray takes 16-21 s on an idle machine, ~3 min under load
def test_ray_local_runs_a_grid(store):
    pytest.importorskip("ray")
    specs = grid(seeds=2)
    t0 = time.perf_counter()
    planned = launch(specs, store, ray="local", workers=2, verbose=False)
    elapsed = time.perf_counter() - t0
    assert [p.action for p in planned] == ["done", "done"], elapsed
    runs = store.list_runs(experiment="g")
    assert sorted(r.run_id for r in runs) == sorted(p.run_id for p in planned)
    assert all(r.status == "finished" for r in runs)
    assert {r.pid for r in runs}.isdisjoint({os.getpid()})  # trained in Ray's workers


def test_ray_not_installed_says_how_to_install_it(store, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(UserError, match=r"pip install 'rlworks\[dist\]'"):
        launch(grid(seeds=1), store, ray="local", verbose=False)
    assert store.list_runs() == []


def test_ray_bad_addresses_fail_fast(store):
    pytest.importorskip("ray")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.perf_counter()
    with pytest.raises(UserError, match=f"cannot reach the Ray cluster at '127.0.0.1:{port}'"):
        launch(grid(seeds=1), store, ray=f"127.0.0.1:{port}", verbose=False)
    with pytest.raises(UserError, match="cannot connect to Ray at 'nonsense': Invalid address"):
        launch(grid(seeds=1), store, ray="nonsense", verbose=False)
    assert time.perf_counter() - t0 < 15
    assert store.list_runs() == []
