"""DQN: smoke run, action masks, truncation handling, bit-identical resume, learning."""

from __future__ import annotations

import functools
import math
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlworks.algos.online.configs import DQNConfig
from rlworks.algos.online.dqn import DQN, masked_argmax
from rlworks.algos.online.zoo import zoo_defaults
from rlworks.core.config import config_from_dict
from rlworks.core.errors import UserError
from rlworks.data.collector import env_state
from rlworks.envs import make_vec
from rlworks.eval.evaluate import evaluate
from rlworks.track.checkpoint import flatten_state, load_checkpoint, save_checkpoint

TINY: dict[str, Any] = dict(
    env_id="CartPole-v1", total_steps=2_000, num_envs=2, learning_starts=200,
    batch_size=16, buffer_size=2_000, train_freq=16, gradient_steps=2,
    target_update_interval=64, hidden_sizes=(16, 16), exploration_fraction=0.5)


def run(learner, iterations: int) -> list[dict[str, float]]:
    return [learner.iterate() for _ in range(iterations)]


def test_smoke_metrics_and_act():
    learner = DQN(DQNConfig(**TINY, n_step=3))
    metrics = run(learner, 40)
    assert learner.global_step == 40 * 16
    last = metrics[-1]
    assert {"train/q_loss", "train/q_values", "train/epsilon"} <= set(last)
    assert all(math.isfinite(v) for m in metrics for v in m.values())
    assert any("rollout/episodic_return" in m for m in metrics)
    obs, _ = make_vec("CartPole-v1", 3, seed=5).reset()
    actions = learner.act(obs)
    assert actions.shape == (3,) and actions.dtype == np.int64
    learner.close()


def test_continuous_env_is_rejected_with_the_fix():
    with pytest.raises(UserError, match="discrete action space.*sac or td3"):
        DQN(DQNConfig(env_id="Pendulum-v1", num_envs=1))


def test_truncated_transitions_bootstrap_from_the_true_final_obs():
    envs = make_vec("CartPole-v1", 2, seed=0, max_episode_steps=5)
    learner = DQN(DQNConfig(**{**TINY, "learning_starts": 10_000}), envs=envs)
    run(learner, 4)  # 64 random steps: episodes end by the 5-step time limit
    buf = learner.buffer
    rows = buf.size
    trunc = buf.truncations[: rows - 1] & buf.valid[: rows - 1]  # (T-1, N)
    assert trunc.any() and not (buf.terminations[: rows] & buf.truncations[: rows]).any()
    # The row after a time limit is the autoreset step: invalid, starting from the final obs.
    assert not buf.valid[1:rows][trunc].any()
    np.testing.assert_array_equal(buf.next_obs[: rows - 1][trunc], buf.obs[1:rows][trunc])
    b = buf.sample(512, np.random.default_rng(0))
    final = {tuple(x) for x in buf.next_obs[: rows - 1][trunc].tolist()}
    for nxt, disc in zip(b.next_obs.tolist(), b.discounts.tolist(), strict=True):
        if tuple(nxt) in final:
            assert disc == pytest.approx(0.99)  # truncation keeps the bootstrap


class MaskedEnv(gym.Env):
    """Four actions, two legal per step (``t % 4`` and ``(t + 1) % 4``); an illegal action
    raises. Reward 1 for action ``t % 4``. Episodes are cut at 20 steps."""

    observation_space = gym.spaces.Box(0.0, 1.0, (4,), np.float32)
    action_space = gym.spaces.Discrete(4)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {"action_mask": self._mask()}

    def step(self, action):
        if not self._mask()[action]:
            raise AssertionError(f"illegal action {action} at t={self.t}")
        reward = float(action == self.t % 4)
        self.t += 1
        return self._obs(), reward, False, self.t >= 20, {"action_mask": self._mask()}

    def _obs(self):
        return np.eye(4, dtype=np.float32)[self.t % 4]

    def _mask(self):
        mask = np.zeros(4, dtype=bool)
        mask[[self.t % 4, (self.t + 1) % 4]] = True
        return mask


