"""npz files: one array per field, ``infos/<key>`` for infos, metadata as a JSON string array.

Written with ``np.savez_compressed``; read with ``np.load(allow_pickle=False)``, so a file that
holds Python objects is refused instead of unpickled.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from rlworks.core.errors import UserError
from rlworks.data.dataset import FIELDS, Dataset, canonical_json

METADATA_KEY = "metadata_json"


def save_npz(ds: Dataset, path: str | Path) -> Path:
    path = Path(path)
    arrays = {name: getattr(ds, name) for name in FIELDS}
    arrays.update({f"infos/{k}": v for k, v in ds.infos.items()})
    arrays[METADATA_KEY] = np.array(canonical_json(ds.metadata))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    with tmp.open("wb") as f:  # a file object keeps numpy from appending ".npz"
        np.savez_compressed(f, **arrays)
    os.replace(tmp, path)  # a failed write never leaves a half file under the real name
    return path


def load_npz(path: str | Path, check_continuity: bool = True) -> Dataset:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            for name in FIELDS:
                if name not in keys:
                    raise UserError(
                        f"npz file '{path}' lacks field '{name}'; write it with "
                        "rlworks.data.save_dataset"
                    )
            arrays = {name: _read(z, path, name) for name in FIELDS}
            infos = {
                k[len("infos/") :]: _read(z, path, k)
                for k in sorted(keys)
                if k.startswith("infos/")
            }
            meta = json.loads(str(_read(z, path, METADATA_KEY))) if METADATA_KEY in keys else {}
    except UserError:
        raise
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as err:
        raise UserError(
            f"npz file '{path}' cannot be read ({type(err).__name__}: {err}); it is truncated "
            "or not an npz file"
        ) from None
    if not isinstance(meta, dict):
        raise UserError(f"npz file '{path}': field '{METADATA_KEY}' is not a JSON object")
    return Dataset(**arrays, infos=infos, metadata=meta).validate(check_continuity=check_continuity)


def _read(z: np.lib.npyio.NpzFile, path: Path, key: str) -> np.ndarray:
    try:
        return z[key]
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, KeyError) as err:
        raise UserError(
            f"npz file '{path}': field '{key}' cannot be read ({type(err).__name__}: {err}); "
            "the file is damaged"
        ) from None
