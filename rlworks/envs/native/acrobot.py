"""Acrobot-v1, numpy-batched: gymnasium 1.2.0's "book" dynamics integrated by its ``rk4``.

The derivative and the integrator below are gymnasium's expressions written for ``(N,)``
rows instead of scalars, term for term and in the same order (squares of state variables via
``pow``, as NumPy scalars square them), so every row follows gymnasium's floating-point path:
float64 state, the start state rounded to float32 as gymnasium's ``reset`` does. Torque noise
is 0 in Acrobot-v1 and is not modelled.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy import cos, pi, sin

from rlworks.envs.native.base import NativeVecEnv, lookup_actions


class Acrobot(NativeVecEnv):
    env_id = "Acrobot-v1"
    default_max_episode_steps = 500

    dt = 0.2
    LINK_LENGTH_1 = 1.0
    LINK_MASS_1 = 1.0
    LINK_MASS_2 = 1.0
    LINK_COM_POS_1 = 0.5
    LINK_COM_POS_2 = 0.5
    LINK_MOI = 1.0
    MAX_VEL_1 = 4 * pi
    MAX_VEL_2 = 9 * pi
    AVAIL_TORQUE = (-1.0, 0.0, +1)

    def _allocate(self) -> None:
        self.state = np.zeros((4, self.num_envs))  # (4, N) theta1, theta2, dtheta1, dtheta2
        self._torque_table = np.array(self.AVAIL_TORQUE, dtype=np.float64)
        self._torque = np.empty(self.num_envs)
        # Exponent for ``np.power(x, two)``: squares as gymnasium's NumPy scalars take them
        # (libm ``pow``), see ``base.pow2``.
        self._two = np.full(self.num_envs, 2.0)

    def _physics_arrays(self) -> dict[str, np.ndarray]:
        return {"state": self.state}

    def _reset_rows(self, rows: np.ndarray) -> None:
        draw = self.rng.uniform(-0.1, 0.1, size=(4, len(rows)))
        self.state[:, rows] = draw.astype(np.float32)  # gymnasium keeps a float32 start state

    def _dsdt(self, s: np.ndarray, a: np.ndarray) -> np.ndarray:
        """gymnasium's ``AcrobotEnv._dsdt`` ("book"), for (4, N) states and (N,) torques.

        Same expression trees; ``cos(theta2)``/``sin(theta2)`` are computed once and reused
        (equal inputs give equal outputs, so this changes no bit).
        """
        m1 = self.LINK_MASS_1
        m2 = self.LINK_MASS_2
        l1 = self.LINK_LENGTH_1
        lc1 = self.LINK_COM_POS_1
        lc2 = self.LINK_COM_POS_2
        I1 = self.LINK_MOI
        I2 = self.LINK_MOI
        g = 9.8
        two = self._two
        theta1, theta2, dtheta1, dtheta2 = s
        cos2, sin2 = cos(theta2), sin(theta2)
        d1 = m1 * lc1**2 + m2 * (l1**2 + lc2**2 + 2 * l1 * lc2 * cos2) + I1 + I2
        d2 = m2 * (lc2**2 + l1 * lc2 * cos2) + I2
        phi2 = m2 * lc2 * g * cos(theta1 + theta2 - pi / 2.0)
        phi1 = (
            -m2 * l1 * lc2 * np.power(dtheta2, two) * sin2
            - 2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * sin2
            + (m1 * lc1 + m2 * l1) * g * cos(theta1 - pi / 2)
            + phi2
        )
        ddtheta2 = (
            a + d2 / d1 * phi1 - m2 * l1 * lc2 * np.power(dtheta1, two) * sin2 - phi2
        ) / (m2 * lc2**2 + I2 - np.power(d2, two) / d1)
        ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
        return np.stack((dtheta1, dtheta2, ddtheta1, ddtheta2))  # (4, N)

    def _physics(self, actions: Any) -> tuple[np.ndarray, np.ndarray]:
        a = lookup_actions(self._torque_table, actions, self.num_envs, self._torque)
        # gymnasium's rk4(derivs, y0, [0, dt]): one classical Runge-Kutta step.
        y0 = self.state
        dt = self.dt - 0
        dt2 = dt / 2.0
        k1 = self._dsdt(y0, a)
        k2 = self._dsdt(y0 + dt2 * k1, a)
        k3 = self._dsdt(y0 + dt2 * k2, a)
        k4 = self._dsdt(y0 + dt * k3, a)
        ns = y0 + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)  # (4, N)
        # wrap angles into [-pi, pi] (gymnasium's while loops), bound the velocities
        for row in (0, 1):
            x = ns[row]
            while (x > pi).any():
                np.subtract(x, 2 * pi, out=x, where=x > pi)
            while (x < -pi).any():
                np.add(x, 2 * pi, out=x, where=x < -pi)
        np.minimum(np.maximum(ns[2], -self.MAX_VEL_1), self.MAX_VEL_1, out=ns[2])
        np.minimum(np.maximum(ns[3], -self.MAX_VEL_2), self.MAX_VEL_2, out=ns[3])
        self.state[...] = ns
        s = self.state
        terminations = -cos(s[0]) - cos(s[1] + s[0]) > 1.0
        rewards = np.where(terminations, 0.0, -1.0)
        return rewards, terminations

    def _observe(self) -> np.ndarray:
        s = self.state
        obs = np.empty((self.num_envs, 6), dtype=np.float32)  # (N, 6)
        obs[:, 0] = cos(s[0])
        obs[:, 1] = sin(s[0])
        obs[:, 2] = cos(s[1])
        obs[:, 3] = sin(s[1])
        obs[:, 4] = s[2]
        obs[:, 5] = s[3]
        return obs

    def _make_spaces(self) -> tuple[Any, Any]:
        from gymnasium import spaces

        high = np.array([1.0, 1.0, 1.0, 1.0, self.MAX_VEL_1, self.MAX_VEL_2], dtype=np.float32)
        return spaces.Box(low=-high, high=high, dtype=np.float32), spaces.Discrete(3)
