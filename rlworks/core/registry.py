"""The registry of named components: a name becomes a function once, at config time.

Entries are registered lazily as ``"module:attribute"`` strings, so listing names or building
``--help`` never imports torch. ``Registry.get`` imports the target on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from rlworks.core.errors import unknown

T = TypeVar("T")


def resolve(target: str) -> Any:
    """Import ``"package.module:attr"`` and return the attribute."""
    module, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split(".") if attr else []:
        obj = getattr(obj, part)
    return obj


@dataclass
class Registry(Generic[T]):
    """Named components of one kind (algorithms, envs, advantage estimators, ...)."""

    kind: str
    _entries: dict[str, str | T] = field(default_factory=dict)

    def register(self, name: str, target: str | T | None = None) -> Any:
        """Register ``target`` (an object or a lazy ``"module:attr"`` string) under ``name``.

        Without ``target`` it works as a decorator.
        """
        if target is None:
            def deco(obj: T) -> T:
                self.register(name, obj)
                return obj

            return deco
        if name in self._entries:
            raise ValueError(f"{self.kind} '{name}' is already registered")
        self._entries[name] = target
        return target

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise unknown(self.kind, name, self._entries)
        entry = self._entries[name]
        if isinstance(entry, str):
            entry = resolve(entry)
            self._entries[name] = entry
        return entry

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def names(self) -> list[str]:
        return sorted(self._entries)


@dataclass(frozen=True)
class AlgoSpec:
    """How to build and train a registered algorithm (strings keep the CLI torch-free)."""

    name: str
    config: str
    """``"module:ConfigClass"``; the module must not import torch."""
    learner: str
    """``"module:LearnerClass"``, constructed as ``Learner(cfg, envs)``."""
    summary: str
    overrides: tuple[tuple[str, Any], ...] = ()
    """For a preset: the config keys it changes relative to ``config``'s defaults."""

    def config_class(self) -> type:
        return resolve(self.config)

    def learner_class(self) -> Callable[..., Any]:
        return resolve(self.learner)


ALGORITHMS: Registry[AlgoSpec] = Registry("algorithm")


def register_algo(spec: AlgoSpec) -> AlgoSpec:
    ALGORITHMS.register(spec.name, spec)
    return spec
