"""n-step TD targets over windows of stored transitions (Sutton, 1988; Hessel et al., 2018).

A window is the n transitions that follow a sampled one in the same sub-env,
``(r_t, ..., r_{t+n-1})``. It is cut after the first step ``j`` that ends it: the episode
terminated or was truncated there, or the stored data stop. The target is then::

    G = sum_{i<=j} gamma^i r_{t+i} + discount * V(next_obs_{t+j}),
    discount = gamma^(j+1) if step j did not terminate, else 0

Truncation is not termination: a window cut by a time limit (or by the end of the stored data)
still bootstraps, from the value of the true final observation ``next_obs_{t+j}``; only a
termination zeroes the bootstrap.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class NStepWindow(NamedTuple):
    returns: np.ndarray
    """(B,) discounted reward sum over the kept part of the window."""
    discounts: np.ndarray
    """(B,) multiplier of the bootstrap value: gamma^(j+1), or 0 after a termination."""
    last: np.ndarray
    """(B,) int index j of the window's last kept step (bootstrap from its next_obs)."""


def nstep_returns(
    rewards: np.ndarray,       # (B, n) rewards r_t .. r_{t+n-1}
    terminations: np.ndarray,  # (B, n) bool: the episode terminated at this step
    dones: np.ndarray,         # (B, n) bool: the window cannot go past this step
    gamma: float,
) -> NStepWindow:              # (B,), (B,), (B,)
    """Cut each window after its first ``done`` (terminations count as done) and return the
    discounted reward sum, the bootstrap discount and the index of the last kept step.

    Entries after the cut are ignored, whatever they hold.
    """
    rewards = np.asarray(rewards)
    n = rewards.shape[1]
    ends = np.asarray(dones, dtype=bool) | np.asarray(terminations, dtype=bool)
    ends[:, -1] = True  # a window never runs past n steps
    last = ends.argmax(axis=1)  # first end  (B,)
    steps = np.arange(n)
    keep = steps[None, :] <= last[:, None]  # (B, n)
    powers = gamma ** steps.astype(np.float64)  # (n,)
    returns = np.where(keep, rewards * powers, 0.0).sum(axis=1)
    terminated = np.take_along_axis(np.asarray(terminations, dtype=bool), last[:, None], 1)[:, 0]
    discounts = np.where(terminated, 0.0, gamma ** (last + 1.0))
    dtype = rewards.dtype if rewards.dtype.kind == "f" else np.float64
    return NStepWindow(returns.astype(dtype), discounts.astype(dtype), last)


def nstep_targets(window: NStepWindow, next_values: np.ndarray) -> np.ndarray:
    """(B,) TD targets ``returns + discounts * V(next_obs at last)`` for (B,) next values."""
    return window.returns + window.discounts * next_values
