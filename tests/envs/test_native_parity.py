"""Acceptance: the native envs reproduce gymnasium 1.2.0's single envs step for step.

For each env, N gymnasium envs (``gymnasium.make``, so with its TimeLimit) run beside one
native vector env. Whenever a native sub-env starts an episode (the initial reset, or an
autoreset), its start state is copied into the gymnasium env (``env.unwrapped.state``) after
a gymnasium ``reset()``; from there both are driven by the same random actions, across many
episode ends. Observations, rewards, terminations and truncations (and the internal state)
must agree to 1e-6; in practice they agree bit for bit.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from rlworks.envs.registry import native_class

TOL = 1e-6


def gym_state(env_id: str, physics: dict[str, np.ndarray], i: int) -> np.ndarray:
    """The gymnasium ``state`` a native sub-env's start state corresponds to."""
    if env_id == "MountainCarContinuous-v0":
        if physics["fresh"][i]:  # gymnasium's reset state: float64 [position, 0.0]
            return np.array([physics["start_position"][i], 0.0])
        return physics["state"][:, i].copy()  # float32, as gymnasium stores it after a step
    return np.array(physics["state"][:, i], dtype=np.float64)


def random_actions(env_id: str, rng: np.random.Generator, n: int, steps: int) -> np.ndarray:
    if env_id == "CartPole-v1":
        return rng.integers(0, 2, size=(steps, n))
    if env_id in ("Acrobot-v1", "MountainCar-v0"):
        return rng.integers(0, 3, size=(steps, n))
    high = 2.0 if env_id == "Pendulum-v1" else 1.0
    # 1.5x the bounds, so the clipping paths are exercised too
    return rng.uniform(-1.5 * high, 1.5 * high, size=(steps, n, 1)).astype(np.float32)


def run_parity(env_id: str, n: int, steps: int, max_episode_steps: int | None = None,
               start: dict[str, np.ndarray] | None = None, seed: int = 0) -> dict[str, float]:
    native = native_class(env_id)(n, seed=seed, max_episode_steps=max_episode_steps)
    kwargs = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
    refs = [gym.make(env_id, **kwargs) for _ in range(n)]
    obs, _ = native.reset()
    if start is not None:  # overwrite the start states (e.g. close to the goal)
        state = native.get_state()
        for k, v in start.items():
            state["physics"][k][...] = v
        native.set_state(state)
        obs = native._observe()

    def sync(i: int) -> np.ndarray:
        refs[i].reset(seed=i)
        refs[i].unwrapped.state = gym_state(env_id, native.get_state()["physics"], i)
        if env_id == "Acrobot-v1":
            return np.asarray(refs[i].unwrapped._get_ob())
        if env_id == "Pendulum-v1":
            return np.asarray(refs[i].unwrapped._get_obs())
        return np.asarray(refs[i].unwrapped.state, dtype=np.float32)

    for i in range(n):
        np.testing.assert_array_equal(obs[i], sync(i))
    actions = random_actions(env_id, np.random.default_rng(seed + 1), n, steps)
    err = {"obs": 0.0, "reward": 0.0, "state": 0.0}
    ended = np.zeros(n, dtype=bool)
    counts = {"terminated": 0, "truncated": 0}
    for t in range(steps):
        obs, rewards, terms, truncs, _ = native.step(actions[t])
        for i in range(n):
            if ended[i]:  # next-step autoreset: reset obs, reward 0, not ended
                assert rewards[i] == 0.0 and not terms[i] and not truncs[i]
                np.testing.assert_array_equal(obs[i], sync(i))
                continue
            o, r, term, trunc, _ = refs[i].step(actions[t, i])
            err["obs"] = max(err["obs"], float(np.max(np.abs(obs[i] - o))))
            err["reward"] = max(err["reward"], abs(float(rewards[i]) - float(r)))
            ours = np.asarray(native.get_state()["physics"]["state"][:, i], dtype=np.float64)
            theirs = np.asarray(refs[i].unwrapped.state, dtype=np.float64)[:4]
            err["state"] = max(err["state"], float(np.max(np.abs(ours - theirs))))
            assert (bool(terms[i]), bool(truncs[i])) == (term, trunc), (env_id, t, i)
            counts["terminated"] += int(term)
            counts["truncated"] += int(trunc)
        ended = terms | truncs
    # The internal float64 state too (observations are float32 and hide small drifts).
    assert max(err.values()) <= TOL, (env_id, err)
    return {**err, **counts}


@pytest.mark.parametrize("env_id,n,steps,limit", [
    ("CartPole-v1", 8, 400, None),
    ("CartPole-v1", 4, 120, 15),  # truncation at a custom limit
    ("Acrobot-v1", 3, 520, None),
    ("MountainCar-v0", 4, 420, None),
    ("MountainCarContinuous-v0", 3, 1010, None),
    ("Pendulum-v1", 4, 420, None),
])
def test_parity_random_actions(env_id: str, n: int, steps: int, limit: int | None) -> None:
    counts = run_parity(env_id, n, steps, max_episode_steps=limit)
    # the run must have crossed episode ends, or it did not test autoreset
    assert counts["terminated"] + counts["truncated"] >= n


@pytest.mark.parametrize("env_id", ["MountainCar-v0", "MountainCarContinuous-v0"])
def test_parity_through_the_goal(env_id: str) -> None:
    """Random actions rarely reach the hill top; start near it, moving right, to test
    termination (and the wall at -1.2 on the way back for some rows)."""
    n = 6
    position = np.array([0.40, 0.42, 0.44, -1.15, -1.19, 0.30])
    velocity = np.array([0.03, 0.02, 0.01, -0.05, -0.06, 0.06])
    if env_id == "MountainCarContinuous-v0":
        start = {"state": np.stack([position, velocity]).astype(np.float32),
                 "start_position": position, "fresh": np.zeros(n, dtype=bool)}
    else:
        start = {"state": np.stack([position, velocity])}
    counts = run_parity(env_id, n, 300, start=start)
    assert counts["terminated"] >= 3


def test_acrobot_can_terminate() -> None:
    """Acrobot's success test, from a state just below the line, swinging up."""
    start = {"state": np.array([[3.0, 2.6], [0.1, 0.5], [3.0, 4.0], [0.0, 3.0]])}
    counts = run_parity("Acrobot-v1", 2, 60, start=start)
    assert counts["terminated"] >= 1
