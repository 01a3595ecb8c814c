"""rlworks.exec.tune: [tune] validation, the tuning/test seed guard, resumable trial counting,
pruning, and the tuned-vs-default statistics. Training is replaced by a fast fake here (its
return is a known function of the learning rate); the real end-to-end run is in
tests/cli/test_tune_cli.py."""

from __future__ import annotations

import copy
import math

import numpy as np
import optuna
import pytest

from rlworks.core.config import config_hash, config_to_dict
from rlworks.core.errors import UserError
from rlworks.eval.stats import aggregate_iqm
from rlworks.exec import train as driver
from rlworks.exec import tune as tune_mod
from rlworks.exec.experiment import parse_experiment
from rlworks.exec.train import StopRun
from rlworks.exec.tune import (
    TrialRunner,
    compare_scores,
    make_sampler,
    open_study,
    run_search,
    tune,
    tune_dir,
)
from rlworks.exec.tune_spec import SeedLeakError, TuneSpec, parse_tune
from rlworks.track.store import RunStore

TUNING, TEST = [0, 1], [100, 101, 102]


def experiment(**tune_over):
    data = {
        "experiment": {"name": "lr", "algos": ["ppo"], "envs": ["CartPole-v1"]},
        "config": {"eval_episodes": 2},
        "tune": {"trials": 4, "tuning_seeds": TUNING, "test_seeds": TEST, "budget": 512,
                 "workers": 1, "space": {"learning_rate": {"low": 1e-4, "high": 1e-2,
                                                           "log": True}}},
    }
    for key, value in tune_over.items():
        if value is None:
            data["tune"].pop(key, None)
        else:
            data["tune"][key] = value
    return parse_experiment(copy.deepcopy(data), source="t.toml")


def fake_return(cfg) -> float:
    """Best at learning_rate = 10**-2.5; a little seed noise."""
    return 500.0 - 100.0 * abs(math.log10(cfg.learning_rate) + 2.5) + cfg.seed % 7


@pytest.fixture
def calls(monkeypatch):
    """Replace train() with a fast fake that stores a real run; record (experiment, seed)."""
    seen: list[tuple[str, int]] = []

    def fake_train(algo, cfg, store, *, experiment=None, progress=None, callback=None, **kw):
        seen.append((experiment, cfg.seed))
        run_id = store.create_run(algo=algo, env_id=cfg.env_id, seed=cfg.seed,
                                  config=config_to_dict(cfg), config_hash=config_hash(cfg),
                                  experiment=experiment, tags=kw.get("tags", ()))
        value = fake_return(cfg)
        base = {"run_id": run_id, "algo": algo, "env_id": cfg.env_id, "seed": cfg.seed}
        try:
            for step in range(64, cfg.total_steps + 1, 64):
                if callback is not None:
                    callback(step, {"rollout/episodic_return": value * step / cfg.total_steps})
        except StopRun as stop:
            summary = {**base, "pruned": True, "pruned_reason": str(stop)}
            store.set_status(run_id, "pruned", summary=summary)
            return summary
        summary = {**base, "eval_return_mean": value, "eval_return_std": 0.0,
                   "global_step": cfg.total_steps}
        store.set_status(run_id, "finished", summary=summary)
        return summary

    monkeypatch.setattr(driver, "train", fake_train)
    return seen


