"""Proximal Policy Optimization (Schulman et al., 2017, arXiv:1707.06347).

Discrete (categorical) and continuous (diagonal Gaussian, state-independent log-std) actions;
separate actor and critic MLPs; the clipped surrogate with optional value clipping, entropy
bonus, advantage normalisation per minibatch, global gradient clipping and linear learning-rate
annealing, as in the PPO2 reference code and CleanRL's ``ppo.py``.

Deviations from the reference code, each deliberate:

* Time-limit truncations bootstrap from V(true final observation). The vector env's next-step
  autoreset returns that observation, so it is simply the next row's value; the row after it
  (the env's reset step) is flagged invalid and never enters a loss. The reference code treats
  truncation as termination.
* Continuous actions are clipped to the action bounds only when sent to the env; the stored,
  trained-on action is the unclipped sample (as in SB3).
* Discrete actions respect ``infos["action_mask"]`` when the env provides one.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from rlworks.algos.online.configs import PPOConfig
from rlworks.core.seeding import make_rng, torch_generator
from rlworks.data.rollout import RolloutBuffer
from rlworks.envs import make_vec
from rlworks.losses.policy import clipped_surrogate
from rlworks.losses.value import value_loss
from rlworks.nets import distributions as D
from rlworks.nets.flat import FlatParameters, adam_step
from rlworks.nets.mlp import StackedMLP
from rlworks.returns.gae import compute_gae


def _normalized(adv: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit std (per minibatch, as the PPO2 code); a single row is left alone."""
    return (adv - adv.mean()) / (adv.std() + 1e-8) if len(adv) > 1 else adv


