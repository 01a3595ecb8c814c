"""Names: which env ids rlworks simulates itself, which backends exist, and the did-you-mean list.

Kept free of gymnasium imports so that a native id or a typo in a backend name is resolved
without paying for ``import gymnasium``; only an id that is not native consults gymnasium's
registry (and EnvPool's, for ``backend="envpool"``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from rlworks.core.errors import unknown

if TYPE_CHECKING:
    from rlworks.envs.native.base import NativeVecEnv

NATIVE_ENVS: dict[str, str] = {
    "CartPole-v1": "rlworks.envs.native.cartpole:CartPole",
    "Acrobot-v1": "rlworks.envs.native.acrobot:Acrobot",
    "MountainCar-v0": "rlworks.envs.native.mountain_car:MountainCar",
    "MountainCarContinuous-v0": "rlworks.envs.native.mountain_car:MountainCarContinuous",
    "Pendulum-v1": "rlworks.envs.native.pendulum:Pendulum",
}
"""Env id -> ``module:Class`` of its numpy-batched implementation (imported on first use)."""

BACKENDS = ("auto", "native", "envpool", "gymnasium-sync", "gymnasium-async", "gymnasium-vector")


def native_ids() -> list[str]:
    return list(NATIVE_ENVS)


def is_native(env_id: str) -> bool:
    return env_id in NATIVE_ENVS


def native_class(env_id: str) -> type[NativeVecEnv]:
    if env_id not in NATIVE_ENVS:
        raise unknown("native env", env_id, NATIVE_ENVS)
    module, name = NATIVE_ENVS[env_id].split(":")
    cls: type[NativeVecEnv] = getattr(importlib.import_module(module), name)
    return cls


def gymnasium_ids() -> list[str]:
    import gymnasium as gym

    return list(gym.registry)


def env_ids() -> list[str]:
    """Every id ``make_vec`` can build with some backend: native ids + gymnasium's registry."""
    return sorted(set(native_ids()) | set(gymnasium_ids()))


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise unknown("backend", backend, BACKENDS)


def check_env_id(env_id: str) -> None:
    """Raise the did-you-mean UserError for an id neither native nor in gymnasium's registry."""
    if is_native(env_id):
        return
    ids = gymnasium_ids()
    if env_id not in ids:
        raise unknown("env", env_id, sorted(set(ids) | set(native_ids())))
