"""`rlworks offline`: a tracked run with --json, exact resume through the driver, bad input as
one line with exit code 2 (and no run created), and --help without torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from rlworks.cli.main import main
from rlworks.data.dataset import Dataset
from rlworks.data.formats import save_dataset
from rlworks.track.store import RunStore

TINY = ["--total-steps", "40", "--steps-per-iter", "20", "--batch-size", "32",
        "--hidden-sizes", "16,16", "--eval-episodes", "1", "--no-progress"]


def pendulum_dataset(reference: bool = True) -> Dataset:
    """400 Pendulum-v1 transitions (gymnasium's dynamics) from uniform random torques."""
    rng = np.random.default_rng(0)
    obs, acts, rews, nxt, trunc = [], [], [], [], []
    for _ in range(2):
        th, thdot = rng.uniform(-np.pi, np.pi), rng.uniform(-1.0, 1.0)
        for t in range(200):
            u = rng.uniform(-2.0, 2.0)
            obs.append([np.cos(th), np.sin(th), thdot])
            rews.append(-(((th + np.pi) % (2 * np.pi) - np.pi) ** 2 + 0.1 * thdot**2
                          + 0.001 * u**2))
            thdot = float(np.clip(thdot + (15.0 * np.sin(th) + 3.0 * u) * 0.05, -8.0, 8.0))
            th = th + thdot * 0.05
            acts.append([u])
            nxt.append([np.cos(th), np.sin(th), thdot])
            trunc.append(t == 199)
    meta = {"env_id": "Pendulum-v1"}
    if reference:
        meta["reference_scores"] = {"random": -1200.0, "expert": -150.0}
    f32 = np.float32
    return Dataset.from_arrays(np.array(obs, f32), np.array(acts, f32), np.array(rews, f32),
                               np.zeros(400, bool), np.array(trunc), np.array(nxt, f32),
                               metadata=meta)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("offline-data")
    save_dataset(pendulum_dataset(), d / "pendulum.npz")
    save_dataset(pendulum_dataset(reference=False), d / "noref.npz")
    (d / "broken.npz").write_bytes(b"PK\x03\x04 this is not a zip archive")
    return d


def run(capsys, store, *argv) -> tuple[int, str, str]:
    code = main(["--store", str(store), *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_train_json_reports_the_normalised_score(tmp_path, capsys, data_dir):
    code, out, err = run(capsys, tmp_path, "offline", "train", "iql", "--dataset",
                         str(data_dir / "pendulum.npz"), "--seed", "1", "--json", *TINY)
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["algo"] == "iql" and summary["env_id"] == "Pendulum-v1"
    assert summary["global_step"] == 40 and summary["seed"] == 1
    ret = summary["eval_return_mean"]
    assert summary["eval_normalised_score"] == pytest.approx(100 * (ret + 1200) / 1050)
    store = RunStore(tmp_path)
    record = store.get_run(summary["run_id"])
    assert record.status == "finished" and record.env_id == "Pendulum-v1"
    assert record.config["dataset"] == str(data_dir / "pendulum.npz")
    metrics = store.metrics(summary["run_id"])
    assert metrics["eval/normalised_score"][1] == [pytest.approx(summary["eval_normalised_score"])]
    assert metrics["train/q_loss"][0] == [20, 40]


def test_no_reference_scores_no_normalised_score(tmp_path, capsys, data_dir):
    code, out, err = run(capsys, tmp_path, "offline", "train", "bc", "--dataset",
                         str(data_dir / "noref.npz"), "--json", *TINY)
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert "eval_normalised_score" not in summary and "eval_return_mean" in summary


def test_interrupted_run_resumes_to_the_same_weights(tmp_path, capsys, data_dir):
    from rlworks.exec import train as driver
    from rlworks.track.checkpoint import latest_checkpoint, load_checkpoint

    cfg = driver.build_config("td3bc", {
        "dataset": str(data_dir / "pendulum.npz"), "total_steps": 80, "steps_per_iter": 20,
        "batch_size": 32, "hidden_sizes": (16, 16), "eval_episodes": 1, "checkpoint_every": 20})
    store = RunStore(tmp_path)
    ref = driver.train("td3bc", cfg, store, progress=False)

    def kill_half_way(step, metrics):
        if step == 40:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        driver.train("td3bc", cfg, store, progress=False, callback=kill_half_way)
    run_id = next(r.run_id for r in store.list_runs() if r.run_id != ref["run_id"])
    assert store.get_run(run_id).status == "interrupted"
    code, out, err = run(capsys, tmp_path, "offline", "train", "td3bc", "--resume", run_id,
                         "--json", "--no-progress")
    assert code == 0, err
    got = json.loads(out.strip().splitlines()[-1])
    assert got["resumed"] and got["eval_return_mean"] == ref["eval_return_mean"]

    def final(rid):
        path = latest_checkpoint(store.run_dir(rid) / "checkpoints")
        return load_checkpoint(path)[1]

    a, b = final(ref["run_id"]), final(run_id)
    for name in ("actor", "critic", "critic_target"):
        for key in a[name]:
            assert np.array_equal(np.asarray(a[name][key]), np.asarray(b[name][key])), key
    ma = {k: v for k, v in store.metrics(ref["run_id"]).items() if not k.startswith("perf/")}
    mb = {k: v for k, v in store.metrics(run_id).items() if not k.startswith("perf/")}
    assert ma == mb


BAD = {
    "unknown algorithm": (["iqk"], "did you mean 'iql'"),
    "online algorithm": (["sac"], "online algorithm"),
    "unknown dataset name": (["iql", "--dataset", "pendulum-medum"], "medum"),
    "missing dataset file": (["iql", "--dataset", "/nonexistent/d.npz"], "does not exist"),
    "corrupt file": (["iql", "--dataset", "{dir}/broken.npz"], "broken.npz"),
    "obs shape does not fit env": (["iql", "--dataset", "{dir}/pendulum.npz", "--env-id",
                                    "CartPole-v1"], "observation shape (3,)"),
    "unknown env": (["iql", "--dataset", "{dir}/pendulum.npz", "--env-id", "Pendulm-v1"],
                    "did you mean 'Pendulum-v1'"),
    "no dataset": (["iql"], "needs --dataset"),
    "bad field": (["iql", "--dataset", "{dir}/pendulum.npz", "--expectile", "2"], "expectile"),
    "bad choice": (["iql", "--dataset", "{dir}/pendulum.npz", "--q-loss", "hubber"],
                   "did you mean 'huber'"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_exit_2_and_no_run(case, tmp_path, capsys, data_dir):
    argv, needle = BAD[case]
    argv = [a.replace("{dir}", str(data_dir)) for a in argv]
    code, _out, err = run(capsys, tmp_path / "store", "offline", "train", *argv, *TINY)
    assert code == 2
    err = err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and needle in err, err
    assert not (tmp_path / "store").exists() or not RunStore(tmp_path / "store").list_runs()


def test_online_train_refuses_offline_algorithms_and_does_not_list_them(tmp_path, capsys):
    code, _out, err = run(capsys, tmp_path, "train", "iql")
    assert code == 2 and "rlworks offline train iql" in err
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert "ppo" in out and "iql" not in out and "td3bc" not in out


def test_offline_algos_lists_the_preset(tmp_path, capsys):
    code, out, _ = run(capsys, tmp_path, "offline", "algos")
    assert code == 0
    names = [line.split()[0] for line in out.splitlines() if not line.startswith(" ")]
    assert names == ["awac", "bc", "cql", "finetune", "iql", "riql", "td3bc", "wsrl"]
    assert "q_loss=huber" in out and "q_aggregation=quantile" in out


def test_help_does_not_import_torch():
    code = ("import sys\nfrom rlworks.cli.main import main\n"
            "try:\n    main(['offline', 'train', 'riql', '--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'torch imported'\nprint('ok')")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "RLWORKS_QUIET": "1"}, timeout=120)
    assert res.returncode == 0 and res.stdout.strip().endswith("ok"), res.stderr
    assert "--huber-delta" in res.stdout and "Preset riql sets" in res.stdout
