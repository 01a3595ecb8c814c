"""MountainCar-v0 and MountainCarContinuous-v0, numpy-batched, as gymnasium 1.2.0 computes them.

MountainCar-v0 is float64 throughout; ``(action - 1) * force`` is a 3-entry table.

MountainCarContinuous-v0 needs care to be exact: gymnasium stores its state as float32
after every step, and with NumPy 2 promotion rules (NEP 50) a Python float meeting a float32
stays float32. So a step from a stored state is float32 arithmetic (``cos`` taken in float64
by ``math.cos``), except where ``force`` was clipped to a Python float ``+-1.0`` and the
force term is formed in float64 first. The first step after a reset starts from the float64
start state and runs in float64. We keep the state as float32 and a ``fresh`` flag per row;
fresh rows (rare: once per episode) are recomputed on the float64 path.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rlworks.envs.native.base import NativeVecEnv, box_actions, lookup_actions


class MountainCar(NativeVecEnv):
    env_id = "MountainCar-v0"
    default_max_episode_steps = 200

    min_position = -1.2
    max_position = 0.6
    max_speed = 0.07
    goal_position = 0.5
    goal_velocity = 0
    force = 0.001
    gravity = 0.0025

    def _allocate(self) -> None:
        self.state = np.zeros((2, self.num_envs))  # (2, N) position, velocity
        self._push_table = np.array([(a - 1) * self.force for a in range(3)])
        self._push = np.empty(self.num_envs)

    def _physics_arrays(self) -> dict[str, np.ndarray]:
        return {"state": self.state}

    def _reset_rows(self, rows: np.ndarray) -> None:
        self.state[0, rows] = self.rng.uniform(low=-0.6, high=-0.4, size=len(rows))
        self.state[1, rows] = 0.0

    def _physics(self, actions: Any) -> tuple[np.ndarray, np.ndarray]:
        push = lookup_actions(self._push_table, actions, self.num_envs, self._push)
        position, velocity = self.state
        # velocity += (action - 1) * force + cos(3 * position) * (-gravity)
        velocity += push + np.cos(3 * position) * (-self.gravity)
        np.minimum(np.maximum(velocity, -self.max_speed), self.max_speed, out=velocity)
        position += velocity
        np.minimum(np.maximum(position, self.min_position), self.max_position, out=position)
        velocity[(position == self.min_position) & (velocity < 0)] = 0.0
        terminations = (position >= self.goal_position) & (velocity >= self.goal_velocity)
        return np.full(self.num_envs, -1.0), terminations

    def _observe(self) -> np.ndarray:
        return self.state.T.astype(np.float32, order="C")  # (N, 2)

    def _make_spaces(self) -> tuple[Any, Any]:
        from gymnasium import spaces

        low = np.array([self.min_position, -self.max_speed], dtype=np.float32)
        high = np.array([self.max_position, self.max_speed], dtype=np.float32)
        return spaces.Box(low, high, dtype=np.float32), spaces.Discrete(3)


class MountainCarContinuous(NativeVecEnv):
    env_id = "MountainCarContinuous-v0"
    default_max_episode_steps = 999

    min_action = -1.0
    max_action = 1.0
    min_position = -1.2
    max_position = 0.6
    max_speed = 0.07
    goal_position = 0.45
    goal_velocity = 0
    power = 0.0015

    def _allocate(self) -> None:
        n = self.num_envs
        self.state = np.zeros((2, n), dtype=np.float32)  # (2, N) position, velocity
        self.start_position = np.zeros(n)  # (N,) float64 start position of fresh rows
        self.fresh = np.zeros(n, dtype=bool)  # (N,) no step taken since reset
        self._f32 = np.float32

    def _physics_arrays(self) -> dict[str, np.ndarray]:
        return {"state": self.state, "start_position": self.start_position, "fresh": self.fresh}

    def _reset_rows(self, rows: np.ndarray) -> None:
        start = self.rng.uniform(low=-0.6, high=-0.4, size=len(rows))
        self.start_position[rows] = start
        self.state[0, rows] = start
        self.state[1, rows] = 0.0
        self.fresh[rows] = True

    def _physics(self, actions: Any) -> tuple[np.ndarray, np.ndarray]:
        a = box_actions(actions, self.num_envs)  # (N,) float32
        position, velocity = self.state  # float32 rows, updated in place
        f32 = self._f32
        fresh_rows = self.fresh.nonzero()[0]
        if len(fresh_rows):
            saved = (a[fresh_rows], self.start_position[fresh_rows])
        # velocity += force * power - 0.0025 * math.cos(3 * position), in float32
        c = np.cos(position * f32(3), dtype=np.float64)
        c *= 0.0025  # (N,) float64
        term = a * f32(self.power)
        term -= c.astype(np.float32)
        # reward = (100 if terminated else 0) - math.pow(action, 2) * 0.1, in float64;
        # a*a is exact for a float32 a (so equals pow), and -(a*a*0.1) == a*a*(-0.1).
        rewards = np.multiply(a, a, dtype=np.float64)  # (N,)
        if np.maximum.reduce(rewards) > 1.0:  # some |a| > 1
            # force was clipped to the Python float +-1.0, so force * power is float64
            clipped = (a < self.min_action) | (a > self.max_action)
            term64 = np.where(a > 0, self.max_action * self.power,
                              self.min_action * self.power) - c
            np.copyto(term, term64, where=clipped, casting="same_kind")
        velocity += term
        np.maximum(velocity, -self.max_speed, out=velocity)
        np.minimum(velocity, self.max_speed, out=velocity)
        position += velocity
        # Clip the position and test the goal only when some row can need it (two
        # reductions instead of five array operations in the common case).
        if np.minimum.reduce(position) <= self.min_position:
            np.maximum(position, self.min_position, out=position)
            velocity[(position == self.min_position) & (velocity < 0)] = 0.0
        high = np.maximum.reduce(position)
        if high > self.max_position:
            np.minimum(position, self.max_position, out=position)
        if high >= self.goal_position:
            terminations = (position >= self.goal_position) & (velocity >= self.goal_velocity)
        else:
            terminations = self._no_truncations.copy()
        if len(fresh_rows):
            terminations[fresh_rows] = self._first_step(fresh_rows, *saved)
            self.fresh[fresh_rows] = False
        rewards *= -0.1
        if high >= self.goal_position:
            rewards[terminations] += 100.0
        return rewards, terminations

    def _first_step(self, rows: np.ndarray, a: np.ndarray, position: np.ndarray) -> np.ndarray:
        """gymnasium's step from a float64 start state (velocity 0.0); returns terminations."""
        clipped = (a < self.min_action) | (a > self.max_action)
        c = 0.0025 * np.cos(3 * position)  # float64
        term32 = a * self._f32(self.power) - c.astype(np.float32)
        term = term32.astype(np.float64)
        term[clipped] = (np.where(a > 0, self.max_action, self.min_action) * self.power - c)[
            clipped]
        velocity = np.minimum(np.maximum(0.0 + term, -self.max_speed), self.max_speed)
        position = position + velocity
        position = np.minimum(np.maximum(position, self.min_position), self.max_position)
        velocity[(position == self.min_position) & (velocity < 0)] = 0.0
        self.state[0, rows] = position
        self.state[1, rows] = velocity
        return (position >= self.goal_position) & (velocity >= self.goal_velocity)

    def _observe(self) -> np.ndarray:
        return self.state.T.copy()  # (N, 2) float32, C order

    def _make_spaces(self) -> tuple[Any, Any]:
        from gymnasium import spaces

        low = np.array([self.min_position, -self.max_speed], dtype=np.float32)
        high = np.array([self.max_position, self.max_speed], dtype=np.float32)
        action = spaces.Box(low=self.min_action, high=self.max_action, shape=(1,),
                            dtype=np.float32)
        return spaces.Box(low=low, high=high, dtype=np.float32), action