# ----------------------------------------------------------------------------- validation
BAD = {
    "overlapping seeds": (dict(test_seeds=[1, 5, 0]), "share seeds [0, 1]"),
    "unknown field": (dict(space={"learning_rat": {"low": 1e-4, "high": 1e-3}}),
                      "did you mean 'learning_rate'"),
    "low >= high": (dict(space={"learning_rate": {"low": 1e-3, "high": 1e-3}}),
                    "low (0.001) must be below high (0.001)"),
    "log needs low > 0": (dict(space={"ent_coef": {"low": 0.0, "high": 0.1, "log": True}}),
                          "log scale needs low > 0"),
    "int field, float bound": (dict(space={"update_epochs": {"low": 1.5, "high": 8}}),
                               "must be an integer"),
    "invalid value": (dict(space={"gamma": {"low": 0.9, "high": 1.5}}), "gamma"),
    "seed not tunable": (dict(space={"seed": {"low": 0, "high": 9}}), "cannot be tuned"),
    "budget not tunable": (dict(space={"total_steps": {"choices": [1000, 2000]}}),
                           "set [tune] budget"),
    "range on a bool": (dict(space={"anneal_lr": {"low": 0, "high": 1}}), "use choices"),
    "empty choices": (dict(space={"activation": {"choices": []}}), "non-empty list"),
    "bad choice value": (dict(space={"activation": {"choices": ["tanh", "gelu"]}}),
                         "activation"),
    "unknown space key": (dict(space={"learning_rate": {"low": 1e-4, "hi": 1e-3}}),
                          "did you mean 'high'"),
    "unknown tune key": (dict(trails=4), "did you mean 'trials'"),
    "bad sampler": (dict(sampler="tpr"), "did you mean 'tpe'"),
    "missing test seeds": (dict(test_seeds=None), "test_seeds must be a list"),
    "one test seed": (dict(test_seeds=[9]), "at least 2"),
    "algo not in grid": (dict(algo="dqn"), "not in [experiment] algos"),
    "empty space": (dict(space={}), "[tune.space] is missing"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_tune_table_is_one_line_user_error(case):
    over, needle = BAD[case]
    with pytest.raises(UserError) as err:
        parse_tune(experiment(**over))
    msg = str(err.value)
    assert needle in msg and "\n" not in msg, msg


def test_valid_space_parses_ranges_and_choices():
    spec = parse_tune(experiment(space={
        "learning_rate": {"low": 1e-4, "high": 1e-2, "log": True},
        "update_epochs": {"low": 2, "high": 20, "step": 2},
        "hidden_sizes": {"choices": [[64, 64], [32]]},
        "anneal_lr": {"choices": [True, False]},
    }))
    kinds = {p.name: (p.kind, p.low, p.high, p.log, p.choices) for p in spec.space}
    assert kinds["learning_rate"] == ("float", 1e-4, 1e-2, True, ())
    assert kinds["update_epochs"][:3] == ("int", 2, 20)
    assert kinds["hidden_sizes"][4] == ("64,64", "32")
    assert spec.config({"hidden_sizes": "32"}, 0).hidden_sizes == (32,)
    assert spec.budget == 512 and spec.tuning_seeds == (0, 1) and spec.test_seeds == (100, 101, 102)


def test_budget_defaults_to_the_config_total_steps():
    exp = experiment(budget=None)
    exp.config["total_steps"] = 3072
    assert parse_tune(exp).budget == 3072


# ----------------------------------------------------------------------------- the seed guard
def test_spec_refuses_overlapping_seeds_even_when_built_in_code():
    with pytest.raises(UserError, match=r"share seeds \[3\]"):
        TuneSpec("x", "ppo", "CartPole-v1", (1, 3), (3, 4), (), 512)


def test_trial_runner_refuses_test_and_foreign_seeds(tmp_path, calls):
    spec = parse_tune(experiment())
    with RunStore(tmp_path / "s") as store:
        runner = TrialRunner(spec, store)
        for seed in (TEST[0], 7):
            with pytest.raises(SeedLeakError, match=f"seed {seed} is not a tuning seed"):
                runner.train_seed({"learning_rate": 1e-3}, seed)
        assert calls == []  # refused before anything reached train()
        runner.train_seed({"learning_rate": 1e-3}, TUNING[1])
    assert calls == [("lr/tune", TUNING[1])]


def test_no_test_seed_reaches_train_during_tuning(tmp_path, calls, monkeypatch):
    """Every seed train() sees before the final phase is a tuning seed; then exactly the test
    seeds, once per configuration."""
    phase_start: list[int] = []
    original = tune_mod.run_final

    def marked_final(*args, **kw):
        phase_start.append(len(calls))
        return original(*args, **kw)

    monkeypatch.setattr(tune_mod, "run_final", marked_final)
    with RunStore(tmp_path / "s") as store:
        result = tune(experiment(trials=6), store, verbose=False)
        tags = {r.tags for r in store.list_runs(experiment="lr/tune")}
    assert tags and all(len(t) == 1 and t[0].startswith("trial-") for t in tags)
    search, final = calls[:phase_start[0]], calls[phase_start[0]:]
    assert search, "the search trained nothing"
    assert {s for _, s in search} <= set(TUNING)
    assert not {s for _, s in search} & set(TEST)
    assert {e for e, _ in search} == {"lr/tune"}
    assert sorted(final) == sorted([("lr/tuned", s) for s in TEST]
                                   + [("lr/default", s) for s in TEST])
    assert [s["seed"] for s in result.final["tuned"]] == TEST


# ----------------------------------------------------------------------------- search
def test_search_finds_the_good_learning_rate_and_reports_tuned_vs_default(tmp_path, calls):
    with RunStore(tmp_path / "s") as store:
        result = tune(experiment(trials=12, pruner="none", sampler="tpe"), store, verbose=False)
    assert result.counts() == {"complete": 12}
    best_lr = result.best.params["learning_rate"]
    # The fake objective peaks at 10**-2.5; the zoo default (1e-3) is 50 below that peak.
    assert abs(math.log10(best_lr) + 2.5) < 0.4
    c = result.comparison
    assert c["tuned"]["iqm"] > c["default"]["iqm"]
    assert c["p_improvement"]["estimate"] == 1.0


def test_rerun_continues_the_study_and_repeats_nothing(tmp_path, calls):
    with RunStore(tmp_path / "s") as store:
        tune(experiment(trials=3, pruner="none"), store, verbose=False)
        assert len(calls) == 3 * len(TUNING) + 2 * len(TEST)
        tune(experiment(trials=3, pruner="none"), store, resume=True, verbose=False)
        assert len(calls) == 3 * len(TUNING) + 2 * len(TEST)  # nothing trained again
        result = tune(experiment(trials=3, pruner="none"), store, trials=5, verbose=False)
    assert len(result.trials) == 5
    new = calls[3 * len(TUNING) + 2 * len(TEST):]
    assert {e for e, _ in new} <= {"lr/tune", "lr/tuned"}  # the default runs are reused
    assert sum(e == "lr/tune" for e, _ in new) == 2 * len(TUNING)


def test_resume_without_a_study_is_an_error(tmp_path, calls):
    with RunStore(tmp_path / "s") as store, pytest.raises(UserError, match="nothing to resume"):
        tune(experiment(), store, resume=True, verbose=False)


def test_trial_of_a_killed_search_is_rerun_with_its_parameters(tmp_path, calls):
    spec = parse_tune(experiment(trials=2, pruner="none"))
    with RunStore(tmp_path / "s") as store:
        study = open_study(spec, tune_dir(store.path, spec.name))
        orphan = study.ask()  # a worker died with this trial RUNNING
        lr = spec.space[0].suggest(orphan)
        study = run_search(spec, store, verbose=False)
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE", "COMPLETE"]
    assert trials[1].params["learning_rate"] == lr
    assert trials[1].user_attrs["retry_of"] == 0


def test_ctrl_c_mid_trial_then_rerun_finishes_that_trial(tmp_path, calls, monkeypatch):
    fake = driver.train
    hits = []

    def interrupted_once(algo, cfg, store, **kw):
        if not hits:
            hits.append(cfg.learning_rate)
            raise KeyboardInterrupt
        return fake(algo, cfg, store, **kw)

    monkeypatch.setattr(driver, "train", interrupted_once)
    with RunStore(tmp_path / "s") as store:
        with pytest.raises(KeyboardInterrupt):
            tune(experiment(trials=2, pruner="none"), store, verbose=False)
        result = tune(experiment(trials=2, pruner="none"), store, verbose=False)
    states = [t.state.name for t in result.trials]
    assert states == ["FAIL", "COMPLETE", "COMPLETE"]
    assert result.trials[1].params["learning_rate"] == hits[0]  # the same trial, rerun


def test_interrupted_run_of_the_search_is_resumed_not_restarted(tmp_path, calls, monkeypatch):
    resumed = []
    monkeypatch.setattr(driver, "resume", lambda run_id, store, **kw: resumed.append(run_id)
                        or {"run_id": run_id, "eval_return_mean": 1.0})
    spec = parse_tune(experiment())
    cfg = spec.config({"learning_rate": 1e-3}, 0)
    with RunStore(tmp_path / "s") as store:
        run_id = store.create_run(algo="ppo", env_id=cfg.env_id, seed=0,
                                  config=config_to_dict(cfg), config_hash=config_hash(cfg),
                                  experiment="lr/tune")
        store.set_status(run_id, "interrupted")
        TrialRunner(spec, store).train_seed({"learning_rate": 1e-3}, 0)
    assert resumed == [run_id] and calls == []


def test_changed_space_is_refused(tmp_path, calls):
    with RunStore(tmp_path / "s") as store:
        tune(experiment(trials=1), store, verbose=False)
        other = experiment(trials=2, space={"learning_rate": {"low": 1e-5, "high": 1e-2}})
        with pytest.raises(UserError, match=r"different \[tune\] table \(changed: space\)"):
            tune(other, store, verbose=False)


def test_median_pruner_stops_bad_trials_through_the_train_callback(tmp_path, calls):
    exp = experiment(trials=10, sampler="random",
                     space={"learning_rate": {"low": 1e-7, "high": 1e-2, "log": True}})
    with RunStore(tmp_path / "s") as store:
        result = tune(exp, store, verbose=False)
        pruned = [t for t in result.trials if t.state.name == "PRUNED"]
        assert pruned, "no trial was pruned"
        gap = {t.number: abs(math.log10(t.params["learning_rate"]) + 2.5) for t in result.trials}
        assert min(gap[t.number] for t in pruned) > gap[result.best.number]
        for t in pruned:
            run_ids = list(t.user_attrs["run_ids"].values())
            assert len(run_ids) == 1  # pruned on the first seed: no further seed trained
            assert store.get_run(run_ids[0]).status == "pruned"


def test_workers_get_different_sampler_seeds():
    spec = parse_tune(experiment(sampler="random"))
    a, b = (make_sampler(spec, w, 0) for w in (0, 1))
    dist = optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)
    study = optuna.create_study()
    trial = study.ask()
    draws = [s.sample_independent(study, trial, "lr", dist) for s in (a, b)]
    assert draws[0] != draws[1]


# ----------------------------------------------------------------------------- statistics
def test_compare_scores_iqm_poi_and_seeded_cis():
    tuned, default = [480.0, 500.0, 500.0, 450.0, 10.0], [200.0, 150.0, 300.0, 260.0, 500.0]
    a = compare_scores(tuned, default, seed=0, reps=2000)
    b = compare_scores(tuned, default, seed=0, reps=2000)
    assert a == b
    assert a["tuned"]["iqm"] == pytest.approx(float(aggregate_iqm(np.array(tuned)[:, None])))
    # P(X > Y) by hand: pairs won by tuned, ties half (500 vs 500 twice -> 2 * 0.5).
    wins = sum((x > y) + 0.5 * (x == y) for x in tuned for y in default)
    assert a["p_improvement"]["estimate"] == pytest.approx(wins / 25)
    lo, hi = a["tuned"]["ci"]
    assert lo <= a["tuned"]["iqm"] <= hi
    lo, hi = a["p_improvement"]["ci"]
    assert 0.0 <= lo <= a["p_improvement"]["estimate"] <= hi <= 1.0
