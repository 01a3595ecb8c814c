"""Bad input: one line naming the input and the fix, exit code 2, no traceback, and nothing
already stored is lost."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from rlworks.cli.main import main
from rlworks.track.store import RunStore


@pytest.fixture()
def store(tmp_path):
    s = RunStore(tmp_path / "store")
    run_id = s.create_run(algo="ppo", env_id="CartPole-v1", seed=0, config={"a": 1},
                          config_hash="x")
    s.log_metrics(run_id, [(1, "rollout/episodic_return", 10.0)])
    s.set_status(run_id, "finished", summary={"eval_return_mean": 10.0})
    return tmp_path / "store", run_id


BAD = {
    "unknown algorithm": (["train", "ppq"], "did you mean 'ppo'"),
    "unknown env": (["train", "ppo", "--env", "CartPol-v1"], "did you mean 'CartPole-v1'"),
    "negative budget": (["train", "ppo", "--total-steps", "-5"], "total_steps"),
    "non-numeric budget": (["train", "dqn", "--total-steps", "lots"], "total_steps"),
    "unknown flag": (["train", "ppo", "--gama", "0.9"], "did you mean '--gamma'"),
    "bad choice": (["train", "ppo", "--backend", "fast"], "backend"),
    "unknown run id": (["runs", "show", "zzzzzzzz"], "unknown run id"),
    "eval unknown run": (["eval", "zzzzzzzz"], "unknown run id"),
    "missing config": (["train", "ppo", "--config", "/nonexistent.toml"], "does not exist"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_exit_2(case, store, capsys):
    argv, needle = BAD[case]
    path, run_id = store
    assert main(["--store", str(path), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: ") and needle in err, err
    s = RunStore(path)  # nothing already stored is lost
    assert s.get_run(run_id).summary["eval_return_mean"] == 10.0
    assert s.metrics(run_id)["rollout/episodic_return"][1] == [10.0]


def test_malformed_config_file(store, tmp_path, capsys):
    path, _ = store
    bad = tmp_path / "bad.toml"
    bad.write_text("gamma = = 0.9\n")
    assert main(["--store", str(path), "train", "ppo", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.toml" in err and "malformed" in err
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("gama: 0.9\n")
    assert main(["--store", str(path), "train", "ppo", "--config", str(wrong)]) == 2
    assert "did you mean 'gamma'" in capsys.readouterr().err


def test_unwritable_store_path(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main(["--store", str(blocker / "store"), "train", "ppo", "--total-steps", "10"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(blocker) in err


def test_cli_process_has_no_traceback_and_never_imports_torch_for_help():
    code = ("import sys\nfrom rlworks.cli.main import main\n"
            "try:\n    main(['train', 'sac', '--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules and 'gymnasium' not in sys.modules\n"
            "print('ok')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ})
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr
    assert "--learning-starts" in proc.stdout  # the help came from SACConfig's fields
    proc = subprocess.run([sys.executable, "-m", "rlworks.cli.main", "train", "ppq"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
