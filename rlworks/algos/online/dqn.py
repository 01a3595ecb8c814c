"""Deep Q-Network.

Papers: Mnih et al., 2015, "Human-level control through deep reinforcement learning"
(Nature 518); double Q-learning: van Hasselt et al., 2016, arXiv:1509.06461; n-step returns
as in Rainbow (Hessel et al., 2018, arXiv:1710.02298).

Deviations from the paper (all as in Stable-Baselines3's DQN unless noted):

* Adam instead of RMSProp; Huber loss (``smooth_l1``) on the TD error; global grad-norm clip.
* The target net is updated every ``target_update_interval`` env steps, by copy (``tau = 1``)
  or Polyak averaging (``tau < 1``).
* Epsilon decays linearly over ``exploration_fraction`` of the run; before ``learning_starts``
  every action is random. Epsilon is drawn per sub-env (SB3 draws once per vector step).
* Double Q-learning is on by default (SB3 has none): the online net picks the next action,
  the target net values it.
* Action masks (``infos["action_mask"]``): greedy actions, random exploration and the target's
  next action are all restricted to legal actions (not in the paper).
* Truncation is not termination: the TD target bootstraps through time limits from the
  true final observation; only terminations zero it (see ``rlworks.returns.nstep``).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rlworks.algos.online.configs import DQNConfig
from rlworks.algos.online.offpolicy import flat_obs_dim, make_envs, mean_metrics
from rlworks.core.errors import UserError
from rlworks.core.seeding import derive_seed, make_rng, torch_generator
from rlworks.data.collector import ReplayCollector
from rlworks.data.replay import ReplayBatch, ReplayBuffer
from rlworks.nets.mlp import make_mlp
from rlworks.nets.target import polyak_update


def masked_argmax(q: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """(B, A) values, (B, A) bool legal actions or None -> (B,) best legal action."""
    if mask is None:
        return q.argmax(dim=-1)
    return q.masked_fill(~mask, -torch.inf).argmax(dim=-1)


def random_legal_actions(rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
    """(N, A) bool -> (N,) uniform over each row's legal actions (argmax of uniform noise)."""
    noise = rng.random(mask.shape)
    return np.where(mask, noise, -1.0).argmax(axis=-1)


def linear_epsilon(cfg: DQNConfig, step: int) -> float:
    """Epsilon after ``step`` env steps: linear from initial to final over the first
    ``exploration_fraction`` of ``total_steps``, then constant."""
    span = cfg.exploration_fraction * cfg.total_steps
    progress = 1.0 if span <= 0 else min(step / span, 1.0)
    start, end = cfg.exploration_initial_eps, cfg.exploration_final_eps
    return start + progress * (end - start)


