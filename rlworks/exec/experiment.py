"""Experiment files: a grid of algorithms x envs x seeds x overrides, in TOML.

An experiment file names what to run; :func:`load_experiment` validates all of it before
anything is trained (unknown algorithms, envs and config keys are one-line errors with a
"did you mean"), and :func:`expand` turns it into one :class:`RunSpec` per run. The launcher
(``rlworks.exec.launcher``) runs the specs; ``rlworks tune`` reads the optional ``[tune]``
table of the same file. The layout is documented in ``docs/experiments.md``.

```toml
[experiment]
name = "cartpole-grid"          # runs are grouped under this name in the store
algos = ["ppo", "dqn"]
envs = ["CartPole-v1", "Acrobot-v1"]
seeds = [0, 1, 2, 3, 4]         # or a count: seeds = 5 means 0..4

[config]                        # every run
total_steps = 50_000
[config.ppo]                    # only PPO runs (a table named after an algorithm ...)
learning_rate = 3e-4
[config."Acrobot-v1"]           # ... or after an env)
total_steps = 100_000
[config.ppo."Acrobot-v1"]       # only PPO on Acrobot
num_envs = 16
```

Precedence for one run: the algorithm's defaults < its tuned per-env defaults (zoo) <
``[config]`` < ``[config.ALGO]`` < ``[config.ENV]`` < ``[config.ALGO.ENV]``.

Validation happens in two passes. Each table's keys are checked on their own (a field of
every algorithm the table applies to, a value of the field's type), so an error names the
table at fault. Then every (algo, env) cell's merged config is built once, which catches
constraints between fields (``num_minibatches`` must divide the rollout) that only hold
for the merged values.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rlworks.core.errors import UserError, did_you_mean, unknown

_EXPERIMENT_KEYS = ("name", "algos", "envs", "seeds", "workers")
_TOP_KEYS = ("experiment", "config", "tune")
_RESERVED = {"env_id": "envs", "seed": "seeds"}
"""Config fields the grid itself sets, and the [experiment] key to use instead."""


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One run of a grid: everything the launcher needs to train (or find) it."""

    experiment: str
    algo: str
    env_id: str
    seed: int
    overrides: tuple[tuple[str, Any], ...] = ()
    """Config fields set by the experiment file, sorted by name (hashable)."""

    def config(self) -> Any:
        """The run's full config (defaults < zoo < overrides), validated."""
        from rlworks.exec.train import build_config

        values = {**dict(self.overrides), "env_id": self.env_id, "seed": self.seed}
        return build_config(self.algo, values)

    def label(self) -> str:
        return f"{self.algo} {self.env_id} seed {self.seed}"

    def to_dict(self) -> dict[str, Any]:
        return {"experiment": self.experiment, "algo": self.algo, "env_id": self.env_id,
                "seed": self.seed, "overrides": dict(self.overrides)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunSpec:
        overrides = {k: _freeze(v) for k, v in dict(d.get("overrides", {})).items()}
        return cls(d["experiment"], d["algo"], d["env_id"], int(d["seed"]),
                   tuple(sorted(overrides.items())))


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A parsed, validated experiment file."""

    name: str
    algos: tuple[str, ...]
    envs: tuple[str, ...]
    seeds: tuple[int, ...]
    config: dict[str, Any]
    """``[config]`` with canonical key names (``learning-rate`` -> ``learning_rate``): scalar
    keys for every run, sub-tables per algo, env and algo.env."""
    tune: dict[str, Any]
    """The raw ``[tune]`` table (validated by ``rlworks.exec.tune``), or ``{}``."""
    workers: int | None = None
    source: str = "<dict>"

    def overrides(self, algo: str, env_id: str) -> dict[str, Any]:
        """The config fields this file sets for one (algo, env) cell, precedence applied."""
        cfg = self.config
        layers = (cfg, cfg.get(algo, {}), cfg.get(env_id, {}), cfg.get(algo, {}).get(env_id, {}))
        out: dict[str, Any] = {}
        for layer in layers:  # lowest first: later layers win
            out.update(_scalars(layer))
        return out


def load_experiment(path: str | Path) -> Experiment:
    """Read and validate an experiment file (TOML or YAML)."""
    from rlworks.core.config import load_config_file

    if not Path(path).is_file():
        raise UserError(f"experiment file '{path}' does not exist; check the path")
    return parse_experiment(load_config_file(path), source=str(path),
                            default_name=Path(path).stem)


def parse_experiment(data: Mapping[str, Any], source: str = "<dict>",
                     default_name: str = "experiment") -> Experiment:
    """Validate an experiment mapping (what the TOML file holds); see the module docstring."""
    import rlworks.algos.online  # noqa: F401  (lazy registrations; no torch)
    from rlworks.core.registry import ALGORITHMS
    from rlworks.envs.registry import check_env_id

    where = f"experiment file '{source}'"
    for key in data:
        if key not in _TOP_KEYS:
            raise UserError(f"{where}: unknown table [{key}]{_hint(key, _TOP_KEYS)}")
    head = _table(data.get("experiment", {}), "[experiment]", where)
    for key in head:
        if key not in _EXPERIMENT_KEYS:
            raise UserError(f"{where}: unknown key '{key}' in [experiment]"
                            f"{_hint(key, _EXPERIMENT_KEYS)}")
    name = head.get("name", default_name)
    if not isinstance(name, str) or not name.strip():
        raise UserError(f"{where}: [experiment] name must be a non-empty string, got {name!r}")
    algos = _names(head.get("algos"), "algos", where, '["ppo", "dqn"]')
    for algo in algos:
        if algo not in ALGORITHMS.names():
            raise UserError(f"{where}: {unknown('algorithm', algo, ALGORITHMS.names())}")
    envs = _names(head.get("envs"), "envs", where, '["CartPole-v1"]')
    for env_id in envs:
        try:
            check_env_id(env_id)
        except UserError as err:
            raise UserError(f"{where}: {err}") from None
    seeds = _seeds(head.get("seeds", 1), where)
    workers = head.get("workers")
    if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool)
                                or workers < 1):
        raise UserError(f"{where}: [experiment] workers must be a positive integer, "
                        f"got {workers!r}")
    config = _normalise(_table(data.get("config", {}), "[config]", where), (), where)
    _check_config(config, algos, envs, where)
    tune = _table(data.get("tune", {}), "[tune]", where)
    exp = Experiment(name.strip(), algos, envs, seeds, config, dict(tune), workers, source)
    _check_cells(exp, where)
    return exp


def expand(exp: Experiment, seeds: tuple[int, ...] | None = None) -> list[RunSpec]:
    """Every run of the grid, algo-major then env then seed (the order they are launched)."""
    specs = []
    for algo in exp.algos:
        for env_id in exp.envs:
            over = tuple(sorted((k, _freeze(v)) for k, v in exp.overrides(algo, env_id).items()))
            for seed in exp.seeds if seeds is None else seeds:
                specs.append(RunSpec(exp.name, algo, env_id, int(seed), over))
    return specs


def spec_key(spec: RunSpec) -> str:
    """A stable text key of a spec (used to match runs already in the store)."""
    return json.dumps(spec.to_dict(), sort_keys=True, separators=(",", ":"))


# ----------------------------------------------------------------------------- [experiment]
def _hint(name: str, choices: Any) -> str:
    return did_you_mean(name, choices) or f"; expected one of: {', '.join(choices)}"


def _table(value: Any, label: str, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UserError(f"{where}: {label} must be a table of keys, got {type(value).__name__}")
    return value


def _names(value: Any, key: str, where: str, example: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise UserError(f"{where}: [experiment] {key} must be a non-empty list of names, "
                        f"e.g. {key} = {example}")
    if len(set(value)) != len(value):
        twice = sorted({v for v in value if value.count(v) > 1})
        raise UserError(f"{where}: [experiment] {key} lists {', '.join(map(repr, twice))} "
                        "twice; list each once")
    return tuple(value)


def _seeds(value: Any, where: str) -> tuple[int, ...]:
    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if is_int(value):
        if value < 1:
            raise UserError(f"{where}: [experiment] seeds = {value}; give a count >= 1 or a list")
        return tuple(range(value))
    if not (isinstance(value, list) and value and all(is_int(s) for s in value)):
        raise UserError(f"{where}: [experiment] seeds must be a count or a list of integers, "
                        f"e.g. seeds = [0, 1, 2], got {value!r}")
    if any(s < 0 for s in value):
        raise UserError(f"{where}: [experiment] seeds must be >= 0, got {value}")
    if len(set(value)) != len(value):
        twice = sorted({s for s in value if value.count(s) > 1})
        raise UserError(f"{where}: [experiment] seeds lists {twice} twice; a seed repeated is "
                        "the same run")
    return tuple(value)


# ----------------------------------------------------------------------------- [config]
def _label(*parts: str) -> str:
    """The TOML header of a [config] sub-table, quoting names that are not bare keys."""
    return "[" + ".".join(("config", *(p if re.fullmatch(r"[A-Za-z0-9_-]+", p)
                                        else json.dumps(p) for p in parts))) + "]"


def _scalars(table: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in table.items() if not isinstance(v, dict)}


def _tables(table: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in table.items() if isinstance(v, dict)}


def _freeze(value: Any) -> Any:
    """TOML lists as tuples, so a RunSpec stays hashable."""
    return tuple(_freeze(v) for v in value) if isinstance(value, list | tuple) else value


def _normalise(table: dict[str, Any], parts: tuple[str, ...], where: str) -> dict[str, Any]:
    """Field names as the configs spell them (``learning-rate`` -> ``learning_rate``);
    sub-table names (algos, env ids) are kept as written."""
    out: dict[str, Any] = {}
    spelled: dict[str, str] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            out[key] = _normalise(value, (*parts, key), where)
            continue
        name = key.replace("-", "_")
        if name in spelled:
            raise UserError(f"{where}: {_label(*parts)} sets '{name}' twice (as "
                            f"'{spelled[name]}' and '{key}'); keep one")
        out[name], spelled[name] = value, key
    return out


def _check_config(config: dict[str, Any], algos: tuple[str, ...], envs: tuple[str, ...],
                  where: str) -> None:
    """Every table of [config] names an algorithm or env; every key is a field of each
    algorithm it applies to, with a value of the field's type.

    A table of a registered algorithm or env that is not in this grid is checked the same
    way and then applies to no run, so taking a name out of ``algos`` or ``envs`` for a
    while needs no other edit; a name that is neither is a typo and an error.
    """
    _check_keys(_scalars(config), algos, (), where)
    for key, sub in _tables(config).items():
        if key in algos or _is_algo(key):
            _check_algo_table(key, sub, envs, where)
        elif key in envs or _is_env(key):
            _check_flat(sub, (key,), where)
            _check_keys(sub, algos, (key,), where)
        else:
            raise UserError(f"{where}: {_label(key)} names no algorithm or env"
                            f"{_hint(key, algos + envs)}")


def _check_algo_table(algo: str, table: dict[str, Any], envs: tuple[str, ...],
                      where: str) -> None:
    _check_keys(_scalars(table), (algo,), (algo,), where)
    for env_id, cell in _tables(table).items():
        if env_id not in envs and not _is_env(env_id):
            raise UserError(f"{where}: {_label(algo, env_id)} names no env"
                            f"{_hint(env_id, envs)}")
        _check_flat(cell, (algo, env_id), where)
        _check_keys(cell, (algo,), (algo, env_id), where)


def _is_algo(name: str) -> bool:
    from rlworks.core.registry import ALGORITHMS

    return name in ALGORITHMS.names()


def _is_env(name: str) -> bool:
    from rlworks.envs.registry import check_env_id

    try:
        check_env_id(name)
    except UserError:
        return False
    return True


def _check_flat(table: dict[str, Any], parts: tuple[str, ...], where: str) -> None:
    for key, value in table.items():
        if isinstance(value, dict):
            raise UserError(f"{where}: {_label(*parts, key)} nests too deep; the deepest table "
                            'is [config.ALGO."ENV"]')


def _check_keys(values: dict[str, Any], algos: tuple[str, ...], parts: tuple[str, ...],
                where: str) -> None:
    """Each key of ``values`` (the table ``parts``) must be a field of every one of ``algos``."""
    from rlworks.core.config import coerce, field_types

    label = _label(*parts)
    types = {algo: field_types(_config_class(algo)) for algo in algos}
    for key, value in values.items():
        if key in _RESERVED:
            raise UserError(f"{where}: {label} sets '{key}'; list {_RESERVED[key]} in "
                            "[experiment] instead")
        owners = [a for a in algos if key in types[a]]
        if len(owners) < len(algos):
            raise UserError(_key_error(key, owners, algos, parts, types, where))
        for algo in algos:  # constraints between fields are checked per run (_check_cells)
            coerce(value, types[algo][key], key, f"{where}: {label}")


def _key_error(key: str, owners: list[str], algos: tuple[str, ...], parts: tuple[str, ...],
               types: dict[str, dict[str, Any]], where: str) -> str:
    label = _label(*parts)
    if owners:  # a field of some of the algorithms only: say where it belongs
        others = [a for a in algos if a not in owners]
        env = [p for p in parts if p not in algos]
        homes = " and ".join(_label(a, *env) for a in owners)
        return (f"{where}: {label} key '{key}' is a field of {' and '.join(owners)} but not of "
                f"{' or '.join(others)}; move it under {homes}")
    fields = sorted({f for algo in algos for f in types[algo]})
    tip = did_you_mean(key, fields) or (f"; `rlworks train {algos[0]} --help` lists the "
                                        "fields")
    return f"{where}: {label} key '{key}' is not a {' or '.join(algos)} config field{tip}"


def _check_cells(exp: Experiment, where: str) -> None:
    """Build each (algo, env) cell's merged config once: cross-field constraints hold."""
    for algo in exp.algos:
        for env_id in exp.envs:
            spec = RunSpec(exp.name, algo, env_id, exp.seeds[0],
                           tuple(exp.overrides(algo, env_id).items()))
            try:
                spec.config()
            except UserError as err:
                raise UserError(f"{where}: the {algo} runs on {env_id}: {err}") from None


def _config_class(algo: str) -> type:
    from rlworks.core.registry import ALGORITHMS

    return ALGORITHMS.get(algo).config_class()
