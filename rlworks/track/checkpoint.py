"""Checkpoints: safetensors for arrays + JSON for everything else; never pickle.

A learner's ``state_dict()`` is a nested dict/list whose leaves are torch tensors, numpy arrays
or JSON values. :func:`flatten_state` splits it into ``{"path/to/leaf": ndarray}`` plus a JSON
skeleton that remembers where each array came from (and whether it was a torch tensor), and
:func:`unflatten_state` reverses it exactly (bit-identical values, same dtypes).

Writes are atomic: both files go to a temporary name first and are renamed into place, the
JSON last, so a reader that finds ``step_*.json`` always finds a complete checkpoint.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

_ARRAY = "__array__"


def flatten_state(state: Any, prefix: str = "") -> tuple[dict[str, np.ndarray], Any]:
    """Split a nested state into (arrays by path, JSON skeleton)."""
    arrays: dict[str, np.ndarray] = {}

    def walk(node: Any, path: str) -> Any:
        if isinstance(node, dict):
            for k in node:
                if not isinstance(k, str | int):
                    raise TypeError(f"state key {k!r} at '{path}' must be str or int")
            # JSON object keys are strings: remember which keys were ints (optimizer states).
            return {
                "__dict__": [[k, walk(v, f"{path}/{k}")] for k, v in node.items()],
            }
        if isinstance(node, list | tuple):
            return {"__list__": [walk(v, f"{path}/{i}") for i, v in enumerate(node)],
                    "tuple": isinstance(node, tuple)}
        if isinstance(node, np.ndarray):
            arrays[path] = np.ascontiguousarray(node)
            return {_ARRAY: path, "torch": False}
        if type(node).__module__.startswith("torch") and hasattr(node, "detach"):
            t = node.detach().cpu()
            arrays[path] = t.contiguous().numpy()
            return {_ARRAY: path, "torch": True}
        if isinstance(node, np.generic):
            return node.item()
        if node is None or isinstance(node, bool | int | float | str):
            return node
        raise TypeError(f"cannot checkpoint {type(node).__name__} at '{path}'")

    return arrays, walk(state, prefix)


def unflatten_state(arrays: dict[str, np.ndarray], skeleton: Any) -> Any:
    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if _ARRAY in node:
                arr = arrays[node[_ARRAY]]
                if node["torch"]:
                    import torch

                    return torch.from_numpy(arr.copy())
                return arr.copy()
            if "__dict__" in node:
                return {k: walk(v) for k, v in node["__dict__"]}
            if "__list__" in node:
                items = [walk(v) for v in node["__list__"]]
                return tuple(items) if node.get("tuple") else items
        return node

    return walk(skeleton)


def save_checkpoint(directory: str | Path, step: int, state: Any,
                    meta: dict[str, Any] | None = None) -> Path:
    """Write ``step_{step:012d}.safetensors`` + ``.json`` atomically; return the JSON path."""
    from safetensors.numpy import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arrays, skeleton = flatten_state(state)
    stem = directory / f"step_{step:012d}"
    tensor_path = stem.with_suffix(".safetensors")
    json_path = stem.with_suffix(".json")
    tmp = tensor_path.with_name(tensor_path.name + ".tmp")
    save_file(arrays, str(tmp))
    _fsync_rename(tmp, tensor_path)
    doc = {"format": "rlworks-checkpoint/1", "step": step, "tensors": tensor_path.name,
           "meta": meta or {}, "state": skeleton}
    tmp = json_path.with_name(json_path.name + ".tmp")
    tmp.write_text(json.dumps(doc))
    _fsync_rename(tmp, json_path)
    return json_path


def latest_checkpoint(directory: str | Path) -> Path | None:
    directory = Path(directory)
    if not directory.is_dir():
        return None
    found = sorted(directory.glob("step_*.json"))
    return found[-1] if found else None


def load_checkpoint(json_path: str | Path) -> tuple[int, Any, dict[str, Any]]:
    """Return ``(step, state, meta)`` from a checkpoint's JSON path."""
    from safetensors.numpy import load_file

    json_path = Path(json_path)
    doc = json.loads(json_path.read_text())
    arrays = load_file(str(json_path.with_name(doc["tensors"])))
    return doc["step"], unflatten_state(arrays, doc["state"]), doc["meta"]


def prune_checkpoints(directory: str | Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints."""
    found = sorted(Path(directory).glob("step_*.json"))
    for old in found[: max(len(found) - keep, 0)]:
        old.with_suffix(".safetensors").unlink(missing_ok=True)
        old.unlink(missing_ok=True)


def _fsync_rename(tmp: Path, final: Path) -> None:
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, final)
