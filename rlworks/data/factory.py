"""The dataset factory: D4RL-style datasets built with this project's own SAC, cached on disk.

``make_dataset("hopper-medium")`` trains (once per env, seed and budget) a SAC agent, picks
its medium snapshot, rolls the policies out and writes ``hopper-medium.hdf5`` into the cache;
``resolve_dataset("hopper-medium")`` loads it again. Recipes, kinds and budgets live in
:mod:`rlworks.data.recipes`; ``docs/offline/datasets-factory.md`` has the table.

The SAC agent behind an env's datasets is trained once per env, seed and budget
(:func:`rlworks.data.recipes.train_agent` says how), saved under
``CACHE/agents/<env>-s<seed>-<key>/`` with :mod:`rlworks.track.checkpoint` (safetensors + JSON,
never pickle) and reused by every kind; ``--force`` rebuilds a dataset but reuses the agent
(its training is deterministic). Delete that directory to retrain.

Determinism: every random draw comes from a stream derived from the seed (``make_rng``,
``derive_seed``), torch runs on one thread, and the metadata holds no wall-clock values, so
the same name, seed and budget give the same ``content_hash`` on the same machine and
package versions. An interrupted agent training starts over (gymnasium's MuJoCo envs cannot
save their state, so resuming would not be bit-identical).

Cache safety: a dataset is written under a temporary name, read back and checked, then
renamed over the cached file; the index (``index.json``) is rewritten the same way under a
file lock. A failed or interrupted ``make`` leaves every cached file as it was.

This module sits above ``algos/`` and ``exec/`` (it trains agents); it imports them inside
functions, so importing it, parsing names and answering bad input never load torch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rlworks.core.errors import UserError, did_you_mean, unknown
from rlworks.core.seeding import derive_seed, make_rng
from rlworks.data.dataset import Dataset, canonical_json
from rlworks.data.recipes import (
    CONSERVATIVE_NOISE,
    DATASET_ENVS,
    DATASET_KINDS,
    MEDIUM_FRACTION,
    RECIPE_VERSION,
    Agent,
    Budget,
    EnvRecipe,
    dataset_id,
    make_budget,
    parse_name,
    rollout,
    sac_config,
    train_agent,
    uniform_policy,
)

__all__ = [
    "DATASET_ENVS",
    "DATASET_KINDS",
    "cache_root",
    "list_datasets",
    "make_dataset",
    "resolve_dataset",
]

CACHE_ENV = "RLWORKS_DATA"
DEFAULT_CACHE = "rlworks-data"
INDEX = "index.json"
AGENTS = "agents"
CACHE_FORMATS = ("hdf5", "npz")


# ---------------------------------------------------------------------------------- public API
def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """``cache_dir``, else ``$RLWORKS_DATA``, else ``./rlworks-data``."""
    return Path(cache_dir or os.environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser()


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
    root = _writable_root(cache_root(cache_dir))
    ds_id = dataset_id(recipe, kind, seed, b)
    entry = _read_index(root).get(ds_id)
    if entry is not None and not force and (root / entry["file"]).is_file():
        _say(progress, f"{ds_id}: cached at {root / entry['file']} (use --force to rebuild)")
        return root / entry["file"]

    agent = _agent(recipe, seed, b, root, progress)
    cached = None if force else root  # medium-expert reads its parts from the cache if there
    ds = _build(kind, recipe, seed, b, agent, ds_id, progress, cached)
    return _store(ds, root, ds_id, format)


def resolve_dataset(name_or_path: str, cache_dir: str | os.PathLike[str] | None = None
                    ) -> Dataset:
    """A dataset from a cached name (``hopper-medium``, or an id ``rlworks data ls`` shows) or
    from a file or Minari directory path; an unknown or unbuilt name is a ``UserError`` with
    the nearest name and the ``rlworks data make NAME`` command."""
    from rlworks.data.formats import load_dataset

    text = str(name_or_path)
    path = Path(text).expanduser()
    root = cache_root(cache_dir)
    entries = _read_index(root)
    key = text.strip().lower()
    if path.exists() and not (key in entries and os.sep not in text):  # a cached id wins
        return load_dataset(path)
    if key not in entries:
        try:
            recipe, kind = parse_name(text)
        except UserError:
            if path.suffix.lower() in (".hdf5", ".h5", ".npz") or os.sep in text:
                raise UserError(f"dataset file '{text}' does not exist; check the path") from None
            close = did_you_mean(key, entries)
            if close and re.search(r"-s\d+(-b[0-9a-f]+)?$", key):  # a cached id with a typo
                raise UserError(f"unknown dataset '{text}'{close} (`rlworks data ls` lists the "
                                "built ones)") from None
            raise
        key = f"{recipe.name}-{kind}"
    if key not in entries or not (root / entries[key]["file"]).is_file():
        raise UserError(f"dataset '{text}' is not built in the cache '{root}'; build it with "
                        f"`rlworks data make {key}` (or pass --cache-dir / set ${CACHE_ENV})")
    return load_dataset(root / entries[key]["file"])


def list_datasets(cache_dir: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """The cached datasets' index entries (id, name, env_id, kind, seed, budget, file, format,
    content_hash, transitions, episodes, return_mean, ...) with ``path``, sorted by id."""
    root = cache_root(cache_dir)
    out = []
    for ds_id, entry in sorted(_read_index(root).items()):
        path = root / entry["file"]
        if path.exists():
            out.append({**entry, "id": ds_id, "path": str(path)})
    return out


# ---------------------------------------------------------------------------------- the agent
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
    with _locked(agents / f".{key}.lock"):
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
    from rlworks.data.dataset import FIELDS
    from rlworks.data.formats import load_dataset

    if root is None:
        return None
    entry = _read_index(root).get(ds_id)
    if entry is None or not (root / entry["file"]).is_file():
        return None
    ds = load_dataset(root / entry["file"])
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
        "source": "rlworks.data.factory: a D4RL-style recipe run with rlworks' own SAC; not the "
                  "D4RL files, and its scores are not comparable with published D4RL tables",
        "reference_scores": agent.reference_scores,
        "generator": generator,
    }


# ---------------------------------------------------------------------------------- the cache
def _store(ds: Dataset, root: Path, ds_id: str, fmt: str) -> Path:
    """Write ``ds`` under a temporary name, read it back, rename it into place, index it."""
    from rlworks.data.formats import load_dataset, save_dataset
    from rlworks.track.provenance import git_revision

    final = root / f"{ds_id}.{fmt}"
    tmp = root / f".{ds_id}.{os.getpid()}.tmp.{fmt}"
    try:
        save_dataset(ds, tmp, format=fmt)
        if load_dataset(tmp).content_hash() != ds.content_hash():
            raise RuntimeError(f"dataset '{ds_id}' did not read back identically from {tmp}")
        with _locked(root / ".index.lock"):
            index = _read_index(root)
            old = index.get(ds_id)
            os.replace(tmp, final)
            returns = ds.episode_returns()
            index[ds_id] = {
                "name": ds.metadata["name"], "env_id": ds.metadata["env_id"],
                "kind": ds.metadata["kind"], "seed": ds.metadata["generator"]["seed"],
                "budget": ds.metadata["generator"]["budget"], "file": final.name,
                "format": fmt, "content_hash": ds.content_hash(), "transitions": len(ds),
                "episodes": ds.num_episodes, "return_mean": float(returns.mean()),
                "reference_scores": ds.metadata["reference_scores"],
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "git_rev": git_revision(os.getcwd()),
            }
            _write_index(root, index)
            if old is not None and old["file"] != final.name:  # rebuilt in the other format
                (root / old["file"]).unlink(missing_ok=True)
    finally:
        tmp.unlink(missing_ok=True)
        tmp.with_name(tmp.name + ".partial").unlink(missing_ok=True)
    return final


def _read_index(root: Path) -> dict[str, dict[str, Any]]:
    path = root / INDEX
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text())
        datasets = doc["datasets"]
        if not isinstance(datasets, dict):
            raise TypeError("'datasets' is not an object")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UserError(f"dataset index '{path}' is damaged ({err}); move it away and rebuild "
                        "with `rlworks data make NAME` (cached agents are reused)") from None
    return datasets


def _write_index(root: Path, datasets: dict[str, dict[str, Any]]) -> None:
    path = root / INDEX
    tmp = path.with_name(f".{INDEX}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"version": 1, "datasets": datasets}, indent=1, sort_keys=True))
    os.replace(tmp, path)


def _writable_root(root: Path) -> Path:
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise UserError(f"dataset cache '{root}' is not writable ({err.strerror or err}); pass "
                        f"--cache-dir DIR or set ${CACHE_ENV} to a writable directory") from None
    return root


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (no-op where fcntl does not exist)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _say(progress: bool | None, text: str) -> None:
    if progress is not False and os.environ.get("RLWORKS_QUIET") != "1":
        print(text, file=sys.stderr, flush=True)