class DQN:
    """Learner for ``rlworks train dqn``; see the module docstring."""

    def __init__(self, cfg: DQNConfig, envs: Any | None = None) -> None:
        import gymnasium as gym

        self.cfg = cfg
        self.envs = make_envs(cfg, envs)
        space = self.envs.single_action_space
        if not isinstance(space, gym.spaces.Discrete):
            raise UserError(f"dqn needs a discrete action space; {cfg.env_id} has {space}: "
                            f"use sac or td3 for continuous actions")
        self.num_actions = int(space.n)
        obs_space = self.envs.single_observation_space
        self.rng = make_rng(cfg.seed, "dqn")  # exploration and replay sampling
        self.act_rng = make_rng(cfg.seed, "dqn", "act")  # act(deterministic=False) only
        init = torch_generator(cfg.seed, "dqn", "init")
        self.q_net = make_mlp(flat_obs_dim(obs_space), cfg.hidden_sizes, self.num_actions,
                              generator=init)
        self.target_net = copy.deepcopy(self.q_net).requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.q_net.parameters(), lr=cfg.learning_rate,
                                          foreach=True)
        self.buffer = ReplayBuffer(cfg.buffer_size, self.envs.num_envs, obs_space.shape,
                                   action_dtype=np.int64, gamma=cfg.gamma, n_step=cfg.n_step)
        self.collector = ReplayCollector(self.envs, self.buffer)
        self.steps_per_iter = max(cfg.train_freq // self.envs.num_envs, 1)
        self.target_every = max(cfg.target_update_interval // self.envs.num_envs, 1)
        self.global_step = 0
        self.vector_steps = 0
        self.num_updates = 0

    @property
    def epsilon(self) -> float:
        return linear_epsilon(self.cfg, self.global_step)

    def iterate(self) -> dict[str, float]:
        """``train_freq`` env steps (epsilon-greedy), then ``gradient_steps`` updates."""
        cfg, n = self.cfg, self.collector.num_envs
        for _ in range(self.steps_per_iter):
            eps = 1.0 if self.global_step < cfg.learning_starts else self.epsilon
            actions = self._explore(self.collector.obs, self.collector.action_mask, eps,
                                    self.rng)
            self.collector.step(actions)
            self.global_step += n
            self.vector_steps += 1
            if self.vector_steps % self.target_every == 0:
                polyak_update(self.q_net.parameters(), self.target_net.parameters(), cfg.tau)
        metrics = self.collector.pop_episode_stats()
        metrics["train/epsilon"] = self.epsilon
        if self.global_step > cfg.learning_starts:
            terms = [self._update(self.buffer.sample(cfg.batch_size, self.rng))
                     for _ in range(cfg.gradient_steps)]
            metrics |= mean_metrics(("train/q_loss", "train/q_values"), terms)
        return metrics

    def _update(self, b: ReplayBatch) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        with torch.no_grad():
            next_q_target = self.target_net(b.next_obs.flatten(1))  # (B, A)
            chooser = self.q_net(b.next_obs.flatten(1)) if cfg.double_q else next_q_target
            next_actions = masked_argmax(chooser, b.next_action_mask)  # (B,)
            next_values = next_q_target.gather(1, next_actions[:, None])[:, 0]  # (B,)
            td_target = b.rewards + b.discounts * next_values  # (B,); discount 0 if terminated
        q_taken = self.q_net(b.obs.flatten(1)).gather(1, b.actions[:, None])[:, 0]  # (B,)
        q_loss = F.smooth_l1_loss(q_taken, td_target)
        loss = q_loss
        self.optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(self.q_net.parameters(), cfg.max_grad_norm)
        self.optimizer.step()
        self.num_updates += 1
        return q_loss.detach(), q_taken.detach().mean()

    def _explore(self, obs: np.ndarray, mask: np.ndarray | None, eps: float,
                 rng: np.random.Generator) -> np.ndarray:
        """Epsilon-greedy over legal actions; (N, *obs_shape) -> (N,) int64."""
        n = len(obs)
        legal = np.ones((n, self.num_actions), dtype=bool) if mask is None else mask
        explore = rng.random(n) < eps  # (N,)
        actions = random_legal_actions(rng, legal)  # (N,) drawn always: fixed RNG use
        if not explore.all():
            greedy = self._greedy(obs, mask)
            actions = np.where(explore, actions, greedy)
        return actions.astype(np.int64)

    @torch.no_grad()
    def _greedy(self, obs: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        q = self.q_net(torch.as_tensor(obs, dtype=torch.float32).flatten(1))  # (N, A)
        m = None if mask is None else torch.from_numpy(np.asarray(mask, dtype=bool))
        return masked_argmax(q, m).numpy()

    def act(self, obs: np.ndarray, deterministic: bool = True,
            action_mask: np.ndarray | None = None) -> np.ndarray:
        """Greedy (or epsilon-greedy at the current epsilon) legal actions for raw ``obs``."""
        obs = self.collector.transform_obs(obs)
        if deterministic:
            return self._greedy(obs, action_mask).astype(np.int64)
        return self._explore(obs, action_mask, self.epsilon, self.act_rng)

    def state_dict(self) -> dict[str, Any]:
        return copy.deepcopy({
            "q_net": self.q_net.state_dict(),
            "target_net": self.target_net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": self.rng.bit_generator.state,
            "act_rng": self.act_rng.bit_generator.state,
            "replay": self.buffer.state_dict(),
            "collector": self.collector.state_dict(),
            "counters": {"global_step": self.global_step, "vector_steps": self.vector_steps,
                         "num_updates": self.num_updates},
        })

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.q_net.load_state_dict(state["q_net"])
        self.target_net.load_state_dict(state["target_net"])
        self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))  # no aliasing
        self.rng.bit_generator.state = state["rng"]
        self.act_rng.bit_generator.state = state["act_rng"]
        self.buffer.load_state_dict(state["replay"])
        counters = state["counters"]
        self.global_step = int(counters["global_step"])
        self.vector_steps = int(counters["vector_steps"])
        self.num_updates = int(counters["num_updates"])
        self.collector.load_state_dict(
            state["collector"], derive_seed(self.cfg.seed, "resume", self.global_step))

    def close(self) -> None:
        self.envs.close()
