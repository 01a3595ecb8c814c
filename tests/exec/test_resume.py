"""Kill a run with SIGKILL about half way, resume it, and get the uninterrupted run's exact
final weights and metrics (acceptance point of the foundation issue)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from rlworks.track.store import RunStore

CASES = {
    "ppo": ["--env", "CartPole-v1", "--total-steps", "12288", "--checkpoint-every", "1024",
            "--eval-every", "4096"],
    "sac": ["--env", "Pendulum-v1", "--total-steps", "1600", "--checkpoint-every", "200",
            "--learning-starts", "100", "--batch-size", "64", "--hidden-sizes", "32,32"],
}


def rlworks(store: Path, *args: str, **kw) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "rlworks.cli.main", "--store", str(store), *args]
    env = {**os.environ, "RLWORKS_QUIET": "1"}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, **kw)


def final_state(store: Path, run_id: str) -> tuple[dict, dict]:
    s = RunStore(store)
    ckpts = sorted((s.run_dir(run_id) / "checkpoints").glob("step_*.safetensors"))
    weights = load_file(str(ckpts[-1]))
    metrics = {k: v for k, v in s.metrics(run_id).items() if not k.startswith("perf/")}
    return weights, metrics


@pytest.mark.parametrize("algo", sorted(CASES))
def test_sigkill_half_way_then_resume_is_bit_identical(tmp_path, algo):
    args = ["train", algo, *CASES[algo], "--backend", "native", "--seed", "3",
            "--eval-episodes", "2", "--json"]
    total = int(CASES[algo][CASES[algo].index("--total-steps") + 1])

    straight = rlworks(tmp_path / "a", *args)
    out, err = straight.communicate(timeout=600)
    assert straight.returncode == 0, err
    ref = json.loads(out.strip().splitlines()[-1])

    victim = rlworks(tmp_path / "b", *args)
    run_id, killed_at = None, None
    deadline = time.time() + 600
    while time.time() < deadline and victim.poll() is None:
        time.sleep(0.05)
        if not (tmp_path / "b" / "runs.sqlite").exists():
            continue
        store = RunStore(tmp_path / "b")
        runs = store.list_runs()
        if not runs:
            continue
        run_id = runs[0].run_id
        steps = store.metrics(run_id, ["train/learning_rate", "rollout/episodic_return",
                                       "train/q_loss", "train/critic_loss"])
        done = max((max(s) for s, _ in steps.values() if s), default=0)
        if done >= total // 2:
            victim.send_signal(signal.SIGKILL)
            killed_at = done
            break
    victim.communicate(timeout=60)
    assert killed_at is not None, "the run finished before it could be killed half way"
    assert RunStore(tmp_path / "b").get_run(run_id).status == "unfinished"

    resumed = rlworks(tmp_path / "b", "train", algo, "--resume", run_id, "--json")
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    got = json.loads(out.strip().splitlines()[-1])
    assert got["eval_return_mean"] == ref["eval_return_mean"]

    w_ref, m_ref = final_state(tmp_path / "a", ref["run_id"])
    w_got, m_got = final_state(tmp_path / "b", run_id)
    assert w_ref.keys() == w_got.keys()
    for key in w_ref:
        np.testing.assert_array_equal(w_got[key], w_ref[key], err_msg=key)
    assert m_ref.keys() == m_got.keys()
    for key in m_ref:
        assert m_got[key][0] == m_ref[key][0], key
        np.testing.assert_array_equal(m_got[key][1], m_ref[key][1], err_msg=key)
