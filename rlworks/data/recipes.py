"""The dataset recipes: which envs, which kinds, at which budgets, and how the SAC agent
behind them is trained and rolled out. Importing it loads no torch (the CLI reads the tables);
the training and rollout functions import torch when called.

A dataset name is ``ENV-KIND``: ``hopper-medium``, ``idp-medium-replay``,
``inverted-double-pendulum-expert``. The kinds follow D4RL (Fu et al., 2020,
arXiv:2004.07219) and, for ``conservative``, NeoRL-2 (data from a deployed controller plus
small noise, with narrow coverage):

==================  ===========================================================================
``random``          a uniform random policy over the action box
``medium``          the SAC snapshot whose return is closest to 1/3 of the way from the random
                    to the expert reference (D4RL early-stops SAC at about a third of the
                    expert's performance), stochastic actions
``expert``          the fully trained SAC policy, stochastic actions
``medium-replay``   every transition in SAC's replay buffer up to the medium snapshot
``medium-expert``   ``medium`` then ``expert``, concatenated (twice the size)
``conservative``    NeoRL-2-style narrow coverage: the medium policy's deterministic action plus
                    Gaussian noise of std ``CONSERVATIVE_NOISE`` (in units of half the action
                    range), clipped to the bounds
==================  ===========================================================================

These are "D4RL-style" datasets made by this project's own SAC at the small budgets below;
their scores are not comparable with published D4RL tables.

Budgets (``Budget``) are per env and overridable key by key (``make_dataset(budget={...})``,
``rlworks data make NAME --agent-steps N --size N``). Wall-clock times in the docs are
estimates from SAC's ~60 gradient steps/s on one thread of this 2-core machine.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rlworks.core.errors import UserError, did_you_mean
from rlworks.core.seeding import derive_seed, make_rng

MEDIUM_FRACTION = 1.0 / 3.0
"""Medium target: ``random + MEDIUM_FRACTION * (expert - random)`` in return (D4RL's 1/3)."""
CONSERVATIVE_NOISE = 0.1
"""Std of the Gaussian noise added to the conservative controller's action, as a fraction of
half the action range (so 0.1 on a [-1, 1] box)."""

RECIPE_VERSION = "rlworks-dataset-factory/1"
"""Part of every agent key and dataset's metadata: bump it when a recipe changes its numbers."""

Policy = Callable[[np.ndarray], np.ndarray]

DATASET_KINDS: dict[str, str] = {
    "random": "uniform random actions",
    "medium": "SAC snapshot at ~1/3 of the random-to-expert return gap, stochastic actions",
    "expert": "fully trained SAC policy, stochastic actions",
    "medium-replay": "SAC's replay buffer up to the medium snapshot",
    "medium-expert": "medium then expert, concatenated",
    "conservative": "medium policy's deterministic action + small Gaussian noise (NeoRL-2-style)",
}


@dataclass(frozen=True)
class Budget:
    """How much compute one env's datasets get; every field can be overridden."""

    agent_steps: int
    """Env steps (= gradient steps: SAC updates once per step) of the SAC agent's training."""
    learning_starts: int
    """Env steps of uniform random actions before SAC learns (part of medium-replay)."""
    size: int
    """Transitions in each rolled-out dataset (random, medium, expert, conservative)."""
    snapshot_every: int
    """Env steps between policy snapshots, each evaluated to find the medium one."""
    snapshot_episodes: int
    """Episodes per snapshot evaluation."""
    reference_episodes: int
    """Episodes behind each reference score (random and expert)."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UserError(f"dataset budget: '{f.name}' must be a positive integer, got "
                                f"{value!r}")
        if self.learning_starts >= self.agent_steps:
            raise UserError(f"dataset budget: 'learning_starts' ({self.learning_starts}) must be "
                            f"below 'agent_steps' ({self.agent_steps}); lower it or train longer")
        if self.snapshot_every > self.agent_steps:
            raise UserError(f"dataset budget: 'snapshot_every' ({self.snapshot_every}) exceeds "
                            f"'agent_steps' ({self.agent_steps}); no snapshot would be taken")

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    def agent_part(self) -> dict[str, int]:
        """The fields the trained agent depends on (``size`` is not one: agents are shared)."""
        return {k: v for k, v in self.to_dict().items() if k != "size"}


@dataclass(frozen=True)
class EnvRecipe:
    """One env of the factory: its id, names, default budget and SAC settings (with source)."""

    name: str
    env_id: str
    aliases: tuple[str, ...]
    budget: Budget
    sac: dict[str, Any]
    """SACConfig fields besides env_id, seed, total_steps, learning_starts and buffer_size."""
    sac_source: str


# Budgets fit a 2-core machine: SAC runs ~60 gradient steps/s on one thread here, so
# 200k agent steps are about an hour. Rolling out 100k transitions takes a minute or two.
DATASET_ENVS: dict[str, EnvRecipe] = {
    "pendulum": EnvRecipe(
        name="pendulum", env_id="Pendulum-v1", aliases=(),
        budget=Budget(agent_steps=20_000, learning_starts=100, size=50_000,
                      snapshot_every=1_000, snapshot_episodes=10, reference_episodes=50),
        sac={"learning_rate": 1e-3},
        sac_source="rl-baselines3-zoo hyperparams/sac.yml, Pendulum-v1 (20k steps, lr 1e-3)"),
    "idp": EnvRecipe(
        name="idp", env_id="InvertedDoublePendulum-v5", aliases=("inverted-double-pendulum",),
        budget=Budget(agent_steps=50_000, learning_starts=1_000, size=100_000,
                      snapshot_every=1_000, snapshot_episodes=10, reference_episodes=50),
        sac={},
        sac_source="SB3's SAC defaults; learning_starts 1000 is ours (short episodes early on)"),
    "halfcheetah": EnvRecipe(
        name="halfcheetah", env_id="HalfCheetah-v5", aliases=("half-cheetah", "cheetah"),
        budget=Budget(agent_steps=200_000, learning_starts=10_000, size=100_000,
                      snapshot_every=5_000, snapshot_episodes=10, reference_episodes=50),
        sac={},
        sac_source="rl-baselines3-zoo hyperparams/sac.yml, MuJoCo defaults (learning_starts "
                   "10000; 1M steps there, 200k here)"),
    "hopper": EnvRecipe(
        name="hopper", env_id="Hopper-v5", aliases=(),
        budget=Budget(agent_steps=200_000, learning_starts=10_000, size=100_000,
                      snapshot_every=5_000, snapshot_episodes=10, reference_episodes=50),
        sac={},
        sac_source="rl-baselines3-zoo hyperparams/sac.yml, MuJoCo defaults (learning_starts "
                   "10000; 1M steps there, 200k here)"),
}

_ALIASES = {alias: r.name for r in DATASET_ENVS.values() for alias in (r.name, *r.aliases)}


def dataset_names() -> list[str]:
    """Every canonical ``ENV-KIND`` name."""
    return [f"{env}-{kind}" for env in DATASET_ENVS for kind in DATASET_KINDS]


def parse_name(name: str) -> tuple[EnvRecipe, str]:
    """``"hopper-medium"`` -> (hopper's recipe, ``"medium"``); a bad name is a ``UserError``
    naming the unknown env or kind with the nearest valid one."""
    text = name.strip().lower()
    for alias in sorted(_ALIASES, key=len, reverse=True):  # "inverted-double-pendulum" first
        if text.startswith(alias + "-"):
            kind = text[len(alias) + 1:]
            if kind in DATASET_KINDS:
                return DATASET_ENVS[_ALIASES[alias]], kind
            hint = did_you_mean(kind, DATASET_KINDS) or f"; kinds: {', '.join(DATASET_KINDS)}"
            raise UserError(f"unknown dataset kind '{kind}' in '{name}'{hint}{_MAKE_HINT}")
    for kind in sorted(DATASET_KINDS, key=len, reverse=True):  # "hoper-medium-replay"
        if text.endswith("-" + kind) and len(text) > len(kind) + 1:
            env = text[: -len(kind) - 1]
            hint = did_you_mean(env, _ALIASES) or f"; envs: {', '.join(DATASET_ENVS)}"
            raise UserError(f"unknown dataset env '{env}' in '{name}'{hint}{_MAKE_HINT}")
    hint = did_you_mean(name, dataset_names()) or (
        f"; names are ENV-KIND with ENV in {', '.join(DATASET_ENVS)} and KIND in "
        f"{', '.join(DATASET_KINDS)}")
    raise UserError(f"unknown dataset '{name}'{hint}{_MAKE_HINT}")


_MAKE_HINT = (" (`rlworks data ls` lists envs, kinds and built datasets; `rlworks data make NAME` "
              "builds one)")


def make_budget(recipe: EnvRecipe, overrides: dict[str, Any] | None) -> Budget:
    """The env's default budget with ``overrides`` applied (unknown keys get did-you-mean)."""
    if not overrides:
        return recipe.budget
    from rlworks.core.config import config_from_dict

    return config_from_dict(Budget, dict(overrides), source="dataset budget",
                            base=recipe.budget)


def dataset_id(recipe: EnvRecipe, kind: str, seed: int, budget: Budget) -> str:
    """The cache name: ``hopper-medium`` at seed 0 and the default budget; otherwise with
    ``-s<seed>`` and, for a custom budget, ``-b<8 hex digits of the budget>``."""
    import hashlib

    name = f"{recipe.name}-{kind}"
    if seed == 0 and budget == recipe.budget:
        return name
    name += f"-s{seed}"
    if budget != recipe.budget:
        blob = json.dumps(budget.to_dict(), sort_keys=True).encode()
        name += "-b" + hashlib.sha256(blob).hexdigest()[:8]
    return name


# ---------------------------------------------------------------------------------- the agent
class Agent:
    """A trained SAC run on disk: ``agent.json`` plus the expert and medium checkpoints."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.record: dict[str, Any] = json.loads((directory / "agent.json").read_text())

    @property
    def reference_scores(self) -> dict[str, float]:
        return dict(self.record["reference_scores"])

    def policy(self, which: str) -> Any:
        """A SAC learner with the ``which`` ("medium" or "expert") actor loaded; close it."""
        from rlworks.algos.online.configs import SACConfig
        from rlworks.algos.online.sac import SAC
        from rlworks.core.config import config_from_dict
        from rlworks.track.checkpoint import latest_checkpoint, load_checkpoint

        cfg = config_from_dict(SACConfig, self.record["config"], source=str(self.dir))
        learner = SAC(cfg)
        path = latest_checkpoint(self.dir / which)
        if path is None:
            learner.close()
            raise UserError(f"agent cache '{self.dir}' lacks its {which} checkpoint; delete the "
                            "directory and rerun `rlworks data make`")
        learner.actor.load_state_dict(load_checkpoint(path)[1]["actor"])
        return learner

    def replay(self) -> dict[str, np.ndarray]:
        """The replay buffer's transitions up to the medium snapshot (env-scaled actions)."""
        from rlworks.track.checkpoint import latest_checkpoint, load_checkpoint

        path = latest_checkpoint(self.dir / "medium")
        assert path is not None
        return dict(load_checkpoint(path)[1]["replay"])


def sac_config(recipe: EnvRecipe, seed: int, b: Budget) -> Any:
    """The SACConfig of ``recipe``'s agent: one env, a buffer that holds the whole run."""
    from rlworks.algos.online.configs import SACConfig

    return SACConfig(env_id=recipe.env_id, seed=seed, total_steps=b.agent_steps, num_envs=1,
                     learning_starts=b.learning_starts, buffer_size=b.agent_steps,
                     torch_threads=1, **recipe.sac)


def train_agent(cfg: Any, b: Budget, out: Path, progress: bool | None,
                recipe: EnvRecipe) -> None:
    """Train SAC with ``cfg`` and write the agent directory ``out``:

    1. SAC (one env, a buffer as large as the run, so nothing is overwritten) trains for
       ``agent_steps``. Every ``snapshot_every`` steps its actor is copied and evaluated for
       ``snapshot_episodes`` episodes with stochastic actions, the way the datasets act.
    2. Reference scores: the uniform random policy and the final (expert) policy, each over
       ``reference_episodes`` episodes, stochastic for the expert.
    3. Medium: :func:`pick_medium`. The replay buffer up to that snapshot's step is
       medium-replay.
    4. ``expert/`` and ``medium/`` checkpoints (the medium one also holds that replay) and
       ``agent.json`` (config, budget, snapshot returns, reference scores).
    """
    import copy

    from rlworks.algos.online.sac import SAC
    from rlworks.core.config import config_to_dict
    from rlworks.exec.train import Progress
    from rlworks.track.checkpoint import save_checkpoint

    t0 = time.perf_counter()
    learner = SAC(cfg)
    try:
        bar = Progress(cfg.total_steps, 0, progress, f"sac {cfg.env_id} seed {cfg.seed}")
        curve: list[tuple[int, float]] = []
        actors: list[Any] = []
        while learner.global_step < cfg.total_steps:
            learner.iterate()
            step = learner.global_step
            if step % b.snapshot_every == 0 or step >= cfg.total_steps:
                seed = derive_seed(cfg.seed, "dataset", "snapshot", step)
                curve.append((step, policy_return(learner, cfg.env_id, b.snapshot_episodes,
                                                  seed)))
                actors.append(copy.deepcopy(learner.actor.state_dict()))
            if step % 100 == 0 or step >= cfg.total_steps:
                sps = step / max(time.perf_counter() - t0, 1e-9)
                last = f"{curve[-1][1]:.1f}" if curve else "-"
                bar.update(step, f"{sps:,.0f} steps/s, snapshot return {last}")
        bar.close()

        space = learner.envs.single_action_space
        rng = make_rng(cfg.seed, "dataset", "reference", "random")
        random_ref = mean_return(uniform_policy(space, rng), cfg.env_id, b.reference_episodes,
                                 derive_seed(cfg.seed, "dataset", "reference", "random"))
        expert_ref = policy_return(learner, cfg.env_id, b.reference_episodes,
                                   derive_seed(cfg.seed, "dataset", "reference", "expert"))
        m = pick_medium(curve, random_ref, expert_ref)
        medium_step = curve[m][0]
        save_checkpoint(out / "expert", learner.global_step, {"actor": actors[-1]})
        save_checkpoint(out / "medium", medium_step,
                        {"actor": actors[m], "replay": replay_arrays(learner, medium_step)})
        record = {
            "env_id": cfg.env_id, "seed": cfg.seed, "algo": "sac",
            "config": config_to_dict(cfg), "config_source": recipe.sac_source,
            "budget": b.agent_part(), "recipe": RECIPE_VERSION,
            "reference_scores": {"random": random_ref, "expert": expert_ref},
            "medium_fraction": MEDIUM_FRACTION,
            "medium_target": random_ref + MEDIUM_FRACTION * (expert_ref - random_ref),
            "medium_step": medium_step, "medium_return": curve[m][1],
            "expert_step": learner.global_step, "snapshot_returns": [list(p) for p in curve],
            "train_time_s": round(time.perf_counter() - t0, 1),
        }
        (out / "agent.json").write_text(json.dumps(record, indent=1))
    finally:
        learner.close()


def pick_medium(curve: list[tuple[int, float]], random_ref: float, expert_ref: float) -> int:
    """Index of the medium snapshot in ``curve`` ((step, return) rows, the last one final).

    Candidates are the snapshots before the final one (the final one only if it is alone),
    up to and including the first that reaches the target; the closest to the target wins,
    the earliest on ties. D4RL early-stops SAC the same way.
    """
    target = random_ref + MEDIUM_FRACTION * (expert_ref - random_ref)
    candidates = curve[:-1] or curve
    first = next((i for i, (_, r) in enumerate(candidates) if r >= target), len(candidates) - 1)
    return min(range(first + 1), key=lambda i: (abs(candidates[i][1] - target), i))


def replay_arrays(learner: Any, rows: int) -> dict[str, np.ndarray]:
    """The first ``rows`` vector steps of the (one-env) replay buffer as dataset arrays;
    autoreset rows are dropped, the last transition is truncated if its episode goes on."""
    buf = learner.buffer
    valid = buf.valid[:rows, 0]
    out = {
        "observations": buf.obs[:rows, 0][valid],
        "actions": learner.scale.to_env(buf.actions[:rows, 0][valid]).astype(np.float32),
        "rewards": buf.rewards[:rows, 0][valid],
        "terminations": buf.terminations[:rows, 0][valid],
        "truncations": buf.truncations[:rows, 0][valid] & ~buf.terminations[:rows, 0][valid],
        "next_observations": buf.next_obs[:rows, 0][valid],
    }
    out = {k: np.ascontiguousarray(v) for k, v in out.items()}
    if len(out["rewards"]) and not out["terminations"][-1]:
        out["truncations"][-1] = True  # cut at the medium snapshot
    return out


def policy_return(learner: Any, env_id: str, episodes: int, seed: int) -> float:
    """Mean return of the learner's stochastic policy; its acting generator is reseeded."""
    learner.act_gen.manual_seed(seed)
    return mean_return(lambda obs: learner.act(obs, deterministic=False), env_id, episodes,
                       seed)


def mean_return(policy: Policy, env_id: str, episodes: int, seed: int) -> float:
    """Mean undiscounted return of ``policy`` over ``episodes`` episodes (rlworks.eval)."""
    from rlworks.eval.evaluate import evaluate

    return float(evaluate(policy, env_id, episodes, seed=seed).mean())


def uniform_policy(space: Any, rng: np.random.Generator) -> Policy:
    """Uniform actions over the Box ``space``, drawn from ``rng``: (N, *obs) -> (N, *act)."""
    low, high = space.low.astype(np.float32), space.high.astype(np.float32)

    def act(obs: np.ndarray) -> np.ndarray:
        return rng.uniform(low, high, (len(obs), *low.shape)).astype(np.float32)

    return act


def rollout(env_id: str, policy: Policy, size: int, seed: int, progress: bool | None,
            desc: str) -> dict[str, np.ndarray]:
    """``size`` transitions of ``policy`` (env-scaled actions) on one env, episodes in order.

    Gymnasium 1.x next-step autoreset: the step after an episode ends resets the env and is not
    a transition, so it is skipped. The last transition is flagged truncated when its episode
    was cut by ``size`` (D4RL's timeouts).
    """
    from rlworks.envs import make_vec
    from rlworks.exec.train import Progress

    envs = make_vec(env_id, 1, seed=seed)
    try:
        obs_shape = envs.single_observation_space.shape
        act_shape = envs.single_action_space.shape
        out = {
            "observations": np.zeros((size, *obs_shape), np.float32),
            "actions": np.zeros((size, *act_shape), np.float32),
            "rewards": np.zeros(size, np.float32),
            "terminations": np.zeros(size, bool),
            "truncations": np.zeros(size, bool),
            "next_observations": np.zeros((size, *obs_shape), np.float32),
        }
        bar = Progress(size, 0, progress, desc)
        obs, _ = envs.reset()  # (1, *obs)
        idle = np.zeros((1, *act_shape), np.float32)  # the autoreset step ignores its action
        n, prev_done = 0, False
        while n < size:
            actions = idle if prev_done else policy(obs)
            next_obs, rewards, terms, truncs, _ = envs.step(actions)
            if not prev_done:
                out["observations"][n] = obs[0]
                out["actions"][n] = actions[0]
                out["rewards"][n] = rewards[0]
                out["terminations"][n] = terms[0]
                out["truncations"][n] = truncs[0] and not terms[0]
                out["next_observations"][n] = next_obs[0]
                n += 1
                if n % 1000 == 0 or n == size:
                    bar.update(n, "transitions")
            prev_done = bool(terms[0] or truncs[0])
            obs = next_obs
        bar.close()
    finally:
        envs.close()
    if not (out["terminations"][-1] or out["truncations"][-1]):
        out["truncations"][-1] = True  # the episode was cut by the dataset size
    return out
