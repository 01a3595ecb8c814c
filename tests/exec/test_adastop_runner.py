"""rlworks.exec.adastop_runner: interims through a (fake) launcher, replay after a kill, setup.

Training is replaced by scores drawn from known normal distributions, so these tests run in
well under a second each; the real end-to-end run is in tests/cli/test_adastop_cli.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from rlworks.core.config import config_hash, config_to_dict
from rlworks.core.errors import UserError
from rlworks.core.seeding import make_rng
from rlworks.eval.adastop import AdaStop
from rlworks.exec import launcher
from rlworks.exec.adastop_runner import make_setup, parse_settings, run_adastop
from rlworks.exec.experiment import RunSpec
from rlworks.track.store import RunStore


def fake_score(algo: str, seed: int, means: dict[str, float]) -> float:
    """One run's "eval return": N(means[algo], 1), fixed by (algo, seed)."""
    return float(make_rng(seed, "fake-score", algo).normal(means[algo], 1.0))


class FakeLaunch:
    """Stands in for ``launcher.launch``: every spec "trains" at once; records each call."""

    def __init__(self, means: dict[str, float]) -> None:
        self.means = means
        self.calls: list[list[tuple[str, int]]] = []

    def __call__(self, specs: list[RunSpec], store: Any, *, workers: Any, verbose: bool,
                 on_finish: Any) -> list[launcher.PlannedRun]:
        self.calls.append([(s.algo, s.seed) for s in specs])
        out = []
        for s in specs:
            p = launcher.PlannedRun(s, "done", f"{s.algo}-{s.seed}", "",
                                    {"eval_return_mean": fake_score(s.algo, s.seed, self.means)})
            on_finish(p)
            out.append(p)
        return out


def test_clear_winner_is_decided_early() -> None:
    means = {"ppo": 5.0, "sac": 0.0}
    setup = make_setup(["ppo", "sac"], "Pendulum-v1", n=5, K=4)
    fake = FakeLaunch(means)
    result = run_adastop(setup, store=None, launch_fn=fake)
    [r] = result.test.decisions
    assert (r.a, r.b, r.decision) == ("ppo", "sac", "larger")
    assert result.test.k < setup.K and r.interim == result.test.k
    assert len(fake.calls) == result.test.k
    assert result.trained == 2 * 5 * result.test.k and result.reused == 0


def test_only_undecided_algorithms_get_new_runs() -> None:
    """ppo beats both others at interim 1; sac vs td3 (equal means) go on alone, with the next
    block of seeds at every interim."""
    means = {"ppo": 8.0, "sac": 0.0, "td3": 0.0}
    setup = make_setup(["ppo", "sac", "td3"], "Pendulum-v1", n=5, K=4, seed=100)
    fake = FakeLaunch(means)
    result = run_adastop(setup, store=None, launch_fn=fake)
    by_pair = {(r.a, r.b): r for r in result.test.decisions}
    assert by_pair["ppo", "sac"].decision == "larger" and by_pair["ppo", "sac"].interim == 1
    assert by_pair["ppo", "td3"].decision == "larger" and by_pair["ppo", "td3"].interim == 1
    assert len(fake.calls) >= 2
    assert fake.calls[0] == [(a, s) for a in ("ppo", "sac", "td3") for s in range(100, 105)]
    for k, call in enumerate(fake.calls[1:], start=1):
        assert call == [(a, s) for a in ("sac", "td3") for s in range(100 + 5 * k, 105 + 5 * k)]
    assert result.runs["ppo"] == [f"ppo-{s}" for s in range(100, 105)]
    assert len(result.runs["sac"]) == 5 * len(fake.calls)


def test_all_equal_ends_equal_at_the_last_interim() -> None:
    means = {"ppo": 1.0, "sac": 1.0, "td3": 1.0}
    setup = make_setup(["ppo", "sac", "td3"], "Pendulum-v1", n=4, K=3, seed=7)
    fake = FakeLaunch(means)
    result = run_adastop(setup, store=None, launch_fn=fake)
    assert [r.decision for r in result.test.decisions] == ["equal"] * 3
    assert [r.interim for r in result.test.decisions] == [3] * 3
    assert len(fake.calls) == 3 and result.trained == 3 * 4 * 3


def test_scores_reach_the_test_unchanged() -> None:
    """The runner's test equals an AdaStop fed the same scores by hand."""
    means = {"ppo": 1.0, "dqn": 0.0}
    setup = make_setup(["ppo", "dqn"], "CartPole-v1", n=3, K=3, B=50, seed=3)
    result = run_adastop(setup, store=None, launch_fn=FakeLaunch(means))
    direct = AdaStop(3, 3, 50, algorithms=["ppo", "dqn"], rng=3)
    while not direct.is_finished:
        seeds = range(3 + direct.k * 3, 6 + direct.k * 3)
        direct.partial_compare({a: [fake_score(a, s, means) for s in seeds]
                                for a in direct.algorithms_to_run})
    assert result.test.decisions == direct.decisions
    assert np.array_equal(result.test.scores("ppo"), direct.scores("ppo"))


