"""Wrappers, each against numbers computed by hand or by numpy/gymnasium on the same data."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from rlworks.core.errors import UserError
from rlworks.envs import (
    ActionRepeat,
    EpisodeStatistics,
    NormalizeObservation,
    NormalizeReward,
    TimeLimit,
    make_vec,
)
from rlworks.envs.registry import native_class


class ScriptedVecEnv(gym.vector.VectorEnv):
    """Replays fixed (obs, rewards, terminations, truncations); puts an action mask in infos.
    A gymnasium VectorEnv, so gymnasium's own wrappers can serve as references."""

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP}

    def __init__(self, obs: np.ndarray, rewards: np.ndarray, terms: np.ndarray | None = None,
                 truncs: np.ndarray | None = None):
        self.obs, self.rewards = obs.astype(np.float32), rewards  # (T+1, N, D), (T, N)
        self.terms = np.zeros(rewards.shape, bool) if terms is None else terms
        self.truncs = np.zeros(rewards.shape, bool) if truncs is None else truncs
        self.num_envs = rewards.shape[1]
        self.single_observation_space = gym.spaces.Box(-np.inf, np.inf, obs.shape[2:], np.float32)
        self.single_action_space = gym.spaces.Discrete(3)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space,
                                                              self.num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self.t = 0

    def _mask(self) -> np.ndarray:
        return np.tile([True, self.t % 2 == 0, False], (self.num_envs, 1))

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        self.t = 0
        return self.obs[0].copy(), {"action_mask": self._mask()}

    def step(self, actions: Any):
        t = self.t
        self.t += 1
        return (self.obs[t + 1].copy(), self.rewards[t].copy(), self.terms[t].copy(),
                self.truncs[t].copy(), {"action_mask": self._mask()})

    def transform_obs(self, raw_obs: np.ndarray) -> np.ndarray:
        return np.asarray(raw_obs, dtype=np.float32)

    def set_training(self, training: bool) -> None:
        pass

    def get_state(self) -> dict[str, Any]:
        return {"t": self.t}

    def set_state(self, state: dict[str, Any]) -> None:
        self.t = state["t"]


