"""Minari datasets, written and read through the ``minari`` package.

A Minari dataset is a directory ``<dir>/data/`` (``metadata.json`` + ``main_data.hdf5``) that
holds one group per episode. Mapping from the flat layout:

- episode ``[s, e)`` stores ``observations[s:e]`` plus ``next_observations[e - 1]`` (Minari
  keeps one more observation row than actions); reading gives ``observations = obs[:-1]`` and
  ``next_observations = obs[1:]``. A dataset whose ``next_observations[i]`` differs from
  ``observations[i + 1]`` inside an episode cannot be stored and is refused.
- infos: Minari keeps T + 1 rows per episode (the reset info first). The writer repeats the
  first step's info as the reset row; the reader drops the first row (or keeps all T if the
  file has exactly T). Only top-level array infos are read.
- spaces: taken from ``gymnasium.make(metadata["env_id"])`` when gymnasium knows the env and its
  spaces fit the arrays' shapes and dtypes; otherwise derived from the arrays: ``Discrete`` for
  integer scalar actions, else an unbounded ``Box`` (integer bounds for integer dtypes).
  Observations are stored raw (``jpeg_encoding=False``), so image data stays bit-identical.
- our metadata travels as the JSON string ``rlworks_metadata``; reference scores also fill
  Minari's ``ref_min_score`` / ``ref_max_score``.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rlworks.core.errors import UserError
from rlworks.data.dataset import Dataset, _check_continuity, canonical_json

METADATA_KEY = "rlworks_metadata"


def is_minari_dir(path: str | Path) -> bool:
    return (Path(path) / "data" / "metadata.json").is_file()


def save_minari(ds: Dataset, path: str | Path, dataset_id: str | None = None) -> Path:
    """Write ``ds`` as the Minari dataset directory ``path`` (which must not exist yet)."""
    from minari import __version__ as minari_version
    from minari.data_collector import EpisodeBuffer
    from minari.dataset.minari_storage import MinariStorage

    path = Path(path)
    if path.exists():
        raise UserError(
            f"Minari dataset directory '{path}' already exists; remove it or choose another path"
        )
    _check_continuity(ds)  # Minari cannot hold a next observation that is not the next row
    obs_space, act_space = _spaces(ds)
    buffers = []
    for ep, (s, e) in enumerate(ds.episodes().tolist()):
        infos = {k: np.concatenate([v[s : s + 1], v[s:e]]) for k, v in ds.infos.items()}
        buffers.append(
            EpisodeBuffer(
                id=ep,
                observations=np.concatenate(
                    [ds.observations[s:e], ds.next_observations[e - 1 : e]]
                ),
                actions=np.asarray(ds.actions[s:e]),
                rewards=np.asarray(ds.rewards[s:e]),
                terminations=np.asarray(ds.terminations[s:e]),
                truncations=np.asarray(ds.truncations[s:e]),
                infos=infos or None,
            )
        )
    meta: dict[str, Any] = {
        "dataset_id": dataset_id or path.name,
        "minari_version": minari_version,
        METADATA_KEY: canonical_json(ds.metadata),
    }
    refs = ds.metadata.get("reference_scores") or {}
    if "random" in refs and "expert" in refs:
        meta["ref_min_score"], meta["ref_max_score"] = float(refs["random"]), float(refs["expert"])
    (path / "data").mkdir(parents=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        storage = MinariStorage.new(
            path / "data",
            observation_space=obs_space,
            action_space=act_space,
            env_spec=None,
            jpeg_encoding=False,
        )
        storage.update_metadata(meta)
        storage.update_episodes(buffers)
    return path


def load_minari(path: str | Path, check_continuity: bool = True) -> Dataset:
    """Read the Minari dataset directory ``path`` (the one holding ``data/``)."""
    from minari import MinariDataset

    path = Path(path)
    if not is_minari_dir(path):
        raise UserError(f"'{path}' is not a Minari dataset directory (no data/metadata.json)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _to_dataset(MinariDataset(path / "data"), str(path), check_continuity)
    except UserError:
        raise
    except Exception as err:  # minari and h5py raise many kinds on a damaged directory
        raise UserError(
            f"Minari dataset '{path}' cannot be read ({type(err).__name__}: {err}); it is damaged"
        ) from None


def load_minari_id(
    dataset_id: str, root: str | Path | None = None, check_continuity: bool = True
) -> Dataset:
    """Read a local dataset by id via ``minari.load_dataset`` (``root`` or MINARI_DATASETS_PATH)."""
    import minari

    with _datasets_root(root):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mds = minari.load_dataset(dataset_id, download=False)
        except FileNotFoundError:
            where = root or os.environ.get("MINARI_DATASETS_PATH", "~/.minari/datasets")
            raise UserError(
                f"no local Minari dataset '{dataset_id}' under '{where}'; nothing is downloaded"
            ) from None
        except Exception as err:
            raise UserError(
                f"Minari dataset '{dataset_id}' cannot be read ({type(err).__name__}: {err})"
            ) from None
        return _to_dataset(mds, f"minari:{dataset_id}", check_continuity)


@contextlib.contextmanager
def _datasets_root(root: str | Path | None) -> Iterator[None]:
    if root is None:
        yield
        return
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


def _to_dataset(mds: Any, source: str, check_continuity: bool) -> Dataset:
    parts: dict[str, list[np.ndarray]] = {
        k: [] for k in ("obs", "nxt", "act", "rew", "term", "trunc")
    }
    infos: dict[str, list[np.ndarray]] = {}
    for ep in mds.iterate_episodes():
        obs = ep.observations
        if not isinstance(obs, np.ndarray) or not isinstance(ep.actions, np.ndarray):
            raise UserError(
                f"Minari dataset '{source}': episode {ep.id} has dict/tuple observations or "
                "actions; only arrays are supported"
            )
        t = len(ep.rewards)
        if len(obs) != t + 1 or len(ep.actions) != t:
            raise UserError(
                f"Minari dataset '{source}': episode {ep.id} has {len(obs)} observations for "
                f"{t} steps; expected {t + 1}"
            )
        parts["obs"].append(obs[:-1])
        parts["nxt"].append(obs[1:])
        parts["act"].append(ep.actions)
        parts["rew"].append(ep.rewards)
        parts["term"].append(ep.terminations)
        parts["trunc"].append(ep.truncations)
        for key, value in (ep.infos or {}).items():
            if isinstance(value, np.ndarray) and len(value) in (t, t + 1):
                infos.setdefault(key, []).append(value[len(value) - t :])
    if not parts["obs"]:
        raise UserError(f"Minari dataset '{source}' holds no episodes")
    raw = mds.storage.metadata.get(METADATA_KEY)
    meta = json.loads(raw) if isinstance(raw, str) else {}
    if not isinstance(meta, dict):
        raise UserError(f"Minari dataset '{source}': '{METADATA_KEY}' is not a JSON object")
    n_eps = len(parts["obs"])
    return Dataset(
        observations=np.concatenate(parts["obs"]),
        actions=np.concatenate(parts["act"]),
        rewards=np.concatenate(parts["rew"]),
        terminations=np.concatenate(parts["term"]).astype(bool, copy=False),
        truncations=np.concatenate(parts["trunc"]).astype(bool, copy=False),
        next_observations=np.concatenate(parts["nxt"]),
        infos={k: np.concatenate(v) for k, v in infos.items() if len(v) == n_eps},
        metadata=meta,
    ).validate(check_continuity=check_continuity)


def _spaces(ds: Dataset) -> tuple[Any, Any]:
    env_id = ds.metadata.get("env_id")
    if isinstance(env_id, str):
        spaces = _env_spaces(env_id)
        if spaces and _fits(spaces[0], ds.observations) and _fits(spaces[1], ds.actions):
            return spaces
    return _space_for(ds.observations), _space_for(ds.actions)


def _env_spaces(env_id: str) -> tuple[Any, Any] | None:
    import gymnasium as gym

    if env_id not in gym.registry:
        return None
    try:
        env = gym.make(env_id)
    except Exception:  # e.g. mujoco not installed: fall back to spaces from the arrays
        return None
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


def _fits(space: Any, a: np.ndarray) -> bool:
    return space.shape == a.shape[1:] and np.dtype(space.dtype) == a.dtype


def _space_for(a: np.ndarray) -> Any:
    from gymnasium import spaces

    shape = a.shape[1:]
    if a.dtype.kind in "iu" and shape == () and a.dtype == np.int64 and len(a) and a.min() >= 0:
        return spaces.Discrete(int(a.max()) + 1)
    if a.dtype.kind == "b":
        return spaces.MultiBinary(list(shape) or 1)
    if a.dtype.kind in "iu":
        info = np.iinfo(a.dtype)
        return spaces.Box(info.min, info.max, shape, a.dtype.type)
    return spaces.Box(-np.inf, np.inf, shape, a.dtype.type)