def test_masked_actions_are_never_taken():
    envs = gym.wrappers.vector.RecordEpisodeStatistics(
        gym.vector.SyncVectorEnv([MaskedEnv for _ in range(2)]))
    learner = DQN(DQNConfig(**{**TINY, "env_id": "masked-test", "learning_starts": 100,
                               "total_steps": 1_500, "learning_rate": 1e-3,
                               "gradient_steps": 8, "gamma": 0.5}), envs=envs)
    metrics = run(learner, 1_500 // 16)  # random, epsilon-greedy and greedy phases
    buf = learner.buffer
    valid = buf.valid[: buf.size]
    assert buf.action_mask is not None
    taken = np.take_along_axis(buf.action_mask[: buf.size], buf.actions[: buf.size, :, None], 2)
    assert taken[..., 0][valid].all()
    assert all(math.isfinite(v) for m in metrics for v in m.values())
    # It also learned the rewarded action among the legal ones: t % 4 in state t % 4.
    legal = np.array([[True, True, False, False], [False, True, True, False],
                      [False, False, True, True], [True, False, False, True]])
    np.testing.assert_array_equal(learner.act(np.eye(4, dtype=np.float32), action_mask=legal),
                                  [0, 1, 2, 3])
    # act() and the target's argmax respect masks that exclude the best action.
    mask = np.array([[False, True, False, False], [False, False, False, True]])
    np.testing.assert_array_equal(learner.act(np.eye(4, dtype=np.float32)[:2],
                                              action_mask=mask), [1, 3])
    q = torch.tensor([[5.0, 1.0, 2.0, 0.0]])
    assert masked_argmax(q, torch.tensor([[False, True, True, False]])).item() == 2


def assert_same_state(a, b) -> None:
    arrays_a, skel_a = flatten_state(a.state_dict())
    arrays_b, skel_b = flatten_state(b.state_dict())
    assert skel_a == skel_b  # counters, generator states, env state scalars
    assert arrays_a.keys() == arrays_b.keys()
    for key in arrays_a:
        np.testing.assert_array_equal(arrays_a[key], arrays_b[key], err_msg=key)


def test_resume_is_bit_identical(tmp_path):
    cfg = DQNConfig(**{**TINY, "backend": "native", "seed": 3, "n_step": 3, "tau": 0.5})
    a = DQN(cfg)
    if env_state(a.envs) is None:
        pytest.skip("the env backend cannot snapshot its state (no native backend here)")
    run(a, 30)
    json_path = save_checkpoint(tmp_path, a.global_step, a.state_dict())
    b = DQN(cfg)
    b.load_state_dict(load_checkpoint(json_path)[1])
    assert run(a, 25) == run(b, 25)
    assert_same_state(a, b)


def test_resume_without_env_state_restarts_the_envs(tmp_path):
    cfg = DQNConfig(**{**TINY, "backend": "gymnasium-sync", "n_step": 3})
    a = DQN(cfg)
    assert env_state(a.envs) is None  # gymnasium cannot snapshot its envs
    run(a, 20)
    b = DQN(cfg)
    b.load_state_dict(load_checkpoint(save_checkpoint(tmp_path, 1, a.state_dict()))[1])
    last = (b.buffer.pos - 1) % b.buffer.capacity_per_env
    assert b.buffer.truncations[last].all()  # interrupted episodes: no window runs past
    assert not b.collector.prev_done.any() and b.global_step == a.global_step
    assert all(math.isfinite(v) for m in run(b, 5) for v in m.values())


def test_loading_one_state_twice_does_not_alias():
    cfg = DQNConfig(**{**TINY, "backend": "native"})
    a = DQN(cfg)
    run(a, 30)
    state = a.state_dict()
    b, c = DQN(cfg), DQN(cfg)
    b.load_state_dict(state)
    c.load_state_dict(state)  # would share optimiser tensors with b if load aliased
    assert run(b, 10) == run(c, 10)


@functools.cache
def final_eval(seed: int) -> float:
    cfg = config_from_dict(DQNConfig, {**zoo_defaults("dqn", "CartPole-v1"), "seed": seed})
    learner = DQN(cfg)
    while learner.global_step < cfg.total_steps:
        learner.iterate()
    returns = evaluate(learner, "CartPole-v1", episodes=20, seed=1000 + seed)
    learner.close()
    print(f"dqn CartPole-v1 seed {seed}: eval mean {returns.mean():.1f}")
    return float(returns.mean())


@pytest.mark.slow
@pytest.mark.ci_slow
def test_learns_cartpole_seed0():
    assert final_eval(0) >= 475


@pytest.mark.slow
def test_learns_cartpole_4_of_5_seeds():
    scores = [final_eval(seed) for seed in range(5)]
    assert sum(s >= 475 for s in scores) >= 4, scores


@functools.cache
def best_eval(seed: int) -> tuple[float, float]:
    """The zoo run through the run loop with ``keep_best`` (periodic evaluation every 5k
    steps): (final policy, best periodic policy), each scored on the final evaluation's 20
    fresh episodes, which took no part in the selection."""
    import tempfile

    from rlworks.exec.train import build_config, train
    from rlworks.track.store import RunStore

    with tempfile.TemporaryDirectory() as tmp:
        cfg = build_config("dqn", {"env_id": "CartPole-v1", "seed": seed, "eval_every": 5000,
                                   "keep_best": True})
        summary = train("dqn", cfg, RunStore(tmp), progress=False)
    print(f"dqn CartPole-v1 seed {seed}: final {summary['eval_return_mean']:.1f}, best "
          f"{summary['best_eval_return_mean']:.1f} (step {summary['best_step']})")
    return summary["eval_return_mean"], summary["best_eval_return_mean"]


@pytest.mark.slow
def test_keep_best_reaches_cartpole_4_of_5_seeds():
    # The acceptance reading "reaches >= 475 within the budget": the best periodic policy of
    # each run, re-scored on fresh episodes. Measured 2026-12-07: 5 of 5 (final policies:
    # 3 of 5); docs/algorithms/dqn.md.
    scores = [best_eval(seed)[1] for seed in range(5)]
    assert sum(s >= 475 for s in scores) >= 4, scores
