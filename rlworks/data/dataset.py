"""Offline dataset: one frozen record of flat transition arrays.

Layout (``N`` transitions, episodes stored one after another):

- ``observations`` (N, *obs), ``actions`` (N, *act), ``next_observations`` (N, *obs)
- ``rewards`` (N,) float, ``terminations`` (N,) bool, ``truncations`` (N,) bool
- ``infos``: optional dict of (N, ...) arrays; ``metadata``: JSON-able dict (env_id, kind,
  source, ``reference_scores`` {"random": x, "expert": y} when known, generator settings).

Episode boundaries are ``terminations | truncations``. An episode that ends unflagged at the
end of the arrays counts as truncated (it was cut off, not finished); the arrays themselves are
left as they are so that files round-trip bit for bit. A terminal wins where both flags would
be set: :meth:`Dataset.from_arrays` and the D4RL reader clear the truncation there, and
:meth:`Dataset.validate` refuses a record that has both.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlworks.core.errors import UserError

FIELDS = ("observations", "actions", "rewards", "terminations", "truncations", "next_observations")
_NUMERIC = "biuf"  # dtype kinds allowed for observations and actions


def _frozen(a: np.ndarray) -> np.ndarray:
    """A read-only view: the record cannot be edited in place, the caller's array is untouched."""
    view = a.view()
    view.flags.writeable = False
    return view


def canonical_json(obj: Any) -> str:
    """Sorted keys, no spaces, numpy scalars as Python numbers: the same text in every process."""

    def default(o: Any) -> Any:
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        raise TypeError(f"metadata value {o!r} of type {type(o).__name__} is not JSON-serialisable")

    try:
        return json.dumps(
            obj, sort_keys=True, separators=(",", ":"), default=default, allow_nan=False
        )
    except (TypeError, ValueError) as err:
        raise UserError(
            f"dataset metadata: {err}; use only str, numbers, bools, lists and dicts"
        ) from None


