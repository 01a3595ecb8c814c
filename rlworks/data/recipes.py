"""The dataset recipes: which envs, which kinds, at which budgets, how names map to them and
how the medium snapshot is picked. Pure descriptions: importing it loads no torch (the CLI reads
the tables), and it imports nothing above ``data/``. Training the SAC agent and rolling the
policies out is the ``exec`` layer's work (``exec/datasets.py``); the cache is
:mod:`rlworks.data.factory`.

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
from dataclasses import dataclass
from typing import Any

from rlworks.core.errors import UserError, did_you_mean

MEDIUM_FRACTION = 1.0 / 3.0
"""Medium target: ``random + MEDIUM_FRACTION * (expert - random)`` in return (D4RL's 1/3)."""
CONSERVATIVE_NOISE = 0.1
"""Std of the Gaussian noise added to the conservative controller's action, as a fraction of
half the action range (so 0.1 on a [-1, 1] box)."""

RECIPE_VERSION = "rlworks-dataset-factory/1"
"""Part of every agent key and dataset's metadata: bump it when a recipe changes its numbers."""

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
