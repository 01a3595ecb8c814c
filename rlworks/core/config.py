"""Configuration: frozen dataclasses whose fields carry docstrings.

A config class is a plain ``@dataclass(frozen=True)``; each field is documented by the string
literal written under it (as CleanRL/tyro read them)::

    @dataclass(frozen=True)
    class PPOConfig:
        gamma: float = 0.99
        \"\"\"Discount factor.\"\"\"

From that one definition this module derives the CLI flags and their ``--help`` text, the
validation of TOML/YAML files and overrides (an unknown key or a wrong type names the key and
suggests the nearest valid one), a canonical dict and a stable hash.

Precedence, lowest first: dataclass defaults < per-env tuned defaults < config file < CLI flags.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import hashlib
import inspect
import json
import textwrap
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from rlworks.core.errors import UserError, did_you_mean

C = TypeVar("C")


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """Docstrings written under each field of ``cls`` (and its dataclass bases)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass) or klass is object:
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):  # pragma: no cover - source unavailable (frozen app)
            continue
        body = tree.body[0].body  # type: ignore[attr-defined]
        for node, nxt in zip(body, body[1:], strict=False):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[node.target.id] = inspect.cleandoc(nxt.value.value)
    return docs


@functools.cache
def field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def coerce(value: Any, tp: Any, key: str, source: str = "config") -> Any:
    """Convert ``value`` (from TOML, YAML or a CLI string) to type ``tp`` or raise UserError."""
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        return _coerce_union(value, typing.get_args(tp), key, source)
    if origin is typing.Literal:
        args = typing.get_args(tp)
        if value in args:
            return value
        hint = did_you_mean(str(value), [str(a) for a in args]) if isinstance(value, str) else ""
        raise UserError(f"{source}: '{key}' must be one of {', '.join(map(repr, args))}, "
                        f"got {value!r}{hint}")
    if origin is tuple:
        if isinstance(value, str):
            value = [v for v in value.strip("()[] ").split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise UserError(f"{source}: '{key}' must be a list, got {value!r}")
        inner = (typing.get_args(tp) or (str,))[0]
        return tuple(coerce(v, inner, key, source) for v in value)
    scalar = _SCALARS.get(tp)
    if scalar is None:
        return value  # pragma: no cover - other types pass through unchecked
    out = scalar(value)
    if out is _INVALID:
        raise UserError(f"{source}: '{key}' must be {_SCALAR_NAMES[tp]}, got {value!r}")
    return out


_INVALID = object()
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def _as_bool(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _TRUE + _FALSE:
        return value.lower() in _TRUE
    return _INVALID


def _as_float(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.replace("_", ""))
        except ValueError:
            pass
    return _INVALID


def _as_int(value: Any) -> Any:
    if isinstance(value, bool):
        return _INVALID
    if isinstance(value, int):
        return value
    f = _as_float(value)  # accepts "1e5" and 100000.0, not 0.5
    return int(f) if f is not _INVALID and f.is_integer() else _INVALID


_SCALARS: dict[Any, Any] = {
    bool: _as_bool, int: _as_int, float: _as_float,
    str: lambda v: v if isinstance(v, str) else _INVALID,
}
_SCALAR_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _coerce_union(value: Any, args: tuple[Any, ...], key: str, source: str) -> Any:
    is_none = value is None or (isinstance(value, str) and value.lower() in ("none", "null"))
    if is_none and type(None) in args:
        return None
    errors = []
    for arg in args:
        if arg is type(None):
            continue
        try:
            return coerce(value, arg, key, source)
        except UserError as err:
            errors.append(str(err))
    raise UserError(errors[0] if errors else f"{source}: '{key}' cannot be None")


def config_from_dict(cls: type[C], data: Mapping[str, Any], source: str = "config",
                     base: C | None = None) -> C:
    """Build ``cls`` from ``data`` (on top of ``base`` if given), validating every key."""
    ftypes = field_types(cls)  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in ftypes:
            raise UserError(
                f"{source}: unknown key '{key}' for {cls.__name__}"
                + (did_you_mean(name, ftypes) or f"; valid keys: {', '.join(ftypes)}")
            )
        values[name] = coerce(value, ftypes[name], name, source)
    if base is not None:
        return dataclasses.replace(base, **values)  # type: ignore[type-var]
    return cls(**values)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of the config's fields (tuples become lists)."""
    out = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        out[f.name] = list(v) if isinstance(v, tuple) else v
    return out


def config_hash(cfg: Any) -> str:
    """A stable 12-hex-digit hash of the config's canonical JSON."""
    blob = json.dumps(config_to_dict(cfg), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML or YAML mapping; a missing or malformed file is a UserError naming it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file '{path}' does not exist; check the path")
    text = path.read_text()
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            import tomllib

            data = tomllib.loads(text)
    except Exception as err:  # tomllib.TOMLDecodeError, yaml.YAMLError
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(f"config file '{path}' is malformed: {msg}; fix the syntax") from None
    if not isinstance(data, dict):
        raise UserError(f"config file '{path}' must hold a mapping of keys to values")
    return data


def add_config_arguments(parser: argparse.ArgumentParser, cls: type,
                         skip: tuple[str, ...] = ()) -> None:
    """Add one ``--field-name`` flag per field of ``cls``; help comes from the docstrings.

    Flags default to ``argparse.SUPPRESS`` so only values the user gave reach the config
    (the precedence chain above stays intact).
    """
    docs = field_docs(cls)
    group = parser.add_argument_group(f"{cls.__name__} (any field can also be set in --config)")
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        default = f.default if f.default is not dataclasses.MISSING else None
        help_text = f"{docs.get(f.name, '')} (default: {default!r})".replace("%", "%%")
        group.add_argument(
            "--" + f.name.replace("_", "-"), dest=f.name, default=argparse.SUPPRESS,
            metavar=_metavar(field_types(cls)[f.name]), help=help_text,
        )


def _metavar(tp: Any) -> str:
    if tp is bool:
        return "BOOL"
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return "{" + ",".join(map(str, typing.get_args(tp))) + "}"
    if origin is tuple:
        return "A,B,..."
    name = getattr(tp, "__name__", None)
    return (name or str(tp).replace("typing.", "")).upper()
