"""`compare` from a hand-made store: hand-computed aggregates, CIs, notes, files and errors."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest

from rlworks.core.errors import UserError
from rlworks.eval import stats
from rlworks.eval.report import REFERENCE_SCORES, aggregate_table, compare
from rlworks.track.store import RunStore

REPS = 200
METRIC = "rollout/episodic_return"


def add(store: RunStore, algo: str, env: str, seed: int, score: float | None,
        curve: Iterable[float] = (), experiment: str | None = "exp",
        status: str = "finished") -> str:
    run_id = store.create_run(algo, env, seed, {}, "h", experiment=experiment)
    values = list(curve)
    if values:
        store.log_metrics(run_id, [(1000 * (i + 1), METRIC, v) for i, v in enumerate(values)])
    if status != "running":
        store.set_status(run_id, status,
                         summary={} if score is None else {"eval_return_mean": score})
    return run_id


def rows_by(result, algo: str) -> dict[str, dict]:
    return {r["metric"]: r for r in result.rows if r["algorithm"] == algo}


@pytest.fixture(scope="module")
def one_env(tmp_path_factory: pytest.TempPathFactory):
    """One env without reference scores: raw scores, hand-checkable."""
    root = tmp_path_factory.mktemp("one_env")
    store = RunStore(root / "store")
    for seed, s in enumerate([1.0, 2, 3, 4, 5, 6, 7, 8]):
        add(store, "a", "Foo-v0", seed, s, curve=np.linspace(0, s, 10))
    for seed, s in enumerate([0.0, 10, 10, 10]):
        add(store, "b", "Foo-v0", seed, s, curve=np.linspace(0, s, 12))
    add(store, "b", "Foo-v0", 9, 99.0, status="failed")  # not finished: left out
    result = compare(store, experiment="exp", out_dir=root / "out", reps=REPS, seed=3)
    yield store, result
    store.close()


def test_hand_computed_iqm_mean_and_improvement(one_env) -> None:
    _, res = one_env
    assert res.normalization == "none" and res.envs == ["Foo-v0"] and res.algos == ["a", "b"]
    a, b = rows_by(res, "a"), rows_by(res, "b")
    assert set(a) == {"mean", "median", "iqm"}  # no optimality gap without a scale
    assert a["iqm"]["estimate"] == pytest.approx(4.5)  # 8 scores: mean of 3, 4, 5, 6
    assert b["iqm"]["estimate"] == pytest.approx(10.0)  # 0, 10, 10, 10: mean of 10, 10
    assert a["mean"]["estimate"] == pytest.approx(4.5)
    assert b["mean"]["estimate"] == pytest.approx(7.5)  # the failed run's 99 is not in it
    assert a["mean"]["num_runs"] == 8 and b["mean"]["num_runs"] == 4
    for row in res.rows:
        assert row["lower"] <= row["estimate"] <= row["upper"], row
    (pair,) = res.pairs
    # a beats b's 0 in all 8 x 1 pairs and loses the 8 x 3 pairs against 10: 8/32
    assert (pair["x"], pair["y"], pair["estimate"]) == ("a", "b", pytest.approx(0.25))
    assert pair["lower"] <= 0.25 <= pair["upper"]
    assert any("not finished" in n for n in res.notes)


def test_report_files(one_env) -> None:
    store, res = one_env
    text = res.report.read_text()
    for needle in ("IQM", "4.500", "Probability of improvement", "0.250", f"{REPS:,} repetitions",
                   "seed 3", "raw scores", "rlworks --store", "--reps 200 --seed 3",
                   "(n=8)", "(n=4)", "interval_estimates.png", "learning_curves.svg"):
        assert needle in text, needle
    for name in ("interval_estimates", "probability_of_improvement", "performance_profile",
                 "learning_curves"):
        for path in res.plots[name]:
            assert path.is_file() and path.stat().st_size > 5_000, path
            assert path.parent == res.out_dir
    doc = json.loads((res.out_dir / "report.json").read_text())
    assert doc["aggregates"] == res.rows and doc["reps"] == REPS
    assert "a " in aggregate_table(res) and "IQM" in aggregate_table(res)


def test_deterministic_given_seed(one_env, tmp_path: Path) -> None:
    store, res = one_env
    again = compare(store, experiment="exp", out_dir=tmp_path / "again", reps=REPS, seed=3,
                    plots=False)
    assert again.rows == res.rows and again.pairs == res.pairs and again.plots == {}
    assert "--no-plots" in again.command and "(plots off" in again.report.read_text()
    other = compare(store, experiment="exp", out_dir=tmp_path / "other", reps=REPS, seed=4,
                    plots=False)
    assert [r["estimate"] for r in other.rows] == [r["estimate"] for r in res.rows]
    assert [(r["lower"], r["upper"]) for r in other.rows] != [
        (r["lower"], r["upper"]) for r in res.rows]


def test_reference_normalisation_and_missing_env(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "store")
    cp_lo, cp_hi = REFERENCE_SCORES["CartPole-v1"]
    ac_lo, ac_hi = REFERENCE_SCORES["Acrobot-v1"]
    raw = {"ppo": [[500.0, -100.0], [400.0, -200.0], [300.0, -80.0]],
           "dqn": [[200.0, -300.0], [cp_lo, ac_lo]]}
    for algo, runs in raw.items():
        for seed, (cp, ac) in enumerate(runs):
            add(store, algo, "CartPole-v1", seed, cp)
            add(store, algo, "Acrobot-v1", seed, ac)
    add(store, "dqn", "CartPole-v1", 7, 450.0)  # an extra run on one env only
    add(store, "sac", "CartPole-v1", 0, 100.0)  # sac never ran Acrobot
    res = compare(store, algos=["ppo", "dqn"], reps=REPS, out_dir=tmp_path / "out",
                  score="eval", plots=False)
    assert res.normalization == "reference" and res.envs == ["Acrobot-v1", "CartPole-v1"]
    norm = {a: (np.array(r)[:, ::-1] - [ac_lo, cp_lo]) / [ac_hi - ac_lo, cp_hi - cp_lo]
            for a, r in raw.items()}
    assert rows_by(res, "ppo")["iqm"]["estimate"] == pytest.approx(
        float(stats.aggregate_iqm(norm["ppo"])))
    assert rows_by(res, "ppo")["optimality_gap"]["estimate"] == pytest.approx(
        float(stats.aggregate_optimality_gap(norm["ppo"])))
    # dqn has 3 CartPole runs but 2 Acrobot runs: 2 per env enter the aggregate (lowest seeds)
    assert rows_by(res, "dqn")["mean"]["num_runs"] == 2
    assert rows_by(res, "dqn")["mean"]["estimate"] == pytest.approx(norm["dqn"].mean())
    assert any("left out there" in n and "seed 7" in n for n in res.notes)
    per_env = {(p["algorithm"], p["env"]): p for p in res.per_env}
    assert per_env[("dqn", "CartPole-v1")]["n"] == 3  # the per-env table keeps every run
    assert "random" in res.report.read_text() and "| CartPole-v1 | 21.4 | 500 |" in (
        res.report.read_text())

    # with sac: Acrobot is left out of the aggregate, with a note
    res = compare(store, reps=REPS, out_dir=tmp_path / "out3", plots=False)
    assert res.envs == ["CartPole-v1"] and res.algos == ["dqn", "ppo", "sac"]
    assert any("sac has no scored run on Acrobot-v1" in n for n in res.notes)
    assert "sac has no scored run on Acrobot-v1" in res.report.read_text()


def test_minmax_and_final_score(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "store")
    for seed in range(3):
        for algo, k in (("x", 1.0), ("y", 2.0)):
            add(store, algo, "Foo-v0", seed, None, curve=k * np.arange(20.0) + seed)
            add(store, algo, "Bar-v0", seed, None, curve=-k * np.arange(20.0) - seed)
    res = compare(store, score="final", reps=REPS, out_dir=tmp_path / "out", plots=False)
    assert res.normalization == "minmax"
    # final = mean of the last 10% (2 of 20) points: k * 18.5 + seed on Foo
    per_env = {(p["algorithm"], p["env"]): p for p in res.per_env}
    assert per_env[("x", "Foo-v0")]["mean"] == pytest.approx(18.5 + 1)
    assert per_env[("y", "Bar-v0")]["mean"] == pytest.approx(-37.0 - 1)
    for row in res.rows:
        assert -1e-12 <= row["estimate"] <= 1 + 1e-12
    assert "(score - min) / (max - min)" in res.report.read_text()


@pytest.fixture
def small(tmp_path: Path) -> RunStore:
    store = RunStore(tmp_path / "store")
    add(store, "ppo", "CartPole-v1", 0, 100.0, curve=[1.0, 2.0])
    add(store, "dqn", "CartPole-v1", 0, 50.0, curve=[1.0, 2.0], experiment="other")
    return store


ERRORS = {
    "unknown experiment": (dict(experiment="exq"), "did you mean 'exp'"),
    "unknown algo": (dict(algos=["ppp"]), "did you mean 'ppo'"),
    "unknown env": (dict(envs=["CartPol-v1"]), "did you mean 'CartPole-v1'"),
    "unknown metric": (dict(metric="rollout/episodic_retrun"),
                       "did you mean 'rollout/episodic_return'"),
    "one run": (dict(experiment="exp"), "at least two finished runs"),
    "bad score": (dict(score="best"), "unknown score 'best'"),
    "bad normalize": (dict(normalize="zscore"), "unknown normalization"),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_errors(case: str, small: RunStore, tmp_path: Path) -> None:
    kwargs, needle = ERRORS[case]
    with pytest.raises(UserError, match=needle.replace("(", r"\(").replace(")", r"\)")) as err:
        compare(small, out_dir=tmp_path / "out", reps=REPS, **kwargs)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()  # nothing written on bad input


def test_errors_without_scores(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "store")
    with pytest.raises(UserError, match="holds no runs"):
        compare(store, reps=REPS)
    add(store, "ppo", "CartPole-v1", 0, None, curve=[1.0, 2.0])
    add(store, "dqn", "CartPole-v1", 0, None, curve=[1.0, 2.0])
    with pytest.raises(UserError, match="--score final"):
        compare(store, reps=REPS, out_dir=tmp_path / "out")
    add(store, "a2c", "CartPole-v1", 0, None, status="running")
    with pytest.raises(UserError, match="none of the 1 matching runs is finished"):
        compare(store, algos=["a2c"], reps=REPS)
    store.close()


def test_learning_curve_is_iqm_over_runs_on_a_common_grid() -> None:
    from rlworks.eval.report import _learning_curves, _Scored
    from rlworks.track.records import RunRecord

    def run(i: int, steps: list[float], values: list[float]) -> _Scored:
        rec = RunRecord(f"r{i}", "ppo", "Foo-v0", i, None, "finished", {}, "h", {}, {}, None,
                        0.0, 1.0, None, None, ())
        return _Scored(rec, 0.0, (np.array(steps), np.array(values)))

    # four runs c * step / 10 for c = 1, 2, 3, 100; the last starts later (grid from 10)
    scored = [run(i, [0, 10, 20, 30], [0, c, 2 * c, 3 * c]) for i, c in enumerate((1, 2, 3))]
    scored.append(run(3, [10, 20, 40], [100, 200, 400]))
    notes: list[str] = []
    panels = _learning_curves(scored, ["Foo-v0"], reps=REPS, seed=0, points=3, notes=notes)
    grid, point, band = panels["Foo-v0"]["ppo"]
    np.testing.assert_allclose(grid, [10, 20, 30])  # overlap of every run's steps
    # IQM of 4 runs drops one from each end: the mean of c = 2 and 3 -> 2.5 * step / 10
    np.testing.assert_allclose(point, [2.5, 5.0, 7.5])
    assert band.shape == (2, 3) and np.all(band[0] <= point) and np.all(point <= band[1])
    assert notes == []


def test_learning_curves_default_to_periodic_evaluations_when_every_run_has_them(tmp_path):
    store = RunStore(tmp_path / "store")
    ids = [add(store, algo, "Foo-v0", seed, float(seed), curve=[1.0, 2.0, 3.0])
           for algo in ("a", "b") for seed in range(3)]
    for run_id in ids:
        store.log_metrics(run_id, [(1000 * i, "eval/return", 10.0 * i) for i in (1, 2, 3)])
    compare(store, experiment="exp", out_dir=tmp_path / "with", reps=REPS)
    assert "IQM of eval/return" in (tmp_path / "with" / "learning_curves.svg").read_text()
    add(store, "a", "Foo-v0", 9, 5.0, curve=[1.0, 2.0])  # one run without evaluations
    compare(store, experiment="exp", out_dir=tmp_path / "without", reps=REPS)
    text = (tmp_path / "without" / "learning_curves.svg").read_text()
    assert f"IQM of {METRIC}" in text and "eval/return" not in text
