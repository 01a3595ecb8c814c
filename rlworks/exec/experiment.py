"""Experiment files: a grid of algorithms x envs x seeds x overrides, in TOML.

An experiment file names what to run; :func:`load_experiment` validates all of it before
anything is trained (unknown algorithms, envs and config keys are one-line errors with a
"did you mean"), and :func:`expand` turns it into one :class:`RunSpec` per run. The launcher
(``rlworks.exec.launcher``) runs the specs; ``rlworks tune`` reads the optional ``[tune]``
table of the same file.

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
```

Precedence for one run: the algorithm's defaults < its tuned per-env defaults (zoo) <
``[config]`` < ``[config.ALGO]`` < ``[config.ENV]`` < ``[config.ALGO.ENV]``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rlworks.core.errors import UserError, did_you_mean, unknown

_EXPERIMENT_KEYS = ("name", "algos", "envs", "seeds", "workers")
_TOP_KEYS = ("experiment", "config", "tune")


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
        return cls(d["experiment"], d["algo"], d["env_id"], int(d["seed"]),
                   tuple(sorted(dict(d.get("overrides", {})).items())))


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A parsed, validated experiment file."""

    name: str
    algos: tuple[str, ...]
    envs: tuple[str, ...]
    seeds: tuple[int, ...]
    config: dict[str, Any]
    """``[config]`` as written: scalar keys for every run, sub-tables per algo/env/algo.env."""
    tune: dict[str, Any]
    """The raw ``[tune]`` table (validated by ``rlworks.exec.tune``), or ``{}``."""
    workers: int | None = None
    source: str = "<dict>"

    def overrides(self, algo: str, env_id: str) -> dict[str, Any]:
        """The config fields this file sets for one (algo, env) cell, in precedence order."""
        cfg = self.config
        out = {k: v for k, v in cfg.items() if not isinstance(v, dict)}
        for key in (algo, env_id):
            out.update({k: v for k, v in cfg.get(key, {}).items() if not isinstance(v, dict)})
        out.update(cfg.get(algo, {}).get(env_id, {}))
        return out


def load_experiment(path: str | Path) -> Experiment:
    """Read and validate an experiment file (TOML or YAML)."""
    from rlworks.core.config import load_config_file

    return parse_experiment(load_config_file(path), source=str(path),
                            default_name=Path(path).stem)


def parse_experiment(data: Mapping[str, Any], source: str = "<dict>",
                     default_name: str = "experiment") -> Experiment:
    """Validate an experiment mapping (what the TOML file holds); see the module docstring."""
    import rlworks.algos.online  # noqa: F401  (lazy registrations; no torch)
    from rlworks.core.registry import ALGORITHMS

    where = f"experiment file '{source}'"
    for key in data:
        if key not in _TOP_KEYS:
            raise UserError(f"{where}: unknown table [{key}]{_hint(key, _TOP_KEYS)}")
    head = _table(data.get("experiment", {}), "[experiment]", where)
    for key in head:
        if key not in _EXPERIMENT_KEYS:
            raise UserError(f"{where}: unknown key '{key}' in [experiment]"
                            f"{_hint(key, _EXPERIMENT_KEYS)}")
    name = str(head.get("name", default_name)).strip()
    if not name:
        raise UserError(f"{where}: [experiment] name is empty; give the grid a name")
    algos = _names(head.get("algos"), "algos", where, '["ppo", "dqn"]')
    for algo in algos:
        if algo not in ALGORITHMS.names():
            raise UserError(f"{where}: {unknown('algorithm', algo, ALGORITHMS.names())}")
    envs = _names(head.get("envs"), "envs", where, '["CartPole-v1"]')
    from rlworks.envs.registry import check_env_id

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
    config = _table(data.get("config", {}), "[config]", where)
    _check_config(config, algos, envs, where)
    tune = _table(data.get("tune", {}), "[tune]", where)
    return Experiment(name, algos, envs, seeds, dict(config), dict(tune), workers, source)