# ----------------------------------------------------------------------------- resume by replay
class FakeRunOne:
    """Stands in for ``launcher.run_one`` (the real launcher and store around it): writes a
    finished run to the store; the ``kill_at``-th call leaves it "interrupted" and raises
    KeyboardInterrupt, as a killed command would."""

    def __init__(self, means: dict[str, float], kill_at: int | None = None) -> None:
        self.means, self.kill_at = means, kill_at
        self.calls: list[tuple[str, int, bool]] = []

    def __call__(self, spec_dict: dict[str, Any], store_path: str,
                 run_id: str | None) -> dict[str, Any]:
        spec = RunSpec.from_dict(spec_dict)
        self.calls.append((spec.algo, spec.seed, run_id is not None))
        with RunStore(store_path) as store:
            if run_id is None:
                cfg = spec.config()
                run_id = store.create_run(spec.algo, spec.env_id, spec.seed, config_to_dict(cfg),
                                          config_hash(cfg), experiment=spec.experiment)
            if len(self.calls) == self.kill_at:
                store.set_status(run_id, "interrupted")
                raise KeyboardInterrupt
            summary = {"run_id": run_id,
                       "eval_return_mean": fake_score(spec.algo, spec.seed, self.means)}
            store.set_status(run_id, "finished", summary=summary)
        return summary


def test_rerun_after_a_kill_trains_nothing_twice(tmp_path, monkeypatch) -> None:
    means = {"ppo": 0.0, "dqn": 0.0}  # equal: the test runs all K = 3 interims, 18 runs
    setup = make_setup(["ppo", "dqn"], "CartPole-v1", n=3, K=3)

    clean = FakeRunOne(means)
    monkeypatch.setattr(launcher, "run_one", clean)
    reference = run_adastop(setup, RunStore(tmp_path / "clean"), workers=1, verbose=False)
    assert len(clean.calls) == 18 and reference.trained == 18

    store = RunStore(tmp_path / "killed")
    first = FakeRunOne(means, kill_at=8)  # in interim 2: 6 runs of interim 1 + 1 finished
    monkeypatch.setattr(launcher, "run_one", first)
    with pytest.raises(KeyboardInterrupt):
        run_adastop(setup, store, workers=1, verbose=False)
    second = FakeRunOne(means)
    monkeypatch.setattr(launcher, "run_one", second)
    result = run_adastop(setup, store, workers=1, verbose=False)

    finished_first = {(a, s) for a, s, _ in first.calls[:-1]}
    assert len(finished_first) == 7
    assert not finished_first & {(a, s) for a, s, _ in second.calls}
    killed = first.calls[-1][:2]
    assert (*killed, True) in second.calls  # resumed under its own run id, not restarted
    assert sorted(first.calls[:-1] + second.calls) == sorted(clean.calls[:7] + [
        (a, s, (a, s) == killed) for a, s, _ in clean.calls[7:]])
    assert result.trained == 11 and result.reused == 7
    assert result.test.decisions == reference.test.decisions

    third = FakeRunOne(means)  # after the end: the same command only replays
    monkeypatch.setattr(launcher, "run_one", third)
    again = run_adastop(setup, store, workers=1, verbose=False)
    assert third.calls == [] and again.trained == 0 and again.reused == 18
    assert again.test.decisions == reference.test.decisions
    assert again.runs == result.runs


# ----------------------------------------------------------------------------- setup
def test_setup_types_overrides_per_algorithm_and_derives_seeds() -> None:
    setup = make_setup(["ppo", "dqn"], "CartPole-v1", n=2, K=3, seed=10,
                       overrides=parse_settings(["total_steps=512", "ppo.learning_rate=1e-3",
                                                 "dqn.total_steps=1_024"]))
    assert setup.experiment == "adastop/CartPole-v1/ppo-dqn"
    assert list(setup.seeds(0)) == [10, 11] and list(setup.seeds(2)) == [14, 15]
    ppo, _, dqn, _ = setup.specs(1, ["ppo", "dqn"])
    assert (ppo.seed, dqn.seed) == (12, 12)
    assert dict(ppo.overrides) == {"total_steps": 512, "learning_rate": 0.001}
    assert dict(dqn.overrides) == {"total_steps": 1024}  # the per-algorithm value wins
    assert ppo.config().total_steps == 512 and dqn.config().total_steps == 1024


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"algos": ["ppo", "dqm"]}, "did you mean 'dqn'"),
    ({"algos": ["ppo"]}, "at least 2"),
    ({"algos": ["ppo", "dqn", "ppo"]}, "listed twice"),
    ({"env_id": "CartPol-v1"}, "did you mean 'CartPole-v1'"),
    ({"n": 1}, "n must be"),
    ({"K": 0}, "K must be"),
    ({"alpha": 1.0}, "alpha must be in (0, 1)"),
    ({"beta": -0.1}, "beta must be"),
    ({"overrides": {"gama": "0.9"}}, "did you mean 'gamma'"),
    ({"overrides": {"clip_eps": "0.1"}}, "--set ALGO.clip_eps"),
    ({"overrides": {"sac.gamma": "0.9"}}, "not one of the compared"),
    ({"overrides": {"seed": "3"}}, "--seed"),
    ({"overrides": {"total_steps": "lots"}}, "must be an integer"),
    ({"overrides": {"total_steps": "-5"}}, "total_steps"),
    ({"experiment": " "}, "experiment name is empty"),
])
def test_setup_rejects_bad_input(kwargs: dict[str, Any], needle: str) -> None:
    args = {"algos": ["ppo", "dqn"], "env_id": "CartPole-v1", "n": 3, "K": 2, **kwargs}
    with pytest.raises(UserError) as err:
        make_setup(**args)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_parse_settings_rejects_malformed_items() -> None:
    assert parse_settings(["a=1", "ppo.b = x=y"]) == {"a": "1", "ppo.b": "x=y"}
    with pytest.raises(UserError, match="expected KEY=VALUE"):
        parse_settings(["total_steps"])
    with pytest.raises(UserError, match="given twice"):
        parse_settings(["a=1", "a=2"])
