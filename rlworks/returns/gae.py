"""Generalised Advantage Estimation (Schulman et al., 2016, arXiv:1506.02438).

Pure numpy/torch-agnostic maths over time-major arrays ``(T, N)``: T steps of N envs.

Terminations and truncations are different things. A *terminated* step has no future, so its
TD target is just the reward. A *truncated* step (a time limit) does have one: its target
bootstraps from the value of the true final observation, which ``next_values`` must hold.
Either way the advantage trace stops there, because the next row of the rollout belongs to
another episode.
"""

from __future__ import annotations

import numpy as np


def compute_gae(
    rewards: np.ndarray,       # (T, N)
    values: np.ndarray,        # (T, N) V(s_t)
    next_values: np.ndarray,   # (T, N) V(s_{t+1}); for a done step, V(true final obs)
    terminations: np.ndarray,  # (T, N) bool: no bootstrap
    dones: np.ndarray,         # (T, N) bool: terminated or truncated; cuts the trace
    gamma: float,
    gae_lambda: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(advantages, returns)``, both ``(T, N)``; ``returns = advantages + values``.

    delta_t = r_t + gamma * (1 - term_t) * V(s_{t+1}) - V(s_t)
    A_t     = delta_t + gamma * lambda * (1 - done_t) * A_{t+1}
    """
    not_term = 1.0 - np.asarray(terminations, dtype=np.float64)
    not_done = 1.0 - np.asarray(dones, dtype=np.float64)
    deltas = rewards + gamma * not_term * next_values - values  # (T, N)
    advantages = np.zeros_like(deltas, dtype=np.float64)
    last = np.zeros(deltas.shape[1:], dtype=np.float64)
    decay = gamma * gae_lambda
    for t in range(deltas.shape[0] - 1, -1, -1):
        last = deltas[t] + decay * not_done[t] * last
        advantages[t] = last
    return advantages, advantages + values
