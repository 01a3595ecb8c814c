"""A circular replay buffer for vector envs, with n-step targets.

Layout: every field is one preallocated numpy array shaped ``(capacity_per_env, num_envs, ...)``;
row ``t`` holds the ``t``-th vector step of every sub-env, so the transitions that follow one
in the same episode are the next rows of the same column (n-step windows read them without
searching). ``capacity_per_env = ceil(capacity / num_envs)``.

Vector envs autoreset on the *next* step (Gymnasium 1.x): the step after an episode ends
resets that sub-env, ignores its action and is not a real transition. The collector still
writes its row (all sub-envs share the row index) but with ``valid_mask`` False, and sampling
never returns it. ``next_obs`` is stored explicitly because the observation after a truncated
episode's last step is its true final observation, not the next row's ``obs``.

Sampling draws flat indices with the caller's numpy generator (rejecting invalid rows in a
vectorised loop, a few redraws at most) and indexes the arrays once per field, so a batch
costs a handful of numpy calls; the result wraps the new arrays with ``torch.from_numpy``
(no copy).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import torch

from rlworks.returns.nstep import nstep_returns


class ReplayBatch(NamedTuple):
    obs: torch.Tensor
    """(B, *obs_shape)"""
    actions: torch.Tensor
    """(B, *action_shape): int64 for discrete actions, float32 otherwise."""
    rewards: torch.Tensor
    """(B,) float32: r_t, or the discounted n-step reward sum."""
    next_obs: torch.Tensor
    """(B, *obs_shape): the observation to bootstrap from (true final obs at a time limit)."""
    discounts: torch.Tensor
    """(B,) float32: the bootstrap multiplier gamma^k, 0 where the episode terminated.
    The TD target is ``rewards + discounts * V(next_obs)``."""
    next_action_mask: torch.Tensor | None
    """(B, A) bool: legal actions at ``next_obs``; None when the env gives no masks."""


_FIELDS = ("obs", "actions", "rewards", "next_obs", "terminations", "truncations", "valid",
           "action_mask", "next_action_mask")


class ReplayBuffer:
    """Uniform replay over the valid transitions of a vector env."""

    def __init__(self, capacity: int, num_envs: int, obs_shape: tuple[int, ...],
                 action_shape: tuple[int, ...] = (), obs_dtype: Any = np.float32,
                 action_dtype: Any = np.float32, gamma: float = 0.99, n_step: int = 1) -> None:
        if capacity < num_envs or n_step < 1:
            raise ValueError(f"need capacity >= num_envs and n_step >= 1, got capacity="
                             f"{capacity}, num_envs={num_envs}, n_step={n_step}")
        self.num_envs = num_envs
        self.capacity_per_env = math.ceil(capacity / num_envs)
        self.gamma = float(gamma)
        self.n_step = int(n_step)
        c, n = self.capacity_per_env, num_envs
        self.obs = np.zeros((c, n, *obs_shape), dtype=obs_dtype)
        self.next_obs = np.zeros((c, n, *obs_shape), dtype=obs_dtype)
        self.actions = np.zeros((c, n, *action_shape), dtype=action_dtype)
        self.rewards = np.zeros((c, n), dtype=np.float32)
        self.terminations = np.zeros((c, n), dtype=bool)
        self.truncations = np.zeros((c, n), dtype=bool)
        self.valid = np.zeros((c, n), dtype=bool)
        # (c, n, A) bool, allocated by the first add() that passes masks.
        self.action_mask: np.ndarray | None = None
        self.next_action_mask: np.ndarray | None = None
        self.pos = 0
        self.full = False

    @property
    def size(self) -> int:
        """Rows written (per sub-env)."""
        return self.capacity_per_env if self.full else self.pos

    def num_transitions(self) -> int:
        """Valid transitions stored."""
        return int(self.valid[: self.size].sum())

    def add(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
            next_obs: np.ndarray, terminations: np.ndarray, valid_mask: np.ndarray,
            action_mask: np.ndarray | None = None, next_action_mask: np.ndarray | None = None,
            truncations: np.ndarray | None = None) -> None:
        """Write one vector step: arrays with a leading (num_envs,) axis.

        ``valid_mask[i]`` is False for sub-env i's autoreset step. ``truncations`` (time limits)
        cut n-step windows; they never zero the bootstrap.
        """
        i = self.pos
        self.obs[i] = obs
        self.actions[i] = actions
        self.rewards[i] = rewards
        self.next_obs[i] = next_obs
        self.terminations[i] = terminations
        self.truncations[i] = False if truncations is None else truncations
        self.valid[i] = valid_mask
        if action_mask is not None:
            if self.action_mask is None or self.next_action_mask is None:
                shape = (self.capacity_per_env, self.num_envs, np.shape(action_mask)[-1])
                self.action_mask = np.ones(shape, dtype=bool)
                self.next_action_mask = np.ones(shape, dtype=bool)
            self.action_mask[i] = action_mask
            self.next_action_mask[i] = True if next_action_mask is None else next_action_mask
        self.pos = (i + 1) % self.capacity_per_env
        self.full = self.full or self.pos == 0

    def truncate_last_row(self) -> None:
        """Mark the last written row's episodes as cut by a time limit (they bootstrap but no
        n-step window runs on): used when the envs are restarted mid-episode."""
        if self.size:
            self.truncations[(self.pos - 1) % self.capacity_per_env] = True

    def sample(self, batch_size: int, rng: np.random.Generator) -> ReplayBatch:
        """``batch_size`` valid transitions drawn uniformly (with replacement) using ``rng``."""
        flat = self._sample_indices(batch_size, rng)  # (B,) index into (rows * num_envs)
        if self.n_step == 1:
            src = flat
            rewards = self.rewards.reshape(-1)[flat]
            terminated = self.terminations.reshape(-1)[flat]
            discounts = np.where(terminated, 0.0, self.gamma).astype(np.float32)
        else:
            src, rewards, discounts = self._nstep(flat)
        next_mask = None
        if self.next_action_mask is not None:
            next_mask = torch.from_numpy(_rows(self.next_action_mask)[src])
        return ReplayBatch(
            obs=torch.from_numpy(_rows(self.obs)[flat]),
            actions=torch.from_numpy(_rows(self.actions)[flat]),
            rewards=torch.from_numpy(rewards),
            next_obs=torch.from_numpy(_rows(self.next_obs)[src]),
            discounts=torch.from_numpy(discounts),
            next_action_mask=next_mask,
        )

    def _sample_indices(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        high = self.size * self.num_envs
        valid = self.valid.reshape(-1)
        if high == 0 or not valid[:high].any():
            raise ValueError("cannot sample from a replay buffer without valid transitions")
        flat = rng.integers(0, high, batch_size)
        bad = ~valid[flat]
        while bad.any():  # autoreset rows are rare (one per episode): a redraw or two
            flat[bad] = rng.integers(0, high, int(bad.sum()))
            bad = ~valid[flat]
        return flat

    def _nstep(self, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n, c, num_envs = self.n_step, self.capacity_per_env, self.num_envs
        t, e = np.divmod(flat, num_envs)  # (B,), (B,)
        steps = np.arange(n)
        rows = (t[:, None] + steps) % c  # (B, n) rows of the window, wrapping around
        cols = e[:, None]  # (B, 1)
        # Rows written from t up to the write head (inclusive of t): the window stops there.
        written = (self.pos - t - 1) % c + 1  # (B,)
        follows = np.zeros((len(flat), n), dtype=bool)  # step j+1 continues step j's episode
        follows[:, :-1] = self.valid[rows[:, 1:], cols] & (steps[None, 1:] < written[:, None])
        dones = self.truncations[rows, cols] | ~follows
        window = nstep_returns(self.rewards[rows, cols], self.terminations[rows, cols], dones,
                               self.gamma)
        src = rows[np.arange(len(flat)), window.last] * num_envs + e
        return src, window.returns.astype(np.float32), window.discounts.astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        """The filled rows only (copies), plus the write position."""
        size = self.size
        state: dict[str, Any] = {"pos": self.pos, "full": self.full}
        for name in _FIELDS:
            arr = getattr(self, name)
            if arr is not None:
                state[name] = arr[:size].copy()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        size = len(state["valid"])
        if size > self.capacity_per_env or state["valid"].shape[1] != self.num_envs:
            raise ValueError(
                f"replay state holds {size} rows x {state['valid'].shape[1]} envs; this buffer "
                f"has {self.capacity_per_env} x {self.num_envs}: build it from the same config")
        for name in _FIELDS:
            saved = state.get(name)
            if saved is None:  # only the optional action masks can be absent
                setattr(self, name, None)
                continue
            arr = getattr(self, name)
            if arr is None:  # masks: allocate like add() does
                arr = np.ones((self.capacity_per_env, *saved.shape[1:]), dtype=bool)
                setattr(self, name, arr)
            arr[:size] = saved
            arr[size:] = 0
        self.pos = int(state["pos"])
        self.full = bool(state["full"])


def _rows(arr: np.ndarray) -> np.ndarray:
    """View (rows, num_envs, ...) as (rows * num_envs, ...) to index with flat indices."""
    return arr.reshape(-1, *arr.shape[2:])
