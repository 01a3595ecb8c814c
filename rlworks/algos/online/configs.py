"""Configs of the online agents: frozen dataclasses, one per algorithm family.

They live apart from the algorithm files for one reason: this module must not import torch
(2.7 s here), so ``rlworks train ppo --help`` and bad-input errors answer in well under 0.5 s.
Each algorithm file imports its config from here and is otherwise readable alone.

Every field's docstring is its ``--help`` text. Validation that needs more than a type
(a positive budget, a probability in [0, 1]) happens in ``__post_init__`` and raises a
``UserError`` naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rlworks.core.errors import UserError

Backend = Literal["auto", "native", "envpool", "gymnasium-sync", "gymnasium-async",
                  "gymnasium-vector"]


@dataclass(frozen=True)
class OnlineConfig:
    """Fields every online agent shares: what to train on, for how long, and how to run."""

    env_id: str = "CartPole-v1"
    """Environment id (native, gymnasium or EnvPool)."""
    seed: int = 0
    """Seed of every random draw in the run (envs, networks, sampling)."""
    total_steps: int = 100_000
    """Budget in environment steps, summed over the vector's sub-envs."""
    num_envs: int = 8
    """Number of sub-environments in the vector env."""
    backend: Backend = "auto"
    """Vector env backend; 'auto' takes native where it exists, then gymnasium."""
    torch_threads: int = 1
    """torch intra-op threads; 1 is fastest for small networks on 2 cores (measured)."""
    checkpoint_every: int = 0
    """Checkpoint every N env steps (0: only at the end). Runs resume from the latest one."""
    eval_episodes: int = 20
    """Episodes of the deterministic policy evaluated at the end of training."""
    eval_every: int = 0
    """Also evaluate (``eval_episodes`` episodes, logged as ``eval/return``) every N env
    steps during training (0: only at the end). Gives sample-efficiency curves."""
    keep_best: bool = False
    """With ``eval_every``: keep the policy of the best periodic evaluation (the final policy
    included) as a checkpoint under the run's ``best/`` directory, and evaluate it again at
    the end on fresh episodes (the final evaluation's), so the selection does not inflate its
    score: the summary gets ``best_eval_return_mean`` and ``best_step`` beside the final
    policy's ``eval_return_mean`` (SB3's EvalCallback best model). Each improvement writes a
    full checkpoint."""

    def __post_init__(self) -> None:
        for name in ("total_steps", "num_envs", "torch_threads", "eval_episodes"):
            _positive(self, name)
        for name in ("checkpoint_every", "eval_every"):
            if getattr(self, name) < 0:
                raise UserError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.keep_best and not self.eval_every:
            raise UserError("keep_best selects among periodic evaluations; set eval_every too "
                            "(e.g. --eval-every 5000)")


@dataclass(frozen=True)
class PPOConfig(OnlineConfig):
    """Proximal Policy Optimization (Schulman et al., 2017, arXiv:1707.06347).

    Defaults follow CleanRL's ``ppo.py``; tuned per-env values live in ``zoo.py``.
    """

    num_steps: int = 128
    """Vector steps per rollout (rollout size = num_steps * num_envs)."""
    learning_rate: float = 2.5e-4
    """Adam step size."""
    anneal_lr: bool = True
    """Anneal the learning rate linearly to 0 over the run."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE lambda (Schulman et al., 2016)."""
    num_minibatches: int = 4
    """Minibatches per epoch."""
    update_epochs: int = 4
    """Optimisation epochs over each rollout."""
    norm_adv: bool = True
    """Normalise advantages per minibatch."""
    clip_eps: float = 0.2
    """Surrogate clipping range epsilon."""
    anneal_clip: bool = False
    """Anneal clip_eps linearly to 0 over the run (as rl-zoo's lin_0.2)."""
    clip_vloss: bool = True
    """Clip the value loss around the old values (as in the PPO2 code)."""
    ent_coef: float = 0.01
    """Entropy bonus coefficient."""
    vf_coef: float = 0.5
    """Value loss coefficient."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip."""
    target_kl: float | None = None
    """Stop the epoch loop early when the approximate KL exceeds this."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Hidden layer widths of the actor and the critic (separate networks)."""
    activation: Literal["tanh", "relu"] = "tanh"
    """Hidden activation."""
    normalize_obs: bool = False
    """Running mean/std observation normalisation (state saved in checkpoints)."""
    normalize_reward: bool = False
    """Scale rewards by a running std of the discounted return."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("num_steps", "num_minibatches", "update_epochs"):
            _positive(self, name)
        _unit(self, "gamma")
        _unit(self, "gae_lambda")
        if self.batch_size % self.num_minibatches:
            raise UserError(
                f"num_minibatches={self.num_minibatches} must divide the rollout size "
                f"num_steps*num_envs={self.batch_size}"
            )

    @property
    def batch_size(self) -> int:
        return self.num_steps * self.num_envs

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches


@dataclass(frozen=True)
class DQNConfig(OnlineConfig):
    """Deep Q-Network (Mnih et al., 2015) with double Q-learning (van Hasselt et al., 2016).

    Defaults follow Stable-Baselines3's DQN; tuned per-env values live in ``zoo.py``.
    """

    num_envs: int = 1
    learning_rate: float = 1e-4
    """Adam step size."""
    buffer_size: int = 100_000
    """Replay capacity in transitions."""
    learning_starts: int = 1_000
    """Env steps of random actions before learning starts."""
    batch_size: int = 32
    """Transitions per gradient step."""
    gamma: float = 0.99
    """Discount factor."""
    n_step: int = 1
    """n-step returns for the TD target."""
    train_freq: int = 4
    """Env steps (summed over sub-envs) between updates."""
    gradient_steps: int = 1
    """Gradient steps per update."""
    target_update_interval: int = 10_000
    """Env steps between target-network updates."""
    tau: float = 1.0
    """Target update rate (1.0: hard copy)."""
    double_q: bool = True
    """Select the next action with the online net, value it with the target net."""
    exploration_fraction: float = 0.1
    """Fraction of the run over which epsilon decays linearly."""
    exploration_initial_eps: float = 1.0
    """Initial epsilon."""
    exploration_final_eps: float = 0.05
    """Final epsilon."""
    max_grad_norm: float = 10.0
    """Global gradient-norm clip."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Hidden layer widths of the Q-network."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("buffer_size", "batch_size", "n_step", "train_freq", "gradient_steps",
                     "target_update_interval"):
            _positive(self, name)
        for name in ("gamma", "tau", "exploration_fraction", "exploration_initial_eps",
                     "exploration_final_eps"):
            _unit(self, name)


