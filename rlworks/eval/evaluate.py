"""Evaluate a policy for a fixed number of episodes on a fresh vector env.

Episodes are split evenly over the sub-envs in advance and each sub-env contributes exactly its
share, so short episodes are not over-represented (taking the first K episodes to finish from
a vector env biases the mean towards short, often bad, episodes).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from rlworks.envs import make_vec

Policy = Callable[..., np.ndarray]


def evaluate(policy: Any, env_id: str, episodes: int, seed: int, backend: str = "auto",
             num_envs: int | None = None, deterministic: bool = True,
             max_steps: int = 1_000_000) -> np.ndarray:
    """Return the undiscounted returns of ``episodes`` episodes, shape ``(episodes,)``.

    ``policy`` is a learner (its ``act(obs, deterministic)`` is used) or a callable
    ``fn(obs) -> actions``. Observations passed to it are raw: learners apply their own
    frozen normalisation.
    """
    if episodes <= 0:
        raise ValueError(f"episodes must be positive, got {episodes}")
    n = min(episodes, num_envs or 8)
    targets = np.full(n, episodes // n)
    targets[: episodes % n] += 1
    act = _act_fn(policy, deterministic)
    envs = make_vec(env_id, n, backend=backend, seed=seed)
    try:
        obs, infos = envs.reset()
        counts = np.zeros(n, dtype=int)
        returns: list[float] = []
        for _ in range(max_steps):
            if (counts >= targets).all():
                break
            obs, _r, _term, _trunc, infos = envs.step(act(obs, infos.get("action_mask")))
            if "_episode" in infos:
                for i in np.flatnonzero(infos["_episode"]):
                    if counts[i] < targets[i]:
                        returns.append(float(infos["episode"]["r"][i]))
                        counts[i] += 1
        else:
            raise RuntimeError(f"evaluation on {env_id} did not finish in {max_steps} steps")
    finally:
        envs.close()
    return np.asarray(returns)


def _act_fn(policy: Any, deterministic: bool) -> Callable[[np.ndarray, Any], np.ndarray]:
    if hasattr(policy, "act"):
        def act(obs: np.ndarray, mask: Any) -> np.ndarray:
            if mask is not None:
                return policy.act(obs, deterministic=deterministic, action_mask=mask)
            return policy.act(obs, deterministic=deterministic)

        return act
    return lambda obs, mask: policy(obs)
