"""What every offline learner shares (imported, not inherited): finding the dataset, checking
it fits the env, corrupting and reweighting it, turning it into one tensor, sampling batches,
normalising observations, scaling actions, and the policies IQL and AWAC share.

The dataset becomes one ``(N, D)`` float32 table ``[obs | actions | next_obs | reward |
not_done]``, so a batch is one ``index_select`` and ``[obs | actions]`` (a critic's input)
is a view with no copy. Observation normalisation and reward scaling are applied to the
table once, not per batch. Actions are scaled to [-1, 1] with the env's Box bounds.

Batch indices for a whole iteration are drawn at once from one numpy generator seeded from
the run's seed; its state is part of :meth:`OfflineData.state_dict`, so a resumed run draws
the same batches.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from rlworks.algos.online.offpolicy import BoxScale, keep_freed_memory
from rlworks.core.errors import UserError
from rlworks.core.seeding import make_rng
from rlworks.data.dataset import Dataset
from rlworks.nets.mlp import make_mlp

_FILE_SUFFIXES = (".hdf5", ".h5", ".npz")
_CACHE: OrderedDict[tuple[Any, ...], Dataset] = OrderedDict()
_CACHE_SIZE = 2
OBS_STD_EPS = 1e-3  # added to the std, as TD3+BC and RIQL do
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # of the state-independent Gaussian policies (CORL's)


# ----------------------------------------------------------------------------- datasets
def resolve_dataset(name_or_path: str) -> Dataset:
    """The dataset a ``--dataset`` value names: a file or Minari directory that exists (or
    looks like a path), else a generated name of ``rlworks.data.factory.resolve_dataset``.

    The last two results are cached in-process (keyed by the file's size and mtime), so the
    CLI's checks and the learner read a file once.
    """
    if not name_or_path:
        raise UserError("no dataset given; pass --dataset NAME (see `rlworks data ls`) or the "
                        "path of a .hdf5/.npz file or Minari directory")
    path = Path(name_or_path).expanduser()
    looks_like_path = (path.suffix.lower() in _FILE_SUFFIXES or os.sep in name_or_path
                       or path.exists())
    if looks_like_path:
        stat = path.stat() if path.is_file() else None
        key: tuple[Any, ...] = ("path", str(path.resolve()),
                                stat and (stat.st_size, stat.st_mtime_ns))
        return _cached(key, lambda: _load_file(path))
    return _cached(("name", name_or_path), lambda: _from_factory(name_or_path))


def _cached(key: tuple[Any, ...], load: Any) -> Dataset:
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    ds = load()
    _CACHE[key] = ds
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return ds


def _load_file(path: Path) -> Dataset:
    from rlworks.data.formats import load_dataset

    return load_dataset(path)


def _from_factory(name: str) -> Dataset:
    # The factory is another module's work; use it when present (its own errors propagate).
    factory = (importlib.import_module("rlworks.data.factory")
               if importlib.util.find_spec("rlworks.data.factory") is not None else None)
    resolve = getattr(factory, "resolve_dataset", None)
    if resolve is None:
        raise UserError(f"unknown dataset '{name}': no such file, and this installation has no "
                        "dataset factory; give the path of a .hdf5/.npz file or Minari directory")
    ds: Dataset = resolve(name)
    return ds


def dataset_env_id(ds: Dataset, name: str) -> str:
    """The ``env_id`` recorded in the dataset's metadata, or a UserError saying to pass one."""
    env_id = ds.metadata.get("env_id")
    if not isinstance(env_id, str) or not env_id:
        raise UserError(f"dataset '{name}' records no env_id in its metadata; pass --env-id ENV "
                        "(the environment it was collected on)")
    return env_id


def reference_scores(ds: Dataset) -> dict[str, float] | None:
    """``{"random": x, "expert": y}`` from the dataset's metadata, or None if absent/unusable."""
    ref = ds.metadata.get("reference_scores")
    if not isinstance(ref, dict):
        return None
    try:
        lo, hi = float(ref["random"]), float(ref["expert"])
    except (KeyError, TypeError, ValueError):
        return None
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi == lo:
        return None
    return {"random": lo, "expert": hi}


def normalised_score(ret: float, ref: dict[str, float]) -> float:
    """D4RL's normalised score ``100 * (return - random) / (expert - random)``."""
    return 100.0 * (ret - ref["random"]) / (ref["expert"] - ref["random"])


def env_spaces(env_id: str, backend: str = "auto") -> tuple[Any, Any]:
    """(single observation space, single action space) of ``env_id``, from a throwaway env."""
    from rlworks.envs import make_vec

    try:
        envs = make_vec(env_id, 1, backend=backend, seed=0)
    except UserError:
        raise
    except Exception as err:  # a missing optional dependency (mujoco), a broken install
        raise UserError(f"cannot build env '{env_id}' to evaluate on ({type(err).__name__}: "
                        f"{err}); install its dependencies or pass another --env-id") from None
    try:
        return envs.single_observation_space, envs.single_action_space
    finally:
        envs.close()


def check_fit(ds: Dataset, name: str, env_id: str, obs_space: Any, act_space: Any) -> None:
    """Raise a UserError unless the dataset's observations and actions fit the env's spaces."""
    import gymnasium as gym

    got, want = tuple(ds.observations.shape[1:]), tuple(obs_space.shape or ())
    if got != want:
        hint = ds.metadata.get("env_id")
        hint_text = f" (its metadata says env_id '{hint}')" if hint and hint != env_id else ""
        raise UserError(f"dataset '{name}' has observation shape {got} but env '{env_id}' has "
                        f"{want}; pass the --env-id the dataset was collected on{hint_text}")
    if not isinstance(act_space, gym.spaces.Box):
        raise UserError(f"env '{env_id}' has discrete actions {act_space}; the offline learners "
                        "here need a continuous (Box) action space")
    got_a, want_a = tuple(ds.actions.shape[1:]), tuple(act_space.shape)
    if int(np.prod(got_a)) != int(np.prod(want_a)):  # (N,) actions fit a (1,) Box
        raise UserError(f"dataset '{name}' has action shape {got_a} but env '{env_id}' has "
                        f"{want_a}; pass the --env-id the dataset was collected on")


def complete_config(cfg: Any) -> Any:
    """``cfg`` with ``env_id`` taken from the dataset's metadata when empty, after checking
    that the dataset exists and fits the env. Called before a run is created, so bad input
    never leaves a failed run behind."""
    ds = resolve_dataset(cfg.dataset)
    env_id = cfg.env_id or dataset_env_id(ds, cfg.dataset)
    check_fit(ds, cfg.dataset, env_id, *env_spaces(env_id, cfg.backend))
    return cfg if env_id == cfg.env_id else dataclasses.replace(cfg, env_id=env_id)


def corrupt_dataset(ds: Dataset, spec: str, seed: int) -> Dataset:
    """``rlworks.data.transforms.corrupt_from_spec(ds, spec, seed)``, imported on use."""
    try:
        from rlworks.data.transforms import corrupt_from_spec
    except ImportError:
        raise UserError("--corrupt needs rlworks.data.transforms.corrupt_from_spec, which this "
                        "installation lacks; drop --corrupt") from None
    out: Dataset = corrupt_from_spec(ds, spec, seed)
    return out


def sampling_probabilities(ds: Dataset, spec: str) -> np.ndarray:
    """``rlworks.data.transforms.weights_from_spec(ds, spec)``, checked: (N,) float64, >= 0,
    summing to 1."""
    try:
        from rlworks.data.transforms import weights_from_spec
    except ImportError:
        raise UserError("--reweight needs rlworks.data.transforms.weights_from_spec, which this "
                        "installation lacks; drop --reweight") from None
    p = np.asarray(weights_from_spec(ds, spec), dtype=np.float64)
    if p.shape != (len(ds),) or not np.all(np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
        raise UserError(f"--reweight '{spec}' gave no valid sampling probabilities (need {len(ds)}"
                        " finite non-negative numbers with a positive sum)")
    return p / p.sum()


# ----------------------------------------------------------------------------- batches
class Batch(NamedTuple):
    """Views into one gathered ``(B, D)`` block of the table (no copies)."""

    obs: torch.Tensor  # (B, O), normalised if the config says so
    actions: torch.Tensor  # (B, A) in [-1, 1]
    obs_actions: torch.Tensor  # (B, O + A): a critic's input
    next_obs: torch.Tensor  # (B, O)
    rewards: torch.Tensor  # (B,), scaled if the learner asks
    not_done: torch.Tensor  # (B,) 0.0 where the episode terminated; truncation bootstraps


class OfflineData:
    """The training data of one learner, its batch sampler and its obs/action transforms."""

    def __init__(self, cfg: Any, stream: str, normalize_reward: bool = False) -> None:
        torch.set_num_threads(cfg.torch_threads)
        keep_freed_memory()
        self.cfg = cfg
        raw = resolve_dataset(cfg.dataset)
        self.env_id: str = cfg.env_id or dataset_env_id(raw, cfg.dataset)
        obs_space, act_space = env_spaces(self.env_id, cfg.backend)
        check_fit(raw, cfg.dataset, self.env_id, obs_space, act_space)
        self.reference_scores = reference_scores(raw)
        ds = corrupt_dataset(raw, cfg.corrupt, cfg.seed) if cfg.corrupt else raw
        self.dataset = ds
        self.scale = BoxScale(act_space, stream, self.env_id)
        n = len(ds)
        if n == 0:
            raise UserError(f"dataset '{cfg.dataset}' holds no transitions")
        obs = ds.observations.reshape(n, -1).astype(np.float32)
        next_obs = ds.next_observations.reshape(n, -1).astype(np.float32)
        self.obs_dim, self.act_dim = obs.shape[1], int(np.prod(self.scale.shape))
        if cfg.normalize_obs:
            self.obs_mean = obs.mean(0)
            self.obs_std = (obs.std(0) + OBS_STD_EPS).astype(np.float32)
        else:
            self.obs_mean = np.zeros(self.obs_dim, np.float32)
            self.obs_std = np.ones(self.obs_dim, np.float32)
        low, high = self.scale.low.reshape(-1), self.scale.high.reshape(-1)
        actions = ds.actions.reshape(n, -1).astype(np.float32)
        unit = np.clip(2.0 * (actions - low) / (high - low) - 1.0, -1.0, 1.0)
        self.reward_scale = _return_range_scale(ds) if normalize_reward else 1.0
        table = np.concatenate([
            (obs - self.obs_mean) / self.obs_std, unit, (next_obs - self.obs_mean) / self.obs_std,
            (ds.rewards.astype(np.float64) * self.reward_scale)[:, None],
            (~ds.terminations)[:, None],
        ], axis=1).astype(np.float32)
        self.table = torch.from_numpy(table)  # (N, 2 O + A + 2)
        self.probs = sampling_probabilities(ds, cfg.reweight) if cfg.reweight else None
        self.cdf = None if self.probs is None else np.cumsum(self.probs)
        self.rng = make_rng(cfg.seed, stream, "batches")
        self._mean_t = torch.from_numpy(self.obs_mean.astype(np.float32))
        self._std_t = torch.from_numpy(self.obs_std.astype(np.float32))
        self._hash: str | None = None
        o, a = self.obs_dim, self.act_dim
        self._cols = (o, o + a, 2 * o + a)

    def chunk(self, global_step: int) -> int:
        """Gradient steps in the next iteration: ``steps_per_iter``, fewer at the very end."""
        return max(1, min(self.cfg.steps_per_iter, self.cfg.total_steps - global_step))

    def sample_indices(self, steps: int) -> torch.Tensor:
        """(steps, B) int64 row indices, uniform or with the reweighting probabilities."""
        n, shape = len(self.table), (steps, self.cfg.batch_size)
        if self.cdf is None:
            idx = self.rng.integers(0, n, size=shape)
        else:
            u = self.rng.random(shape) * self.cdf[-1]
            idx = np.minimum(np.searchsorted(self.cdf, u, side="right"), n - 1)
        return torch.from_numpy(idx.astype(np.int64))

    def batch(self, idx: torch.Tensor) -> Batch:
        """(B,) indices -> one gather and views of it."""
        rows = self.table.index_select(0, idx)  # (B, D)
        o, oa, oao = self._cols
        return Batch(rows[:, :o], rows[:, o:oa], rows[:, :oa], rows[:, oa:oao], rows[:, oao],
                     rows[:, oao + 1])

    def obs_tensor(self, raw_obs: np.ndarray) -> torch.Tensor:
        """Raw env observations (N, *obs_shape) -> normalised float32 (N, O)."""
        x = torch.from_numpy(np.array(raw_obs, dtype=np.float32)).reshape(len(raw_obs), -1)
        return (x - self._mean_t) / self._std_t

    def to_env(self, unit_actions: torch.Tensor) -> np.ndarray:
        """(N, A) actions in [-1, 1] -> env actions (N, *action_shape) in the Box's bounds."""
        a = unit_actions.clamp(-1.0, 1.0).numpy()
        return self.scale.to_env(a).reshape(len(a), *self.scale.shape)

    def content_hash(self) -> str:
        """sha256 of the dataset trained on (after corruption), computed once."""
        if self._hash is None:
            self._hash = self.dataset.content_hash()
        return self._hash

    def state_dict(self) -> dict[str, Any]:
        return {"rng": dict(self.rng.bit_generator.state), "obs_mean": self.obs_mean.copy(),
                "obs_std": self.obs_std.copy(), "reward_scale": float(self.reward_scale),
                "dataset_hash": self.content_hash()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["dataset_hash"] != self.content_hash():
            raise UserError(f"dataset '{self.cfg.dataset}' differs from the one this checkpoint "
                            f"was trained on (content hash {self.content_hash()[:12]} != "
                            f"{str(state['dataset_hash'])[:12]}); restore that dataset or start "
                            "a new run")
        self.rng.bit_generator.state = state["rng"]
        self.obs_mean = np.asarray(state["obs_mean"], np.float32).copy()
        self.obs_std = np.asarray(state["obs_std"], np.float32).copy()
        self._mean_t = torch.from_numpy(self.obs_mean)
        self._std_t = torch.from_numpy(self.obs_std)


def _return_range_scale(ds: Dataset) -> float:
    """IQL's reward scale for MuJoCo: 1000 / (max - min episode return); 1 if all equal."""
    returns = ds.episode_returns()
    spread = float(returns.max() - returns.min()) if len(returns) else 0.0
    return 1000.0 / spread if spread > 0 else 1.0


# ----------------------------------------------------------------------------- policies
def deterministic_actor(obs_dim: int, act_dim: int, hidden_sizes: tuple[int, ...],
                        generator: torch.Generator) -> nn.Sequential:
    """obs -> action in [-1, 1] (TD3+BC, BC, IQL's deterministic option)."""
    return nn.Sequential(make_mlp(obs_dim, hidden_sizes, act_dim, generator=generator), nn.Tanh())


class GaussianActor(nn.Module):
    """obs -> N(mean(obs), diag(exp(log_std))) with a state-independent, learned log std
    (clamped to [-20, 2]); the mean is tanh-bounded when ``tanh_mean`` (IQL), unbounded
    otherwise (AWAC). Actions are not squashed; samples are clamped to [-1, 1] when used."""

    def __init__(self, obs_dim: int, act_dim: int, hidden_sizes: tuple[int, ...],
                 tanh_mean: bool, generator: torch.Generator) -> None:
        super().__init__()
        self.net = make_mlp(obs_dim, hidden_sizes, act_dim, generator=generator)
        self.log_std = nn.Parameter(torch.zeros(act_dim))
        self.tanh_mean = tanh_mean

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, O) -> mean (B, A), log std (A,)."""
        mean = self.net(obs)
        if self.tanh_mean:
            mean = torch.tanh(mean)
        return mean, self.log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
