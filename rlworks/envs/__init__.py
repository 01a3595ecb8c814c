"""Environment construction: ``make_vec`` builds a vector env on one of several backends and
stacks rlworks's wrappers on it. See docs/envs.md.

Backends
    ``native``            numpy-batched CartPole-v1, Acrobot-v1, MountainCar-v0,
                          MountainCarContinuous-v0, Pendulum-v1 (gymnasium's dynamics, much
                          faster, exactly resumable)
    ``envpool``           EnvPool (C++ threads)
    ``gymnasium-sync``    ``gymnasium.make_vec(..., vectorization_mode="sync")``
    ``gymnasium-async``   ``... "async"`` (one process per sub-env)
    ``gymnasium-vector``  ``... "vector_entry_point"`` (gymnasium's own batched env, if any)
    ``auto``              ``native`` for a native id, else ``gymnasium-sync``

Every backend gives gymnasium 1.x next-step autoreset. ``make_vec`` does not reset: call
``envs.reset()`` once; the seed was applied at construction, so that reset is deterministic.
"""

from __future__ import annotations

from rlworks.core.errors import UserError, unknown
from rlworks.envs.registry import (
    BACKENDS,
    check_backend,
    check_env_id,
    env_ids,
    is_native,
    native_class,
    native_ids,
)
from rlworks.envs.vector import VectorEnv
from rlworks.envs.wrappers import (
    ActionRepeat,
    EpisodeStatistics,
    NormalizeObservation,
    NormalizeReward,
    TimeLimit,
)

__all__ = ["BACKENDS", "ActionRepeat", "EpisodeStatistics", "NormalizeObservation",
           "NormalizeReward", "TimeLimit", "VectorEnv", "env_ids", "make_vec", "native_ids"]


def make_vec(env_id: str, num_envs: int, backend: str = "auto", seed: int = 0, *,
             normalize_obs: bool = False, normalize_reward: bool = False, gamma: float = 0.99,
             action_repeat: int = 1, max_episode_steps: int | None = None) -> VectorEnv:
    """A vector env of ``num_envs`` copies of ``env_id``, seeded from ``seed``, not yet reset.

    The stack, inside out: backend env (with ``max_episode_steps`` and, for gymnasium
    sync/async, the per-sub-env action repeat) -> ``ActionRepeat`` (native) ->
    ``EpisodeStatistics`` (always; raw rewards) -> ``NormalizeObservation`` ->
    ``NormalizeReward``. Raises ``UserError`` naming the bad argument.
    """
    check_backend(backend)
    if int(num_envs) < 1:
        raise UserError(f"num_envs must be >= 1, got {num_envs}")
    if int(action_repeat) < 1:
        raise UserError(f"action_repeat must be >= 1, got {action_repeat}")
    if max_episode_steps is not None and int(max_episode_steps) < 1:
        raise UserError(f"max_episode_steps must be >= 1, got {max_episode_steps}")
    if backend == "auto":
        if not is_native(env_id):
            check_env_id(env_id)
        backend = "native" if is_native(env_id) else "gymnasium-sync"

    env: VectorEnv
    if backend == "native":
        if not is_native(env_id):
            check_env_id(env_id)  # a typo gets its did-you-mean first
            raise unknown("native env", env_id, native_ids())
        env = native_class(env_id)(num_envs, seed=seed, max_episode_steps=max_episode_steps)
        if action_repeat > 1:
            env = ActionRepeat(env, action_repeat)
    elif backend == "envpool":
        from rlworks.envs.adapters import make_envpool

        env = make_envpool(env_id, num_envs, seed, action_repeat, max_episode_steps)
    else:
        check_env_id(env_id)
        from rlworks.envs.adapters import make_gymnasium

        env = make_gymnasium(env_id, num_envs, backend, seed, action_repeat, max_episode_steps)

    env = EpisodeStatistics(env)
    if normalize_obs:
        env = NormalizeObservation(env)
    if normalize_reward:
        env = NormalizeReward(env, gamma=gamma)
    return env