def prior_moments(x: np.ndarray, eps: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """Mean/var of the data plus a prior of weight ``eps`` at mean 0, variance 1, by hand."""
    n = len(x)
    mean = x.sum(axis=0) / (n + eps)
    var = (eps * (1.0 + mean**2) + ((x - mean) ** 2).sum(axis=0)) / (n + eps)
    return mean, var


def test_normalize_observation_statistics_and_clip() -> None:
    rng = np.random.default_rng(0)
    obs = rng.normal(3.0, 2.0, size=(6, 4, 2))  # 5 steps + reset, 4 envs, 2 dims
    obs[5, 0, 0] = 1e4  # an outlier: clipped at +10
    env = NormalizeObservation(ScriptedVecEnv(obs, np.zeros((5, 4))))
    out, infos = env.reset()
    assert infos["action_mask"].shape == (4, 3)  # passed through
    for _ in range(4):
        out, *_ = env.step(np.zeros(4, int))
    env.set_training(False)  # the outlier arrives after the statistics are frozen
    out, *_ = env.step(np.zeros(4, int))
    seen = obs[:5].astype(np.float32).astype(np.float64).reshape(-1, 2)  # batches, in order
    mean, var = prior_moments(seen)
    np.testing.assert_allclose(env.obs_rms.mean, mean, rtol=1e-10)
    np.testing.assert_allclose(env.obs_rms.var, var, rtol=1e-10)
    expected = np.clip((obs[5].astype(np.float32) - mean) / np.sqrt(var + 1e-8), -10, 10)
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    assert out[0, 0] == 10.0 and out.dtype == np.float32


def test_normalize_observation_frozen_and_transform() -> None:
    obs = np.arange(2 * 3 * 1, dtype=np.float64).reshape(3, 2, 1) * 1.5
    env = NormalizeObservation(ScriptedVecEnv(obs, np.zeros((2, 2))))
    env.reset()
    env.set_training(False)
    before = (env.obs_rms.mean.copy(), env.obs_rms.var.copy())
    out, *_ = env.step(np.zeros(2, int))
    np.testing.assert_array_equal(env.obs_rms.mean, before[0])  # frozen: no update
    np.testing.assert_array_equal(out, env.transform_obs(obs[1]))
    # mean of [0, 1.5] with the 1e-4 prior at 0
    np.testing.assert_allclose(env.obs_rms.mean, [0.75 * 2 / (2 + 1e-4)])


def test_normalize_reward_hand_numbers() -> None:
    """gamma 0.5, one env, rewards 1, 1, 1, terminated at step 2. As in gymnasium,
    ``G = G * gamma * (1 - terminated) + r`` drops the history *at* the terminal step:
    G = 1, 1, 1.5."""
    rewards = np.array([[1.0], [1.0], [1.0]])
    terms = np.array([[False], [True], [False]])
    env = NormalizeReward(ScriptedVecEnv(np.zeros((4, 1, 1)), rewards, terms), gamma=0.5)
    env.reset()
    out = [env.step(np.zeros(1, int))[1][0] for _ in range(3)]
    returns = np.array([1.0, 1.0, 1.5])
    for k in range(3):
        _, var = prior_moments(returns[: k + 1, None])
        assert out[k] == pytest.approx(1.0 / np.sqrt(var[0] + 1e-8), rel=1e-12)


def test_normalize_reward_matches_gymnasium() -> None:
    rng = np.random.default_rng(1)
    rewards = rng.normal(size=(50, 3))
    terms = rng.random((50, 3)) < 0.1
    truncs = rng.random((50, 3)) < 0.05
    ours = NormalizeReward(ScriptedVecEnv(np.zeros((51, 3, 1)), rewards, terms, truncs), 0.9)
    ref = gym.wrappers.vector.NormalizeReward(
        ScriptedVecEnv(np.zeros((51, 3, 1)), rewards, terms, truncs), gamma=0.9)
    ours.reset()
    ref.reset()
    for _ in range(50):
        a = ours.step(np.zeros(3, int))[1]
        b = ref.step(np.zeros(3, int))[1]
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_episode_statistics_generic_path() -> None:
    """On a non-native env: returns 1+2=3 (env 0, ends at step 2), the autoreset step (reward
    0) is skipped, then 4+5=9 (ends at step 5)."""
    rewards = np.array([[1.0], [2.0], [0.0], [4.0], [5.0]])
    ends = np.array([[False], [True], [False], [False], [True]])
    env = EpisodeStatistics(ScriptedVecEnv(np.zeros((6, 1, 1)), rewards, ends))
    env.reset()
    got = []
    for _ in range(5):
        *_, infos = env.step(np.zeros(1, int))
        assert "action_mask" in infos
        if "episode" in infos:
            got.append((infos["episode"]["r"][0], infos["episode"]["l"][0]))
    assert got == [(3.0, 2), (9.0, 2)]


def test_action_repeat_sums_and_stops_at_episode_end() -> None:
    """MountainCar (reward -1), repeat 3, limit 7 physics steps: -3, -3, -1 (truncated at
    the 7th), then the autoreset step (0) and a new episode."""
    base = native_class("MountainCar-v0")(2, seed=0, max_episode_steps=7)
    env = ActionRepeat(base, 3)
    env.reset()
    out = [env.step(np.array([1, 1])) for _ in range(5)]
    assert [o[1][0] for o in out] == [-3.0, -3.0, -1.0, 0.0, -3.0]
    assert [bool(o[3][0]) for o in out] == [False, False, True, False, False]
    # gymnasium's sync backend with the per-sub-env repeat gives the same numbers
    sync = make_vec("MountainCar-v0", 2, backend="gymnasium-sync", action_repeat=3,
                    max_episode_steps=7)
    sync.reset()
    assert [sync.step(np.array([1, 1]))[1][0] for _ in range(5)] == [-3.0, -3.0, -1.0, 0.0, -3.0]


def test_action_repeat_equals_repeated_steps() -> None:
    """Until an episode ends, k repeats = k plain steps with the same action."""
    a = native_class("Pendulum-v1")(3, seed=4)
    b = ActionRepeat(native_class("Pendulum-v1")(3, seed=4), 4)
    a.reset()
    b.reset()
    u = np.array([[0.5], [-2.0], [1.0]], np.float32)
    total = sum(a.step(u)[1] for _ in range(4))
    obs_a = a._observe()
    obs_b, r_b, *_ = b.step(u)
    np.testing.assert_array_equal(obs_a, obs_b)
    np.testing.assert_allclose(r_b, total, rtol=1e-12)


def test_action_repeat_stops_each_row_at_its_own_end() -> None:
    """64 CartPoles pushed right end at different inner steps of a 5-step repeat. Each row
    must match a lone CartPole started from the same state and stepped until its end, and
    start a new episode (reward 0, a start state) at the next outer step."""
    k, n = 5, 64
    env = ActionRepeat(native_class("CartPole-v1")(n, seed=2), k)
    start, _ = env.reset()
    physics = env.get_state()["env"]["physics"]["state"]
    push = np.ones(n, dtype=np.int64)
    refs = []
    for i in range(n):
        ref = native_class("CartPole-v1")(1)
        ref.reset()
        state = ref.get_state()
        state["physics"]["state"][:, 0] = physics[:, i]
        ref.set_state(state)
        refs.append(ref)
    ended_at = np.full(n, -1)
    inner_ends = set()
    for outer in range(8):
        obs, rewards, terms, truncs, _ = env.step(push)
        for i in range(n):
            if ended_at[i] >= 0:
                if ended_at[i] == outer - 1:  # the autoreset step
                    assert rewards[i] == 0.0 and np.all(np.abs(obs[i]) <= 0.05)
                continue
            total = 0.0
            for j in range(k):
                o, r, t, tr, _ = refs[i].step(np.ones(1, dtype=np.int64))
                total += r[0]
                if t[0] or tr[0]:
                    inner_ends.add(j)
                    break
            np.testing.assert_array_equal(obs[i], o[0])
            assert rewards[i] == total and (terms[i], truncs[i]) == (t[0], tr[0])
            if terms[i] or truncs[i]:
                ended_at[i] = outer
    assert (ended_at >= 0).all() and len(inner_ends) >= 2  # ends at several inner steps


def test_action_repeat_needs_native() -> None:
    with pytest.raises(UserError, match="native"):
        make_vec("CartPole-v1", 2, backend="gymnasium-vector", action_repeat=2)
    with pytest.raises(UserError, match="native"):
        make_vec("CartPole-v1", 2, backend="envpool", action_repeat=2)


def test_time_limit_equals_native_limit() -> None:
    """Pendulum never terminates, so TimeLimit(5) must equal the env's own limit of 5: the
    same truncation steps (5, 11, 17: the autoreset step is step 0) and the same states."""
    wrapped = TimeLimit(native_class("Pendulum-v1")(3, seed=9), 5)
    direct = native_class("Pendulum-v1")(3, seed=9, max_episode_steps=5)
    np.testing.assert_array_equal(wrapped.reset()[0], direct.reset()[0])
    rng = np.random.default_rng(0)
    truncated_at = []
    for t in range(1, 19):
        u = rng.uniform(-2, 2, size=(3, 1)).astype(np.float32)
        a, b = wrapped.step(u), direct.step(u)
        for x, y in zip(a[:4], b[:4], strict=True):
            np.testing.assert_array_equal(x, y)
        if a[3].any():
            truncated_at.append(t)
    assert truncated_at == [5, 11, 17]
