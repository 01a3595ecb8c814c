"""``rlworks adastop``: a real tiny comparison end to end, score files, and bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from rlworks.cli.main import main
from rlworks.eval.adastop import AdaStop
from rlworks.exec import launcher
from rlworks.track.store import RunStore

TINY = ["adastop", "--algos", "ppo,dqn", "--env", "CartPole-v1", "--n", "2", "--K", "2",
        "--total-steps", "512", "--set", "eval_episodes=2", "--workers", "1"]


def test_tiny_real_comparison_then_rerun_replays(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("RLWORKS_QUIET", "1")  # the in-process launcher sets it; undo it after
    store = tmp_path / "store"
    assert main(["--store", str(store), *TINY]) == 0
    out, err = capsys.readouterr()
    assert "| comparison |" in out and "| ppo vs dqn |" in out
    assert "8 runs trained, 0 reused" in out
    assert "interim 1/2 (ppo, dqn seeds 0-1: 4 trained, 0 reused)" in err
    runs = RunStore(store).list_runs(experiment="adastop/CartPole-v1/ppo-dqn")
    assert sorted((r.algo, r.seed, r.status) for r in runs) == sorted(
        (a, s, "finished") for a in ("ppo", "dqn") for s in range(4))
    assert {r.config["total_steps"] for r in runs} == {512}
    assert {r.config["eval_episodes"] for r in runs} == {2}

    assert main(["--store", str(store), *TINY, "--json"]) == 0  # same command: replay only
    out, _ = capsys.readouterr()
    doc = json.loads(out)
    assert doc["trained"] == 0 and doc["reused"] == 8 and doc["finished"]
    by_id = {r.run_id: r for r in runs}
    for algo in ("ppo", "dqn"):
        assert [by_id[i].seed for i in doc["runs"][algo]] == [0, 1, 2, 3]
        assert doc["scores"][algo] == [by_id[i].summary["eval_return_mean"]
                                       for i in doc["runs"][algo]]


def test_interrupt_says_how_to_continue(tmp_path, capsys, monkeypatch) -> None:
    def killed(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(launcher, "run_one", killed)
    assert main(["--store", str(tmp_path / "store"), *TINY]) == 130
    assert "run the same command again" in capsys.readouterr().err


# ----------------------------------------------------------------------------- score files
def write_interims(folder: Path, means: dict[str, float], n: int, count: int,
                   seed: int) -> list[str]:
    """Score files in the ``adastop`` CLI's layout (what ``DataFrame.to_csv`` writes):
    a header ``,algo1,algo2,...`` then one row per run, led by its index."""
    rng = np.random.default_rng(seed)
    paths = []
    for k in range(count):
        path = folder / f"interim_{k}.csv"
        with path.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["", *means])
            cols = [rng.normal(m, 1.0, size=n) for m in means.values()]
            for i in range(n):
                w.writerow([i, *(repr(float(c[i])) for c in cols)])
        paths.append(str(path))
    return paths


@pytest.mark.parametrize(("means", "B", "comparisons"), [
    ({"a": 0.0, "b": 3.0, "c": 0.0}, 1_000, "all"),  # sampled after interim 1
    ({"a": 0.0, "b": 0.5, "c": 2.0, "d": 0.0}, 100_000, "first"),  # enumerated twice
])
def test_csv_matches_adastop_called_directly(tmp_path, capsys, means, B, comparisons) -> None:
    n, K, seed = 5, 4, 11
    paths = write_interims(tmp_path, means, n, K, seed=1)
    code = main(["adastop", "--csv", *paths, "--K", str(K), "--B", str(B), "--seed", str(seed),
                 "--comparisons", comparisons, "--json"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)

    direct = AdaStop(n, K, B, comparisons=comparisons, algorithms=list(means), rng=seed)
    rng = np.random.default_rng(1)  # the same draws as write_interims
    for _ in range(K):
        block = {a: rng.normal(m, 1.0, size=n) for a, m in means.items()}
        if not direct.is_finished:
            direct.partial_compare({a: block[a] for a in direct.algorithms_to_run})
    # Scores round-trip exactly (repr), so statistics and boundaries match exactly too; the
    # boundaries of sampled interims depend on --seed reaching the test's rng.
    expected = [(r.a, r.b, r.decision, r.interim, r.statistic,
                 r.boundary if np.isfinite(r.boundary) else None) for r in direct.decisions]
    got = [(d["a"], d["b"], d["decision"], d["interim"], d["statistic"], d["boundary"])
           for d in doc["decisions"]]
    assert got == expected
    assert doc["interims"] == direct.k and doc["files"] == paths[:direct.k]
    assert {d["decision"] for d in doc["decisions"]} >= {"equal"}  # a mixed outcome
    assert {d["decision"] for d in doc["decisions"]} & {"larger", "smaller"}


def test_csv_table_and_unused_files(tmp_path, capsys) -> None:
    paths = write_interims(tmp_path, {"x": 0.0, "y": 10.0}, 5, 3, seed=2)
    assert main(["adastop", "--csv", *paths, "--K", "3", "--algos", "y,x"]) == 0
    out, err = capsys.readouterr()
    assert "| y vs x |" in out and "| larger | 1/3 |" in out
    assert f"not used: {paths[1]}, {paths[2]}" in err


# ----------------------------------------------------------------------------- bad input
BAD = {
    "unknown algo": ({"--algos": "ppo,dqm"}, "did you mean 'dqn'"),
    "unknown env": ({"--env": "CartPol-v1"}, "did you mean 'CartPole-v1'"),
    "n < 2": ({"--n": "1"}, "n must be an integer >= 2"),
    "no n": ({"--n": None}, "--n is required"),
    "K < 1": ({"--K": "0"}, "K must be an integer >= 1"),
    "no K": ({"--K": None}, "required: --K"),
    "alpha > 1": ({"--alpha": "1.5"}, "alpha must be in (0, 1)"),
    "alpha = 0": ({"--alpha": "0"}, "alpha must be in (0, 1)"),
    "one algo": ({"--algos": "ppo"}, "at least 2 algorithms"),
    "duplicate algo": ({"--algos": "ppo,dqn,ppo"}, "ppo listed twice"),
    "bad set key": ({"--set": "gama=0.9"}, "did you mean 'gamma'"),
    "set without =": ({"--set": "gamma"}, "expected KEY=VALUE"),
    "set other algo": ({"--set": "sac.gamma=0.9"}, "not one of the compared algorithms"),
    "set seed": ({"--set": "seed=3"}, "--seed"),
    "set bad value": ({"--set": "gamma=high"}, "'gamma' must be a number"),
    "steps twice": ({"--set": "total_steps=5"}, "give it once"),
    "bad comparisons": ({"--comparisons": "some"}, "invalid choice"),
    "workers 0": ({"--workers": "0"}, "--workers must be >= 1"),
}
GOOD = {"--algos": "ppo,dqn", "--env": "CartPole-v1", "--n": "3", "--K": "2",
        "--total-steps": "512"}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_exit_2_and_launches_nothing(case, tmp_path, capsys,
                                                           monkeypatch) -> None:
    launched = []
    monkeypatch.setattr(launcher, "launch", lambda *a, **k: launched.append(a))
    store = tmp_path / "store"
    changes, needle = BAD[case]
    flags = {**GOOD, **changes}
    argv = [x for flag, value in flags.items() if value is not None for x in (flag, value)]
    assert main(["--store", str(store), "adastop", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: ") and needle in err, err
    assert launched == [] and not store.exists()


@pytest.mark.parametrize(("extra", "needle"), [
    (["--env", "CartPole-v1"], "drop --env"),
    (["--set", "gamma=0.9"], "drop --set"),
    (["--K", "1"], "2 score files but K = 1"),
    (["--K", "3", "--n", "4"], "expected n = 4"),
    (["--K", "3", "--algos", "x,z"], "'z' is not a column"),
])
def test_csv_bad_input(tmp_path, capsys, extra, needle) -> None:
    paths = write_interims(tmp_path, {"x": 0.0, "y": 0.0}, 5, 2, seed=3)
    k_given = "--K" in extra
    argv = ["adastop", "--csv", *paths, *([] if k_given else ["--K", "2"]), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err


def test_csv_missing_file(tmp_path, capsys) -> None:
    assert main(["adastop", "--csv", str(tmp_path / "nope.csv"), "--K", "2"]) == 2
    assert "does not exist" in capsys.readouterr().err
