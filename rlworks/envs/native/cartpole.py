"""CartPole-v1, numpy-batched, with gymnasium 1.2.0's dynamics, reward and termination.

Every floating-point operation is gymnasium's (``CartPoleEnv.step``), in gymnasium's order,
so results agree bit for bit with its single env (up to the last bit of ``np.sin``/``np.cos``).
Speed comes from layout, not from changed maths: the state is ``(4, N)`` float64 (rows ``x,
x_dot, theta, theta_dot``) so each term is one ufunc call on a contiguous row, written into a
preallocated buffer; the Euler update handles positions and velocities as two ``(2, N)``
strided views, and termination is ``|(x, theta)| > (2.4, 12 deg)`` in one comparison.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rlworks.envs.native.base import NativeVecEnv, lookup_actions


class CartPole(NativeVecEnv):
    env_id = "CartPole-v1"
    default_max_episode_steps = 500

    # Constants exactly as gymnasium computes them (CartPoleEnv.__init__).
    gravity = 9.8
    masscart = 1.0
    masspole = 0.1
    total_mass = masspole + masscart
    length = 0.5  # half the pole's length
    polemass_length = masspole * length
    force_mag = 10.0
    tau = 0.02
    theta_threshold_radians = 12 * 2 * math.pi / 360
    x_threshold = 2.4

    def _allocate(self) -> None:
        n = self.num_envs
        self.state = np.zeros((4, n))  # (4, N) x, x_dot, theta, theta_dot
        self._force_table = np.array([-self.force_mag, self.force_mag])
        self._force = np.empty(n)
        self._cos = np.empty(n)
        self._sin = np.empty(n)
        self._temp = np.empty(n)
        self._tmp = np.empty(n)
        self._acc = np.empty((2, n))  # (2, N) xacc, thetaacc
        self._tmp2 = np.empty((2, n))
        self._over = np.empty((2, n), dtype=bool)
        self._limits = np.array([[self.x_threshold], [self.theta_threshold_radians]])  # (2, 1)

    def _physics_arrays(self) -> dict[str, np.ndarray]:
        return {"state": self.state}

    def _reset_rows(self, rows: np.ndarray) -> None:
        self.state[:, rows] = self.rng.uniform(-0.05, 0.05, size=(4, len(rows)))

    def _physics(self, actions: Any) -> tuple[np.ndarray, np.ndarray]:
        s = self.state
        theta_dot = s[3]
        force, c, sn, temp, tmp = self._force, self._cos, self._sin, self._temp, self._tmp
        xacc, thetaacc = self._acc
        lookup_actions(self._force_table, actions, self.num_envs, force)
        np.cos(s[2], out=c)
        np.sin(s[2], out=sn)
        # temp = (force + polemass_length * theta_dot**2 * sintheta) / total_mass
        np.square(theta_dot, out=temp)
        temp *= self.polemass_length
        temp *= sn
        np.add(force, temp, out=temp)
        temp /= self.total_mass
        # thetaacc = (gravity * sin - cos * temp)
        #            / (length * (4/3 - masspole * cos**2 / total_mass))
        np.multiply(sn, self.gravity, out=thetaacc)
        np.multiply(c, temp, out=tmp)
        thetaacc -= tmp
        np.square(c, out=tmp)
        tmp *= self.masspole
        tmp /= self.total_mass
        np.subtract(4.0 / 3.0, tmp, out=tmp)
        tmp *= self.length
        thetaacc /= tmp
        # xacc = temp - polemass_length * thetaacc * cos / total_mass
        np.multiply(thetaacc, self.polemass_length, out=tmp)
        tmp *= c
        tmp /= self.total_mass
        np.subtract(temp, tmp, out=xacc)
        # Euler: (x, theta) += tau * (x_dot, theta_dot); then (x_dot, theta_dot) += tau * acc
        tmp2 = self._tmp2
        np.multiply(s[1::2], self.tau, out=tmp2)
        s[0::2] += tmp2
        np.multiply(self._acc, self.tau, out=tmp2)
        s[1::2] += tmp2
        # terminated = x < -2.4 or x > 2.4 or theta < -12deg or theta > 12deg
        np.abs(s[0::2], out=tmp2)
        np.greater(tmp2, self._limits, out=self._over)
        terminations = np.logical_or(self._over[0], self._over[1])
        return np.ones(self.num_envs), terminations

    def _observe(self) -> np.ndarray:
        obs = np.empty((self.num_envs, 4), dtype=np.float32)  # (N, 4)
        np.copyto(obs, self.state.T, casting="same_kind")
        return obs

    def _make_spaces(self) -> tuple[Any, Any]:
        from gymnasium import spaces

        high = np.array([self.x_threshold * 2, np.inf, self.theta_threshold_radians * 2, np.inf],
                        dtype=np.float32)
        return spaces.Box(-high, high, dtype=np.float32), spaces.Discrete(2)
