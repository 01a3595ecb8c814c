"""Environment construction and vectorisation. See ``make_vec``.

(Interim stub: gymnasium backends only; the native backend, EnvPool and wrappers are being
written in ``rlworks/envs/``.)
"""

from __future__ import annotations

from typing import Any


def make_vec(env_id: str, num_envs: int, backend: str = "auto", seed: int = 0,
             **kwargs: Any) -> Any:
    import gymnasium as gym

    from rlworks.core.seeding import derive_seed

    mode = "async" if backend == "gymnasium-async" else "sync"
    envs = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode=mode)
    envs = gym.wrappers.vector.RecordEpisodeStatistics(envs)
    envs.reset(seed=derive_seed(seed, "env"))
    return envs
