"""Configs of the offline learners: frozen dataclasses, one per algorithm family.

Like ``rlworks/algos/online/configs.py`` this module must not import torch, so that
``rlworks offline train iql --help`` and bad-input errors answer at once. Every field's
docstring is its ``--help`` text; validation that needs more than a type happens in
``__post_init__`` and raises a ``UserError`` naming the field.

Budgets are in *gradient steps*. Published D4RL tables use 1M steps (IQL, TD3+BC, CQL) on a
GPU; on a small CPU pick a smaller ``total_steps`` and report it with the results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from rlworks.algos.online.configs import Backend
from rlworks.core.errors import UserError


@dataclass(frozen=True)
class OfflineConfig:
    """Fields every offline learner shares: what to learn from, how long, how to evaluate."""

    dataset: str = ""
    """Dataset: a generated name (see `rlworks data ls`, e.g. 'pendulum-medium') or the path
    of a D4RL-style .hdf5, an .npz file or a Minari dataset directory."""
    env_id: str = ""
    """Environment the policy is evaluated on; '' takes it from the dataset's metadata."""
    seed: int = 0
    """Seed of every random draw in the run (network init, batch sampling, noise, corruption)."""
    total_steps: int = 100_000
    """Budget in gradient steps. Published D4RL results use 1M; a 2-core CPU affords tens of
    thousands per run, so report the budget used with any score."""
    batch_size: int = 256
    """Transitions per gradient step."""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """Hidden layer widths of every network (actor, critics, value)."""
    steps_per_iter: int = 1_000
    """Gradient steps per iteration: metrics are logged as their means over an iteration, and
    checkpoints and evaluations fall between iterations."""
    torch_threads: int = 1
    """torch intra-op threads; 1 is fastest for [256, 256] networks on 2 cores."""
    backend: Backend = "auto"
    """Vector env backend of the evaluation episodes; 'auto' takes native where it exists."""
    checkpoint_every: int = 0
    """Checkpoint every N gradient steps (0: only at the end). Runs resume from the latest."""
    eval_every: int = 0
    """Also evaluate (``eval_episodes`` episodes, logged as ``eval/return`` and, when the
    dataset has reference scores, ``eval/normalised_score``) every N gradient steps."""
    eval_episodes: int = 10
    """Episodes of the deterministic policy evaluated at the end of training."""
    normalize_obs: bool = False
    """Standardise observations with the dataset's mean and std (+1e-3), as TD3+BC does; the
    statistics are saved in checkpoints and applied when acting."""
    corrupt: str = ""
    """Corrupt the dataset before training, with the run's seed ('' = none): RIQL-style
    KIND:RATE:SCALE[:MODE] items, comma-separated, e.g. 'dynamics:0.3:1.0' (the grammar of
    rlworks.data.transforms.corrupt_from_spec)."""
    reweight: str = ""
    """Sample transitions with per-transition probabilities ('' = uniformly), e.g. 'return'
    or 'return:0.1' (return-weighted trajectories) or 'advantage' (the grammar of
    rlworks.data.transforms.weights_from_spec)."""

    def __post_init__(self) -> None:
        for name in ("total_steps", "batch_size", "steps_per_iter", "torch_threads",
                     "eval_episodes"):
            _positive(self, name)
        for name in ("checkpoint_every", "eval_every"):
            if getattr(self, name) < 0:
                raise UserError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.hidden_sizes or min(self.hidden_sizes) <= 0:
            raise UserError(f"hidden_sizes must be positive widths, got {self.hidden_sizes}")


