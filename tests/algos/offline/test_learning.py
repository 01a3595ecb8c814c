"""Do the learners learn? BC recovers a known linear policy; on a one-step task whose
behaviour is mostly random, the offline RL learners find the best action where BC cannot."""

from __future__ import annotations

import numpy as np
import pytest

import rlworks.algos.offline  # noqa: F401  (registers)
from rlworks.core.config import config_from_dict
from rlworks.core.registry import ALGORITHMS
from rlworks.data.dataset import Dataset
from rlworks.data.formats import save_dataset

TEST_OBS = np.random.default_rng(123).uniform(-1.0, 1.0, (500, 3)).astype(np.float32)


def train(algo: str, dataset: str, steps: int, **extra):
    spec = ALGORITHMS.get(algo)
    cfg = config_from_dict(spec.config_class(), {
        **dict(spec.overrides), "dataset": dataset, "total_steps": steps, "steps_per_iter": 500,
        "hidden_sizes": (64, 64), **extra})
    learner = spec.learner_class()(cfg)
    while learner.global_step < cfg.total_steps:
        learner.iterate()
    return learner


def bandit_regret(learner) -> float:
    """Mean of (u/2 - obs[0])^2 over held-out observations: 0 for the best policy."""
    u = learner.act(TEST_OBS)[:, 0]
    return float(np.mean((u / 2.0 - TEST_OBS[:, 0]) ** 2))


def test_bc_recovers_a_linear_policy(tmp_path):
    rng = np.random.default_rng(0)
    obs = rng.uniform(-1.0, 1.0, (4000, 3)).astype(np.float32)
    w = np.array([1.0, -0.5, 0.3], np.float32)
    ds = Dataset.from_arrays(obs, (obs @ w)[:, None], np.zeros(4000, np.float32),
                             np.ones(4000, bool), None, obs.copy(),
                             metadata={"env_id": "Pendulum-v1"}, check_continuity=False)
    path = tmp_path / "linear.npz"
    save_dataset(ds, path)
    learner = train("bc", str(path), 1500, learning_rate=1e-3)
    err = np.abs(learner.act(TEST_OBS)[:, 0] - TEST_OBS @ w)
    assert err.mean() < 0.05, err.mean()


@pytest.mark.parametrize("algo, extra", [
    ("td3bc", {}),
    ("iql", {"normalize_reward": False}),  # one-step episodes: no return range to scale by
    ("awac", {}),
])
def test_offline_rl_beats_bc_when_the_behaviour_is_noisy(algo, extra, bandit_path):
    bc = bandit_regret(train("bc", bandit_path, 1000))
    rl = bandit_regret(train(algo, bandit_path, 1000, **extra))
    # BC imitates the average action, u = obs[0] (regret 0.75^2 / 3 = 0.19)
    assert bc > 0.1, bc
    assert rl < 0.3 * bc, (rl, bc)


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["cql", "riql"])
def test_slow_offline_rl_beats_bc_when_the_behaviour_is_noisy(algo, bandit_path):
    bc = bandit_regret(train("bc", bandit_path, 2000))
    rl = bandit_regret(train(algo, bandit_path, 2000))
    assert rl < 0.5 * bc, (rl, bc)
