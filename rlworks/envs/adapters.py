"""Gymnasium and EnvPool vector envs behind the same small interface as the native ones.

Both already follow next-step autoreset (gymnasium 1.x's default, EnvPool's only mode); the
adapter casts observations to float32, applies the run's seed at the first ``reset()`` (so
``make_vec`` need not reset), and says plainly that these backends cannot be snapshotted:
their simulators keep state (and RNGs) we cannot read, so a bit-identical resume needs
``backend="native"``.
"""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import numpy as np

from rlworks.core.errors import UserError, unknown
from rlworks.core.seeding import derive_seed

NO_STATE = ("{backend}: bit-identical resume needs backend='native'; this backend's simulator "
            "state cannot be saved (checkpoint the learner and re-create the env instead)")


class GymnasiumVecEnv:
    """A gymnasium ``VectorEnv`` (sync, async or a vector entry point) or an EnvPool env."""

    supports_frozen_step = False

    def __init__(self, env: Any, backend: str, seed: int, single_spaces: tuple[Any, Any]):
        self.env = env
        self.backend = backend
        self.num_envs: int = int(env.num_envs) if hasattr(env, "num_envs") else env.config[
            "num_envs"]
        self.single_observation_space, self.single_action_space = single_spaces
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space,
                                                              self.num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self.metadata = {**getattr(env, "metadata", {}),
                         "autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP}
        self._first_seed: int | None = derive_seed(seed, "env")

    @property
    def unwrapped(self) -> Any:
        return self

    def reset(self, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        if self.backend == "envpool":
            if seed is not None or options:
                raise UserError("envpool backend: reset(seed=..., options=...) is not supported; "
                                "EnvPool is seeded once, by make_vec(seed=...)")
            obs, infos = self.env.reset()
        else:
            if seed is not None:
                seed = derive_seed(seed, "env")
            elif self._first_seed is not None:
                seed = self._first_seed
            obs, infos = self.env.reset(seed=seed, options=options)
        self._first_seed = None
        return np.asarray(obs, dtype=np.float32), dict(infos)

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                          dict[str, Any]]:
        obs, rewards, terminations, truncations, infos = self.env.step(np.asarray(actions))
        return (np.asarray(obs, dtype=np.float32), np.asarray(rewards),
                np.asarray(terminations, dtype=bool), np.asarray(truncations, dtype=bool),
                dict(infos))

    def transform_obs(self, raw_obs: np.ndarray) -> np.ndarray:
        return np.asarray(raw_obs, dtype=np.float32)

    def set_training(self, training: bool) -> None:
        pass

    def get_state(self) -> dict[str, Any]:
        raise NotImplementedError(NO_STATE.format(backend=self.backend))

    def set_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError(NO_STATE.format(backend=self.backend))

    def close(self) -> None:
        self.env.close()

    def __repr__(self) -> str:
        return f"GymnasiumVecEnv({self.backend}, {self.env!r})"


class RepeatAction(gym.Wrapper):
    """Single-env action repeat for gymnasium's sync/async backends: ``k`` steps with the same
    action, rewards summed, stopping where the episode ends (inside the TimeLimit, so the limit
    counts physics steps, as with the native backend)."""

    def __init__(self, env: gym.Env, k: int):
        super().__init__(env)
        self.k = int(k)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        total = 0.0
        for _ in range(self.k):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if terminated or truncated:
                break
        return obs, total, terminated, truncated, info


def _mujoco_warning(message: str) -> None:
    warnings.warn(f"MuJoCo: {message.strip()}", RuntimeWarning, stacklevel=2)


def route_mujoco_warnings(env_id: str) -> None:
    """Send MuJoCo's own warnings through Python's ``warnings``, so each shows once.

    MuJoCo prints them straight to the terminal, once per model compiled: with mujoco 4.x
    that is a deprecation notice (``settotalmass``) for every HalfCheetah env built, dozens
    of lines in a dataset build. A handler someone else installed is left alone.
    """
    if "mujoco" not in str(gym.spec(env_id).entry_point):
        return
    try:
        import mujoco
    except ImportError:
        return  # gymnasium's own error names the missing extra when the env is built
    if mujoco.get_mju_user_warning() is None:
        mujoco.set_mju_user_warning(_mujoco_warning)


def make_gymnasium(env_id: str, num_envs: int, backend: str, seed: int, action_repeat: int,
                   max_episode_steps: int | None) -> GymnasiumVecEnv:
    route_mujoco_warnings(env_id)
    kwargs: dict[str, Any] = {}
    if max_episode_steps is not None:
        kwargs["max_episode_steps"] = int(max_episode_steps)
    if backend == "gymnasium-vector":
        if action_repeat > 1:
            raise UserError("action_repeat > 1 is not available with backend='gymnasium-vector'; "
                            "use 'native' or 'gymnasium-sync'")
        if gym.spec(env_id).vector_entry_point is None:
            raise UserError(f"env '{env_id}' has no gymnasium vector_entry_point; use backend "
                            "'gymnasium-sync', 'gymnasium-async' or 'native'")
        env = gym.make_vec(env_id, num_envs, vectorization_mode="vector_entry_point", **kwargs)
    else:
        mode = "async" if backend == "gymnasium-async" else "sync"
        wrappers = [lambda e: RepeatAction(e, action_repeat)] if action_repeat > 1 else None
        env = gym.make_vec(env_id, num_envs, vectorization_mode=mode, wrappers=wrappers,
                           **kwargs)
    return GymnasiumVecEnv(env, backend, seed,
                           (env.single_observation_space, env.single_action_space))


def make_envpool(env_id: str, num_envs: int, seed: int, action_repeat: int,
                 max_episode_steps: int | None) -> GymnasiumVecEnv:
    try:
        import envpool
    except ImportError:
        raise UserError("backend 'envpool' needs the envpool package: "
                        "pip install 'rlworks[envpool]'") from None
    ids = envpool.list_all_envs()
    if env_id not in ids:
        raise unknown("envpool env", env_id, ids)
    if action_repeat > 1:
        raise UserError("action_repeat > 1 is not available with backend='envpool'; "
                        "use 'native' or 'gymnasium-sync'")
    kwargs: dict[str, Any] = {}
    if max_episode_steps is not None:
        kwargs["max_episode_steps"] = int(max_episode_steps)
    env = envpool.make(env_id, env_type="gymnasium", num_envs=num_envs,
                       seed=derive_seed(seed, "env"), **kwargs)
    return GymnasiumVecEnv(env, "envpool", seed, (env.observation_space, env.action_space))
