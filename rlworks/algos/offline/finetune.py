"""Offline-to-online fine-tuning: WSRL, and plain fine-tuning with the offline data retained.

Paper: Zhou, Peng, Li, Levine and Kumar, 2024, "Efficient Online Reinforcement Learning
Fine-Tuning Need Not Retain Offline Data" (arXiv:2412.07762). Continued training on offline
data mostly keeps the Q-function from diverging when online data first arrives; WSRL gets
that without keeping the data:

    1. start from an offline agent: a CQL run's actor, critics, target critics, entropy
       temperature and their Adam moments;
    2. warm-up: ``warmup_steps`` env steps (5,000) of the pretrained policy, frozen and
       sampled, fill a fresh replay buffer; no update;
    3. online SAC on that buffer only: after each env step, ``utd`` (4) critic updates, each
       on its own ``batch_size`` rows and followed by its Polyak step, then one actor and
       temperature update on all ``utd * batch_size`` rows (the authors' ``update_high_utd``).

Mode ``retain`` (the ``finetune`` preset: the baseline) runs the same loop with the offline
dataset kept: each row of a batch is drawn uniformly from the union of the dataset and the
online transitions (the authors' ``--online_sampling_method append``), with no warm-up by
default. ``global_step`` counts online env steps in both modes, so equal budgets are equal
online steps.

Deviations from the authors' code (finetune.py, SAC agent, ``locomotion_wsrl`` config):

* The networks are our CQL's, taken as they are: two critics without layer norm. The paper
  pretrains (Cal-QL or CQL with ``--use_redq``) and fine-tunes a 10-critic ensemble with layer
  norm whose TD target is the min over two members drawn at random; here the target is the
  min over all members (with two, SAC's clipped double Q). Members or layer norm cannot be
  added to a pretrained critic without changing the function it learnt.
* The next actions of all ``utd`` critic minibatches come from one actor forward (the actor
  does not change during the critic updates); the target critics move after each minibatch.
* The temperature is ``exp(log_alpha)``, stepped by the actor's Adam (our CQL's layout, so
  its Adam moments carry over too), with the usual ``-log_alpha * (log pi(a|s) + target)``
  loss; the authors' is a softplus Lagrange multiplier trained on log-probs at s'.
* From a random init (``init_checkpoint=''``) the temperature starts at 1, as theirs.
* Truncation is not termination: time-limit ends bootstrap (next-step autoreset, one env).
* Observation normalisation: the pretrained agent's statistics from its checkpoint, frozen
  (none if it had none), applied to every observation the networks see.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from rlworks.algos.offline import INIT_ALGOS
from rlworks.algos.offline.common import (
    check_fit,
    dataset_env_id,
    reference_scores,
    resolve_dataset,
)
from rlworks.algos.offline.configs import WSRLConfig
from rlworks.algos.online.offpolicy import BoxScale, keep_freed_memory, mean_metrics
from rlworks.algos.online.sac import SquashedGaussianActor
from rlworks.core.errors import UserError
from rlworks.core.seeding import derive_seed, make_rng, torch_generator
from rlworks.data.collector import ReplayCollector
from rlworks.data.dataset import Dataset
from rlworks.data.replay import ReplayBatch, ReplayBuffer
from rlworks.nets.ensemble import EnsembleMLP
from rlworks.nets.flat import FlatParameters, adam_step
from rlworks.nets.target import polyak_update
from rlworks.track.checkpoint import latest_checkpoint, load_checkpoint

METRICS = ("train/q_loss", "train/q_data", "train/actor_loss", "train/alpha", "train/entropy")


class Rows(NamedTuple):
    """A block of transitions: flat float32 observations, actions in [-1, 1]."""

    obs: torch.Tensor  # (B, O)
    actions: torch.Tensor  # (B, A)
    rewards: torch.Tensor  # (B,)
    next_obs: torch.Tensor  # (B, O)
    discounts: torch.Tensor  # (B,) gamma, 0 where the episode terminated

    def take(self, idx: torch.Tensor | slice) -> Rows:
        return Rows(*(t[idx] for t in self))


class FineTune:
    """Learner for ``rlworks offline train wsrl`` and ``finetune``; see the module docstring."""

    def __init__(self, cfg: WSRLConfig) -> None:
        torch.set_num_threads(cfg.torch_threads)
        keep_freed_memory()
        from rlworks.envs import make_vec

        self.cfg = cfg
        ds = resolve_dataset(cfg.dataset)
        self.env_id: str = cfg.env_id or dataset_env_id(ds, cfg.dataset)
        self.reference_scores = reference_scores(ds)
        self.dataset_hash = ds.content_hash()
        self.envs = make_vec(self.env_id, 1, backend=cfg.backend, seed=cfg.seed)
        obs_space, act_space = self.envs.single_observation_space, self.envs.single_action_space
        check_fit(ds, cfg.dataset, self.env_id, obs_space, act_space)
        self.scale = BoxScale(act_space, "wsrl", self.env_id)
        obs_dim, act_dim = int(np.prod(obs_space.shape)), int(np.prod(self.scale.shape))
        self.act_dim = act_dim
        self.rng = make_rng(cfg.seed, "finetune", "batches")  # batch rows and their sources
        self.gen = torch_generator(cfg.seed, "finetune")  # policy noise in updates
        self.collect_gen = torch_generator(cfg.seed, "finetune", "collect")  # acting online
        self.act_gen = torch_generator(cfg.seed, "finetune", "act")  # act(deterministic=False)

        pretrained = None
        if cfg.init_checkpoint:
            path, pretrained = _load_pretrained(cfg.init_checkpoint)
            _check_pretrained(pretrained, path, cfg, self.env_id, obs_dim, act_dim,
                              self.dataset_hash)
        num_critics = 2
        if pretrained is not None:
            num_critics = int(pretrained["critic"]["weights.0"].shape[0])
        init = torch_generator(cfg.seed, "finetune", "init")  # used from scratch only
        self.actor = SquashedGaussianActor(obs_dim, act_dim, cfg.hidden_sizes, init)
        self.critic = EnsembleMLP(num_critics, obs_dim + act_dim, cfg.hidden_sizes, 1,
                                  generator=init)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.zeros(1, requires_grad=True)  # alpha 1 from scratch
        self.obs_mean = np.zeros(obs_dim, np.float32)
        self.obs_std = np.ones(obs_dim, np.float32)
        if pretrained is not None:
            self.actor.load_state_dict(pretrained["actor"])
            self.critic.load_state_dict(pretrained["critic"])
            self.critic_target.load_state_dict(pretrained["critic_target"])
            with torch.no_grad():
                self.log_alpha.copy_(pretrained["log_alpha"])
            self.obs_mean = np.asarray(pretrained["data"]["obs_mean"], np.float32).copy()
            self.obs_std = np.asarray(pretrained["data"]["obs_std"], np.float32).copy()
        self._set_obs_stats()
        self.target_entropy = (-act_dim / 2.0 if cfg.target_entropy is None
                               else cfg.target_entropy)

        # The actor's flat buffer is [actor weights | log alpha], as in our CQL, so the
        # pretrained Adam moments line up with it; the critics' is a prefix of CQL's.
        self.actor_params = [*self.actor.parameters(), self.log_alpha]
        self.actor_flat = FlatParameters(self.actor_params)
        self.critic_flat = FlatParameters(self.critic.parameters())
        self.target_flat = FlatParameters(self.critic_target.parameters(), trainable_only=False)
        self.actor_opt = torch.optim.Adam([self.actor_flat.param], lr=cfg.actor_lr, fused=True)
        self.critic_opt = torch.optim.Adam([self.critic_flat.param], lr=cfg.critic_lr,
                                           fused=True)
        if pretrained is not None:
            _load_adam(self.actor_opt, pretrained["actor_opt"], cfg.actor_lr)
            _load_adam(self.critic_opt, pretrained["critic_opt"], cfg.critic_lr)

        # Online data: one replay row per env step (autoreset rows are stored, never sampled).
        self.buffer = ReplayBuffer(min(cfg.buffer_size, cfg.total_steps), 1, obs_space.shape,
                                   self.scale.shape, gamma=cfg.gamma)
        self.collector = ReplayCollector(self.envs, self.buffer)
        self.offline = (offline_rows(ds, self.scale, cfg.gamma) if cfg.mode == "retain"
                        else None)
        self.global_step = 0
        self.critic_updates = 0
        self.actor_updates = 0

    # ------------------------------------------------------------------------- the loop
    def iterate(self) -> dict[str, float]:
        """``steps_per_iter`` env steps, each followed (after the warm-up) by its updates."""
        cfg = self.cfg
        steps = max(1, min(cfg.steps_per_iter, cfg.total_steps - self.global_step))
        terms = []
        for _ in range(steps):
            actions = self._explore(self.collector.obs)  # (1, A) in [-1, 1]
            self.collector.step(actions, env_actions=self.scale.to_env(actions))
            self.global_step += 1
            if self.global_step > cfg.warmup_steps:
                terms.append(self._update(self.sample(cfg.utd * cfg.batch_size)))
        metrics = self.collector.pop_episode_stats() | mean_metrics(METRICS, terms)
        metrics["train/critic_updates"] = float(self.critic_updates)
        return metrics

    def sample(self, n: int) -> Rows:
        """``n`` rows, observations normalised: from the online buffer, or in mode 'retain'
        uniformly from the union of the dataset and the online transitions."""
        if self.offline is None:
            rows = _from_replay(self.buffer.sample(n, self.rng))
        else:
            n_offline, n_online = len(self.offline.rewards), self.buffer.num_transitions()
            from_offline = self.rng.random(n) < n_offline / (n_offline + n_online)  # (n,)
            k = int(from_offline.sum())
            rows = self.offline.take(torch.from_numpy(self.rng.integers(0, n_offline, k)))
            if k < n:
                online = _from_replay(self.buffer.sample(n - k, self.rng))
                mask = torch.from_numpy(from_offline)
                rows = Rows(*(_merge(mask, a, b) for a, b in zip(rows, online, strict=True)))
        return rows._replace(obs=self._normalise(rows.obs), next_obs=self._normalise(rows.next_obs))

    def _update(self, rows: Rows) -> tuple[torch.Tensor, ...]:
        """``utd`` critic updates on consecutive ``batch_size`` slices, then one actor and
        temperature update on all rows with the updated critics."""
        cfg, bsz = self.cfg, self.cfg.batch_size
        alpha = self.log_alpha.detach().exp()  # (1,)
        with torch.no_grad():  # the actor is fixed during the critic updates: one forward
            noise = torch.randn((len(rows.obs), self.act_dim), generator=self.gen)
            next_actions, next_logp = self.actor(rows.next_obs, noise)  # (utd B, A), (utd B,)
        q_losses, q_data = [], []
        for i in range(cfg.utd):
            part = slice(i * bsz, (i + 1) * bsz)
            b = rows.take(part)
            with torch.no_grad():
                next_q = self.critic_target(torch.cat([b.next_obs, next_actions[part]], -1))
                next_v = next_q.amin(0)[:, 0]  # (B,) min over the ensemble
                if cfg.backup_entropy:
                    next_v = next_v - alpha * next_logp[part]
                td_target = b.rewards + b.discounts * next_v  # (B,)
            q = self.critic(torch.cat([b.obs, b.actions], -1))[..., 0]  # (K, B)
            q_loss = (q - td_target).square().mean()
            self.critic_flat.zero_grad()
            q_loss.backward()
            adam_step(self.critic_opt)
            polyak_update([self.critic_flat.param], [self.target_flat.param], cfg.tau)
            self.critic_updates += 1
            q_losses.append(q_loss.detach())
            q_data.append(q.detach().mean())

        noise = torch.randn((len(rows.obs), self.act_dim), generator=self.gen)
        actions_pi, logp_pi = self.actor(rows.obs, noise)  # (utd B, A), (utd B,)
        q_pi = self.critic(torch.cat([rows.obs, actions_pi], -1)).amin(0)[:, 0]
        actor_loss = (alpha * logp_pi - q_pi).mean()
        alpha_loss = -(self.log_alpha * (logp_pi.detach() + self.target_entropy)).mean()
        self.actor_flat.zero_grad()
        (actor_loss + alpha_loss).backward(inputs=self.actor_params)  # no critic grads
        adam_step(self.actor_opt)
        self.actor_updates += 1
        return (torch.stack(q_losses).mean(), torch.stack(q_data).mean(), actor_loss.detach(),
                alpha[0], -logp_pi.detach().mean())

    # ------------------------------------------------------------------------- acting
    def _set_obs_stats(self) -> None:
        self._mean_t = torch.from_numpy(self.obs_mean)
        self._std_t = torch.from_numpy(self.obs_std)

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self._mean_t) / self._std_t

    def _obs_tensor(self, raw_obs: np.ndarray) -> torch.Tensor:
        """Raw observations (N, *obs_shape) -> normalised float32 (N, O), as our CQL's act."""
        x = torch.from_numpy(np.array(raw_obs, dtype=np.float32)).reshape(len(raw_obs), -1)
        return self._normalise(x)

    @torch.no_grad()
    def _explore(self, obs: np.ndarray) -> np.ndarray:
        """Sampled actions in [-1, 1] for the online env, (N, A)."""
        x = self._obs_tensor(obs)
        noise = torch.randn((len(x), self.act_dim), generator=self.collect_gen)
        return self.actor.sample(x, noise).numpy()

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Env-scaled actions for raw ``obs``: tanh of the mean, or a sample."""
        x = self._obs_tensor(obs)
        noise = None if deterministic else torch.randn((len(x), self.act_dim),
                                                       generator=self.act_gen)
        a = self.actor.sample(x, noise).clamp(-1.0, 1.0).numpy()
        return self.scale.to_env(a).reshape(len(a), *self.scale.shape)

    # ------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        return copy.deepcopy({
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "log_alpha": self.log_alpha.detach(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "rng": dict(self.rng.bit_generator.state),
            "gen": self.gen.get_state(),
            "collect_gen": self.collect_gen.get_state(),
            "act_gen": self.act_gen.get_state(),
            "obs_mean": self.obs_mean, "obs_std": self.obs_std,
            "replay": self.buffer.state_dict(),
            "collector": self.collector.state_dict(),
            "dataset_hash": self.dataset_hash,
            "counters": {"global_step": self.global_step, "critic_updates": self.critic_updates,
                         "actor_updates": self.actor_updates},
        })

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["dataset_hash"] != self.dataset_hash:
            raise UserError(f"dataset '{self.cfg.dataset}' differs from the one this checkpoint "
                            f"was trained with (content hash {self.dataset_hash[:12]} != "
                            f"{str(state['dataset_hash'])[:12]}); restore that dataset or start "
                            "a new run")
        for name in ("actor", "critic", "critic_target"):
            getattr(self, name).load_state_dict(state[name])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        # Optimizer.load_state_dict keeps the tensors it is given: copy, not alias.
        self.actor_opt.load_state_dict(copy.deepcopy(state["actor_opt"]))
        self.critic_opt.load_state_dict(copy.deepcopy(state["critic_opt"]))
        self.rng.bit_generator.state = state["rng"]
        for name in ("gen", "collect_gen", "act_gen"):
            getattr(self, name).set_state(state[name])
        self.obs_mean = np.asarray(state["obs_mean"], np.float32).copy()
        self.obs_std = np.asarray(state["obs_std"], np.float32).copy()
        self._set_obs_stats()
        self.buffer.load_state_dict(state["replay"])
        counters = state["counters"]
        self.global_step = int(counters["global_step"])
        self.critic_updates = int(counters["critic_updates"])
        self.actor_updates = int(counters["actor_updates"])
        self.collector.load_state_dict(
            state["collector"], derive_seed(self.cfg.seed, "resume", self.global_step))

    def close(self) -> None:
        self.envs.close()


# ----------------------------------------------------------------------------- helpers
def offline_rows(ds: Dataset, scale: BoxScale, gamma: float) -> Rows:
    """The dataset as raw ``Rows``: actions scaled to [-1, 1] with the env's Box bounds (as the
    offline learners), discount 0 at terminations only."""
    n = len(ds)
    low, high = scale.low.reshape(-1), scale.high.reshape(-1)
    actions = ds.actions.reshape(n, -1).astype(np.float32)
    unit = np.clip(2.0 * (actions - low) / (high - low) - 1.0, -1.0, 1.0).astype(np.float32)
    return Rows(
        obs=torch.from_numpy(ds.observations.reshape(n, -1).astype(np.float32)),
        actions=torch.from_numpy(unit),
        rewards=torch.from_numpy(ds.rewards.astype(np.float32)),
        next_obs=torch.from_numpy(ds.next_observations.reshape(n, -1).astype(np.float32)),
        discounts=torch.from_numpy(np.where(ds.terminations, 0.0, gamma).astype(np.float32)),
    )


def _from_replay(b: ReplayBatch) -> Rows:
    return Rows(b.obs.flatten(1), b.actions.flatten(1), b.rewards, b.next_obs.flatten(1),
                b.discounts)


def _merge(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Rows of ``a`` where ``mask`` (n,) is True and of ``b`` elsewhere, in order."""
    out = torch.empty((len(mask), *a.shape[1:]), dtype=a.dtype)
    out[mask] = a
    out[~mask] = b
    return out


