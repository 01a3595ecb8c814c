"""Conservative Q-Learning, CQL(H), on Soft Actor-Critic.

Paper: Kumar, Zhou, Tucker and Levine, 2020, "Conservative Q-Learning for Offline
Reinforcement Learning" (arXiv:2006.04779). Each critic's SAC loss gets the penalty

    min_q_weight * mean_s [ T * logsumexp_a(Q(s, a) / T) - Q(s, a_data) ]

which pushes Q down on actions the policy could pick and up on the dataset's. The
log-sum-exp is importance sampled as in the authors' ``min_q_version=3``: ``n_actions``
uniform actions (density 0.5^A), and ``n_actions`` each from pi(.|s) and pi(.|s'), all
valued at s, each minus its log density. The actor and the temperature are SAC's. With
``lagrange_threshold`` set, the penalty weight is ``exp(log alpha')``, tuned so the gap
stays near the threshold (the paper's CQL-Lagrange).

Deviations (the authors' code, CQL/SAC ``cql_mujoco_new``, unless noted):

* No entropy term in the TD target by default (``backup_entropy``), as the authors' runs.
* No behaviour-cloning warm start of the actor (the authors' ``policy_eval_start``; CORL's
  default is none too) and no "max-Q backup".
* The policy samples for the penalty come from one actor forward per state (noise
  broadcast over ``n_actions``) and are detached; the TD target's next action is the first
  of the pi(.|s') samples. The critics' and the actor's losses both use the critics from
  before this step's update, and are stepped after both backward passes, as the authors'.
* All penalty rows of both critics are one ``EnsembleMLP`` forward: (3 n_actions + 1) * B
  rows per member. The actor loss back-propagates into the actor (and log alpha) only.
* Actions live in the [-1, 1]-scaled space of the env's Box (tanh-squashed Gaussian).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from rlworks.algos.offline.common import Batch, OfflineData
from rlworks.algos.offline.configs import CQLConfig
from rlworks.algos.offline.losses import cql_penalty
from rlworks.algos.online.offpolicy import mean_metrics
from rlworks.algos.online.sac import LOG_STD_MAX, LOG_STD_MIN, SquashedGaussianActor
from rlworks.core.seeding import torch_generator
from rlworks.nets.ensemble import EnsembleMLP
from rlworks.nets.flat import FlatParameters, adam_step
from rlworks.nets.target import polyak_update

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_LOG_2 = math.log(2.0)
METRICS = ("train/q_loss", "train/cql_penalty", "train/actor_loss", "train/alpha",
           "train/cql_weight", "train/q_data")


def squashed_sample(mean: torch.Tensor, log_std: torch.Tensor, noise: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """tanh-Gaussian samples: mean, log_std (..., A) broadcast with noise (..., A) ->
    actions (..., A) in [-1, 1] and log pi (...)."""
    u = mean + log_std.exp() * noise
    gaussian_logp = (-0.5 * noise.square() - log_std - _HALF_LOG_2PI).sum(-1)
    log_det_tanh = (2.0 * (_LOG_2 - u - F.softplus(-2.0 * u))).sum(-1)  # log(1 - tanh^2)
    return torch.tanh(u), gaussian_logp - log_det_tanh


class CQL:
    """Learner for ``rlworks offline train cql``; see the module docstring."""

    def __init__(self, cfg: CQLConfig) -> None:
        self.cfg = cfg
        self.data = OfflineData(cfg, "cql")
        self.env_id, self.reference_scores = self.data.env_id, self.data.reference_scores
        obs_dim, act_dim = self.data.obs_dim, self.data.act_dim
        self.act_dim = act_dim
        self.gen = torch_generator(cfg.seed, "cql")  # policy noise, uniform actions
        self.act_gen = torch_generator(cfg.seed, "cql", "act")
        init = torch_generator(cfg.seed, "cql", "init")
        self.actor = SquashedGaussianActor(obs_dim, act_dim, cfg.hidden_sizes, init)
        self.critic = EnsembleMLP(2, obs_dim + act_dim, cfg.hidden_sizes, 1, generator=init)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.zeros(1, requires_grad=True)  # alpha starts at 1, as SAC's
        self.target_entropy = (-float(act_dim) if cfg.target_entropy is None
                               else cfg.target_entropy)
        self.lagrange = cfg.lagrange_threshold is not None
        self.threshold = 0.0 if cfg.lagrange_threshold is None else cfg.lagrange_threshold
        self.log_alpha_prime = torch.zeros(1, requires_grad=self.lagrange)
        # log alpha steps with the actor, log alpha' with the critics (the authors' step sizes).
        self.actor_params = [*self.actor.parameters(), self.log_alpha]
        critic_params: list[torch.Tensor] = [*self.critic.parameters()]
        if self.lagrange:
            critic_params.append(self.log_alpha_prime)
        self.critic_params = critic_params
        self.actor_flat = FlatParameters(self.actor_params)
        self.critic_flat = FlatParameters(critic_params)
        self.target_flat = FlatParameters(self.critic_target.parameters(), trainable_only=False)
        self.actor_opt = torch.optim.Adam([self.actor_flat.param], lr=cfg.actor_lr, fused=True)
        self.critic_opt = torch.optim.Adam([self.critic_flat.param], lr=cfg.critic_lr,
                                           fused=True)
        # -log(0.5^A): subtracting the uniform proposal's log density from its Q values.
        self.log_uniform_density = -act_dim * _LOG_2
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
        n, bsz, act_dim = cfg.n_actions, len(b.obs), self.act_dim
        noise = torch.randn((n + 1, 2, bsz, act_dim), generator=self.gen)  # (N+1, 2, B, A)
        alpha = self.log_alpha.detach().exp()  # (1,)

        # Actor at s (with grad, for its own loss) and at s' (no grad).
        mean, log_std = self.actor.net(b.obs).chunk(2, dim=-1)  # (B, A) each
        log_std = log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
        actions_pi, logp_pi = squashed_sample(mean, log_std, noise[0, 0])  # (B, A), (B,)
        with torch.no_grad():
            next_mean, next_log_std = self.actor.net(b.next_obs).chunk(2, dim=-1)
            next_log_std = next_log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
            # n samples per state at s and at s': (N, B, A), (N, B)
            curr_a, curr_logp = squashed_sample(mean.detach(), log_std.detach(), noise[1:, 0])
            next_a, next_logp = squashed_sample(next_mean, next_log_std, noise[1:, 1])
            next_q = self.critic_target(torch.cat([b.next_obs, next_a[0]], -1)).amin(0)[:, 0]
            if cfg.backup_entropy:
                next_q = next_q - alpha * next_logp[0]
            td_target = b.rewards + cfg.gamma * b.not_done * next_q  # (B,)
            rand_a = torch.rand((n, bsz, act_dim), generator=self.gen) * 2.0 - 1.0

        # One critic forward for the data and the 3N penalty actions, all at s.
        sampled = torch.cat([rand_a, curr_a, next_a], 0)  # (3N, B, A)
        obs_rep = b.obs.unsqueeze(0).expand(3 * n, bsz, b.obs.shape[-1])
        x = torch.cat([b.obs_actions.unsqueeze(0), torch.cat([obs_rep, sampled], -1)], 0)
        q_all = self.critic(x.reshape(-1, x.shape[-1]))[..., 0].view(2, 3 * n + 1, bsz)
        q_data = q_all[:, 0]  # (2, B)
        log_density = torch.cat([
            torch.full((n, bsz), self.log_uniform_density), curr_logp, next_logp], 0)  # (3N, B)
        gap = cql_penalty(q_data, q_all[:, 1:] - log_density, cfg.cql_temperature)  # (2,)
        bellman = (q_data - td_target).square().mean(1)  # (2,)
        if self.lagrange:  # the authors' form: alpha' * (min_q_weight * gap - threshold)
            alpha_prime = self.log_alpha_prime.exp().clamp(0.0, 1e6)
            penalty = alpha_prime.detach() * (cfg.min_q_weight * gap - self.threshold)
            alpha_prime_loss = -0.5 * (alpha_prime * (cfg.min_q_weight * gap.detach()
                                                      - self.threshold)).sum()
        else:
            alpha_prime = torch.ones(1)
            penalty = cfg.min_q_weight * gap
            alpha_prime_loss = torch.zeros(())
        q_loss = (bellman + penalty).sum() + alpha_prime_loss

        q_pi = self.critic(torch.cat([b.obs, actions_pi], -1)).amin(0)[:, 0]  # (B,)
        actor_loss = (alpha * logp_pi - q_pi).mean()
        alpha_loss = -(self.log_alpha * (logp_pi.detach() + self.target_entropy)).mean()

        self.critic_flat.zero_grad()
        self.actor_flat.zero_grad()
        q_loss.backward(inputs=self.critic_params)
        (actor_loss + alpha_loss).backward(inputs=self.actor_params)  # no critic weight grads
        adam_step(self.critic_opt)
        adam_step(self.actor_opt)
        polyak_update([self.critic_flat.param[: self.target_flat.param.numel()]],
                      [self.target_flat.param], cfg.tau)
        return (bellman.detach().sum(), gap.detach().mean(), actor_loss.detach(), alpha[0],
                cfg.min_q_weight * alpha_prime.detach()[0], q_data.detach().mean())

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Env-scaled actions for raw ``obs``: tanh of the mean, or a sample."""
        x = self.data.obs_tensor(obs)
        noise = None if deterministic else torch.randn((len(x), self.act_dim),
                                                       generator=self.act_gen)
        return self.data.to_env(self.actor.sample(x, noise))

    def state_dict(self) -> dict[str, Any]:
        return copy.deepcopy({
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "log_alpha": self.log_alpha.detach(),
            "log_alpha_prime": self.log_alpha_prime.detach(),
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
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
            self.log_alpha_prime.copy_(state["log_alpha_prime"])
        # Optimizer.load_state_dict keeps the tensors it is given: copy, not alias.
        self.actor_opt.load_state_dict(copy.deepcopy(state["actor_opt"]))
        self.critic_opt.load_state_dict(copy.deepcopy(state["critic_opt"]))
        self.gen.set_state(state["gen"])
        self.act_gen.set_state(state["act_gen"])
        self.global_step = int(state["counters"]["global_step"])

    def close(self) -> None:
        pass