@dataclass(frozen=True, eq=False)
class Dataset:
    """Flat transitions of one or more episodes; see the module docstring for shapes."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    next_observations: np.ndarray
    infos: Mapping[str, np.ndarray] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in FIELDS:
            value = getattr(self, name)
            if not isinstance(value, np.ndarray):
                raise UserError(
                    f"dataset field '{name}' is a {type(value).__name__}, not a numpy array"
                )
            object.__setattr__(self, name, _frozen(value))
        infos = {}
        for key, value in dict(self.infos).items():
            if not isinstance(value, np.ndarray):
                raise UserError(
                    f"dataset field 'infos/{key}' is a {type(value).__name__}, not a numpy array"
                )
            infos[str(key)] = _frozen(value)
        object.__setattr__(self, "infos", infos)
        object.__setattr__(self, "metadata", json.loads(canonical_json(dict(self.metadata))))

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_arrays(
        cls,
        observations: Any,
        actions: Any,
        rewards: Any,
        terminations: Any = None,
        truncations: Any = None,
        next_observations: Any = None,
        infos: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        check_continuity: bool = True,
    ) -> Dataset:
        """A dataset from a user's own arrays, no environment needed; validated before return.

        Missing flags mean "never set" (so the arrays hold one episode, truncated at the end).
        Where both flags are set the terminal wins. Without ``next_observations`` they are
        derived as :func:`derive_next_observations` describes.
        """
        obs = np.asarray(observations)
        n = len(obs) if obs.ndim else 0
        term = (
            np.zeros(n, bool) if terminations is None else _as_flags(terminations, "terminations")
        )
        trunc = np.zeros(n, bool) if truncations is None else _as_flags(truncations, "truncations")
        if term.shape == trunc.shape:
            trunc = trunc & ~term
        arrays = {
            "observations": obs,
            "actions": np.asarray(actions),
            "rewards": np.asarray(rewards),
            "terminations": term,
            "truncations": trunc,
        }
        infos_ = {str(k): np.asarray(v) for k, v in (infos or {}).items()}
        meta = dict(metadata or {})
        if next_observations is None:
            _check_lengths(arrays, infos_)
            arrays, infos_ = derive_next_observations(arrays, infos_)
            meta.setdefault("next_observations", "derived")
        else:
            arrays["next_observations"] = np.asarray(next_observations)
        ds = cls(**arrays, infos=infos_, metadata=meta)
        return ds.validate(check_continuity=check_continuity)

    # ------------------------------------------------------------------ episodes
    def __len__(self) -> int:
        return int(self.rewards.shape[0])

    def episodes(self) -> np.ndarray:
        """(E, 2) int64 rows ``[start, end)``; an unflagged tail counts as a truncated episode."""
        ends = np.flatnonzero(self.terminations | self.truncations) + 1
        if len(self) and (len(ends) == 0 or ends[-1] != len(self)):
            ends = np.append(ends, len(self))
        starts = np.concatenate([[0], ends[:-1]])
        return np.stack([starts, ends], axis=1).astype(np.int64)

    @property
    def num_episodes(self) -> int:
        return int(self.episodes().shape[0])

    def episode_returns(self) -> np.ndarray:
        """(E,) float64 undiscounted return of each episode."""
        if len(self) == 0:
            return np.zeros(0)
        return np.add.reduceat(self.rewards.astype(np.float64), self.episodes()[:, 0])

    # ------------------------------------------------------------------ identity
    def content_hash(self) -> str:
        """sha256 hex over each array's name, dtype, shape and bytes, then the metadata's JSON."""
        h = hashlib.sha256()
        named = [(name, getattr(self, name)) for name in FIELDS]
        named += [(f"infos/{k}", self.infos[k]) for k in sorted(self.infos)]
        for name, a in named:
            h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
            h.update(np.ascontiguousarray(a).tobytes())
        h.update(canonical_json(self.metadata).encode())
        return h.hexdigest()

    # ------------------------------------------------------------------ checks
    def validate(self, check_continuity: bool = True) -> Dataset:
        """Raise :class:`UserError` naming the first bad field (and index); return ``self``.

        Checks, in order: lengths along N, shapes, dtype kinds, NaN/inf, no step both
        terminated and truncated, and (``check_continuity``, on by default) that
        ``next_observations[i] == observations[i + 1]`` inside every episode. The last check
        catches a missing episode boundary; turn it off for files that break it on purpose
        (D4RL's own files do in places). A dataset whose metadata says
        ``"continuity": false`` (e.g. made by :func:`rlworks.data.transforms.corrupt`, which
        perturbs a state without touching the previous step's next state, as the RIQL paper
        does) is not checked for it.
        """
        arrays = {name: getattr(self, name) for name in FIELDS}
        _check_lengths(arrays, dict(self.infos))
        _check_shapes_and_dtypes(arrays)
        for name, a in [*arrays.items(), *((f"infos/{k}", v) for k, v in self.infos.items())]:
            _check_finite(name, a)
        both = np.flatnonzero(self.terminations & self.truncations)
        if len(both):
            i = int(both[0])
            raise UserError(
                f"dataset field 'truncations': index {i} is set together with terminations[{i}]; "
                "a terminal wins, so clear truncations there"
            )
        if check_continuity and self.metadata.get("continuity", True) is not False:
            _check_continuity(self)
        return self


def _as_flags(value: Any, name: str) -> np.ndarray:
    """0/1 (or bool) flags as a bool array; anything else is refused."""
    a = np.asarray(value)
    if a.dtype.kind == "b":
        return a
    if a.dtype.kind not in "iuf":
        raise UserError(f"dataset field '{name}' has dtype {a.dtype}; give bools or 0/1 numbers")
    bad = np.flatnonzero((a != 0) & (a != 1)) if a.ndim else np.array([0])
    if len(bad):
        i = int(bad[0])
        raise UserError(
            f"dataset field '{name}': index {i} is {a.reshape(-1)[i].item()!r}, not 0 or 1"
        )
    return a.astype(bool)


def _check_lengths(arrays: Mapping[str, np.ndarray], infos: Mapping[str, np.ndarray]) -> None:
    obs = arrays["observations"]
    if obs.ndim == 0:
        raise UserError("dataset field 'observations' is a scalar; give an (N, ...) array")
    n = obs.shape[0]
    named = [*arrays.items(), *((f"infos/{k}", v) for k, v in infos.items())]
    for name, a in named:
        if a.ndim == 0 or a.shape[0] != n:
            got = "a scalar" if a.ndim == 0 else f"{a.shape[0]} rows"
            raise UserError(
                f"dataset field '{name}' has {got} but observations has {n}; give one row per "
                "transition"
            )


def _check_shapes_and_dtypes(arrays: Mapping[str, np.ndarray]) -> None:
    for name in ("rewards", "terminations", "truncations"):
        if arrays[name].ndim != 1:
            raise UserError(
                f"dataset field '{name}' has shape {arrays[name].shape}; it must be (N,)"
            )
    for name in ("observations", "next_observations", "actions"):
        if arrays[name].dtype.kind not in _NUMERIC:
            raise UserError(
                f"dataset field '{name}' has dtype {arrays[name].dtype}; use a numeric dtype"
            )
    if arrays["rewards"].dtype.kind != "f":
        raise UserError(
            f"dataset field 'rewards' has dtype {arrays['rewards'].dtype}; use float32 or float64"
        )
    for name in ("terminations", "truncations"):
        if arrays[name].dtype.kind != "b":
            raise UserError(f"dataset field '{name}' has dtype {arrays[name].dtype}; use bool")
    obs, nxt = arrays["observations"], arrays["next_observations"]
    if nxt.shape != obs.shape or nxt.dtype != obs.dtype:
        raise UserError(
            f"dataset field 'next_observations' is {nxt.dtype}{list(nxt.shape)} but "
            "observations is "
            f"{obs.dtype}{list(obs.shape)}; they must match"
        )


def _check_finite(name: str, a: np.ndarray) -> None:
    if a.dtype.kind not in "fc":
        return
    bad = ~np.isfinite(a.reshape(len(a), -1)).all(axis=1) if len(a) else np.zeros(0, bool)
    idx = np.flatnonzero(bad)
    if len(idx):
        i = int(idx[0])
        raise UserError(
            f"dataset field '{name}': index {i} holds NaN or inf; clean or drop that transition"
        )


def _check_continuity(ds: Dataset) -> None:
    n = len(ds)
    if n < 2:
        return
    inside = ~(ds.terminations | ds.truncations)[:-1]
    same = (ds.next_observations[:-1] == ds.observations[1:]).reshape(n - 1, -1).all(axis=1)
    idx = np.flatnonzero(inside & ~same)
    if len(idx):
        i = int(idx[0])
        raise UserError(
            f"dataset field 'next_observations': index {i} differs from observations[{i + 1}] "
            "but neither "
            f"terminations[{i}] nor truncations[{i}] is set; an episode boundary is missing "
            "(set the flag, or pass check_continuity=False)"
        )


def derive_next_observations(
    arrays: Mapping[str, np.ndarray], infos: Mapping[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Fill in ``next_observations`` from ``observations[i + 1]`` inside each episode.

    At an episode's last step there is no next row. A terminated step keeps a copy of its own
    observation (never used: nothing bootstraps past a terminal). A truncated or unflagged last
    step is dropped, and the step before it becomes the truncated end of that episode; this is
    what D4RL's ``qlearning_dataset`` does with timeouts. So the result can be shorter.
    """
    obs, term, trunc = arrays["observations"], arrays["terminations"], arrays["truncations"]
    n = len(obs)
    nxt = obs.copy()
    if n > 1:
        nxt[:-1] = obs[1:]
    nxt[term] = obs[term]  # a terminal's next observation is never bootstrapped from
    end = term | trunc
    if n:
        end = end.copy()
        end[-1] = True
    cut = end & ~term  # last steps with no next observation
    keep = ~cut
    new_trunc = trunc.copy()
    prev = np.flatnonzero(cut) - 1
    prev = prev[(prev >= 0) & ~end[np.maximum(prev, 0)]]
    new_trunc[prev] = True
    out = {k: np.ascontiguousarray(v[keep]) for k, v in arrays.items() if k != "truncations"}
    out["truncations"] = np.ascontiguousarray(new_trunc[keep])
    out["next_observations"] = np.ascontiguousarray(nxt[keep])
    return out, {k: np.ascontiguousarray(v[keep]) for k, v in infos.items()}
