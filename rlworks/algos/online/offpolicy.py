"""The glue DQN, SAC and TD3 share (imported, not copied): building their envs, mapping
actions between [-1, 1] and a Box's bounds, and averaging per-gradient-step metrics.

Not a base class: each algorithm file still reads top to bottom on its own.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from rlworks.core.errors import UserError


def make_envs(cfg: Any, envs: Any | None) -> Any:
    """Set torch's thread count and return ``envs`` or a new vector env built from ``cfg``."""
    torch.set_num_threads(cfg.torch_threads)
    keep_freed_memory()
    if envs is not None:
        return envs
    from rlworks.envs import make_vec

    return make_vec(cfg.env_id, cfg.num_envs, backend=cfg.backend, seed=cfg.seed)


def keep_freed_memory() -> None:
    """Ask glibc's malloc to keep freed blocks instead of returning them to the OS.

    A gradient step allocates and frees dozens of 256 KiB-1 MiB activations. With glibc's
    defaults each may be an ``mmap``/``munmap`` pair whose pages fault in again on first
    touch (measured here: ~130 page faults and ~12% of a [256, 256] critic update). This
    raises the mmap and trim thresholds for the whole process; elsewhere it is a no-op.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)
        libc.mallopt(_M_TRIM_THRESHOLD, 256 << 20)
    except (OSError, AttributeError):  # not glibc
        pass


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h


class BoxScale:
    """Maps policy outputs in [-1, 1] to a bounded Box action space and back."""

    def __init__(self, space: Any, algo: str, env_id: str) -> None:
        import gymnasium as gym

        if not isinstance(space, gym.spaces.Box):
            raise UserError(f"{algo} needs a continuous (Box) action space; {env_id} has "
                            f"{space}: use dqn or ppo for discrete actions")
        if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
            raise UserError(f"{algo} squashes actions into the action space's bounds; {env_id} "
                            f"has unbounded actions {space}: wrap the env to bound them")
        self.low = space.low.astype(np.float32)  # (A,)
        self.high = space.high.astype(np.float32)  # (A,)
        self.shape: tuple[int, ...] = tuple(space.shape)

    def to_env(self, actions: np.ndarray) -> np.ndarray:
        """(N, A) in [-1, 1] -> (N, A) in [low, high]."""
        return self.low + 0.5 * (actions + 1.0) * (self.high - self.low)


def mean_metrics(names: Sequence[str],
                 terms: Sequence[tuple[torch.Tensor, ...]]) -> dict[str, float]:
    """Average per-gradient-step scalar tensors with one conversion to Python floats."""
    if not terms:
        return {}
    means = torch.stack([torch.stack(t) for t in terms]).mean(0).tolist()
    return dict(zip(names, means, strict=True))


def flat_obs_dim(space: Any) -> int:
    return int(np.prod(space.shape))


def collect_steps(collector: Any, steps: int, global_step: int, learning_starts: int,
                  rng: np.random.Generator, act_dim: int, scale: BoxScale,
                  policy: Any) -> int:
    """SAC's and TD3's collection: ``steps`` vector steps with uniform random actions in
    [-1, 1] before ``learning_starts`` and ``policy(obs)`` after; returns the new step count."""
    n = collector.num_envs
    for _ in range(steps):
        if global_step < learning_starts:
            actions = rng.uniform(-1.0, 1.0, (n, act_dim)).astype(np.float32)
        else:
            actions = policy(collector.obs)
        collector.step(actions, env_actions=scale.to_env(actions))
        global_step += n
    return global_step
