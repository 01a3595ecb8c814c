"""The interface every object returned by ``make_vec`` satisfies (structural, no base class).

It is gymnasium 1.x's ``VectorEnv`` with next-step autoreset, plus what rlworks needs for
exact resume and evaluation: ``get_state``/``set_state``, ``transform_obs``, ``set_training``.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class VectorEnv(Protocol):
    num_envs: int

    @property
    def single_observation_space(self) -> Any: ...

    @property
    def single_action_space(self) -> Any: ...

    @property
    def observation_space(self) -> Any: ...

    @property
    def action_space(self) -> Any: ...

    @property
    def metadata(self) -> dict[str, Any]: ...

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        """``obs (N, *obs_shape) float32, infos``; ``seed`` re-seeds as ``make_vec`` does."""
        ...

    def step(self, actions: Any
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """``obs (N, ...) float32, rewards (N,), terminations (N,) bool, truncations (N,) bool,
        infos``; a sub-env that ended at the previous call is reset by this one."""
        ...

    def transform_obs(self, raw_obs: np.ndarray) -> np.ndarray:
        """Raw observations -> what ``step`` returns (frozen normalisation, if any)."""
        ...

    def set_training(self, training: bool) -> None:
        """Freeze (False) or resume (True) running statistics (observation/reward normalisers)."""
        ...

    def get_state(self) -> dict[str, Any]: ...

    def set_state(self, state: dict[str, Any]) -> None: ...

    def close(self) -> None: ...