@dataclass(frozen=True)
class SACConfig(OnlineConfig):
    """Soft Actor-Critic with automatic entropy tuning (Haarnoja et al., 2018, arXiv:1812.05905).

    Defaults follow Stable-Baselines3's SAC.
    """

    env_id: str = "Pendulum-v1"
    total_steps: int = 20_000
    num_envs: int = 1
    learning_rate: float = 3e-4
    """Adam step size of actor, critics and temperature."""
    buffer_size: int = 1_000_000
    """Replay capacity in transitions."""
    learning_starts: int = 100
    """Env steps of uniform random actions before learning starts."""
    batch_size: int = 256
    """Transitions per gradient step."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak rate of the target critics."""
    train_freq: int = 1
    """Env steps (summed over sub-envs) between updates."""
    gradient_steps: int = 1
    """Gradient steps per update."""
    ent_coef: float | None = None
    """Fixed entropy coefficient alpha; None tunes it automatically."""
    ent_coef_init: float = 1.0
    """Initial alpha when tuned automatically."""
    target_entropy: float | None = None
    """Entropy target; None means -dim(action space)."""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """Hidden layer widths of actor and critics."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("buffer_size", "batch_size", "train_freq", "gradient_steps"):
            _positive(self, name)
        _unit(self, "gamma")
        _unit(self, "tau")
        for name in ("ent_coef", "ent_coef_init"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise UserError(f"{name} must be > 0 (alpha is learned as log alpha), got {value}")


@dataclass(frozen=True)
class TD3Config(OnlineConfig):
    """Twin Delayed DDPG (Fujimoto et al., 2018, arXiv:1802.09477).

    Defaults follow Stable-Baselines3's TD3.
    """

    env_id: str = "Pendulum-v1"
    total_steps: int = 20_000
    num_envs: int = 1
    learning_rate: float = 1e-3
    """Adam step size of actor and critics."""
    buffer_size: int = 1_000_000
    """Replay capacity in transitions."""
    learning_starts: int = 100
    """Env steps of uniform random actions before learning starts."""
    batch_size: int = 256
    """Transitions per gradient step."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak rate of the target networks."""
    train_freq: int = 1
    """Env steps (summed over sub-envs) between updates."""
    gradient_steps: int = 1
    """Gradient steps per update."""
    policy_delay: int = 2
    """Critic updates per actor (and target) update."""
    exploration_noise: float = 0.1
    """Std of the Gaussian exploration noise in the [-1, 1]-scaled action space (a fraction
    of half the action range; SB3's default is no noise, the paper's 0.1)."""
    target_policy_noise: float = 0.2
    """Std of the target policy smoothing noise (scaled action space)."""
    target_noise_clip: float = 0.5
    """Clip of the target policy smoothing noise (scaled action space)."""
    hidden_sizes: tuple[int, ...] = (400, 300)
    """Hidden layer widths of actor and critics."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("buffer_size", "batch_size", "train_freq", "gradient_steps",
                     "policy_delay"):
            _positive(self, name)
        _unit(self, "gamma")
        _unit(self, "tau")


def _positive(cfg: object, name: str) -> None:
    value = getattr(cfg, name)
    if value <= 0:
        raise UserError(f"{name} must be a positive integer, got {value}")


def _unit(cfg: object, name: str) -> None:
    value = getattr(cfg, name)
    if not 0.0 <= value <= 1.0:
        raise UserError(f"{name} must lie in [0, 1], got {value}")


__all__ = [
    "OnlineConfig", "PPOConfig", "DQNConfig", "SACConfig", "TD3Config",
]
