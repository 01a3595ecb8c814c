"""Tuned per-environment defaults, in the spirit of rl-baselines3-zoo's hyperparameter files.

``ZOO[(algo, env_id)]`` overrides the dataclass defaults before a config file and CLI flags
are applied; the run's stored config holds the final values, so nothing here is hidden.
Each entry cites where its values come from.
"""

from __future__ import annotations

from typing import Any

ZOO: dict[tuple[str, str], dict[str, Any]] = {
    # rl-baselines3-zoo hyperparams/ppo.yml, CartPole-v1 (lin_0.001 -> anneal_lr, lin_0.2 ->
    # anneal_clip; batch_size 256 of a 256-step rollout -> one minibatch).
    ("ppo", "CartPole-v1"): dict(
        num_envs=8, num_steps=32, num_minibatches=1, gae_lambda=0.8, gamma=0.98,
        update_epochs=20, ent_coef=0.0, learning_rate=1e-3, anneal_lr=True, anneal_clip=True,
        clip_eps=0.2, clip_vloss=False,
    ),
}


def zoo_defaults(algo: str, env_id: str) -> dict[str, Any]:
    return dict(ZOO.get((algo, env_id), {}))
