"""CartPole-v1, numpy-batched, with gymnasium 1.2.0's dynamics, reward and termination.

Every floating-point operation is gymnasium's (``CartPoleEnv.step``), in gymnasium's order,
so results agree bit for bit with its single env (up to the last bit of ``np.sin``/``np.cos``).
Speed comes from layout, not from changed maths: the state is ``(4, N)`` float64 (rows ``x,
x_dot, theta, theta_dot``) so each term is one ufunc call on a contiguous row, written into a
preallocated buffer; start states come from a pre-drawn block; a step allocates only its
outputs.
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
        self._ones = np.ones(n)  # reward template (copying it beats np.ones)
        self._force = np.empty(n)
        self._cos = np.empty(n)
        self._sin = np.empty(n)
        self._temp = np.empty(n)
        self._tmp = np.empty(n)
        self._thetaacc = np.empty(n)
        self._out_x = np.empty(n, dtype=bool)
        self._out_theta = np.empty(n, dtype=bool)
        # Start states are drawn in blocks and used in order (one generator call per block,
        # not per step): the stream is still a function of the seed and the episode ends.
        self._pool = np.empty((4, 0))
        self._pool_pos = 0

    def _physics_arrays(self) -> dict[str, np.ndarray]:
        return {"state": self.state}

    def _extra_state(self) -> dict[str, Any]:
        return {"pool": self._pool.copy(), "pool_pos": self._pool_pos}

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        self._pool = np.array(extra["pool"], dtype=np.float64).reshape(4, -1)
        self._pool_pos = int(extra["pool_pos"])

    def _reseeded(self) -> None:
        self._pool = np.empty((4, 0))
        self._pool_pos = 0

    def _reset_rows(self, rows: np.ndarray) -> None:
        k, pos = len(rows), self._pool_pos
        if pos + k > self._pool.shape[1]:
            fresh = self.rng.uniform(-0.05, 0.05, size=(4, max(4096, k)))
            self._pool = np.concatenate([self._pool[:, pos:], fresh], axis=1)
            pos = 0
        self.state[:, rows] = self._pool[:, pos:pos + k]
        self._pool_pos = pos + k

    def _physics(self, actions: Any) -> tuple[np.ndarray, np.ndarray]:
        # One ufunc call per arithmetic operation of gymnasium's step, on contiguous (N,)
        # rows with a Python-float operand and a preallocated output (positional ``out``):
        # measured faster than pairing rows into (2, N) broadcasts or strided views.
        x, x_dot, theta, theta_dot = self.state
        force, c, sn = self._force, self._cos, self._sin
        temp, tmp, thetaacc = self._temp, self._tmp, self._thetaacc
        lookup_actions(self._force_table, actions, self.num_envs, force)
        np.cos(theta, c)
        np.sin(theta, sn)
        # temp = (force + polemass_length * theta_dot**2 * sintheta) / total_mass
        np.square(theta_dot, temp)
        np.multiply(temp, self.polemass_length, temp)
        np.multiply(temp, sn, temp)
        np.add(force, temp, temp)
        np.divide(temp, self.total_mass, temp)
        # thetaacc = (gravity * sin - cos * temp)
        #            / (length * (4/3 - masspole * cos**2 / total_mass))
        np.multiply(sn, self.gravity, thetaacc)
        np.multiply(c, temp, tmp)
        np.subtract(thetaacc, tmp, thetaacc)
        np.square(c, tmp)
        np.multiply(tmp, self.masspole, tmp)
        np.divide(tmp, self.total_mass, tmp)
        np.subtract(4.0 / 3.0, tmp, tmp)
        np.multiply(tmp, self.length, tmp)
        np.divide(thetaacc, tmp, thetaacc)
        # Euler, gymnasium's order: x += tau * x_dot; x_dot += tau * xacc; same for theta,
        # with xacc = temp - polemass_length * thetaacc * cos / total_mass (into sn: unused now)
        xacc = sn
        np.multiply(thetaacc, self.polemass_length, tmp)
        np.multiply(tmp, c, tmp)
        np.divide(tmp, self.total_mass, tmp)
        np.subtract(temp, tmp, xacc)
        tau = self.tau
        np.multiply(x_dot, tau, tmp)
        np.add(x, tmp, x)
        np.multiply(xacc, tau, tmp)
        np.add(x_dot, tmp, x_dot)
        np.multiply(theta_dot, tau, tmp)
        np.add(theta, tmp, theta)
        np.multiply(thetaacc, tau, tmp)
        np.add(theta_dot, tmp, theta_dot)
        # terminated = x < -2.4 or x > 2.4 or theta < -12deg or theta > 12deg (|.| is exact)
        np.abs(x, tmp)
        np.greater(tmp, self.x_threshold, self._out_x)
        np.abs(theta, tmp)
        np.greater(tmp, self.theta_threshold_radians, self._out_theta)
        terminations = np.logical_or(self._out_x, self._out_theta)
        return self._ones.copy(), terminations

    def _observe(self) -> np.ndarray:
        obs = np.empty((self.num_envs, 4), dtype=np.float32)  # (N, 4)
        np.copyto(obs, self.state.T, casting="same_kind")
        return obs

    def _make_spaces(self) -> tuple[Any, Any]:
        from gymnasium import spaces

        high = np.array([self.x_threshold * 2, np.inf, self.theta_threshold_radians * 2, np.inf],
                        dtype=np.float32)
        return spaces.Box(-high, high, dtype=np.float32), spaces.Discrete(2)