def _load_pretrained(where: str) -> tuple[Path, dict[str, Any]]:
    """The path and state of the checkpoint ``where`` names (a step_*.json, or a directory
    holding them directly or under ``checkpoints/``), checked to come from a supported
    algorithm."""
    path = Path(where).expanduser()
    if path.is_dir():
        found = latest_checkpoint(path) or latest_checkpoint(path / "checkpoints")
        if found is None:
            raise UserError(f"init_checkpoint '{where}' holds no step_*.json checkpoint; give "
                            "a checkpoint file or a run's checkpoints directory")
        path = found
    elif not path.is_file():
        raise UserError(f"init_checkpoint '{where}' does not exist; give the step_*.json of a "
                        "cql run (or use --init RUN_ID)")
    try:
        _step, state, meta = load_checkpoint(path)
    except Exception as err:  # a truncated or foreign file
        raise UserError(f"cannot read checkpoint '{path}' ({type(err).__name__}: {err}); give "
                        "a checkpoint written by `rlworks offline train cql`") from None
    algo = meta.get("algo")
    if algo not in INIT_ALGOS:
        raise UserError(f"checkpoint '{path}' is from a '{algo}' run; wsrl and finetune start "
                        f"from a run of {', '.join(INIT_ALGOS)} (SAC-style actor, critics and "
                        "temperature)")
    return path, state


