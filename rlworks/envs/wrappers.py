"""Vector-level wrappers: episode statistics, observation and reward normalisation, action
repeat and time limits. Each one keeps gymnasium 1.x next-step autoreset semantics and carries
its own state in ``get_state()`` / ``set_state()`` so a resumed run continues bit-identically.

All of them take and return whole batches (no per-sub-env Python loop) and leave ``infos``
keys they do not own untouched (``infos["action_mask"]`` passes straight through).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rlworks.core.errors import UserError
from rlworks.envs.native.base import NativeVecEnv

Step = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]


class VecWrapper:
    """Forwards everything to ``env``; subclasses override ``step``/``reset`` and add state."""

    def __init__(self, env: Any):
        self.env = env
        self.num_envs: int = env.num_envs

    # Attributes of the vector-env API, forwarded.
    @property
    def single_observation_space(self) -> Any:
        return self.env.single_observation_space

    @property
    def single_action_space(self) -> Any:
        return self.env.single_action_space

    @property
    def observation_space(self) -> Any:
        return self.env.observation_space

    @property
    def action_space(self) -> Any:
        return self.env.action_space

    @property
    def metadata(self) -> dict[str, Any]:
        return self.env.metadata

    @property
    def unwrapped(self) -> Any:
        return getattr(self.env, "unwrapped", self.env)

    def reset(self, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        return self.env.reset(seed=seed, options=options)

    def step(self, actions: Any) -> Step:
        return self.env.step(actions)

    def transform_obs(self, raw_obs: np.ndarray) -> np.ndarray:
        return self.env.transform_obs(raw_obs)

    def set_training(self, training: bool) -> None:
        """Freeze (``False``) or resume (``True``) every running statistic below this wrapper."""
        self.env.set_training(training)

    def close(self) -> None:
        self.env.close()

    def get_state(self) -> dict[str, Any]:
        return {"env": self.env.get_state()}

    def set_state(self, state: dict[str, Any]) -> None:
        self.env.set_state(state["env"])

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes not found on the wrapper: reach the wrapped env's.
        if name == "env":
            raise AttributeError(name)
        return getattr(self.env, name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}<{self.env!r}>"


def _reset_mask(options: dict[str, Any] | None, num_envs: int) -> np.ndarray | None:
    mask = (options or {}).get("reset_mask")
    return None if mask is None else np.asarray(mask, dtype=bool).reshape(num_envs)


class EpisodeStatistics(VecWrapper):
    """Episode return and length, reported on the step where an episode ends.

    gymnasium's ``RecordEpisodeStatistics`` convention: ``infos["episode"] = {"r": (N,)
    float64, "l": (N,) int64}`` holding the finished episodes' values (0 elsewhere) and
    ``infos["_episode"]`` the (N,) bool mask of rows that finished. The autoreset step (reward
    0) is not counted. Put it below reward normalisation so returns are of the raw reward.

    Lengths come from a step clock and each row's start time, so a step costs one array
    update (the returns) plus, when something ended, work on the ended rows only; above a
    native env the ended rows are read from it rather than recomputed.
    """

    def __init__(self, env: Any):
        super().__init__(env)
        n = self.num_envs
        self.episode_returns = np.zeros(n)  # (N,) float64
        self._clock = 0
        self._start = np.zeros(n, dtype=np.int64)  # (N,) clock at each row's episode start
        self._ended = np.empty(0, dtype=np.intp)  # rows that ended at the previous step
        self._native = isinstance(env, NativeVecEnv)

    def reset(self, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        mask = _reset_mask(options, self.num_envs)
        obs, infos = self.env.reset(seed=seed, options=options)
        rows = slice(None) if mask is None else mask
        self.episode_returns[rows] = 0.0
        self._start[rows] = self._clock
        self._ended = self._ended[:0] if mask is None else self._ended[~mask[self._ended]]
        return obs, infos

    def step(self, actions: Any) -> Step:
        obs, rewards, terminations, truncations, infos = self.env.step(actions)
        returns = self.episode_returns
        returns += rewards
        clock = self._clock = self._clock + 1
        rows = self._ended
        if len(rows):  # the autoreset step of rows that ended last step: a new episode
            returns[rows] = 0.0
            self._start[rows] = clock
        if self._native:
            rows = self.env.ended_rows
        else:
            rows = np.flatnonzero(np.logical_or(terminations, truncations))
        self._ended = rows
        if len(rows):
            if "episode" in infos:
                raise ValueError("infos already has an 'episode' key; wrap only once")
            n = self.num_envs
            r = np.zeros(n)
            r[rows] = returns[rows]
            lengths = np.zeros(n, dtype=np.int64)
            lengths[rows] = clock - self._start[rows]
            done = np.zeros(n, dtype=bool)
            done[rows] = True
            infos["episode"] = {"r": r, "l": lengths}
            infos["_episode"] = done
        return obs, rewards, terminations, truncations, infos

    def get_state(self) -> dict[str, Any]:
        ended = np.zeros(self.num_envs, dtype=bool)
        ended[self._ended] = True
        return {"env": self.env.get_state(), "returns": self.episode_returns.copy(),
                "lengths": self._clock - self._start, "ended": ended}

    def set_state(self, state: dict[str, Any]) -> None:
        self.env.set_state(state["env"])
        self.episode_returns[:] = state["returns"]
        self._clock = 0
        self._start[:] = -np.asarray(state["lengths"], dtype=np.int64)
        self._ended = np.flatnonzero(state["ended"])


class RunningMeanStd:
    """Mean and (population) variance of a stream of batches, merged with Chan et al.'s
    parallel formula (as gymnasium's and SB3's): the same numbers as ``np.mean``/``np.var``
    over everything seen, plus a tiny prior count ``epsilon`` at mean 0, var 1."""

    def __init__(self, shape: tuple[int, ...] = (), epsilon: float = 1e-4):
        self.mean = np.zeros(shape)  # float64
        self.var = np.ones(shape)
        self.count = float(epsilon)

    def update(self, x: np.ndarray) -> None:
        batch = np.asarray(x, dtype=np.float64)  # (B, *shape)
        batch_mean, batch_var, batch_count = batch.mean(axis=0), batch.var(axis=0), len(batch)
        delta = batch_mean - self.mean
        total = self.count + batch_count
        m2 = self.var * self.count + batch_var * batch_count
        m2 += np.square(delta) * self.count * batch_count / total
        self.mean = self.mean + delta * batch_count / total
        self.var = m2 / total
        self.count = total

    def get_state(self) -> dict[str, Any]:
        return {"mean": self.mean.copy(), "var": self.var.copy(), "count": self.count}

    def set_state(self, state: dict[str, Any]) -> None:
        self.mean = np.array(state["mean"], dtype=np.float64)
        self.var = np.array(state["var"], dtype=np.float64)
        self.count = float(state["count"])


class NormalizeObservation(VecWrapper):
    """``clip((obs - mean) / sqrt(var + eps), -clip, clip)`` with running statistics.

    Statistics are updated from every batch of raw observations (reset and step) while
    ``training`` is True and frozen otherwise; ``transform_obs`` applies the current frozen
    transform to raw observations (what a learner does at evaluation time).
    """

    def __init__(self, env: Any, clip: float = 10.0, epsilon: float = 1e-8):
        super().__init__(env)
        shape = tuple(env.single_observation_space.shape)
        self.obs_rms = RunningMeanStd(shape)
        self.clip = float(clip)
        self.epsilon = float(epsilon)
        self.training = True

    def _normalize(self, obs: np.ndarray) -> np.ndarray:
        out = (obs - self.obs_rms.mean) / np.sqrt(self.obs_rms.var + self.epsilon)
        return np.clip(out, -self.clip, self.clip).astype(np.float32)

    def reset(self, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        obs, infos = self.env.reset(seed=seed, options=options)
        if self.training:
            self.obs_rms.update(obs)
        return self._normalize(obs), infos

    def step(self, actions: Any) -> Step:
        obs, rewards, terminations, truncations, infos = self.env.step(actions)
        if self.training:
            self.obs_rms.update(obs)
        return self._normalize(obs), rewards, terminations, truncations, infos

    def transform_obs(self, raw_obs: np.ndarray) -> np.ndarray:
        return self._normalize(self.env.transform_obs(raw_obs))

    def set_training(self, training: bool) -> None:
        self.training = bool(training)
        self.env.set_training(training)

    def get_state(self) -> dict[str, Any]:
        return {"env": self.env.get_state(), "obs_rms": self.obs_rms.get_state(),
                "training": self.training}

    def set_state(self, state: dict[str, Any]) -> None:
        self.env.set_state(state["env"])
        self.obs_rms.set_state(state["obs_rms"])
        self.training = bool(state["training"])


class NormalizeReward(VecWrapper):
    """Divide rewards by the running std of the discounted return, as gymnasium 1.2's.

    ``G = G * gamma * (1 - terminated) + r`` per sub-env; the std of all ``G`` seen so far
    scales the reward (no mean subtraction, which would change the optimal policy). As in
    gymnasium, truncation does not cut ``G`` (the episode did not really end).
    """

    def __init__(self, env: Any, gamma: float = 0.99, epsilon: float = 1e-8):
        super().__init__(env)
        self.return_rms = RunningMeanStd(())
        self.discounted_returns = np.zeros(self.num_envs)  # (N,) float64
        self.gamma = float(gamma)
        self.epsilon = float(epsilon)
        self.training = True

    def step(self, actions: Any) -> Step:
        obs, rewards, terminations, truncations, infos = self.env.step(actions)
        g = self.discounted_returns
        g *= self.gamma * (1.0 - terminations)
        g += rewards
        if self.training:
            self.return_rms.update(g)
        scaled = rewards / np.sqrt(self.return_rms.var + self.epsilon)
        return obs, scaled, terminations, truncations, infos

    def set_training(self, training: bool) -> None:
        self.training = bool(training)
        self.env.set_training(training)

    def get_state(self) -> dict[str, Any]:
        return {"env": self.env.get_state(), "return_rms": self.return_rms.get_state(),
                "returns": self.discounted_returns.copy(), "training": self.training}

    def set_state(self, state: dict[str, Any]) -> None:
        self.env.set_state(state["env"])
        self.return_rms.set_state(state["return_rms"])
        self.discounted_returns[:] = state["returns"]
        self.training = bool(state["training"])


class ActionRepeat(VecWrapper):
    """Repeat each action ``k`` times and sum the rewards (float64); a sub-env stops repeating
    at the inner step where its episode ends, so the end is reported at once and its autoreset
    comes at the next outer step, as next-step autoreset demands.

    Holding some rows still while the others go on needs ``step(actions, frozen=mask)``, which
    the native envs have; gymnasium's sync/async backends get a per-sub-env repeat from
    ``make_vec`` instead, and ``max_episode_steps`` counts inner (physics) steps either way.
    """

    def __init__(self, env: Any, k: int):
        super().__init__(env)
        if int(k) < 1:
            raise UserError(f"action_repeat must be >= 1, got {k}")
        if int(k) > 1 and not getattr(env, "supports_frozen_step", False):
            raise UserError(f"action_repeat={k} at the vector level needs an env with "
                            "step(actions, frozen=...): use backend='native'")
        self.k = int(k)
        self._ended = np.zeros(self.num_envs, dtype=bool)  # (N,) ended at the last outer step

    def reset(self, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        mask = _reset_mask(options, self.num_envs)
        self._ended[slice(None) if mask is None else mask] = False
        return self.env.reset(seed=seed, options=options)

    def step(self, actions: Any) -> Step:
        obs, rewards, terminations, truncations, infos = self.env.step(actions)
        if self.k == 1:
            np.logical_or(terminations, truncations, out=self._ended)
            return obs, rewards, terminations, truncations, infos
        total = np.array(rewards, dtype=np.float64)  # (N,)
        # Rows autoreset by this first inner step begin a new episode here and, like rows
        # that just ended, hold still for the rest of this outer step.
        frozen = self._ended | terminations | truncations
        for _ in range(self.k - 1):
            if frozen.all():
                break
            obs_j, rewards_j, term_j, trunc_j, infos = self.env.step(actions, frozen=frozen)
            live = ~frozen
            obs[live] = obs_j[live]
            total[live] += rewards_j[live]
            terminations = terminations | (term_j & live)
            truncations = truncations | (trunc_j & live)
            frozen |= live & (term_j | trunc_j)
        np.logical_or(terminations, truncations, out=self._ended)
        return obs, total, terminations, truncations, infos

    def get_state(self) -> dict[str, Any]:
        return {"env": self.env.get_state(), "ended": self._ended.copy()}

    def set_state(self, state: dict[str, Any]) -> None:
        self.env.set_state(state["env"])
        self._ended[:] = state["ended"]


class TimeLimit(VecWrapper):
    """Truncate episodes after ``max_episode_steps`` steps of this wrapper.

    It can only shorten the wrapped env's own limit. A row it truncates (that the env did not
    end itself) is restarted at the next step with ``reset(options={"reset_mask": ...})`` and
    reported like any autoreset (reset observation, reward 0, not ended), so the env must
    support partial resets (native and gymnasium sync/async do). ``make_vec`` passes
    ``max_episode_steps`` to the backend directly instead; this is for hand-built stacks.
    """

    def __init__(self, env: Any, max_episode_steps: int):
        super().__init__(env)
        if int(max_episode_steps) < 1:
            raise UserError(f"max_episode_steps must be >= 1, got {max_episode_steps}")
        self.max_episode_steps = int(max_episode_steps)
        n = self.num_envs
        self.elapsed = np.zeros(n, dtype=np.int64)  # (N,) steps since this row's reset
        self._ended = np.zeros(n, dtype=bool)  # (N,) ended at the previous step
        self._forced = np.zeros(n, dtype=bool)  # (N,) truncated here, not by the env

    def reset(self, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        mask = _reset_mask(options, self.num_envs)
        rows = slice(None) if mask is None else mask
        self.elapsed[rows] = 0
        self._ended[rows] = False
        self._forced[rows] = False
        return self.env.reset(seed=seed, options=options)

    def step(self, actions: Any) -> Step:
        obs, rewards, terminations, truncations, infos = self.env.step(actions)
        forced = self._forced
        if forced.any():
            # The env just stepped these rows past our limit; start them over instead.
            reset_obs, reset_infos = self.env.reset(options={"reset_mask": forced.copy()})
            obs[forced] = reset_obs[forced]
            rewards[forced] = 0
            terminations[forced] = False
            truncations[forced] = False
            if "action_mask" in reset_infos and "action_mask" in infos:
                infos["action_mask"][forced] = reset_infos["action_mask"][forced]
        self.elapsed += 1
        self.elapsed[self._ended] = 0
        over = self.elapsed >= self.max_episode_steps
        inner_done = terminations | truncations
        np.logical_and(over, ~inner_done, out=self._forced)
        truncations = truncations | over
        np.logical_or(inner_done, over, out=self._ended)
        return obs, rewards, terminations, truncations, infos

    def get_state(self) -> dict[str, Any]:
        return {"env": self.env.get_state(), "elapsed": self.elapsed.copy(),
                "ended": self._ended.copy(), "forced": self._forced.copy()}

    def set_state(self, state: dict[str, Any]) -> None:
        self.env.set_state(state["env"])
        self.elapsed[:] = state["elapsed"]
        self._ended[:] = state["ended"]
        self._forced[:] = state["forced"]
