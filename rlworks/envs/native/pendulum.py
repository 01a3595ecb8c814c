"""Pendulum-v1, numpy-batched, term for term as gymnasium 1.2.0's ``PendulumEnv.step``.

Squares of state variables use ``pow2`` (gymnasium squares NumPy scalars with ``pow``).
The torque stays float32 (the action space's dtype) where gymnasium's does: ``0.001 * u**2``
and ``3.0 * u`` are float32 products under NumPy 2 promotion, added to float64 terms.
The episode never terminates; it is truncated after 200 steps.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rlworks.envs.native.base import NativeVecEnv, box_actions, pow2


def angle_normalize(x: np.ndarray) -> np.ndarray:
    return ((x + np.pi) % (2 * np.pi)) - np.pi


class Pendulum(NativeVecEnv):
    env_id = "Pendulum-v1"
    default_max_episode_steps = 200

    max_speed = 8
    max_torque = 2.0
    dt = 0.05
    g = 10.0
    m = 1.0
    l = 1.0  # noqa: E741 (gymnasium's name)

    def _allocate(self) -> None:
        self.state = np.zeros((2, self.num_envs))  # (2, N) theta, theta_dot
        self._high = np.array([[np.pi], [1.0]])  # (2, 1) start state is U(-high, high)

    def _physics_arrays(self) -> dict[str, np.ndarray]:
        return {"state": self.state}

    def _reset_rows(self, rows: np.ndarray) -> None:
        self.state[:, rows] = self.rng.uniform(low=-self._high, high=self._high,
                                               size=(2, len(rows)))

    def _physics(self, actions: Any) -> tuple[np.ndarray, np.ndarray]:
        u = box_actions(actions, self.num_envs)  # (N,) float32
        th, thdot = self.state
        g, m, l, dt = self.g, self.m, self.l, self.dt
        u = np.minimum(np.maximum(u, -self.max_torque), self.max_torque)  # stays float32
        costs = pow2(angle_normalize(th)) + 0.1 * pow2(thdot) + 0.001 * pow2(u)
        newthdot = thdot + (3 * g / (2 * l) * np.sin(th) + 3.0 / (m * l**2) * u) * dt
        newthdot = np.minimum(np.maximum(newthdot, -self.max_speed), self.max_speed)
        newth = th + newthdot * dt
        self.state[0] = newth
        self.state[1] = newthdot
        return -costs, np.zeros(self.num_envs, dtype=bool)

    def _observe(self) -> np.ndarray:
        th, thdot = self.state
        obs = np.empty((self.num_envs, 3), dtype=np.float32)  # (N, 3)
        obs[:, 0] = np.cos(th)
        obs[:, 1] = np.sin(th)
        obs[:, 2] = thdot
        return obs

    def _make_spaces(self) -> tuple[Any, Any]:
        from gymnasium import spaces

        high = np.array([1.0, 1.0, self.max_speed], dtype=np.float32)
        action = spaces.Box(low=-self.max_torque, high=self.max_torque, shape=(1,),
                            dtype=np.float32)
        return spaces.Box(low=-high, high=high, dtype=np.float32), action
