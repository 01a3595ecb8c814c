"""Behaviour cloning: regress a deterministic policy on the dataset's actions.

Paper: the BC baseline of Fujimoto and Gu, 2021, "A Minimalist Approach to Offline
Reinforcement Learning" (arXiv:2106.06860): the TD3+BC actor trained with its BC term only,
``mean((pi(s) - a)^2)``, which is also CORL's ``any_percent_bc``.

Deviations: none in the maths. Actions are regressed in the [-1, 1]-scaled space of the env's
Box (tanh output) and rescaled when acting; observations are standardised only with
``normalize_obs`` (off by default here, on in TD3+BC).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from rlworks.algos.offline.common import Batch, OfflineData, deterministic_actor
from rlworks.algos.offline.configs import BCConfig
from rlworks.algos.online.offpolicy import mean_metrics
from rlworks.core.seeding import torch_generator
from rlworks.nets.flat import FlatParameters, adam_step


class BC:
    """Learner for ``rlworks offline train bc``; see the module docstring."""

    def __init__(self, cfg: BCConfig) -> None:
        self.cfg = cfg
        self.data = OfflineData(cfg, "bc")
        self.env_id, self.reference_scores = self.data.env_id, self.data.reference_scores
        init = torch_generator(cfg.seed, "bc", "init")
        self.actor = deterministic_actor(self.data.obs_dim, self.data.act_dim, cfg.hidden_sizes,
                                         init)
        self.actor_flat = FlatParameters(self.actor.parameters())
        self.actor_opt = torch.optim.Adam([self.actor_flat.param], lr=cfg.learning_rate,
                                          fused=True)
        self.global_step = 0

    def iterate(self) -> dict[str, float]:
        """A chunk of ``steps_per_iter`` gradient steps; metrics are their means."""
        steps = self.data.chunk(self.global_step)
        idx = self.data.sample_indices(steps)  # (steps, B)
        terms = [self._update(self.data.batch(idx[i])) for i in range(steps)]
        self.global_step += steps
        return mean_metrics(("train/bc_loss",), terms)

    def _update(self, b: Batch) -> tuple[torch.Tensor]:
        bc_loss = (self.actor(b.obs) - b.actions).square().mean()
        self.actor_flat.zero_grad()
        bc_loss.backward()
        adam_step(self.actor_opt)
        return (bc_loss.detach(),)

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Env-scaled actions for raw ``obs`` (the policy is deterministic either way)."""
        return self.data.to_env(self.actor(self.data.obs_tensor(obs)))

    def state_dict(self) -> dict[str, Any]:
        return copy.deepcopy({
            "actor": self.actor.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "data": self.data.state_dict(),
            "counters": {"global_step": self.global_step},
        })

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.data.load_state_dict(state["data"])
        self.actor.load_state_dict(state["actor"])
        # Optimizer.load_state_dict keeps the tensors it is given: copy, not alias.
        self.actor_opt.load_state_dict(copy.deepcopy(state["actor_opt"]))
        self.global_step = int(state["counters"]["global_step"])

    def close(self) -> None:
        pass