class ActorCritic(nn.Module):
    """Separate actor and critic MLPs, run together as one two-member ``StackedMLP``."""

    def __init__(self, obs_dim: int, action_dim: int, discrete: bool, cfg: PPOConfig,
                 generator: torch.Generator) -> None:
        super().__init__()
        # Orthogonal init, gain sqrt(2) hidden, 0.01 policy head, 1.0 value head (PPO2 code).
        self.nets = StackedMLP(obs_dim, cfg.hidden_sizes, (action_dim, 1), (0.01, 1.0),
                               cfg.activation, generator=generator)
        self.action_dim = action_dim
        self.discrete = discrete
        self.log_std = nn.Parameter(torch.zeros(action_dim), requires_grad=not discrete)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, O) -> policy head (B, A), value (B,)."""
        out = self.nets(obs)  # (2, B, max(A, 1))
        return out[0, :, : self.action_dim], out[1, :, 0]

    def value(self, obs: torch.Tensor) -> torch.Tensor:          # (B, O) -> (B,)
        return self(obs)[1]

    def logprob_entropy_value(self, obs: torch.Tensor, actions: torch.Tensor,
                              mask: torch.Tensor | None
                              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out, value = self(obs)
        if self.discrete:
            return (*D.categorical_logprob_entropy(D.mask_logits(out, mask), actions), value)
        return (*D.gaussian_logprob_entropy(out, self.log_std, actions), value)

    def sample_np(self, obs: np.ndarray, mask: np.ndarray | None, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Act in numpy (no autograd, a few rows): (B, O) -> actions, log-probs (B,), values (B,).

        The same distribution as :meth:`logprob_entropy_value`; numpy because in a rollout
        torch's per-op overhead dominates (2.8x slower on 8 CartPole rows)."""
        out = self.nets.numpy_forward(obs)
        head, value = out[0, :, : self.action_dim], out[1, :, 0]
        if self.discrete:
            if mask is not None:
                head = np.where(mask, head, np.finfo(head.dtype).min)
            actions, logp = D.categorical_sample_np(head, rng)
        else:
            actions, logp = D.gaussian_sample_np(head, self.log_std.detach().numpy(), rng)
        return actions, logp, value

    @torch.no_grad()
    def mode(self, obs: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        out = self(obs)[0]
        return D.mask_logits(out, mask).argmax(-1) if self.discrete else out


class PPO:
    """The PPO learner (see ``rlworks.core.learner.Learner`` for the contract)."""

    def __init__(self, cfg: PPOConfig) -> None:
        self.cfg = cfg
        self.envs = make_vec(cfg.env_id, cfg.num_envs, backend=cfg.backend, seed=cfg.seed,
                             normalize_obs=cfg.normalize_obs,
                             normalize_reward=cfg.normalize_reward, gamma=cfg.gamma)
        obs_space, act_space = self.envs.single_observation_space, self.envs.single_action_space
        self.discrete = hasattr(act_space, "n")
        obs_dim = int(np.prod(obs_space.shape))
        action_dim = int(act_space.n) if self.discrete else int(np.prod(act_space.shape))
        if not self.discrete:
            self.low = np.asarray(act_space.low, dtype=np.float32)
            self.high = np.asarray(act_space.high, dtype=np.float32)

        self.rng = make_rng(cfg.seed, "ppo/minibatches")
        self.act_rng = make_rng(cfg.seed, "ppo/actions")
        self.agent = ActorCritic(obs_dim, action_dim, self.discrete, cfg,
                                 torch_generator(cfg.seed, "ppo"))  # initialisation only
        # One flat buffer for all trainable parameters and one fused Adam over it: clipping,
        # the Adam step and zeroing are then one op each (see rlworks.nets.flat).
        self.flat = FlatParameters(self.agent.parameters())
        self.optimizer = torch.optim.Adam([self.flat.param], lr=cfg.learning_rate, eps=1e-5,
                                          fused=True)
        self.buffer = RolloutBuffer(
            cfg.num_steps, cfg.num_envs, (obs_dim,), () if self.discrete else (action_dim,),
            torch.long if self.discrete else torch.float32,
            num_actions=action_dim if self.discrete else None,
        )
        self.num_iterations = -(-cfg.total_steps // cfg.batch_size)  # ceil
        self.global_step = 0
        self.iteration = 0
        obs, infos = self.envs.reset()
        self.obs = np.asarray(obs, dtype=np.float32).reshape(cfg.num_envs, -1)
        self.prev_done = np.zeros(cfg.num_envs, dtype=bool)
        self.mask = self._mask(infos)

    # ---------------------------------------------------------------- rollout + update
    def iterate(self) -> dict[str, float]:
        cfg, buf = self.cfg, self.buffer
        frac = 1.0 - self.iteration / self.num_iterations  # 1 -> 1/num_iterations
        lr = cfg.learning_rate * (frac if cfg.anneal_lr else 1.0)
        clip_eps = cfg.clip_eps * (frac if cfg.anneal_clip else 1.0)
        for group in self.optimizer.param_groups:
            group["lr"] = lr

        t0 = time.perf_counter()
        ep_returns, ep_lengths = self._collect()
        t_rollout = time.perf_counter() - t0

        next_value = torch.from_numpy(self.agent.nets.numpy_forward(self.obs)[1, :, 0])  # (N,)
        next_values = torch.cat([buf.values[1:], next_value[None]])             # (T, N)
        adv, ret = compute_gae(buf.rewards.double().numpy(), buf.values.double().numpy(),
                               next_values.double().numpy(), buf.terminations.numpy(),
                               buf.dones.numpy(), cfg.gamma, cfg.gae_lambda)
        batch = buf.flatten(torch.from_numpy(adv).float(), torch.from_numpy(ret).float())
        stats = self._update(batch, clip_eps)

        self.iteration += 1
        t_update = time.perf_counter() - t0 - t_rollout
        metrics = {**stats, "train/learning_rate": lr, "train/clip_eps": clip_eps,
                   "perf/rollout_s": t_rollout, "perf/update_s": t_update}
        if ep_returns:
            metrics["rollout/episodic_return"] = float(np.mean(ep_returns))
            metrics["rollout/episodic_length"] = float(np.mean(ep_lengths))
        return metrics

    def _collect(self) -> tuple[list[float], list[float]]:
        cfg, buf = self.cfg, self.buffer.numpy()  # numpy views of the rollout tensors
        ep_returns: list[float] = []
        ep_lengths: list[float] = []
        for t in range(cfg.num_steps):
            actions, buf.logprobs[t], buf.values[t] = self.agent.sample_np(
                self.obs, self.mask, self.act_rng)
            buf.obs[t] = self.obs
            buf.actions[t] = actions
            buf.valid[t] = ~self.prev_done  # a reset step is not a real transition
            if buf.action_masks is not None and self.mask is not None:
                buf.action_masks[t] = self.mask

            env_actions = actions if self.discrete else np.clip(actions, self.low, self.high)
            obs, rewards, terms, truncs, infos = self.envs.step(env_actions)
            self.global_step += int(buf.valid[t].sum())

            buf.rewards[t] = rewards
            buf.terminations[t] = terms
            buf.dones[t] = self.prev_done = np.logical_or(terms, truncs)
            self.obs = np.asarray(obs, dtype=np.float32).reshape(cfg.num_envs, -1)
            self.mask = self._mask(infos)
            if "_episode" in infos and infos["_episode"].any():
                ended = infos["_episode"]
                ep_returns += infos["episode"]["r"][ended].tolist()
                ep_lengths += infos["episode"]["l"][ended].tolist()
        return ep_returns, ep_lengths

    def _update(self, b: Any, clip_eps: float) -> dict[str, float]:
        cfg = self.cfg
        n = b.obs.shape[0]
        v_clip = clip_eps if cfg.clip_vloss else None
        sums = torch.zeros(6)
        count = 0
        whole = cfg.num_minibatches == 1
        full_adv = _normalized(b.advantages) if cfg.norm_adv and whole else b.advantages
        for _epoch in range(cfg.update_epochs):
            perm = torch.from_numpy(self.rng.permutation(n))
            stop = False
            # One minibatch is the whole batch: order does not change its mean loss, so skip
            # the gather (a slice is a view) and normalise the advantages once.
            splits = [slice(None)] if whole else torch.tensor_split(perm, cfg.num_minibatches)
            for mb in splits:
                mb_adv = full_adv if whole else b.advantages[mb]
                if cfg.norm_adv and not whole:
                    mb_adv = _normalized(mb_adv)
                mask = b.action_masks[mb] if b.action_masks is not None else None
                new_logprob, entropy, new_value = self.agent.logprob_entropy_value(
                    b.obs[mb], b.actions[mb], mask)

                pg = clipped_surrogate(new_logprob - b.logprobs[mb], mb_adv, clip_eps)
                v_loss = value_loss(new_value, b.returns[mb], b.values[mb], v_clip)
                entropy_loss = entropy.mean()
                loss = pg.loss + cfg.vf_coef * v_loss
                if cfg.ent_coef:  # with 0 the entropy term adds exact zeros: skip its backward
                    loss = loss - cfg.ent_coef * entropy_loss

                self.flat.zero_grad()
                loss.backward()
                self.flat.clip_grad_norm_(cfg.max_grad_norm)
                adam_step(self.optimizer)
                sums += torch.stack([pg.loss, v_loss, entropy_loss, pg.approx_kl, pg.clipfrac,
                                     loss]).detach()
                count += 1
                if cfg.target_kl is not None and pg.approx_kl.item() > cfg.target_kl:
                    stop = True
                    break
            if stop:
                break
        means = (sums / max(count, 1)).tolist()
        var_y = b.returns.var().item()
        residual = (b.returns - b.values).var().item()
        explained = float("nan") if var_y == 0 else 1.0 - residual / var_y
        keys = ("policy_loss", "value_loss", "entropy", "approx_kl", "clipfrac", "loss")
        return {**{f"train/{k}": v for k, v in zip(keys, means, strict=True)},
                "train/explained_variance": explained}

    # ---------------------------------------------------------------- evaluation + state
    def act(self, obs: np.ndarray, deterministic: bool = True,
            action_mask: np.ndarray | None = None) -> np.ndarray:
        obs = np.asarray(self.envs.transform_obs(obs), dtype=np.float32)
        obs = obs.reshape(obs.shape[0], -1)
        if deterministic:
            mask = torch.as_tensor(action_mask) if action_mask is not None else None
            with torch.no_grad():
                out = self.agent.mode(torch.from_numpy(obs), mask).numpy()
        else:
            out = self.agent.sample_np(obs, action_mask, self.act_rng)[0]
        return out if self.discrete else np.clip(out, self.low, self.high)

    def state_dict(self) -> dict[str, Any]:
        return {
            "agent": self.agent.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "np_rng": self.rng.bit_generator.state,
            "act_rng": self.act_rng.bit_generator.state,
            "envs": self.envs.get_state(),
            "obs": self.obs.copy(), "prev_done": self.prev_done.copy(),
            "mask": None if self.mask is None else self.mask.copy(),
            "global_step": self.global_step, "iteration": self.iteration,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # Deep copy: torch's Optimizer.load_state_dict keeps the given moment tensors (no copy
        # when dtype and device match), so two learners would otherwise share them.
        state = copy.deepcopy(state)
        self.agent.load_state_dict(state["agent"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.bit_generator.state = state["np_rng"]
        self.act_rng.bit_generator.state = state["act_rng"]
        self.envs.set_state(state["envs"])
        self.obs, self.prev_done = np.asarray(state["obs"]), np.asarray(state["prev_done"])
        self.mask = None if state["mask"] is None else np.asarray(state["mask"])
        self.global_step, self.iteration = state["global_step"], state["iteration"]

    def close(self) -> None:
        self.envs.close()

    def _mask(self, infos: dict[str, Any]) -> np.ndarray | None:
        mask = infos.get("action_mask") if self.discrete else None
        return None if mask is None else np.asarray(mask, dtype=bool)
