"""Reading and writing offline datasets: D4RL-style HDF5, Minari directories and npz.

``load_dataset(path)`` picks the format from the path: ``.hdf5``/``.h5`` -> D4RL-style HDF5,
``.npz`` -> npz, a directory holding ``data/metadata.json`` -> Minari. Every reader validates
the result (see :meth:`rlworks.data.dataset.Dataset.validate`) and turns any damage into one
:class:`~rlworks.core.errors.UserError` naming the file and field.
"""

from __future__ import annotations

from pathlib import Path

from rlworks.core.errors import UserError, unknown
from rlworks.data.dataset import Dataset
from rlworks.data.formats.d4rl_hdf5 import load_hdf5, save_hdf5
from rlworks.data.formats.minari_io import is_minari_dir, load_minari, load_minari_id, save_minari
from rlworks.data.formats.npz import load_npz, save_npz

FORMATS = ("hdf5", "minari", "npz")
_SUFFIXES = {".hdf5": "hdf5", ".h5": "hdf5", ".npz": "npz"}

__all__ = [
    "FORMATS",
    "detect_format",
    "load_dataset",
    "load_hdf5",
    "load_minari",
    "load_minari_id",
    "load_npz",
    "save_dataset",
    "save_hdf5",
    "save_minari",
    "save_npz",
]


def detect_format(path: str | Path) -> str:
    """The format of an existing ``path``, or of one about to be written (by its suffix)."""
    path = Path(path)
    if path.suffix.lower() in _SUFFIXES:
        return _SUFFIXES[path.suffix.lower()]
    if path.is_dir() and is_minari_dir(path):
        return "minari"
    if not path.exists():
        raise UserError(
            f"dataset '{path}' does not exist; give a .hdf5, .npz file or a Minari dataset "
            "directory"
        )
    raise UserError(
        f"dataset '{path}' is neither a .hdf5/.h5 or .npz file nor a Minari directory (with "
        "data/metadata.json)"
    )


def load_dataset(path: str | Path, check_continuity: bool = True) -> Dataset:
    """Read and validate a dataset; the format follows from the path (see the module docstring)."""
    path = Path(path)
    fmt = detect_format(path)
    if fmt != "minari" and not path.is_file():
        raise UserError(f"dataset file '{path}' does not exist")
    reader = {"hdf5": load_hdf5, "minari": load_minari, "npz": load_npz}[fmt]
    return reader(path, check_continuity=check_continuity)


def save_dataset(ds: Dataset, path: str | Path, format: str | None = None) -> Path:
    """Write ``ds`` to ``path`` as ``format`` (default: from the suffix; no suffix -> minari)."""
    path = Path(path)
    if format is None:
        format = _SUFFIXES.get(path.suffix.lower(), "minari")
    if format not in FORMATS:
        raise unknown("dataset format", format, FORMATS)
    writer = {"hdf5": save_hdf5, "minari": save_minari, "npz": save_npz}[format]
    return writer(ds, path)
