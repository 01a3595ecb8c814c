"""Twin Delayed Deep Deterministic policy gradient (TD3).

Paper: Fujimoto, van Hoof and Meger, 2018, "Addressing Function Approximation Error in
Actor-Critic Methods" (arXiv:1802.09477): clipped double-Q learning with twin critics,
delayed actor and target updates, target policy smoothing.

Deviations from the paper (all as in Stable-Baselines3's TD3 unless noted):

* All noise lives in the [-1, 1]-scaled action space; actions are rescaled to the env's
  bounds only when sent to the env (the paper adds noise in env units).
* ``learning_starts`` env steps of uniform random actions (the paper: 25k / 10k steps).
* Critic loss ``sum_k mse(Q_k, y)``; the actor maximises ``Q_1`` only, as in the paper.
* The twin critics are one ``EnsembleMLP`` (one batched matmul per layer), and the actor
  loss back-propagates into the actor's weights only (same result, less work).
* Truncation is not termination: the target bootstraps through time limits from the true
  final observation; only terminations zero it.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn

from rlworks.algos.online.configs import TD3Config
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


class TD3:
    """Learner for ``rlworks train td3``; see the module docstring."""

    def __init__(self, cfg: TD3Config, envs: Any | None = None) -> None:
        self.cfg = cfg
        self.envs = make_envs(cfg, envs)
        self.scale = BoxScale(self.envs.single_action_space, "td3", cfg.env_id)
        obs_space = self.envs.single_observation_space
        obs_dim, act_dim = flat_obs_dim(obs_space), int(np.prod(self.scale.shape))
        self.act_dim = act_dim
        self.rng = make_rng(cfg.seed, "td3")  # warm-up actions, exploration, replay sampling
        self.gen = torch_generator(cfg.seed, "td3")  # target policy smoothing noise
        self.act_rng = make_rng(cfg.seed, "td3", "act")  # act(deterministic=False) only
        init = torch_generator(cfg.seed, "td3", "init")
        self.actor = nn.Sequential(make_mlp(obs_dim, cfg.hidden_sizes, act_dim, generator=init),
                                   nn.Tanh())  # obs -> action in [-1, 1]
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic = EnsembleMLP(2, obs_dim + act_dim, cfg.hidden_sizes, 1, generator=init)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_params = list(self.actor.parameters())
        # One flat buffer per network (rlworks.nets.flat): one-op Adam, zeroing and Polyak.
        self.actor_flat = FlatParameters(self.actor_params)
        self.critic_flat = FlatParameters(self.critic.parameters())
        self.actor_target_flat = FlatParameters(self.actor_target.parameters(),
                                                trainable_only=False)
        self.critic_target_flat = FlatParameters(self.critic_target.parameters(),
                                                 trainable_only=False)
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
            self.rng, self.act_dim, self.scale, lambda obs: self._explore(obs, self.rng))
        metrics = self.collector.pop_episode_stats()
        if self.global_step > cfg.learning_starts:
            q_terms, actor_terms = [], []
            for _ in range(cfg.gradient_steps):
                q_loss, actor_loss = self._update(self.buffer.sample(cfg.batch_size, self.rng))
                q_terms.append((q_loss,))
                if actor_loss is not None:
                    actor_terms.append((actor_loss,))
            metrics |= mean_metrics(("train/q_loss",), q_terms)
            metrics |= mean_metrics(("train/actor_loss",), actor_terms)
        return metrics

    def _update(self, b: ReplayBatch) -> tuple[torch.Tensor, torch.Tensor | None]:
        cfg = self.cfg
        self.num_updates += 1
        obs, next_obs = b.obs.flatten(1), b.next_obs.flatten(1)  # (B, obs_dim)
        with torch.no_grad():
            smoothing = torch.randn(b.actions.shape, generator=self.gen) * cfg.target_policy_noise
            smoothing = smoothing.clamp(-cfg.target_noise_clip, cfg.target_noise_clip)
            next_actions = (self.actor_target(next_obs) + smoothing).clamp(-1.0, 1.0)  # (B, A)
            next_q = self.critic_target(torch.cat([next_obs, next_actions], -1))  # (2, B, 1)
            td_target = b.rewards + b.discounts * next_q.amin(0)[:, 0]  # (B,); 0 if terminated
        q = self.critic(torch.cat([obs, b.actions], -1))[..., 0]  # (2, B)
        q_loss = (q - td_target).square().mean(1).sum()
        self.critic_flat.zero_grad()
        q_loss.backward()
        adam_step(self.critic_opt)
        if self.num_updates % cfg.policy_delay:
            return q_loss.detach(), None

        q1_pi = self.critic(torch.cat([obs, self.actor(obs)], -1), member=0)  # (1, B, 1)
        actor_loss = -q1_pi.mean()
        self.actor_flat.zero_grad()
        actor_loss.backward(inputs=self.actor_params)  # no critic weight grads
        adam_step(self.actor_opt)
        polyak_update([self.critic_flat.param, self.actor_flat.param],
                      [self.critic_target_flat.param, self.actor_target_flat.param], cfg.tau)
        return q_loss.detach(), actor_loss.detach()

    @torch.no_grad()
    def _explore(self, obs: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        """(N, *obs_shape) -> (N, A) in [-1, 1], plus Gaussian noise from ``rng`` if given."""
        actions = self.actor(torch.as_tensor(obs, dtype=torch.float32).flatten(1)).numpy()
        if rng is None:
            return actions
        noise = rng.normal(0.0, self.cfg.exploration_noise, actions.shape)
        return np.clip(actions + noise, -1.0, 1.0).astype(np.float32)

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Env-scaled actions for raw ``obs``: the deterministic policy, or with its noise."""
        obs = self.collector.transform_obs(obs)
        actions = self._explore(obs, None if deterministic else self.act_rng)
        return self.scale.to_env(actions).reshape(len(obs), *self.scale.shape)

    def state_dict(self) -> dict[str, Any]:
        return copy.deepcopy({
            "actor": self.actor.state_dict(),
            "actor_target": self.actor_target.state_dict(),
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "rng": self.rng.bit_generator.state,
            "act_rng": self.act_rng.bit_generator.state,
            "gen": self.gen.get_state(),
            "replay": self.buffer.state_dict(),
            "collector": self.collector.state_dict(),
            "counters": {"global_step": self.global_step, "num_updates": self.num_updates},
        })

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in ("actor", "actor_target", "critic", "critic_target"):
            getattr(self, name).load_state_dict(state[name])
        # Optimizer.load_state_dict keeps the tensors it is given: copy, not alias.
        self.actor_opt.load_state_dict(copy.deepcopy(state["actor_opt"]))
        self.critic_opt.load_state_dict(copy.deepcopy(state["critic_opt"]))
        self.rng.bit_generator.state = state["rng"]
        self.act_rng.bit_generator.state = state["act_rng"]
        self.gen.set_state(state["gen"])
        self.buffer.load_state_dict(state["replay"])
        self.global_step = int(state["counters"]["global_step"])
        self.num_updates = int(state["counters"]["num_updates"])
        self.collector.load_state_dict(
            state["collector"], derive_seed(self.cfg.seed, "resume", self.global_step))

    def close(self) -> None:
        self.envs.close()
