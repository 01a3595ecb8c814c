"""Advantage-Weighted Actor-Critic (offline phase).

Paper: Nair, Gupta, Dalal and Levine, 2020, "AWAC: Accelerating Online Reinforcement
Learning with Offline Datasets" (arXiv:2006.09359). The critics do TD learning on the
current policy's actions (no entropy term); the actor is advantage-weighted behaviour
cloning, the solution of the KL-constrained policy improvement step:

    Q  <- r + gamma * min_k Q_target_k(s', a'),  a' ~ pi(.|s')
    pi <- argmax E[exp(A(s, a) / lambda) log pi(a|s)],  A = min_k Q_k(s, a) - min_k Q_k(s, a_pi)

Deviations (CORL's awac.py unless noted):

* Weights are ``min(exp(A / lambda), exp_adv_max)`` per transition (CORL), not the paper
  code's softmax over the batch.
* The advantage uses the critics from before this step's update (CORL: after), so the data
  and policy actions are valued in the same forward pass as the critic loss.
* The policy is a Gaussian with a state-independent std (CORL); samples are clamped to the
  [-1, 1]-scaled action space and the mean is the deterministic action.
* The twin critics are one ``EnsembleMLP``; each optimiser steps one flat buffer.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from rlworks.algos.offline.common import Batch, GaussianActor, OfflineData
from rlworks.algos.offline.configs import AWACConfig
from rlworks.algos.offline.losses import advantage_weights
from rlworks.algos.online.offpolicy import mean_metrics
from rlworks.core.seeding import torch_generator
from rlworks.nets.distributions import gaussian_logprob_entropy
from rlworks.nets.ensemble import EnsembleMLP
from rlworks.nets.flat import FlatParameters, adam_step
from rlworks.nets.target import polyak_update

METRICS = ("train/q_loss", "train/actor_loss", "train/advantage", "train/weight_mean")


class AWAC:
    """Learner for ``rlworks offline train awac``; see the module docstring."""

    def __init__(self, cfg: AWACConfig) -> None:
        self.cfg = cfg
        self.data = OfflineData(cfg, "awac")
        self.env_id, self.reference_scores = self.data.env_id, self.data.reference_scores
        obs_dim, act_dim = self.data.obs_dim, self.data.act_dim
        self.gen = torch_generator(cfg.seed, "awac")  # policy samples in training
        self.act_gen = torch_generator(cfg.seed, "awac", "act")
        init = torch_generator(cfg.seed, "awac", "init")
        self.actor = GaussianActor(obs_dim, act_dim, cfg.hidden_sizes, False, init)
        self.critic = EnsembleMLP(2, obs_dim + act_dim, cfg.hidden_sizes, 1, generator=init)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_flat = FlatParameters(self.actor.parameters())
        self.critic_flat = FlatParameters(self.critic.parameters())
        self.target_flat = FlatParameters(self.critic_target.parameters(), trainable_only=False)
        self.actor_opt = torch.optim.Adam([self.actor_flat.param], lr=cfg.actor_lr, fused=True)
        self.critic_opt = torch.optim.Adam([self.critic_flat.param], lr=cfg.critic_lr,
                                           fused=True)
        self.global_step = 0

    def iterate(self) -> dict[str, float]:
        """A chunk of ``steps_per_iter`` gradient steps; metrics are their means."""
        steps = self.data.chunk(self.global_step)
        idx = self.data.sample_indices(steps)  # (steps, B)
        terms = [self._update(self.data.batch(idx[i])) for i in range(steps)]
        self.global_step += steps
        return mean_metrics(METRICS, terms)

    def _update(self, b: Batch) -> tuple[torch.Tensor, ...]:
        cfg = self.cfg
        bsz = len(b.obs)
        mean, log_std = self.actor(b.obs)  # (B, A), (A,)
        with torch.no_grad():
            next_mean, _ = self.actor(b.next_obs)
            std, noise = log_std.exp(), torch.randn((2, *mean.shape), generator=self.gen)
            pi_a = (mean + std * noise[0]).clamp(-1.0, 1.0)  # a_pi ~ pi(.|s)
            next_a = (next_mean + std * noise[1]).clamp(-1.0, 1.0)  # a' ~ pi(.|s')
            next_q = self.critic_target(torch.cat([b.next_obs, next_a], -1)).amin(0)[:, 0]
            td_target = b.rewards + cfg.gamma * b.not_done * next_q  # (B,)
        x = torch.cat([b.obs_actions, torch.cat([b.obs, pi_a], -1)], 0)  # (2B, O + A)
        q = self.critic(x)[..., 0]  # (2, 2B): data actions, then policy actions
        q_data = q[:, :bsz]
        q_loss = (q_data - td_target).square().mean(1).sum()
        with torch.no_grad():
            adv = q_data.amin(0) - q[:, bsz:].amin(0)  # (B,) Q(s, a) - V(s), V ~ Q(s, a_pi)
        weights = advantage_weights(adv, 1.0 / cfg.awac_lambda, cfg.exp_adv_max)
        logp = gaussian_logprob_entropy(mean, log_std, b.actions)[0]  # (B,)
        actor_loss = -(weights * logp).mean()
        self.critic_flat.zero_grad()
        self.actor_flat.zero_grad()
        (q_loss + actor_loss).backward()  # disjoint parameters: equals two passes
        adam_step(self.critic_opt)
        adam_step(self.actor_opt)
        polyak_update([self.critic_flat.param], [self.target_flat.param], cfg.tau)
        return q_loss.detach(), actor_loss.detach(), adv.mean(), weights.mean()

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Env-scaled actions for raw ``obs``: the mean, or a clamped Gaussian sample."""
        mean, log_std = self.actor(self.data.obs_tensor(obs))
        if not deterministic:
            mean = mean + log_std.exp() * torch.randn(mean.shape, generator=self.act_gen)
        return self.data.to_env(mean)

    def state_dict(self) -> dict[str, Any]:
        return copy.deepcopy({
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "gen": self.gen.get_state(),
            "act_gen": self.act_gen.get_state(),
            "data": self.data.state_dict(),
            "counters": {"global_step": self.global_step},
        })

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.data.load_state_dict(state["data"])
        for name in ("actor", "critic", "critic_target"):
            getattr(self, name).load_state_dict(state[name])
        # Optimizer.load_state_dict keeps the tensors it is given: copy, not alias.
        self.actor_opt.load_state_dict(copy.deepcopy(state["actor_opt"]))
        self.critic_opt.load_state_dict(copy.deepcopy(state["critic_opt"]))
        self.gen.set_state(state["gen"])
        self.act_gen.set_state(state["act_gen"])
        self.global_step = int(state["counters"]["global_step"])

    def close(self) -> None:
        pass
