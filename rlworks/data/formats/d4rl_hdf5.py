"""D4RL-style HDF5: top-level datasets ``observations, actions, rewards, terminals, timeouts``,
optional ``next_observations`` and an ``infos/`` group, metadata as a JSON string attribute.

Rules on reading:

- ``terminals`` become terminations, ``timeouts`` truncations; a terminal wins where both are
  set (the truncation is cleared there).
- Flags stored as 0/1 numbers are read as bools; other values are refused.
- A file without ``next_observations`` (most real D4RL files) gets them derived within
  episodes; at an episode's last step a terminated transition keeps its own observation as
  next observation (never bootstrapped from), and a timed-out or unflagged last step is
  dropped, as D4RL's ``qlearning_dataset`` does. ``metadata["next_observations"]`` is then
  ``"derived"``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from rlworks.core.errors import UserError
from rlworks.data.dataset import Dataset, _as_flags, canonical_json, derive_next_observations

METADATA_ATTR = "rlworks_metadata"
_KEYS = {
    "observations": "observations",
    "actions": "actions",
    "rewards": "rewards",
    "terminations": "terminals",
    "truncations": "timeouts",
}


def save_hdf5(ds: Dataset, path: str | Path) -> Path:
    import h5py

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    with h5py.File(tmp, "w") as f:
        for ours, theirs in _KEYS.items():
            f.create_dataset(theirs, data=getattr(ds, ours))
        f.create_dataset("next_observations", data=ds.next_observations)
        if ds.infos:
            group = f.create_group("infos")
            for key, value in ds.infos.items():
                group.create_dataset(key, data=value)
        f.attrs[METADATA_ATTR] = canonical_json(ds.metadata)
    os.replace(tmp, path)  # a failed write never leaves a half file under the real name
    return path


def load_hdf5(path: str | Path, check_continuity: bool = True) -> Dataset:
    import h5py

    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            raw = {ours: _read(f, path, theirs) for ours, theirs in _KEYS.items()}
            nxt = _read(f, path, "next_observations") if "next_observations" in f else None
            infos: dict[str, np.ndarray] = {}
            if "infos" in f:
                group = f["infos"]
                if not isinstance(group, h5py.Group):
                    raise UserError(f"HDF5 file '{path}': 'infos' is not a group of arrays")
                for key in sorted(group.keys()):
                    infos[key] = _read(group, path, f"infos/{key}", name=key)
            meta_text: Any = f.attrs.get(METADATA_ATTR, "{}")
    except UserError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as err:
        raise UserError(
            f"HDF5 file '{path}' cannot be read ({type(err).__name__}: {err}); it is truncated "
            "or not HDF5"
        ) from None
    meta = _parse_metadata(path, meta_text)
    raw["terminations"] = _as_flags(raw["terminations"], "terminals")
    raw["truncations"] = _as_flags(raw["truncations"], "timeouts")
    if raw["terminations"].shape == raw["truncations"].shape:
        raw["truncations"] = raw["truncations"] & ~raw["terminations"]  # a terminal wins
    if nxt is None:
        # Check the raw arrays (names, lengths, dtypes, NaN) before deriving from them.
        obs = raw["observations"]
        probe = Dataset(
            obs, raw["actions"], raw["rewards"], raw["terminations"], raw["truncations"], obs, infos
        )
        probe.validate(check_continuity=False)
        raw, infos = derive_next_observations(raw, infos)
        meta.setdefault("next_observations", "derived")
    else:
        raw["next_observations"] = nxt
    return Dataset(**raw, infos=infos, metadata=meta).validate(check_continuity=check_continuity)


def _read(group: Any, path: Path, key: str, name: str | None = None) -> np.ndarray:
    if (name or key) not in group:
        raise UserError(
            f"HDF5 file '{path}' lacks field '{key}'; D4RL files hold {', '.join(_KEYS.values())}"
        )
    try:
        value = group[name or key][()]
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as err:
        raise UserError(
            f"HDF5 file '{path}': field '{key}' cannot be read ({type(err).__name__}: {err}); "
            "the file is damaged"
        ) from None
    if not isinstance(value, np.ndarray) or value.dtype.kind in "OSUV":
        raise UserError(f"HDF5 file '{path}': field '{key}' is not a numeric array")
    return value


def _parse_metadata(path: Path, text: Any) -> dict[str, Any]:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    try:
        meta = json.loads(str(text))
    except ValueError:
        meta = None
    if not isinstance(meta, dict):
        raise UserError(f"HDF5 file '{path}': attribute '{METADATA_ATTR}' is not a JSON object")
    return meta