def expand(exp: Experiment, seeds: tuple[int, ...] | None = None) -> list[RunSpec]:
    """Every run of the grid, algo-major then env then seed (the order they are launched)."""
    specs = []
    for algo in exp.algos:
        for env_id in exp.envs:
            over = tuple(sorted(exp.overrides(algo, env_id).items()))
            for seed in exp.seeds if seeds is None else seeds:
                specs.append(RunSpec(exp.name, algo, env_id, int(seed), over))
    return specs


# ----------------------------------------------------------------------------- validation
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
        raise UserError(f"{where}: [experiment] {key} lists a name twice: {value}")
    return tuple(value)


def _seeds(value: Any, where: str) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise UserError(f"{where}: [experiment] seeds = {value}; give a count >= 1 or a list")
        return tuple(range(value))
    if (isinstance(value, list) and value
            and all(isinstance(s, int) and not isinstance(s, bool) for s in value)):
        if len(set(value)) != len(value):
            raise UserError(f"{where}: [experiment] seeds lists a seed twice: {value}")
        return tuple(value)
    raise UserError(f"{where}: [experiment] seeds must be a count or a list of integers, "
                    f"e.g. seeds = [0, 1, 2], got {value!r}")


def _check_config(config: dict[str, Any], algos: tuple[str, ...], envs: tuple[str, ...],
                  where: str) -> None:
    """Every key must be a field of every algorithm it applies to, with a valid value."""
    from rlworks.core.config import config_from_dict
    from rlworks.core.registry import ALGORITHMS

    def check(values: dict[str, Any], applies_to: tuple[str, ...], label: str) -> None:
        for algo in applies_to:
            cls = ALGORITHMS.get(algo).config_class()
            fields = {f.name for f in dataclasses.fields(cls)}
            for key in values:
                if key in ("env_id", "seed"):
                    raise UserError(f"{where}: {label} sets '{key}'; list "
                                    f"{'envs' if key == 'env_id' else 'seeds'} in [experiment]")
                if key not in fields:
                    tip = did_you_mean(key, fields)
                    if not tip and len(applies_to) > 1:
                        tip = f"; if it is {algo}-free, move it under [config.<algo>]"
                    raise UserError(f"{where}: {label} key '{key}' is not a {algo} config "
                                    f"field{tip}")
            try:
                config_from_dict(cls, values, source=f"{where} {label}")
            except UserError as err:
                raise UserError(str(err)) from None

    def scalars(table: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in table.items() if not isinstance(v, dict)}

    check(scalars(config), algos, "[config]")
    for key, sub in config.items():
        if not isinstance(sub, dict):
            continue
        if key in algos:
            check(scalars(sub), (key,), f"[config.{key}]")
            for env_key, cell in sub.items():
                if isinstance(cell, dict):
                    if env_key not in envs:
                        raise UserError(f"{where}: [config.{key}.{env_key}] names no env of "
                                        f"this grid{_hint(env_key, envs)}")
                    if any(isinstance(v, dict) for v in cell.values()):
                        raise UserError(f"{where}: [config.{key}.{env_key}] nests too deep")
                    check(cell, (key,), f"[config.{key}.{env_key}]")
        elif key in envs:
            if any(isinstance(v, dict) for v in sub.values()):
                raise UserError(f"{where}: [config.\"{key}\"] nests too deep; "
                                "use [config.ALGO.\"ENV\"]")
            check(sub, algos, f"[config.\"{key}\"]")
        else:
            raise UserError(f"{where}: [config.{key}] names no algorithm or env of this grid"
                            f"{_hint(key, algos + envs)}")


def spec_key(spec: RunSpec) -> str:
    """A stable text key of a spec (used to match runs already in the store)."""
    return json.dumps(spec.to_dict(), sort_keys=True, separators=(",", ":"))
