"""Feed a replay buffer from a vector env with next-step autoreset (Gymnasium 1.x).

When sub-env i ends an episode at step t (terminated or truncated), step t returns its true
final observation, which the buffer stores as ``next_obs``; step t+1 resets env i, ignores
its action and returns reward 0: not a real transition. The collector keeps a ``prev_done``
flag per sub-env and writes that step with ``valid_mask`` False, so it is never sampled.

Resume: ``state_dict()`` holds the current observations, the flags and ``envs.get_state()``
when the vector env provides it. Gymnasium backends raise ``NotImplementedError`` there; a
learner restored from such a checkpoint restarts its envs (a fresh reset seeded from the
run's seed and step), so it continues correctly but not bit-identically.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


class ReplayCollector:
    """Steps ``envs`` with given actions and writes each vector step to ``buffer``."""

    def __init__(self, envs: Any, buffer: Any) -> None:
        self.envs = envs
        self.buffer = buffer
        self.num_envs = int(envs.num_envs)
        # reset/step return observations already normalised (if the env normalises);
        # transform_obs maps raw ones the same way, for act() on a fresh eval env.
        transform: Callable[[np.ndarray], np.ndarray] | None = getattr(envs, "transform_obs", None)
        self.transform_obs = transform if transform is not None else _identity
        self.obs = np.empty(0)
        self.action_mask: np.ndarray | None = None
        self.prev_done = np.zeros(self.num_envs, dtype=bool)
        self._returns: list[float] = []
        self._lengths: list[float] = []
        self.restart()

    def restart(self, seed: int | None = None) -> None:
        """Reset every sub-env (``seed`` None continues the envs' own generators)."""
        self.obs, infos = self.envs.reset(seed=seed)  # (N, *obs_shape)
        self.action_mask = _action_mask(infos)  # (N, A) or None
        self.prev_done[:] = False

    def step(self, actions: np.ndarray, env_actions: np.ndarray | None = None) -> None:
        """One vector step; the buffer stores ``actions`` (N, ...) and the envs receive
        ``env_actions`` if given (e.g. rescaled from [-1, 1] to the action bounds)."""
        next_obs, rewards, terminations, truncations, infos = self.envs.step(
            actions if env_actions is None else env_actions)
        next_mask = _action_mask(infos)
        self.buffer.add(self.obs, actions, rewards, next_obs, terminations, ~self.prev_done,
                        action_mask=self.action_mask, next_action_mask=next_mask,
                        truncations=truncations)
        if "episode" in infos:
            ended = infos["_episode"]
            self._returns += infos["episode"]["r"][ended].tolist()
            self._lengths += infos["episode"]["l"][ended].tolist()
        self.prev_done = np.logical_or(terminations, truncations)
        self.obs = next_obs
        self.action_mask = next_mask

    def pop_episode_stats(self) -> dict[str, float]:
        """Mean return and length of the episodes finished since the last call (may be {})."""
        if not self._returns:
            return {}
        stats = {"rollout/episodic_return": float(np.mean(self._returns)),
                 "rollout/episodic_length": float(np.mean(self._lengths))}
        self._returns, self._lengths = [], []
        return stats

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"obs": self.obs.copy(), "prev_done": self.prev_done.copy(),
                                 "env": env_state(self.envs)}
        if self.action_mask is not None:
            state["action_mask"] = self.action_mask.copy()
        return state

    def load_state_dict(self, state: dict[str, Any], restart_seed: int) -> None:
        """Restore from ``state``; without a saved env state, restart the envs with
        ``restart_seed`` instead (see the module docstring)."""
        self._returns, self._lengths = [], []
        if state.get("env") is None:
            self.restart(seed=restart_seed)
            self.buffer.truncate_last_row()  # the interrupted episodes end there
            return
        self.envs.set_state(state["env"])
        self.obs = np.array(state["obs"])
        self.prev_done = np.array(state["prev_done"], dtype=bool)
        mask = state.get("action_mask")
        self.action_mask = None if mask is None else np.array(mask, dtype=bool)


def env_state(envs: Any) -> Any:
    """``envs.get_state()``, or None where the backend cannot snapshot itself."""
    get_state = getattr(envs, "get_state", None)
    if get_state is None:
        return None
    try:
        return get_state()
    except NotImplementedError:
        return None


def _action_mask(infos: dict[str, Any]) -> np.ndarray | None:
    mask = infos.get("action_mask")
    return None if mask is None else np.asarray(mask, dtype=bool)


def _identity(obs: np.ndarray) -> np.ndarray:
    return obs