def _check_pretrained(state: dict[str, Any], path: Path, cfg: WSRLConfig, env_id: str,
                      obs_dim: int, act_dim: int, dataset_hash: str) -> None:
    """Raise a UserError unless the pretrained networks fit the env and config, and were
    trained on this dataset."""
    layers = sorted((k for k in state["actor"] if k.endswith(".weight")),
                    key=lambda k: int(k.split(".")[1]))
    shapes = [tuple(state["actor"][k].shape) for k in layers]  # (out, in) each
    if shapes[0][1] != obs_dim or shapes[-1][0] != 2 * act_dim:
        raise UserError(f"checkpoint '{path}' has an actor for {shapes[0][1]} observation "
                        f"features and {shapes[-1][0] // 2} action dims, but env '{env_id}' has "
                        f"{obs_dim} and {act_dim}: it was pretrained on another env")
    widths = tuple(s[0] for s in shapes[:-1])
    if widths != tuple(cfg.hidden_sizes):
        raise UserError(f"checkpoint '{path}' has hidden sizes {widths}, the config "
                        f"{tuple(cfg.hidden_sizes)}; pass --hidden-sizes "
                        f"{','.join(map(str, widths))}")
    if state["data"]["dataset_hash"] != dataset_hash:
        raise UserError(f"checkpoint '{path}' was pretrained on another dataset than "
                        f"'{cfg.dataset}' (content hash {str(state['data']['dataset_hash'])[:12]}"
                        f" != {dataset_hash[:12]}); pass the --dataset it was trained on (runs "
                        "trained with --corrupt cannot be fine-tuned)")


def _load_adam(opt: torch.optim.Optimizer, saved: dict[str, Any], lr: float) -> None:
    """Carry pretrained Adam moments over to ``opt``'s flat parameter (a prefix of the saved
    one: our CQL appends the Lagrange multiplier to its critics' buffer) at step size ``lr``."""
    n = opt.param_groups[0]["params"][0].numel()
    state = copy.deepcopy(saved)
    for moments in state["state"].values():
        for key in ("exp_avg", "exp_avg_sq"):
            moments[key] = moments[key][:n].clone()
    opt.load_state_dict(state)
    opt.param_groups[0]["lr"] = lr
