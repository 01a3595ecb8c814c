"""On-policy rollout storage: preallocated, time-major ``(T, N, ...)`` tensors.

With next-step autoreset (see ``docs/envs.md``) the row after an episode's last step is the
env's reset step: its observation is the episode's true final observation and its action is
ignored by the env. Such rows are kept (their value is the bootstrap of a truncated episode)
but flagged ``valid = False`` so no loss ever sees them.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch


class RolloutBatch(NamedTuple):
    """A flattened rollout of valid rows only, ready for minibatching. B = valid rows."""

    obs: torch.Tensor          # (B, *obs_shape)
    actions: torch.Tensor      # (B, *action_shape)
    logprobs: torch.Tensor     # (B,)
    values: torch.Tensor       # (B,)
    advantages: torch.Tensor   # (B,)
    returns: torch.Tensor      # (B,)
    action_masks: torch.Tensor | None  # (B, A) bool or None


class RolloutArrays(NamedTuple):
    """Numpy views of a :class:`RolloutBuffer`'s tensors (writes go to the same memory)."""

    obs: np.ndarray
    actions: np.ndarray
    logprobs: np.ndarray
    values: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    dones: np.ndarray
    valid: np.ndarray
    action_masks: np.ndarray | None


class RolloutBuffer:
    def __init__(self, num_steps: int, num_envs: int, obs_shape: tuple[int, ...],
                 action_shape: tuple[int, ...], action_dtype: torch.dtype,
                 num_actions: int | None = None) -> None:
        T, N = num_steps, num_envs
        self.obs = torch.zeros((T, N, *obs_shape))
        self.actions = torch.zeros((T, N, *action_shape), dtype=action_dtype)
        self.logprobs = torch.zeros((T, N))
        self.values = torch.zeros((T, N))
        self.rewards = torch.zeros((T, N))
        self.terminations = torch.zeros((T, N), dtype=torch.bool)
        self.dones = torch.zeros((T, N), dtype=torch.bool)
        self.valid = torch.zeros((T, N), dtype=torch.bool)
        self.action_masks = (torch.ones((T, N, num_actions), dtype=torch.bool)
                             if num_actions is not None else None)

    def numpy(self) -> RolloutArrays:
        """Zero-copy numpy views of the storage, for writing a rollout step by step."""
        views: dict[str, Any] = {f: None if getattr(self, f) is None else getattr(self, f).numpy()
                                 for f in RolloutArrays._fields}
        return RolloutArrays(**views)

    def flatten(self, advantages: torch.Tensor, returns: torch.Tensor) -> RolloutBatch:
        """Keep the valid rows of the rollout, flattened over (T, N)."""
        keep = self.valid.reshape(-1)

        def flat(x: torch.Tensor) -> torch.Tensor:
            return x.reshape(-1, *x.shape[2:])[keep]

        masks = flat(self.action_masks) if self.action_masks is not None else None
        return RolloutBatch(flat(self.obs), flat(self.actions), flat(self.logprobs),
                            flat(self.values), flat(advantages), flat(returns), masks)
