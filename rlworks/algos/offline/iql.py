"""Implicit Q-Learning, and its robust variant RIQL as a preset.

Paper: Kostrikov, Nair and Levine, 2021, "Offline Reinforcement Learning with Implicit
Q-Learning" (arXiv:2110.06169). Never queries Q at actions outside the dataset:

    V  <- expectile_tau of Q_target(s, a) over the dataset's a      (expectile loss)
    Q  <- r + gamma * V(s')                                         (TD on V, not on max Q)
    pi <- argmax E[exp(beta * (Q_target(s, a) - V(s))) log pi(a|s)] (advantage-weighted BC)

RIQL (Yang et al., 2023, "Towards Robust Offline Reinforcement Learning under Diverse Data
Corruption", arXiv:2310.12955) changes three terms, selected by config fields and set
together by the ``riql`` preset: observation normalisation, a Huber loss for the Q ensemble
(``q_loss="huber"``), and the ``q_quantile``-quantile over a ``num_critics`` ensemble in
place of the min (``q_aggregation="quantile"``) for V's target and the advantage.

Deviations (IQL as CORL's iql.py, RIQL as the authors' RIQL.py, unless noted):

* V, Q and the actor are updated from one backward pass of the summed losses. Their
  parameters are disjoint and each loss's inputs from the other networks are detached
  (``next_v`` and the advantage use V before its update, as in the reference code), so the
  gradients equal three separate passes. V and Q share one fused Adam (same step size).
* The Q ensemble is one ``EnsembleMLP`` (one batched matmul per layer), initialised like
  ``nn.Linear`` (RIQL's code uses EDAC's init). Q losses are averaged over members.
* The actor's cosine schedule is ``lr * (1 + cos(pi t / total_steps)) / 2`` computed from the
  step count (what ``CosineAnnealingLR`` gives), so a resumed run continues it exactly.
* The Gaussian actor's std is state-independent and its mean tanh-bounded (CORL); actions are
  in the [-1, 1]-scaled space of the env's Box.
* RIQL's clipping of TD targets to [-100, 1000] is not applied.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from rlworks.algos.offline.common import Batch, GaussianActor, OfflineData, deterministic_actor
from rlworks.algos.offline.configs import IQLConfig
from rlworks.algos.offline.losses import (
    advantage_weights,
    ensemble_min,
    ensemble_quantile,
    expectile_loss,
    huber_ensemble_loss,
    mse_ensemble_loss,
)
from rlworks.algos.online.offpolicy import mean_metrics
from rlworks.core.seeding import torch_generator
from rlworks.nets.distributions import gaussian_logprob_entropy
from rlworks.nets.ensemble import EnsembleMLP
from rlworks.nets.flat import FlatParameters, adam_step
from rlworks.nets.mlp import make_mlp
from rlworks.nets.target import polyak_update

METRICS = ("train/v_loss", "train/q_loss", "train/actor_loss", "train/advantage",
           "train/weight_mean", "train/actor_lr")


class IQL:
    """Learner for ``rlworks offline train iql`` (and ``riql``); see the module docstring."""

    def __init__(self, cfg: IQLConfig) -> None:
        self.cfg = cfg
        self.data = OfflineData(cfg, "iql", normalize_reward=cfg.normalize_reward)
        self.env_id, self.reference_scores = self.data.env_id, self.data.reference_scores
        obs_dim, act_dim = self.data.obs_dim, self.data.act_dim
        self.act_gen = torch_generator(cfg.seed, "iql", "act")  # act(deterministic=False)
        init = torch_generator(cfg.seed, "iql", "init")
        self.critic = EnsembleMLP(cfg.num_critics, obs_dim + act_dim, cfg.hidden_sizes, 1,
                                  generator=init)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.value = make_mlp(obs_dim, cfg.hidden_sizes, 1, generator=init)
        self.actor: torch.nn.Module
        if cfg.actor == "gaussian":
            self.actor = GaussianActor(obs_dim, act_dim, cfg.hidden_sizes, True, init)
        else:
            self.actor = deterministic_actor(obs_dim, act_dim, cfg.hidden_sizes, init)
        # Names become functions once, here: no loss branches on a config string.
        self.aggregate: Callable[[torch.Tensor], torch.Tensor] = (
            ensemble_min if cfg.q_aggregation == "min"
            else functools.partial(ensemble_quantile, quantile=cfg.q_quantile))
        self.q_loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = (
            mse_ensemble_loss if cfg.q_loss == "mse"
            else functools.partial(huber_ensemble_loss, delta=cfg.huber_delta))
        self.bc_losses = self._gaussian_nll if cfg.actor == "gaussian" else self._squared_error
        self.critic_flat = FlatParameters([*self.critic.parameters(), *self.value.parameters()])
        self.actor_flat = FlatParameters(self.actor.parameters())
        self.target_flat = FlatParameters(self.critic_target.parameters(), trainable_only=False)
        self.critic_opt = torch.optim.Adam([self.critic_flat.param], lr=cfg.critic_lr,
                                           fused=True)
        self.actor_opt = torch.optim.Adam([self.actor_flat.param], lr=cfg.actor_lr, fused=True)
        self.global_step = 0

    def iterate(self) -> dict[str, float]:
        """A chunk of ``steps_per_iter`` gradient steps; metrics are their means."""
        steps = self.data.chunk(self.global_step)
        idx = self.data.sample_indices(steps)  # (steps, B)
        terms = [self._update(self.data.batch(idx[i]), self.global_step + i)
                 for i in range(steps)]
        self.global_step += steps
        return mean_metrics(METRICS, terms)

    def actor_lr(self, step: int) -> float:
        """The actor's step size at update ``step`` (0-based): cosine-annealed to 0."""
        if not self.cfg.cosine_actor_lr:
            return self.cfg.actor_lr
        return self.cfg.actor_lr * 0.5 * (1.0 + math.cos(math.pi * step / self.cfg.total_steps))

    def _update(self, b: Batch, step: int) -> tuple[torch.Tensor, ...]:
        cfg = self.cfg
        with torch.no_grad():
            target_q = self.aggregate(self.critic_target(b.obs_actions)[..., 0])  # (B,)
            next_v = self.value(b.next_obs)[:, 0]  # (B,) V before this step's update
            td_target = b.rewards + cfg.gamma * b.not_done * next_v  # (B,)
        adv = target_q - self.value(b.obs)[:, 0]  # (B,)
        v_loss = expectile_loss(adv, cfg.expectile)
        q_loss = self.q_loss_fn(self.critic(b.obs_actions)[..., 0], td_target)  # (K, B) vs (B,)
        weights = advantage_weights(adv, cfg.temperature, cfg.exp_adv_max)  # (B,) detached
        actor_loss = (weights * self.bc_losses(b)).mean()
        loss = v_loss + q_loss + actor_loss
        self.critic_flat.zero_grad()
        self.actor_flat.zero_grad()
        loss.backward()
        lr = self.actor_lr(step)
        self.actor_opt.param_groups[0]["lr"] = lr
        adam_step(self.critic_opt)
        adam_step(self.actor_opt)
        polyak_update([self.critic_flat.param[: self.target_flat.param.numel()]],
                      [self.target_flat.param], cfg.tau)
        return (v_loss.detach(), q_loss.detach(), actor_loss.detach(), adv.detach().mean(),
                weights.mean(), torch.tensor(lr))

    def _gaussian_nll(self, b: Batch) -> torch.Tensor:
        """-log pi(a|s) of the dataset's actions: (B,)."""
        mean, log_std = self.actor(b.obs)
        return -gaussian_logprob_entropy(mean, log_std, b.actions)[0]

    def _squared_error(self, b: Batch) -> torch.Tensor:
        """sum_a (pi(s) - a)^2 of the deterministic actor (RIQL's code): (B,)."""
        return (self.actor(b.obs) - b.actions).square().sum(-1)

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Env-scaled actions for raw ``obs``: the mean (or a Gaussian sample)."""
        x = self.data.obs_tensor(obs)
        if self.cfg.actor == "deterministic":
            return self.data.to_env(self.actor(x))
        mean, log_std = self.actor(x)
        if not deterministic:
            mean = mean + log_std.exp() * torch.randn(mean.shape, generator=self.act_gen)
        return self.data.to_env(mean)

    def state_dict(self) -> dict[str, Any]:
        return copy.deepcopy({
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "value": self.value.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "act_gen": self.act_gen.get_state(),
            "data": self.data.state_dict(),
            "counters": {"global_step": self.global_step},
        })

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.data.load_state_dict(state["data"])
        for name in ("actor", "critic", "critic_target", "value"):
            getattr(self, name).load_state_dict(state[name])
        # Optimizer.load_state_dict keeps the tensors it is given: copy, not alias.
        self.actor_opt.load_state_dict(copy.deepcopy(state["actor_opt"]))
        self.critic_opt.load_state_dict(copy.deepcopy(state["critic_opt"]))
        self.act_gen.set_state(state["act_gen"])
        self.global_step = int(state["counters"]["global_step"])

    def close(self) -> None:
        pass
