"""Experiment files: parsing, validation (one-line errors naming the table and the fix) and
the precedence of the [config] layers, checked on the configs the runs would train with."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from rlworks.core.errors import UserError
from rlworks.exec.experiment import RunSpec, expand, load_experiment, parse_experiment

ROOT = Path(__file__).resolve().parents[2]


def grid(algos=("ppo", "dqn"), envs=("CartPole-v1", "Acrobot-v1"), seeds=2, **tables) -> dict:
    head = {"name": "g", "algos": list(algos), "envs": list(envs), "seeds": seeds}
    return {"experiment": head, **tables}


def test_example_file_expands_to_its_grid():
    exp = load_experiment(ROOT / "examples" / "experiments" / "cartpole.toml")
    specs = expand(exp)
    assert [(s.algo, s.env_id, s.seed) for s in specs] == [
        (a, "CartPole-v1", s) for a in ("ppo", "dqn") for s in range(5)]
    assert {s.experiment for s in specs} == {"cartpole"}
    assert all(s.config().total_steps == 50_000 for s in specs)


def test_seeds_as_a_count_and_as_a_list():
    assert parse_experiment(grid(seeds=3)).seeds == (0, 1, 2)
    exp = parse_experiment(grid(algos=["ppo"], envs=["CartPole-v1"], seeds=[7, 2]))
    assert [(s.seed, s.config().seed) for s in expand(exp)] == [(7, 7), (2, 2)]


def test_name_defaults_to_the_file_stem(tmp_path):
    path = tmp_path / "my-grid.toml"
    path.write_text('[experiment]\nalgos = ["ppo"]\nenvs = ["CartPole-v1"]\n')
    exp = load_experiment(path)
    assert exp.name == "my-grid" and exp.seeds == (0,)


def test_precedence_of_the_config_layers():
    """defaults < zoo < [config] < [config.ALGO] < [config.ENV] < [config.ALGO.ENV]."""
    exp = parse_experiment(grid(config={
        "learning_rate": 0.1, "gamma": 0.91,
        "ppo": {"learning_rate": 0.2, "CartPole-v1": {"learning_rate": 0.4}},
        "dqn": {"learning_rate": 0.25},
        "CartPole-v1": {"learning_rate": 0.3},
    }))
    cfg = {(s.algo, s.env_id): s.config() for s in expand(exp) if s.seed == 0}
    assert cfg["ppo", "CartPole-v1"].learning_rate == 0.4  # ALGO.ENV over every other layer
    assert cfg["dqn", "CartPole-v1"].learning_rate == 0.3  # ENV over ALGO and [config]
    assert cfg["ppo", "Acrobot-v1"].learning_rate == 0.2  # ALGO over [config]
    assert cfg["dqn", "Acrobot-v1"].learning_rate == 0.25
    # [config] over the zoo (which sets gamma 0.98 for PPO on CartPole) ...
    assert cfg["ppo", "CartPole-v1"].gamma == 0.91
    # ... and the zoo over the dataclass defaults where the file says nothing.
    assert cfg["ppo", "CartPole-v1"].gae_lambda == 0.8
    assert cfg["ppo", "Acrobot-v1"].gae_lambda == 0.95


def test_tables_of_algos_and_envs_left_out_of_the_grid_apply_to_no_run():
    """Taking a name out of algos/envs for a while needs no other edit."""
    tables = {"sac": {"learning_rate": 0.5}, "Pendulum-v1": {"gamma": 0.5},
              "ppo": {"Pendulum-v1": {"gamma": 0.6}}}
    exp = parse_experiment(grid(config=tables))
    configs = [s.config() for s in expand(exp)]
    assert len(configs) == 8
    assert all(c.learning_rate != 0.5 and c.gamma not in (0.5, 0.6) for c in configs)


def test_hyphenated_keys_mean_the_field():
    exp = parse_experiment(grid(algos=["ppo"], config={"ppo": {"learning-rate": 0.01}}))
    (spec, *_) = expand(exp)
    assert dict(spec.overrides) == {"learning_rate": 0.01}
    assert spec.config().learning_rate == 0.01


def test_list_values_keep_specs_hashable():
    exp = parse_experiment(grid(algos=["ppo"], envs=["CartPole-v1"],
                                config={"hidden_sizes": [32, 16]}))
    specs = expand(exp)
    assert len(set(specs)) == 2  # hashable, and distinct per seed
    assert specs[0].config().hidden_sizes == (32, 16)
    assert RunSpec.from_dict(specs[0].to_dict()) == specs[0]


def test_constraints_between_fields_are_checked_on_the_merged_config():
    """num_envs=3, num_steps=5 is a rollout of 15: fine with the zoo's single minibatch on
    CartPole, not with the default 4 minibatches on Acrobot. Only the merged cell knows."""
    table = {"ppo": {"num_envs": 3, "num_steps": 5}}
    parse_experiment(grid(algos=["ppo"], envs=["CartPole-v1"], config=table))
    with pytest.raises(UserError, match="the ppo runs on Acrobot-v1: num_minibatches=4 must "
                                        "divide the rollout size"):
        parse_experiment(grid(algos=["ppo"], config=table))


BAD = {
    "unknown algorithm": (grid(algos=["ppo", "dqm"]),
                          "unknown algorithm 'dqm'; did you mean 'dqn'"),
    "unknown env": (grid(envs=["CartPol-v1"]),
                    "unknown env 'CartPol-v1'; did you mean 'CartPole-v1'"),
    "unknown config key": (grid(config={"lerning_rate": 1e-3}),
                           "[config] key 'lerning_rate' is not a ppo or dqn config field; "
                           "did you mean 'learning_rate'"),
    "unknown key in an algo table": (grid(config={"ppo": {"num_stepz": 8}}),
                                     "[config.ppo] key 'num_stepz' is not a ppo config field; "
                                     "did you mean 'num_steps'"),
    "one algo's key placed globally": (grid(config={"learning_starts": 100}),
                                       "[config] key 'learning_starts' is a field of dqn but not "
                                       "of ppo; move it under [config.dqn]"),
    "one algo's key in an env table": (grid(config={"Acrobot-v1": {"num_steps": 8}}),
                                       "[config.Acrobot-v1] key 'num_steps' is a field of ppo "
                                       "but not of dqn; move it under [config.ppo.Acrobot-v1]"),
    "wrong type": (grid(config={"total_steps": "lots"}),
                   "[config]: 'total_steps' must be an integer, got 'lots'"),
    "wrong type in a cell": (grid(config={"ppo": {"CartPole-v1": {"anneal_lr": 3}}}),
                             "[config.ppo.CartPole-v1]: 'anneal_lr' must be true or false"),
    "invalid value": (grid(config={"total_steps": -5}), "total_steps"),
    "duplicate seeds": (grid(seeds=[0, 1, 0]), "seeds lists [0] twice"),
    "negative seed": (grid(seeds=[-1]), "seeds must be >= 0"),
    "zero seeds": (grid(seeds=0), "give a count >= 1"),
    "seeds as a bool": (grid(seeds=True), "seeds must be a count or a list of integers"),
    "seeds as floats": (grid(seeds=[0.5]), "seeds must be a count or a list of integers"),
    "duplicate algos": (grid(algos=["ppo", "ppo"]), "algos lists 'ppo' twice"),
    "no envs": (grid(envs=[]), "envs must be a non-empty list"),
    "table naming nothing": (grid(config={"CartPole-v2": {"gamma": 0.9}}),
                             "[config.CartPole-v2] names no algorithm or env; "
                             "did you mean 'CartPole-v1'"),
    "bad key for an algo not in the grid": (grid(config={"sac": {"num_steps": 8}}),
                                            "[config.sac] key 'num_steps' is not a sac config "
                                            "field"),
    "bad key for an env not in the grid": (grid(config={"Pendulum-v1": {"gama": 0.9}}),
                                           "[config.Pendulum-v1] key 'gama' is not a ppo or "
                                           "dqn config field; did you mean 'gamma'"),
    "cell of an env not in the grid": (grid(config={"ppo": {"Acrobat-v1": {"gamma": 0.9}}}),
                                       "[config.ppo.Acrobat-v1] names no env; "
                                       "did you mean 'Acrobot-v1'"),
    "nested too deep": (grid(config={"CartPole-v1": {"ppo": {"gamma": 0.9}}}),
                        "[config.CartPole-v1.ppo] nests too deep"),
    "seed in config": (grid(config={"seed": 3}), "sets 'seed'; list seeds in [experiment]"),
    "env_id in config": (grid(config={"ppo": {"env_id": "x"}}), "list envs in [experiment]"),
    "a key twice": (grid(config={"total_steps": 5, "total-steps": 6}),
                    "sets 'total_steps' twice (as 'total_steps' and 'total-steps')"),
    "unknown table": ({**grid(), "confg": {}}, "unknown table [confg]; did you mean 'config'"),
    "unknown experiment key": (grid() | {"experiment": {**grid()["experiment"], "seed": 1}},
                               "unknown key 'seed' in [experiment]; did you mean 'seeds'"),
    "empty name": (grid() | {"experiment": {**grid()["experiment"], "name": " "}},
                   "name must be a non-empty string"),
    "zero workers": (grid() | {"experiment": {**grid()["experiment"], "workers": 0}},
                     "workers must be a positive integer"),
    "config not a table": (grid(config=3), "[config] must be a table"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_experiment_is_one_line_naming_the_fix(case):
    data, needle = BAD[case]
    before = copy.deepcopy(data)
    with pytest.raises(UserError) as info:
        parse_experiment(data, source="grid.toml")
    message = str(info.value)
    assert message.startswith("experiment file 'grid.toml': "), message
    assert needle in message, message
    assert "\n" not in message
    assert data == before  # the caller's mapping is not modified


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(UserError, match="experiment file '.*nope.toml' does not exist"):
        load_experiment(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[experiment\nalgos = 1\n")
    with pytest.raises(UserError, match="malformed"):
        load_experiment(bad)
