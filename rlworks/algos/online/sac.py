"""Soft Actor-Critic with automatic entropy tuning.

Papers: Haarnoja et al., 2018, "Soft Actor-Critic: Off-Policy Maximum Entropy Deep
Reinforcement Learning with a Stochastic Actor" (arXiv:1801.01290), and "Soft Actor-Critic
Algorithms and Applications" (arXiv:1812.05905) for the learned temperature alpha and the
twin-critic, no-value-network form implemented here.

Deviations from the papers (all as in Stable-Baselines3's SAC unless noted):

* ``learning_starts`` env steps of uniform random actions before learning.
* The temperature loss is on ``log alpha`` (``-log_alpha * (log pi + target_entropy)``), and
  the critic target and the actor loss use alpha from before its update. Critics are updated
  first; the actor loss uses the updated critics.
* Critic loss ``0.5 * sum_k mse(Q_k, y)``; log std clamped to [-20, 2].
* The tanh log-prob correction ``log(1 - tanh(u)^2)`` is computed in the exact, stable form
  ``2 * (log 2 - u - softplus(-2u))`` (SB3 adds 1e-6 inside the log).
* The twin critics are one ``EnsembleMLP`` (one batched matmul per layer), and the actor
  loss back-propagates into the actor's weights only (same result, less work).
* Truncation is not termination: the target bootstraps through time limits from the true
  final observation; only terminations zero it.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rlworks.algos.online.configs import SACConfig
from rlworks.algos.online.offpolicy import (
    BoxScale,
    collect_steps,
    flat_obs_dim,
    make_envs,
    mean_metrics,
)
from rlworks.core.seeding import derive_seed, make_rng, torch_generator
from rlworks.data.collector import ReplayCollector
from rlworks.data.replay import ReplayBatch, ReplayBuffer
from rlworks.nets.ensemble import EnsembleMLP
from rlworks.nets.flat import FlatParameters, adam_step
from rlworks.nets.mlp import make_mlp
from rlworks.nets.target import polyak_update

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_LOG_2 = math.log(2.0)


class SquashedGaussianActor(nn.Module):
    """obs -> a = tanh(u), u ~ N(mean(obs), std(obs)); actions in [-1, 1]."""

    def __init__(self, obs_dim: int, act_dim: int, hidden_sizes: tuple[int, ...],
                 generator: torch.Generator) -> None:
        super().__init__()
        self.net = make_mlp(obs_dim, hidden_sizes, 2 * act_dim, generator=generator)

    def forward(self, obs: torch.Tensor, noise: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, obs_dim), (B, A) standard normal noise -> actions (B, A), log pi (B,)."""
        mean, log_std = self.net(obs).chunk(2, dim=-1)
        log_std = log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
        u = mean + log_std.exp() * noise
        gaussian_logp = (-0.5 * noise.square() - log_std - _HALF_LOG_2PI).sum(-1)
        log_det_tanh = (2.0 * (_LOG_2 - u - F.softplus(-2.0 * u))).sum(-1)  # log(1 - tanh^2)
        return torch.tanh(u), gaussian_logp - log_det_tanh

    def sample(self, obs: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        """Actions only (no log-prob), for acting: tanh(mean) when ``noise`` is None."""
        mean, log_std = self.net(obs).chunk(2, dim=-1)
        if noise is None:
            return torch.tanh(mean)
        return torch.tanh(mean + log_std.clamp(LOG_STD_MIN, LOG_STD_MAX).exp() * noise)


class SAC:
    """Learner for ``rlworks train sac``; see the module docstring."""

    def __init__(self, cfg: SACConfig, envs: Any | None = None) -> None:
        self.cfg = cfg
        self.envs = make_envs(cfg, envs)
        self.scale = BoxScale(self.envs.single_action_space, "sac", cfg.env_id)
        obs_space = self.envs.single_observation_space
        obs_dim, act_dim = flat_obs_dim(obs_space), int(np.prod(self.scale.shape))
        self.act_dim = act_dim
        self.rng = make_rng(cfg.seed, "sac")  # warm-up actions and replay sampling
        self.gen = torch_generator(cfg.seed, "sac")  # policy noise in training
        self.act_gen = torch_generator(cfg.seed, "sac", "act")  # act(deterministic=False)
        init = torch_generator(cfg.seed, "sac", "init")
        self.actor = SquashedGaussianActor(obs_dim, act_dim, cfg.hidden_sizes, init)
        self.critic = EnsembleMLP(2, obs_dim + act_dim, cfg.hidden_sizes, 1, generator=init)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        alpha0 = cfg.ent_coef_init if cfg.ent_coef is None else cfg.ent_coef
        self.log_alpha = torch.full((1,), math.log(alpha0), requires_grad=cfg.ent_coef is None)
        self.target_entropy = (-float(act_dim) if cfg.target_entropy is None
                               else cfg.target_entropy)
        # log alpha shares the actor's optimiser (Adam is per-parameter, so this equals a
        # separate one): one backward and one fused step for both. Each optimiser sees one
        # flat buffer (rlworks.nets.flat), and the target's Polyak update is one op too.
        self.actor_params: list[torch.Tensor] = list(self.actor.parameters())
        if self.log_alpha.requires_grad:
            self.actor_params.append(self.log_alpha)
        self.actor_flat = FlatParameters(self.actor_params)
        self.critic_flat = FlatParameters(self.critic.parameters())
        self.target_flat = FlatParameters(self.critic_target.parameters(), trainable_only=False)
        self.actor_opt = torch.optim.Adam([self.actor_flat.param], lr=cfg.learning_rate,
                                          fused=True)
        self.critic_opt = torch.optim.Adam([self.critic_flat.param], lr=cfg.learning_rate,
                                           fused=True)
        self.buffer = ReplayBuffer(cfg.buffer_size, self.envs.num_envs, obs_space.shape,
                                   self.scale.shape, gamma=cfg.gamma)
        self.collector = ReplayCollector(self.envs, self.buffer)
        self.steps_per_iter = max(cfg.train_freq // self.envs.num_envs, 1)
        self.global_step = 0
        self.num_updates = 0

    def iterate(self) -> dict[str, float]:
        """``train_freq`` env steps, then ``gradient_steps`` updates (after warm-up)."""
        cfg = self.cfg
        self.global_step = collect_steps(
            self.collector, self.steps_per_iter, self.global_step, cfg.learning_starts,
            self.rng, self.act_dim, self.scale, lambda obs: self._policy(obs, self.gen))
        metrics = self.collector.pop_episode_stats()
        if self.global_step > cfg.learning_starts:
            terms = [self._update(self.buffer.sample(cfg.batch_size, self.rng))
                     for _ in range(cfg.gradient_steps)]
            metrics |= mean_metrics(
                ("train/q_loss", "train/actor_loss", "train/alpha", "train/alpha_loss"), terms)
        return metrics

    def _update(self, b: ReplayBatch) -> tuple[torch.Tensor, ...]:
        cfg = self.cfg
        obs, next_obs = b.obs.flatten(1), b.next_obs.flatten(1)  # (B, obs_dim)
        noise = torch.randn((2, len(obs), self.act_dim), generator=self.gen)  # (2, B, A)
        actions_pi, logp_pi = self.actor(obs, noise[0])  # (B, A), (B,)
        alpha = self.log_alpha.detach().exp()  # (1,) the value before this step's update

        with torch.no_grad():
            next_actions, next_logp = self.actor(next_obs, noise[1])
            next_q = self.critic_target(torch.cat([next_obs, next_actions], -1))  # (2, B, 1)
            next_v = next_q.amin(0)[:, 0] - alpha * next_logp  # (B,) soft state value
            td_target = b.rewards + b.discounts * next_v  # (B,); discount 0 if terminated
        q = self.critic(torch.cat([obs, b.actions], -1))[..., 0]  # (2, B)
        q_loss = 0.5 * (q - td_target).square().mean(1).sum()
        self.critic_flat.zero_grad()
        q_loss.backward()
        adam_step(self.critic_opt)

        q_pi = self.critic(torch.cat([obs, actions_pi], -1)).amin(0)[:, 0]  # (B,) updated critics
        actor_loss = (alpha * logp_pi - q_pi).mean()
        alpha_loss = -(self.log_alpha * (logp_pi.detach() + self.target_entropy)).mean()
        loss = actor_loss + alpha_loss
        self.actor_flat.zero_grad()
        loss.backward(inputs=self.actor_params)  # actor and log alpha; no critic weight grads
        adam_step(self.actor_opt)

        polyak_update([self.critic_flat.param], [self.target_flat.param], cfg.tau)
        self.num_updates += 1
        return q_loss.detach(), actor_loss.detach(), alpha[0], alpha_loss.detach()

    @torch.no_grad()
    def _policy(self, obs: np.ndarray, gen: torch.Generator | None) -> np.ndarray:
        """(N, *obs_shape) -> (N, A) in [-1, 1]; sampled with ``gen``, the mode if None."""
        x = torch.as_tensor(obs, dtype=torch.float32).flatten(1)
        noise = None if gen is None else torch.randn((len(x), self.act_dim), generator=gen)
        return self.actor.sample(x, noise).numpy()

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Env-scaled actions for raw ``obs``: tanh of the mean, or a sample."""
        obs = self.collector.transform_obs(obs)
        actions = self._policy(obs, None if deterministic else self.act_gen)
        return self.scale.to_env(actions).reshape(len(obs), *self.scale.shape)

    def state_dict(self) -> dict[str, Any]:
        return copy.deepcopy({
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "log_alpha": self.log_alpha.detach(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "rng": self.rng.bit_generator.state,
            "gen": self.gen.get_state(),
            "act_gen": self.act_gen.get_state(),
            "replay": self.buffer.state_dict(),
            "collector": self.collector.state_dict(),
            "counters": {"global_step": self.global_step, "num_updates": self.num_updates},
        })

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.critic_target.load_state_dict(state["critic_target"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        # Optimizer.load_state_dict keeps the tensors it is given: copy, not alias.
        self.actor_opt.load_state_dict(copy.deepcopy(state["actor_opt"]))
        self.critic_opt.load_state_dict(copy.deepcopy(state["critic_opt"]))
        self.rng.bit_generator.state = state["rng"]
        self.gen.set_state(state["gen"])
        self.act_gen.set_state(state["act_gen"])
        self.buffer.load_state_dict(state["replay"])
        self.global_step = int(state["counters"]["global_step"])
        self.num_updates = int(state["counters"]["num_updates"])
        self.collector.load_state_dict(
            state["collector"], derive_seed(self.cfg.seed, "resume", self.global_step))

    def close(self) -> None:
        self.envs.close()
