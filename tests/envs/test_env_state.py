"""get_state/set_state: a fresh env restored from a checkpointed state continues bit-identically."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

from rlworks.envs import make_vec
from rlworks.track.checkpoint import flatten_state, unflatten_state

NATIVE = ["CartPole-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0",
          "Pendulum-v1"]


def through_checkpoint(state: dict) -> dict:
    """What a checkpoint does to it: arrays apart, everything else through JSON."""
    arrays, skeleton = flatten_state(state)
    return unflatten_state({k: v.copy() for k, v in arrays.items()},
                           json.loads(json.dumps(skeleton)))


def actions_for(envs, rng: np.random.Generator) -> np.ndarray:
    space = envs.single_action_space
    if isinstance(space, gym.spaces.Discrete):
        return rng.integers(0, space.n, size=envs.num_envs)
    # beyond the bounds half the time, so clipping paths are part of the replay
    return rng.uniform(-1.5 * space.high, 1.5 * space.high,
                       size=(envs.num_envs, *space.shape)).astype(np.float32)


def assert_same_step(a: tuple, b: tuple) -> None:
    for x, y in zip(a[:4], b[:4], strict=True):
        np.testing.assert_array_equal(x, y)
        assert x.dtype == y.dtype
    assert a[4].keys() == b[4].keys()
    if "episode" in a[4]:
        np.testing.assert_array_equal(a[4]["_episode"], b[4]["_episode"])
        for key in ("r", "l"):
            np.testing.assert_array_equal(a[4]["episode"][key], b[4]["episode"][key])


@pytest.mark.parametrize("env_id", NATIVE)
@pytest.mark.parametrize("after_reset", [False, True])
@pytest.mark.parametrize("kwargs", [
    {},
    {"normalize_obs": True, "normalize_reward": True, "gamma": 0.9},
    {"action_repeat": 3, "normalize_obs": True, "max_episode_steps": 30},
])
def test_resume_is_bit_identical(env_id: str, kwargs: dict, after_reset: bool) -> None:
    n = 16
    limit = {"max_episode_steps": 25} if "max_episode_steps" not in kwargs else {}
    envs = make_vec(env_id, n, seed=11, **kwargs, **limit)
    envs.reset()
    rng = np.random.default_rng(0)
    # run until some sub-env has just ended, so a pending autoreset is part of the state
    for t in range(200):
        out = envs.step(actions_for(envs, rng))
        if t >= 20 and (out[2] | out[3]).any():
            break
    assert (out[2] | out[3]).any()
    if after_reset:  # snapshot on the autoreset step instead (rows that have just restarted)
        envs.step(actions_for(envs, rng))
    state = through_checkpoint(envs.get_state())
    rng_state = rng.bit_generator.state
    resumed = make_vec(env_id, n, seed=999, **kwargs, **limit)  # another seed: all restored
    resumed.set_state(state)
    rng2 = np.random.default_rng()
    rng2.bit_generator.state = rng_state
    for _ in range(60):
        assert_same_step(envs.step(actions_for(envs, rng)),
                         resumed.step(actions_for(resumed, rng2)))


def test_state_is_checked_against_the_env() -> None:
    state = make_vec("CartPole-v1", 4).get_state()
    with pytest.raises(ValueError, match="num_envs"):
        make_vec("CartPole-v1", 5).set_state(state)
    with pytest.raises(ValueError, match="env_id"):
        make_vec("Acrobot-v1", 4).set_state(state)


def test_state_copies_not_views() -> None:
    envs = make_vec("Pendulum-v1", 3)
    envs.reset()
    state = envs.get_state()
    before = state["env"]["physics"]["state"].copy()
    envs.step(np.zeros((3, 1), np.float32))
    np.testing.assert_array_equal(state["env"]["physics"]["state"], before)
