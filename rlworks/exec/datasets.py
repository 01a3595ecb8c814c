"""Making datasets: D4RL-style datasets built with this project's own SAC, written into the
dataset cache.

``make_dataset("hopper-medium")`` trains (once per env, seed and budget) a SAC agent, picks
its medium snapshot, rolls the policies out and writes ``hopper-medium.hdf5`` into the cache;
:func:`rlworks.data.factory.resolve_dataset` loads it again. Recipes, kinds and budgets live in
:mod:`rlworks.data.recipes`, the cache and its index in :mod:`rlworks.data.factory`;
``docs/offline/datasets-factory.md`` has the table.

This module sits in ``exec/`` because it runs things: it trains SAC (``algos/``), evaluates
policies (``eval/``), checkpoints agents and records provenance (``track/``) and shows
progress with the run driver's bar (``exec/train.py``). ``data/`` describes and stores
datasets and imports none of these.

The SAC agent behind an env's datasets is trained once per env, seed and budget
(:func:`train_agent` says how), saved under ``CACHE/agents/<env>-s<seed>-<key>/`` with
:mod:`rlworks.track.checkpoint` (safetensors + JSON, never pickle) and reused by every kind;
``--force`` rebuilds a dataset but reuses the agent (its training is deterministic). Delete
that directory to retrain.

Determinism: every random draw comes from a stream derived from the seed (``make_rng``,
``derive_seed``), torch runs on one thread, and the metadata holds no wall-clock values, so
the same name, seed and budget give the same ``content_hash`` on the same machine and
package versions. An interrupted agent training starts over (gymnasium's MuJoCo envs cannot
save their state, so resuming would not be bit-identical).

Cache safety: an agent is trained into a temporary directory and renamed into place; a
dataset is written by :func:`rlworks.data.factory.store_dataset` (temporary name, read back,
renamed, index rewritten under a lock). A failed or interrupted ``make`` leaves every cached
file as it was.

Everything above ``data/`` is imported inside functions, so importing this module, parsing
names and answering bad input never load torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from rlworks.core.errors import UserError, unknown
from rlworks.core.seeding import derive_seed, make_rng
from rlworks.data.dataset import FIELDS, Dataset, canonical_json
from rlworks.data.factory import (
    CACHE_FORMATS,
    cache_root,
    cached_file,
    file_lock,
    load_cached,
    store_dataset,
    writable_root,
)
from rlworks.data.recipes import (
    CONSERVATIVE_NOISE,
    DATASET_KINDS,
    MEDIUM_FRACTION,
    RECIPE_VERSION,
    Budget,
    EnvRecipe,
    dataset_id,
    make_budget,
    parse_name,
    pick_medium,
)

__all__ = ["make_dataset"]

AGENTS = "agents"
"""The cache subdirectory of the trained agents."""

Policy = Callable[[np.ndarray], np.ndarray]


# ---------------------------------------------------------------------------------- public API
def make_dataset(name: str, *, seed: int = 0, budget: dict[str, Any] | None = None,
                 cache_dir: str | os.PathLike[str] | None = None, force: bool = False,
                 progress: bool | None = None, format: str = "hdf5") -> Path:
    """Build dataset ``name`` (``ENV-KIND``) into the cache and return its file.

    ``budget`` overrides fields of the env's :class:`~rlworks.data.recipes.Budget`. A dataset
    already cached under the same name, seed and budget is reused unless ``force``; the SAC
    agent behind it is always reused when cached (it is deterministic). ``progress``: None
    shows a bar on a terminal, False shows nothing.
    """
    recipe, kind = parse_name(name)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise UserError(f"dataset seed must be a non-negative integer, got {seed!r}")
    b = make_budget(recipe, budget)
    if format not in CACHE_FORMATS:
        raise unknown("dataset cache format", format, CACHE_FORMATS)
    root = writable_root(cache_root(cache_dir))
    ds_id = dataset_id(recipe, kind, seed, b)
    path = cached_file(root, ds_id)
    if path is not None and not force:
        _say(progress, f"{ds_id}: cached at {path} (use --force to rebuild)")
        return path

    agent = _agent(recipe, seed, b, root, progress)
    cached = None if force else root  # medium-expert reads its parts from the cache if there
    ds = _build(kind, recipe, seed, b, agent, ds_id, progress, cached)
    return _store(ds, root, ds_id, format)


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


def _agent(recipe: EnvRecipe, seed: int, b: Budget, root: Path, progress: bool | None) -> Agent:
    """The cached agent for (env, seed, budget), trained first if there is none."""
    from rlworks.core.config import config_to_dict

    cfg = sac_config(recipe, seed, b)
    blob = canonical_json({"config": config_to_dict(cfg), "budget": b.agent_part(),
                           "medium_fraction": MEDIUM_FRACTION, "recipe": RECIPE_VERSION})
    key = f"{recipe.name}-s{seed}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"
    agents = root / AGENTS
    final = agents / key
    if (final / "agent.json").is_file():
        return Agent(final)
    agents.mkdir(parents=True, exist_ok=True)
    with file_lock(agents / f".{key}.lock"):
        if (final / "agent.json").is_file():  # another process trained it meanwhile
            return Agent(final)
        tmp = agents / f".{key}.partial-{os.getpid()}"
        _rmtree(tmp)
        try:
            _say(progress, f"training the SAC agent for {recipe.env_id} (seed {seed}, "
                           f"{b.agent_steps:,} steps), shared by every kind; cached in {final}")
            train_agent(cfg, b, tmp, progress, recipe)
            _rmtree(final)  # a leftover without agent.json
            os.replace(tmp, final)
        finally:
            _rmtree(tmp)
    return Agent(final)


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
    3. Medium: :func:`rlworks.data.recipes.pick_medium`. The replay buffer up to that
       snapshot's step is medium-replay.
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


# ---------------------------------------------------------------------------------- policies
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


# ---------------------------------------------------------------------------------- datasets
def _build(kind: str, recipe: EnvRecipe, seed: int, b: Budget, agent: Agent, ds_id: str,
           progress: bool | None, cached: Path | None = None) -> Dataset:
    """Roll out (or, for medium-replay, read) the arrays of ``kind`` and wrap them.

    medium-expert is the medium then the expert dataset of the same seed and budget, read from
    the cache ``cached`` where they are built there (the same arrays a rollout would give).
    """
    if kind == "medium-expert":
        parts = [_cached_arrays(cached, dataset_id(recipe, k, seed, b))
                 or _arrays(k, recipe, seed, b, agent, progress) for k in ("medium", "expert")]
        arrays = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    else:
        arrays = _arrays(kind, recipe, seed, b, agent, progress)
    meta = _metadata(kind, recipe, seed, b, agent, ds_id)
    return Dataset(**arrays, infos={}, metadata=meta).validate()


def _cached_arrays(root: Path | None, ds_id: str) -> dict[str, np.ndarray] | None:
    ds = None if root is None else load_cached(root, ds_id)
    if ds is None:
        return None
    return {name: np.array(getattr(ds, name)) for name in FIELDS}


def _arrays(kind: str, recipe: EnvRecipe, seed: int, b: Budget, agent: Agent,
            progress: bool | None) -> dict[str, np.ndarray]:
    if kind == "medium-replay":
        return agent.replay()
    env_seed = derive_seed(seed, "dataset", kind, "env")
    desc = f"{recipe.name}-{kind} rollout"
    if kind == "random":
        from rlworks.envs import make_vec

        envs = make_vec(recipe.env_id, 1, seed=env_seed)
        space = envs.single_action_space
        envs.close()
        policy = uniform_policy(space, make_rng(seed, "dataset", "random", "policy"))
        return rollout(recipe.env_id, policy, b.size, env_seed, progress, desc)
    learner = agent.policy("expert" if kind == "expert" else "medium")
    try:
        if kind == "conservative":
            rng = make_rng(seed, "dataset", "conservative", "noise")
            low, high = learner.scale.low, learner.scale.high
            std = CONSERVATIVE_NOISE * (high - low) / 2.0  # (A,)

            def policy(obs: np.ndarray) -> np.ndarray:
                mean = learner.act(obs, deterministic=True)  # (N, A)
                noise = rng.normal(0.0, 1.0, mean.shape) * std
                return np.clip(mean + noise, low, high).astype(np.float32)
        else:  # medium, expert: SAC's stochastic policy, as D4RL sampled it
            learner.act_gen.manual_seed(derive_seed(seed, "dataset", kind, "policy"))

            def policy(obs: np.ndarray) -> np.ndarray:
                return learner.act(obs, deterministic=False).astype(np.float32)

        return rollout(recipe.env_id, policy, b.size, env_seed, progress, desc)
    finally:
        learner.close()


def _metadata(kind: str, recipe: EnvRecipe, seed: int, b: Budget, agent: Agent,
              ds_id: str) -> dict[str, Any]:
    from rlworks.track.provenance import package_versions

    rec = agent.record
    generator: dict[str, Any] = {
        "recipe": RECIPE_VERSION, "seed": seed, "budget": b.to_dict(),
        "policy": DATASET_KINDS[kind],
        "agent": {k: rec[k] for k in ("algo", "config", "config_source", "medium_fraction",
                                      "medium_target", "medium_step", "medium_return",
                                      "expert_step", "snapshot_returns")},
        "reference_episodes": b.reference_episodes,
        "versions": package_versions(("numpy", "torch", "gymnasium", "mujoco", "rlworks")),
    }
    if kind == "conservative":
        generator["conservative_noise"] = CONSERVATIVE_NOISE
    return {
        "name": f"{recipe.name}-{kind}", "id": ds_id, "env_id": recipe.env_id, "kind": kind,
        # Unchanged since the factory lived in data/: it is part of the content hash.
        "source": "rlworks.data.factory: a D4RL-style recipe run with rlworks' own SAC; not the "
                  "D4RL files, and its scores are not comparable with published D4RL tables",
        "reference_scores": agent.reference_scores,
        "generator": generator,
    }


def _store(ds: Dataset, root: Path, ds_id: str, fmt: str) -> Path:
    """Write ``ds`` into the cache with the code revision that made it."""
    from rlworks.track.provenance import git_revision

    return store_dataset(ds, root, ds_id, fmt, {"git_rev": git_revision(os.getcwd())})


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _say(progress: bool | None, text: str) -> None:
    if progress is not False and os.environ.get("RLWORKS_QUIET") != "1":
        print(text, file=sys.stderr, flush=True)
