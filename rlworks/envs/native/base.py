"""The shared machinery of the numpy-batched ("native") environments.

A subclass writes only the physics: how to draw start states for some rows, how to advance
every row one step in place, and how to read observations. This base does the rest in the
same way for all of them, without a Python loop over sub-envs:

* **Next-step autoreset** (gymnasium 1.x ``AutoresetMode.NEXT_STEP``). When sub-env ``i``
  ends at step ``t`` (terminated or truncated), step ``t`` returns its true final observation;
  step ``t + 1`` ignores action ``i``, draws a new start state and returns it with reward 0,
  ``terminated = truncated = False``. The ended rows are remembered as an index array so the
  common step with nothing to reset does no fancy indexing at all.
* **Time limits**: an ``int64`` step counter per row; ``truncated = steps >= max_episode_steps``.
* **Randomness**: one ``numpy.random.Generator`` for all sub-envs, from
  ``make_rng(seed, "env")``. Start states of the rows reset at one step are drawn in one call,
  in row order, so the stream depends only on the seed and the actions taken.
* **Exact resume**: ``get_state()`` / ``set_state()`` carry the physics arrays, counters,
  pending-reset flags and the generator state; a restored env continues bit-identically.

Gymnasium is imported lazily (spaces and ``metadata`` are built on first access) so that making
a native env never pays for ``import gymnasium``.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import numpy as np

from rlworks.core.errors import UserError
from rlworks.core.seeding import make_rng


class NativeVecEnv:
    """Base of the numpy-batched classic-control envs (see the module docstring)."""

    env_id: ClassVar[str]
    default_max_episode_steps: ClassVar[int]
    supports_frozen_step: ClassVar[bool] = True
    """``step(actions, frozen=mask)`` exists (for :class:`rlworks.envs.wrappers.ActionRepeat`)."""

    def __init__(self, num_envs: int, seed: int = 0, max_episode_steps: int | None = None):
        if int(num_envs) < 1:
            raise UserError(f"num_envs must be >= 1, got {num_envs}")
        if max_episode_steps is not None and int(max_episode_steps) < 1:
            raise UserError(f"max_episode_steps must be >= 1, got {max_episode_steps}")
        n = self.num_envs = int(num_envs)
        self.max_episode_steps = int(max_episode_steps or self.default_max_episode_steps)
        self.rng = make_rng(seed, "env")
        # Step counting without a per-step array op: a global clock and each row's episode
        # start; steps since reset = clock - start. ``_oldest`` <= min(start) bounds the
        # longest episode, so the truncation test only runs when a row can be at the limit.
        self._clock = 0
        self._start = np.zeros(n, dtype=np.int64)  # (N,)
        self._oldest = 0
        self.ended_rows = np.empty(0, dtype=np.intp)
        """Rows whose episode ended at the last step (they reset at the next one)."""
        self._started = False
        self._all_rows = np.arange(n)
        self._no_truncations = np.zeros(n, dtype=bool)  # template, copied (cheaper than zeros)
        self._allocate()

    # ----------------------------------------------------------------- the subclass's part
    def _allocate(self) -> None:
        """Create the physics arrays and scratch buffers for ``self.num_envs`` rows."""
        raise NotImplementedError

    def _physics_arrays(self) -> dict[str, np.ndarray]:
        """The per-row physics state, each array with the env axis last (saved and restored)."""
        raise NotImplementedError

    def _reset_rows(self, rows: np.ndarray) -> None:
        """Draw start states for ``rows`` (sorted int indices) from ``self.rng``."""
        raise NotImplementedError

    def _physics(self, actions: Any) -> tuple[np.ndarray, np.ndarray]:
        """Advance every row one step in place; return fresh ``(rewards, terminations)``."""
        raise NotImplementedError

    def _observe(self) -> np.ndarray:
        """A fresh ``(N, *obs_shape)`` float32 array of the current observations."""
        raise NotImplementedError

    def _make_spaces(self) -> tuple[Any, Any]:
        """``(single_observation_space, single_action_space)`` as gymnasium spaces."""
        raise NotImplementedError

    # ------------------------------------------------------------------- vector-env API
    @functools.cached_property
    def _spaces(self) -> tuple[Any, Any]:
        return self._make_spaces()

    @property
    def single_observation_space(self) -> Any:
        return self._spaces[0]

    @property
    def single_action_space(self) -> Any:
        return self._spaces[1]

    @functools.cached_property
    def observation_space(self) -> Any:
        from gymnasium.vector.utils import batch_space

        return batch_space(self.single_observation_space, self.num_envs)

    @functools.cached_property
    def action_space(self) -> Any:
        from gymnasium.vector.utils import batch_space

        return batch_space(self.single_action_space, self.num_envs)

    @functools.cached_property
    def metadata(self) -> dict[str, Any]:
        from gymnasium.vector import AutoresetMode

        return {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def reset(self, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every sub-env (or those in ``options["reset_mask"]``).

        ``seed`` re-seeds the shared generator exactly as ``make_vec(..., seed=seed)`` does,
        so ``make_vec(id, n, seed=s).reset()`` and ``make_vec(id, n).reset(seed=s)`` agree.
        """
        if seed is not None:
            self.rng = make_rng(seed, "env")
            self._reseeded()
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        if options:
            raise UserError(f"{self.env_id}: unsupported reset options {sorted(options)}; "
                            "only 'reset_mask' is understood")
        if mask is None:
            rows = self._all_rows
        else:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != (self.num_envs,):
                raise UserError(f"reset_mask must have shape ({self.num_envs},), got {mask.shape}")
            rows = np.flatnonzero(mask)
        self._reset_rows(rows)
        self._start[rows] = self._clock
        self._oldest = int(self._start.min())
        self.ended_rows = np.setdiff1d(self.ended_rows, rows, assume_unique=True)
        self._started = True
        return self._observe(), {}

    def step(self, actions: Any, frozen: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """One step of every sub-env; see the module docstring for the autoreset rule.

        ``frozen`` (bool, (N,)) leaves those rows exactly as they are (state, counters,
        pending resets); their outputs are meaningless. It exists for action repeat.
        """
        if not self._started:
            raise UserError(f"{self.env_id}: call reset() before step()")
        if frozen is not None:
            return self._step_frozen(actions, np.asarray(frozen, dtype=bool))
        rewards, terminations = self._physics(actions)  # (N,) float64, (N,) bool
        clock = self._clock = self._clock + 1
        rows = self.ended_rows
        if len(rows):
            # Rows that ended at the previous step: the physics just advanced them past the
            # end (harmless, cheaper than masking) and is overwritten by a fresh start state.
            self._reset_rows(rows)
            self._start[rows] = clock
            rewards[rows] = 0.0
            terminations[rows] = False
        if clock - self._oldest >= self.max_episode_steps:
            truncations = self._start <= clock - self.max_episode_steps  # (N,) bool
            self._oldest = int(self._start.min())
            self.ended_rows = (terminations | truncations).nonzero()[0]
        else:
            truncations = self._no_truncations.copy()
            self.ended_rows = terminations.nonzero()[0]
        return self._observe(), rewards, terminations, truncations, {}

    def _step_frozen(self, actions: Any, frozen: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """A step in which the ``frozen`` rows do not move: saved before and put back after,
        with their episode clocks shifted back by the step they did not take."""
        saved = {k: v[..., frozen].copy() for k, v in self._physics_arrays().items()}
        ended = self.ended_rows
        ended_frozen = ended[frozen[ended]]
        self.ended_rows = ended[~frozen[ended]]
        obs, rewards, terminations, truncations, infos = self.step(actions)
        for k, v in self._physics_arrays().items():
            v[..., frozen] = saved[k]
        self._start[frozen] += 1
        live_ended = self.ended_rows[~frozen[self.ended_rows]]
        self.ended_rows = np.union1d(live_ended, ended_frozen)
        self._oldest = int(self._start.min())
        obs = self._observe()
        rewards[frozen] = 0.0
        terminations[frozen] = False
        truncations[frozen] = False
        return obs, rewards, terminations, truncations, infos

    def transform_obs(self, raw_obs: np.ndarray) -> np.ndarray:
        """Identity (no normalisation at this level); wrappers override it."""
        return np.asarray(raw_obs, dtype=np.float32)

    def set_training(self, training: bool) -> None:
        """Nothing to freeze here; wrappers with statistics forward and honour it."""

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.env_id}, num_envs={self.num_envs})"

    # ----------------------------------------------------------------- save and restore
    def get_state(self) -> dict[str, Any]:
        """Everything that decides future outputs; numpy arrays and JSON scalars only."""
        pending = np.zeros(self.num_envs, dtype=bool)
        pending[self.ended_rows] = True
        return {
            "env_id": self.env_id,
            "num_envs": self.num_envs,
            "max_episode_steps": self.max_episode_steps,
            "started": self._started,
            "rng": self.rng.bit_generator.state,
            "steps": self._clock - self._start,  # (N,) steps since each row's reset
            "pending": pending,  # (N,) reset at the next step
            "physics": {k: v.copy() for k, v in self._physics_arrays().items()},
            "extra": self._extra_state(),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        for key in ("env_id", "num_envs", "max_episode_steps"):
            if state[key] != getattr(self, key):
                raise ValueError(f"env state is for {key}={state[key]!r}, this env has "
                                 f"{getattr(self, key)!r}; make the env with the same arguments")
        self._started = bool(state["started"])
        self.rng.bit_generator.state = state["rng"]
        self._clock = 0
        self._start[:] = -np.asarray(state["steps"], dtype=np.int64)
        self._oldest = int(self._start.min())
        self.ended_rows = np.flatnonzero(state["pending"])
        arrays = self._physics_arrays()
        if set(arrays) != set(state["physics"]):
            raise ValueError(f"physics keys {sorted(state['physics'])} != {sorted(arrays)}")
        for k, v in arrays.items():
            v[...] = state["physics"][k]
        self._load_extra_state(state["extra"])

    def _extra_state(self) -> dict[str, Any]:
        """State that is not per row (e.g. pre-drawn random numbers); saved as is."""
        return {}

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        pass

    def _reseeded(self) -> None:
        """Hook: drop anything drawn from the previous generator."""


def pow2(x: np.ndarray) -> np.ndarray:
    """``x**2`` computed as gymnasium's NumPy *scalars* compute it (libm ``pow``).

    For arrays NumPy turns ``x**2`` into ``x*x``, which differs from ``pow(x, 2)`` in the last
    bit for about 1 input in 1200; a full-size exponent array keeps the ``pow`` loop.
    """
    return np.power(x, np.full(x.shape, 2, dtype=x.dtype))


def lookup_actions(table: np.ndarray, actions: Any, num_envs: int, out: np.ndarray) -> np.ndarray:
    """``out[i] = table[actions[i]]`` for a batch of discrete actions, checked at the boundary.

    A discrete env turns actions into forces or torques through a small table: one
    ``np.take``. The range check is one reduction: viewed as unsigned, a negative action is
    huge, so ``max < len(table)`` covers both ends. Shape ``(N,)``, integer dtype.
    """
    a = np.asarray(actions)
    if a.shape != (num_envs,) or a.dtype.kind not in "iu":
        raise UserError(f"expected {num_envs} integer actions, shape ({num_envs},), got "
                        f"shape {a.shape} dtype {a.dtype}")
    if np.maximum.reduce(a.view(_UNSIGNED[a.dtype.itemsize])) >= len(table):
        raise UserError(f"actions must lie in [0, {len(table)}), got values in "
                        f"[{a.min()}, {a.max()}]")
    return np.take(table, a, out=out, mode="clip")


_UNSIGNED = {k: np.dtype(f"u{k}") for k in (1, 2, 4, 8)}


def box_actions(actions: Any, num_envs: int) -> np.ndarray:
    """1-d continuous actions as float32 ``(N,)``, from ``(N, 1)`` (batched space) or ``(N,)``."""
    a = np.asarray(actions, dtype=np.float32)
    if a.shape == (num_envs, 1):
        return a.reshape(num_envs)
    if a.shape != (num_envs,):
        raise UserError(f"expected actions of shape ({num_envs}, 1), got {a.shape}")
    return a