@dataclass(frozen=True)
class BCConfig(OfflineConfig):
    """Behaviour cloning: a deterministic tanh policy regressed on the dataset's actions
    (the BC baseline of Fujimoto and Gu, 2021, arXiv:2106.06860)."""

    learning_rate: float = 3e-4
    """Adam step size."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive_float(self, "learning_rate")


@dataclass(frozen=True)
class TD3BCConfig(OfflineConfig):
    """TD3+BC (Fujimoto and Gu, 2021, "A Minimalist Approach to Offline Reinforcement
    Learning", arXiv:2106.06860). Defaults are the paper's."""

    normalize_obs: bool = True
    alpha: float = 2.5
    """alpha of lambda = alpha / mean|Q(s, pi(s))|, the weight of the Q term against BC."""
    actor_lr: float = 3e-4
    """Adam step size of the actor."""
    critic_lr: float = 3e-4
    """Adam step size of the twin critics."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak rate of the target networks."""
    policy_noise: float = 0.2
    """Std of the target policy smoothing noise (actions scaled to [-1, 1])."""
    noise_clip: float = 0.5
    """Clip of the target policy smoothing noise (actions scaled to [-1, 1])."""
    policy_delay: int = 2
    """Critic updates per actor (and target) update."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive(self, "policy_delay")
        for name in ("actor_lr", "critic_lr", "alpha"):
            _positive_float(self, name)
        _unit(self, "gamma")
        _unit(self, "tau")


@dataclass(frozen=True)
class IQLConfig(OfflineConfig):
    """Implicit Q-Learning (Kostrikov, Nair and Levine, 2021, arXiv:2110.06169), with the
    robust terms of RIQL (Yang et al., 2023, arXiv:2310.12955) as options; the ``riql`` preset
    sets them. Defaults are the IQL paper's MuJoCo settings."""

    expectile: float = 0.7
    """Expectile tau of the value loss |tau - 1(u < 0)| u^2, u = Q(s, a) - V(s)."""
    temperature: float = 3.0
    """Inverse temperature beta of the advantage weights exp(beta * (Q - V))."""
    exp_adv_max: float = 100.0
    """Upper clip of the advantage weights exp(beta * (Q - V))."""
    actor: Literal["gaussian", "deterministic"] = "gaussian"
    """Policy: 'gaussian' (tanh mean, state-independent std; weighted log-likelihood, as in
    the IQL paper on MuJoCo) or 'deterministic' (tanh output; weighted squared error, as
    RIQL's code)."""
    actor_lr: float = 3e-4
    """Adam step size of the actor (start of the cosine schedule)."""
    cosine_actor_lr: bool = True
    """Anneal the actor's step size to 0 over total_steps with a cosine, as the paper."""
    critic_lr: float = 3e-4
    """Adam step size of the Q ensemble and the value network."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak rate of the target Q ensemble."""
    normalize_reward: bool = True
    """Scale rewards by 1000 / (max - min episode return) of the dataset, as the IQL paper
    does for MuJoCo (RIQL's code does not)."""
    num_critics: int = 2
    """Q ensemble size (IQL: 2; RIQL: 5)."""
    q_aggregation: Literal["min", "quantile"] = "min"
    """How the target ensemble's values become one target for V and the advantage: 'min'
    (IQL) or the q_quantile-quantile over the ensemble (RIQL)."""
    q_quantile: float = 0.25
    """Quantile over the Q ensemble when q_aggregation='quantile' (RIQL: 0.25)."""
    q_loss: Literal["mse", "huber"] = "mse"
    """Loss of the Q ensemble on its TD target: squared error (IQL) or Huber (RIQL)."""
    huber_delta: float = 1.0
    """delta of the Huber loss x^2/(2 delta) if |x| <= delta else |x| - delta/2 (RIQL's
    code writes it as sigma with delta = 1/sigma^2; its default sigma=1 is delta=1)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive(self, "num_critics")
        for name in ("actor_lr", "critic_lr", "temperature", "exp_adv_max", "huber_delta"):
            _positive_float(self, name)
        for name in ("expectile", "gamma", "tau", "q_quantile"):
            _unit(self, name)


@dataclass(frozen=True)
class CQLConfig(OfflineConfig):
    """Conservative Q-Learning, CQL(H) on SAC with automatic entropy tuning (Kumar, Zhou,
    Tucker and Levine, 2020, arXiv:2006.04779). Defaults follow the authors' MuJoCo settings
    (min_q_weight 5.0, 10 sampled actions, importance-sampled log-sum-exp, policy lr 1e-4)."""

    min_q_weight: float = 5.0
    """alpha of the conservative penalty (the authors' MuJoCo runs use 5.0; the paper's
    ablations 1.0 to 10.0)."""
    n_actions: int = 10
    """Actions sampled per state for each of the three log-sum-exp sources (uniform, pi(s),
    pi(s'))."""
    cql_temperature: float = 1.0
    """Temperature of the log-sum-exp over sampled actions."""
    lagrange_threshold: float | None = None
    """Lagrange variant: tune the penalty weight so the Q gap stays near this threshold
    (the paper's tau; e.g. 10.0). None: fixed min_q_weight (the default)."""
    actor_lr: float = 1e-4
    """Adam step size of the actor and the entropy temperature."""
    critic_lr: float = 3e-4
    """Adam step size of the twin critics (and the Lagrange multiplier)."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak rate of the target critics."""
    target_entropy: float | None = None
    """Entropy target of the automatic temperature; None means -dim(action space)."""
    backup_entropy: bool = False
    """Subtract alpha * log pi(a'|s') in the TD target (the authors' code does not)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive(self, "n_actions")
        for name in ("actor_lr", "critic_lr", "cql_temperature"):
            _positive_float(self, name)
        if self.min_q_weight < 0:
            raise UserError(f"min_q_weight must be >= 0, got {self.min_q_weight}")
        _unit(self, "gamma")
        _unit(self, "tau")


@dataclass(frozen=True)
class AWACConfig(OfflineConfig):
    """Advantage-Weighted Actor-Critic (Nair, Gupta, Dalal and Levine, 2020,
    arXiv:2006.09359), offline phase. Defaults follow CORL's awac.py (lambda 1.0)."""

    awac_lambda: float = 1.0
    """Temperature lambda of the weights exp(A(s, a) / lambda): the paper's Lagrange
    multiplier (1/beta in AWR's notation); 1.0 is CORL's default."""
    exp_adv_max: float = 100.0
    """Upper clip of the advantage weights."""
    actor_lr: float = 3e-4
    """Adam step size of the actor."""
    critic_lr: float = 3e-4
    """Adam step size of the twin critics."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak rate of the target critics."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("awac_lambda", "exp_adv_max", "actor_lr", "critic_lr"):
            _positive_float(self, name)
        _unit(self, "gamma")
        _unit(self, "tau")


@dataclass(frozen=True)
class WSRLConfig:
    """Offline-to-online fine-tuning of a pretrained CQL agent with SAC updates: WSRL (Zhou,
    Peng, Li, Levine and Kumar, 2024, "Efficient Online Reinforcement Learning Fine-Tuning Need
    Not Retain Offline Data", arXiv:2412.07762) in mode 'wsrl', fine-tuning with the offline
    data retained in mode 'retain' (the ``finetune`` preset). Defaults follow the authors'
    code (finetune.py, locomotion_wsrl config). Budgets are in *online env steps*."""

    dataset: str = ""
    """Dataset the agent was pretrained on: it names the env (its metadata's env_id) and the
    reference scores, and mode 'retain' keeps its transitions in the replay data."""
    env_id: str = ""
    """Environment fine-tuned on and evaluated on; '' takes it from the dataset's metadata."""
    init_checkpoint: str = ""
    """Checkpoint of a `rlworks offline train cql` run to start from (a step_*.json file or a
    directory holding them; `--init RUN_ID` fills it in). '' starts from random weights, the
    no-pretraining ablation (from Python: the command line insists on a pretrained agent)."""
    mode: Literal["wsrl", "retain"] = "wsrl"
    """'wsrl': a fresh replay buffer holding online data only; 'retain': every batch drawn
    uniformly from the offline dataset and the online transitions together."""
    seed: int = 0
    """Seed of every random draw in the run (env, action noise, batch sampling)."""
    total_steps: int = 100_000
    """Budget in online env steps, warm-up included (the authors' code runs 500k; a 2-core CPU
    affords tens of thousands)."""
    warmup_steps: int = 5_000
    """Env steps collected with the pretrained policy, frozen, before the first update (WSRL's
    warm-up: 5,000 in the paper; 0 is plain fine-tuning)."""
    utd: int = 4
    """Update-to-data ratio: critic updates per env step after the warm-up, each on its own
    batch_size rows; the actor and temperature step once per env step on all utd * batch_size
    rows (the authors' update_high_utd; their default for WSRL is 4)."""
    batch_size: int = 256
    """Transitions per critic update (the authors' 1024-row batch split into utd = 4 parts)."""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """Hidden widths of the actor and critics; must equal the init checkpoint's (`--init` sets
    them from the pretraining run)."""
    actor_lr: float = 1e-4
    """Adam step size of the actor and the entropy temperature (the authors' SAC config)."""
    critic_lr: float = 3e-4
    """Adam step size of the critics."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak rate of the target critics (after every critic update)."""
    target_entropy: float | None = None
    """Entropy target of the automatic temperature; None means -dim(action space) / 2, the
    authors' code."""
    backup_entropy: bool = False
    """Subtract alpha * log pi(a'|s') in the TD target (the authors' WSRL runs do not)."""
    buffer_size: int = 1_000_000
    """Capacity of the online replay buffer in env steps (mode 'retain' keeps the dataset
    apart, so it does not count)."""
    steps_per_iter: int = 1_000
    """Env steps per iteration: metrics are logged as their means over an iteration, and
    checkpoints and evaluations fall between iterations."""
    torch_threads: int = 1
    """torch intra-op threads; 1 is fastest for [256, 256] networks on 2 cores."""
    backend: Backend = "auto"
    """Vector env backend; 'auto' takes native where it exists (Pendulum-v1: exact resume)."""
    checkpoint_every: int = 0
    """Checkpoint every N env steps (0: only at the end). Runs resume from the latest."""
    eval_every: int = 0
    """Also evaluate (``eval_episodes`` episodes of the deterministic policy, logged as
    ``eval/return`` and ``eval/normalised_score``) every N env steps: the fine-tuning curve."""
    eval_episodes: int = 10
    """Episodes of the deterministic policy evaluated at the end of training."""

    def __post_init__(self) -> None:
        for name in ("total_steps", "utd", "batch_size", "buffer_size", "steps_per_iter",
                     "torch_threads", "eval_episodes"):
            _positive(self, name)
        for name in ("warmup_steps", "checkpoint_every", "eval_every"):
            if getattr(self, name) < 0:
                raise UserError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.hidden_sizes or min(self.hidden_sizes) <= 0:
            raise UserError(f"hidden_sizes must be positive widths, got {self.hidden_sizes}")
        for name in ("actor_lr", "critic_lr"):
            _positive_float(self, name)
        _unit(self, "gamma")
        _unit(self, "tau")


FINETUNE_OVERRIDES: tuple[tuple[str, Any], ...] = (("mode", "retain"), ("warmup_steps", 0))
"""The retained-data baseline: WSRL's update rule and budget, with the offline dataset kept in
the replay data and no warm-up (updates from the first online step)."""


RIQL_OVERRIDES: tuple[tuple[str, Any], ...] = (
    ("q_loss", "huber"),
    ("huber_delta", 1.0),
    ("num_critics", 5),
    ("q_aggregation", "quantile"),
    ("q_quantile", 0.25),
    ("normalize_obs", True),
    ("actor", "deterministic"),
    ("normalize_reward", False),
)
"""RIQL = IQL + observation normalisation + Huber Q loss + quantile over a Q ensemble, with
the defaults of the authors' code (RIQL.py: num_critics 5, sigma 1.0, quantile 0.25,
deterministic actor, no reward scaling). Their per-task tuning lives in docs."""


def _positive(cfg: object, name: str) -> None:
    value = getattr(cfg, name)
    if value <= 0:
        raise UserError(f"{name} must be a positive integer, got {value}")


def _positive_float(cfg: object, name: str) -> None:
    value = getattr(cfg, name)
    if not value > 0:
        raise UserError(f"{name} must be > 0, got {value}")


def _unit(cfg: object, name: str) -> None:
    value = getattr(cfg, name)
    if not 0.0 <= value <= 1.0:
        raise UserError(f"{name} must lie in [0, 1], got {value}")


__all__ = ["OfflineConfig", "BCConfig", "TD3BCConfig", "IQLConfig", "CQLConfig", "AWACConfig",
           "WSRLConfig", "RIQL_OVERRIDES", "FINETUNE_OVERRIDES"]
