"""TD3+BC: TD3 whose actor loss adds a behaviour-cloning term.

Paper: Fujimoto and Gu, 2021, "A Minimalist Approach to Offline Reinforcement Learning"
(arXiv:2106.06860). The actor maximises ``lambda Q_1(s, pi(s)) - (pi(s) - a)^2`` with
``lambda = alpha / mean|Q_1(s, pi(s))|`` (held constant in the gradient); the critics are
TD3's (clipped double Q, target policy smoothing, delayed actor and target updates), and
observations are standardised with the dataset's mean and std.

Deviations from the paper (none changes the maths):

* Actions live in the [-1, 1]-scaled space of the env's Box, so the smoothing noise (0.2,
  clipped at 0.5) is in that space, as the paper's is for max_action = 1.
* The twin critics are one ``EnsembleMLP`` (one batched matmul per layer); each optimiser
  steps one flat parameter buffer; the actor loss back-propagates into the actor only.
* Truncation is not termination: only terminations zero the bootstrap.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from rlworks.algos.offline.common import Batch, OfflineData, deterministic_actor
from rlworks.algos.offline.configs import TD3BCConfig
from rlworks.algos.offline.losses import td3bc_lambda
from rlworks.algos.online.offpolicy import mean_metrics
from rlworks.core.seeding import torch_generator
from rlworks.nets.ensemble import EnsembleMLP
from rlworks.nets.flat import FlatParameters, adam_step
from rlworks.nets.target import polyak_update


class TD3BC:
    """Learner for ``rlworks offline train td3bc``; see the module docstring."""

    def __init__(self, cfg: TD3BCConfig) -> None:
        self.cfg = cfg
        self.data = OfflineData(cfg, "td3bc")
        self.env_id, self.reference_scores = self.data.env_id, self.data.reference_scores
        obs_dim, act_dim = self.data.obs_dim, self.data.act_dim
        self.gen = torch_generator(cfg.seed, "td3bc")  # target policy smoothing noise
        init = torch_generator(cfg.seed, "td3bc", "init")
        self.actor = deterministic_actor(obs_dim, act_dim, cfg.hidden_sizes, init)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic = EnsembleMLP(2, obs_dim + act_dim, cfg.hidden_sizes, 1, generator=init)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_params = list(self.actor.parameters())
        self.actor_flat = FlatParameters(self.actor_params)
        self.critic_flat = FlatParameters(self.critic.parameters())
        self.actor_target_flat = FlatParameters(self.actor_target.parameters(),
                                                trainable_only=False)
        self.critic_target_flat = FlatParameters(self.critic_target.parameters(),
                                                 trainable_only=False)
        self.actor_opt = torch.optim.Adam([self.actor_flat.param], lr=cfg.actor_lr, fused=True)
        self.critic_opt = torch.optim.Adam([self.critic_flat.param], lr=cfg.critic_lr,
                                           fused=True)
        self.global_step = 0
        self.num_updates = 0

    def iterate(self) -> dict[str, float]:
        """A chunk of ``steps_per_iter`` gradient steps; metrics are their means."""
        steps = self.data.chunk(self.global_step)
        idx = self.data.sample_indices(steps)  # (steps, B)
        q_terms, actor_terms = [], []
        for i in range(steps):
            q_loss, actor_terms_i = self._update(self.data.batch(idx[i]))
            q_terms.append((q_loss,))
            if actor_terms_i is not None:
                actor_terms.append(actor_terms_i)
        self.global_step += steps
        return (mean_metrics(("train/q_loss",), q_terms)
                | mean_metrics(("train/actor_loss", "train/bc_loss", "train/lambda"),
                               actor_terms))

    def _update(self, b: Batch) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
        cfg = self.cfg
        with torch.no_grad():
            smoothing = torch.randn(b.actions.shape, generator=self.gen) * cfg.policy_noise
            smoothing = smoothing.clamp(-cfg.noise_clip, cfg.noise_clip)
            next_actions = (self.actor_target(b.next_obs) + smoothing).clamp(-1.0, 1.0)  # (B, A)
            next_q = self.critic_target(torch.cat([b.next_obs, next_actions], -1))  # (2, B, 1)
            td_target = b.rewards + cfg.gamma * b.not_done * next_q.amin(0)[:, 0]  # (B,)
        q = self.critic(b.obs_actions)[..., 0]  # (2, B)
        q_loss = (q - td_target).square().mean(1).sum()
        self.critic_flat.zero_grad()
        q_loss.backward()
        adam_step(self.critic_opt)
        self.num_updates += 1
        if self.num_updates % cfg.policy_delay:
            return q_loss.detach(), None

        pi = self.actor(b.obs)  # (B, A)
        q1_pi = self.critic(torch.cat([b.obs, pi], -1), member=0)[0, :, 0]  # (B,)
        lmbda = td3bc_lambda(q1_pi, cfg.alpha)
        bc_loss = (pi - b.actions).square().mean()
        actor_loss = -lmbda * q1_pi.mean() + bc_loss
        self.actor_flat.zero_grad()
        actor_loss.backward(inputs=self.actor_params)  # no critic weight grads
        adam_step(self.actor_opt)
        polyak_update([self.critic_flat.param, self.actor_flat.param],
                      [self.critic_target_flat.param, self.actor_target_flat.param], cfg.tau)
        return q_loss.detach(), (actor_loss.detach(), bc_loss.detach(), lmbda)

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Env-scaled actions of the deterministic policy for raw ``obs``."""
        return self.data.to_env(self.actor(self.data.obs_tensor(obs)))

    def state_dict(self) -> dict[str, Any]:
        return copy.deepcopy({
            "actor": self.actor.state_dict(),
            "actor_target": self.actor_target.state_dict(),
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "gen": self.gen.get_state(),
            "data": self.data.state_dict(),
            "counters": {"global_step": self.global_step, "num_updates": self.num_updates},
        })

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.data.load_state_dict(state["data"])
        for name in ("actor", "actor_target", "critic", "critic_target"):
            getattr(self, name).load_state_dict(state[name])
        # Optimizer.load_state_dict keeps the tensors it is given: copy, not alias.
        self.actor_opt.load_state_dict(copy.deepcopy(state["actor_opt"]))
        self.critic_opt.load_state_dict(copy.deepcopy(state["critic_opt"]))
        self.gen.set_state(state["gen"])
        self.global_step = int(state["counters"]["global_step"])
        self.num_updates = int(state["counters"]["num_updates"])

    def close(self) -> None:
        pass
