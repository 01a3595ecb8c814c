"""The dataset cache: where made datasets live, their index, and loading them by name.

``resolve_dataset("hopper-medium")`` loads a cached dataset (or any dataset file or Minari
directory); ``list_datasets()`` lists the cache; ``store_dataset`` writes a new one into it.
Recipes, kinds and budgets live in :mod:`rlworks.data.recipes`; ``docs/offline/datasets-factory.md``
has the table.

Making a dataset (training the SAC agent, rolling its policies out, evaluating them, recording
provenance) is the ``exec`` layer's work: ``make_dataset`` in ``exec/datasets.py``, which calls
:func:`store_dataset` here with the provenance it recorded. This module is data-level: it
imports nothing above ``data/`` and never loads torch.

Cache layout (``CACHE`` is ``--cache-dir``, else ``$RLWORKS_DATA``, else ``./rlworks-data``)::

    CACHE/index.json              id -> env, kind, seed, budget, file, hash, size, returns, ...
    CACHE/<id>.hdf5 | <id>.npz    the datasets
    CACHE/agents/...              the trained agents behind them (written by exec/datasets.py)

Cache safety: a dataset is written under a temporary name, read back and checked, then
renamed over the cached file; the index (``index.json``) is rewritten the same way under a
file lock. A failed or interrupted write leaves every cached file as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rlworks.core.errors import UserError, did_you_mean
from rlworks.data.dataset import Dataset
from rlworks.data.recipes import parse_name

__all__ = [
    "CACHE_FORMATS",
    "cache_root",
    "cached_file",
    "file_lock",
    "list_datasets",
    "load_cached",
    "resolve_dataset",
    "store_dataset",
    "writable_root",
]

CACHE_ENV = "RLWORKS_DATA"
DEFAULT_CACHE = "rlworks-data"
INDEX = "index.json"
CACHE_FORMATS = ("hdf5", "npz")


# ---------------------------------------------------------------------------------- public API
def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """``cache_dir``, else ``$RLWORKS_DATA``, else ``./rlworks-data``."""
    return Path(cache_dir or os.environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser()


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
        # builds of the same env and kind with another seed or budget have their own ids
        others = sorted(i for i in entries if i.startswith(f"{key}-s"))
        hint = f"; the cache holds {', '.join(others[:3])}" if others else ""
        raise UserError(f"dataset '{text}' is not built in the cache '{root}'{hint}; build it "
                        f"with `rlworks data make {key}` (or pass --cache-dir / set "
                        f"${CACHE_ENV})")
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


# ---------------------------------------------------------------------------------- the cache
def cached_file(root: Path, ds_id: str) -> Path | None:
    """The file of the dataset ``ds_id`` in the cache ``root``, if it is indexed and there."""
    entry = _read_index(root).get(ds_id)
    if entry is None or not (root / entry["file"]).is_file():
        return None
    return root / entry["file"]


def load_cached(root: Path, ds_id: str) -> Dataset | None:
    """The cached dataset ``ds_id`` of ``root``, or None where it is not built there."""
    from rlworks.data.formats import load_dataset

    path = cached_file(root, ds_id)
    return None if path is None else load_dataset(path)


def store_dataset(ds: Dataset, root: Path, ds_id: str, fmt: str,
                  provenance: dict[str, Any]) -> Path:
    """Write ``ds`` into the cache ``root`` as ``<ds_id>.<fmt>`` and index it; return the file.

    The file is written under a temporary name, read back and compared by content hash, then
    renamed into place; the index entry is rewritten under a file lock. ``ds.metadata`` must
    hold ``name``, ``env_id``, ``kind``, ``reference_scores`` and ``generator.seed`` and
    ``generator.budget``. ``provenance`` (e.g. ``{"git_rev": ...}``, recorded by the caller:
    this layer does not read git or package versions) is added to the index entry as is.
    """
    from rlworks.data.formats import load_dataset, save_dataset

    final = root / f"{ds_id}.{fmt}"
    tmp = root / f".{ds_id}.{os.getpid()}.tmp.{fmt}"
    try:
        save_dataset(ds, tmp, format=fmt)
        if load_dataset(tmp).content_hash() != ds.content_hash():
            raise RuntimeError(f"dataset '{ds_id}' did not read back identically from {tmp}")
        with file_lock(root / ".index.lock"):
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
                **provenance,
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


def writable_root(root: Path) -> Path:
    """``root``, created if needed; a UserError naming the fix if it cannot be written."""
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
def file_lock(path: Path) -> Iterator[None]:
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
