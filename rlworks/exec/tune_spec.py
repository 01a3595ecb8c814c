"""The ``[tune]`` table of an experiment file, validated into a :class:`TuneSpec`.

The search itself is ``rlworks.exec.tune``; this module holds what it searches (the space,
the seeds, the sampler and pruner names) and refuses bad tables in one line each, before
anything is trained. Tuning and test seeds must be disjoint; :class:`TuneSpec` enforces it
even when built in code.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Mapping
from typing import Any, Literal

from rlworks.core.errors import UserError, did_you_mean
from rlworks.exec.experiment import Experiment

_TUNE_KEYS = ("algo", "env", "trials", "tuning_seeds", "test_seeds", "sampler", "pruner",
              "workers", "objective", "budget", "seed", "space")
_SPACE_KEYS = ("low", "high", "log", "step", "choices")
SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "none")
OBJECTIVES = {
    "final_eval": "mean over the tuning seeds of each run's final evaluation return "
                  "(deterministic policy, eval_episodes episodes)",
    "mean_train_return": "mean over the tuning seeds of the mean training episodic return "
                         "over the whole run (area under the learning curve)",
}
_NOT_TUNABLE = {
    "env_id": "name it with [tune] env",
    "seed": "seeds come from [tune] tuning_seeds and test_seeds",
    "total_steps": "the budget is fixed for every trial: set [tune] budget",
    "eval_episodes": "it sets how the objective is measured; set it in [config]",
}
REPORT_REPS = 20_000


class SeedLeakError(RuntimeError):
    """A test seed (or any non-tuning seed) reached training during the search."""


@dataclasses.dataclass(frozen=True)
class Param:
    """One dimension of the search space: a float/int range or a list of choices."""

    name: str
    kind: Literal["float", "int", "choice"]
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        if self.kind == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log,
                                       step=self.step)
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log,
                                     step=int(self.step or 1))
        return trial.suggest_categorical(self.name, list(self.choices))

    def describe(self) -> str:
        if self.kind == "choice":
            return f"one of {', '.join(map(str, self.choices))}"
        scale = "log " if self.log else ""
        return f"{self.kind} in [{self.low:g}, {self.high:g}] ({scale}uniform)"


@dataclasses.dataclass(frozen=True)
class TuneSpec:
    """A validated ``[tune]`` table (see :func:`parse_tune` and docs/tuning.md)."""

    name: str
    algo: str
    env_id: str
    tuning_seeds: tuple[int, ...]
    test_seeds: tuple[int, ...]
    space: tuple[Param, ...]
    budget: int
    trials: int = 20
    sampler: str = "tpe"
    pruner: str = "median"
    objective: str = "final_eval"
    workers: int | None = None
    seed: int = 0
    """Seeds the samplers and the report's bootstrap (not any training run)."""
    base: tuple[tuple[str, Any], ...] = ()
    """The experiment's [config] values for this (algo, env): the *default* configuration."""

    def __post_init__(self) -> None:
        overlap = sorted(set(self.tuning_seeds) & set(self.test_seeds))
        if overlap:
            raise UserError(f"[tune] tuning_seeds and test_seeds share seeds {overlap}; they "
                            "must be disjoint, or the report is biased by the selection")

    def overrides(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Config fields set for a run: defaults < zoo < [config] < budget < ``params``."""
        return {**dict(self.base), "total_steps": self.budget, **params}

    def config(self, params: Mapping[str, Any], seed: int) -> Any:
        from rlworks.exec.train import build_config

        return build_config(self.algo, {**self.overrides(params), "env_id": self.env_id,
                                        "seed": seed})

    def fingerprint(self) -> dict[str, Any]:
        """What gives trial values their meaning; a study made from another one is refused."""
        return {"algo": self.algo, "env": self.env_id, "tuning_seeds": list(self.tuning_seeds),
                "budget": self.budget, "objective": self.objective,
                "space": [dataclasses.asdict(p) for p in self.space],
                "config": _jsonable(dict(self.base))}


# ----------------------------------------------------------------------------- validation
def parse_tune(exp: Experiment) -> TuneSpec:
    """Validate ``exp.tune`` against the experiment; every error is one line."""
    import rlworks.algos.online  # noqa: F401  (registrations only; no torch)
    from rlworks.core.registry import ALGORITHMS

    where = f"experiment file '{exp.source}'"
    raw = exp.tune
    if not raw:
        raise UserError(f"{where} has no [tune] table; see docs/tuning.md for an example")
    for key in raw:
        if key not in _TUNE_KEYS:
            raise UserError(f"{where}: unknown key '{key}' in [tune]{_hint(key, _TUNE_KEYS)}")
    algo = _pick(raw.get("algo"), exp.algos, "algo", where)
    env_id = _pick(raw.get("env"), exp.envs, "env", where)
    tuning = _seed_list(raw.get("tuning_seeds"), "tuning_seeds", where, "[0, 1, 2]", 1)
    test = _seed_list(raw.get("test_seeds"), "test_seeds", where, "[100, 101, 102, 103, 104]", 2)
    overlap = sorted(set(tuning) & set(test))
    if overlap:
        raise UserError(f"{where}: [tune] tuning_seeds and test_seeds share seeds {overlap}; "
                        "make them disjoint (a test seed used for tuning biases the report)")
    trials = _positive(raw.get("trials", 20), "trials", where)
    workers = raw.get("workers", exp.workers)
    workers = None if workers is None else _positive(workers, "workers", where)
    sampler = _choice(raw.get("sampler", "tpe"), SAMPLERS, "sampler", where)
    pruner = _choice(raw.get("pruner", "median"), PRUNERS, "pruner", where)
    objective = _choice(raw.get("objective", "final_eval"), tuple(OBJECTIVES), "objective",
                        where)
    seed = raw.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise UserError(f"{where}: [tune] seed must be an integer, got {seed!r}")
    base = exp.overrides(algo, env_id)
    from rlworks.exec.train import build_config

    budget = raw.get("budget", base.get("total_steps"))
    if budget is None:
        budget = build_config(algo, {"env_id": env_id}).total_steps
    budget = _positive(budget, "budget", where)
    space_raw = raw.get("space")
    if not isinstance(space_raw, dict) or not space_raw:
        raise UserError(f"{where}: [tune.space] is missing or empty; add one entry per config "
                        "field, e.g. learning_rate = {low = 1e-4, high = 3e-3, log = true}")
    cls = ALGORITHMS.get(algo).config_class()
    try:
        default = build_config(algo, {**base, "total_steps": budget, "env_id": env_id,
                                      "seed": tuning[0]})
    except UserError as err:
        raise UserError(f"{where}: the default configuration is invalid: {err}") from None
    space = tuple(_parse_param(name, entry, cls, default, f"{where}: [tune.space] {name}")
                  for name, entry in space_raw.items())
    return TuneSpec(exp.name, algo, env_id, tuning, test, space, budget, trials, sampler, pruner,
                    objective, workers, seed, tuple(sorted(base.items())))


def _pick(value: Any, options: tuple[str, ...], key: str, where: str) -> str:
    plural = "algos" if key == "algo" else "envs"
    if value is None:
        if len(options) == 1:
            return options[0]
        raise UserError(f"{where}: [experiment] lists {len(options)} {plural}; name the one to "
                        f"tune with [tune] {key} = \"{options[0]}\"")
    if value not in options:
        raise UserError(f"{where}: [tune] {key} = {value!r} is not in [experiment] {plural}"
                        f"{did_you_mean(str(value), options) or ': ' + ', '.join(options)}")
    return str(value)


def _seed_list(value: Any, key: str, where: str, example: str, least: int) -> tuple[int, ...]:
    ok = (isinstance(value, list) and len(value) >= least
          and all(isinstance(s, int) and not isinstance(s, bool) for s in value))
    if not ok:
        raise UserError(f"{where}: [tune] {key} must be a list of at least {least} integer "
                        f"seed{'s' if least > 1 else ''}, e.g. {key} = {example}, got {value!r}")
    if len(set(value)) != len(value):
        raise UserError(f"{where}: [tune] {key} lists a seed twice: {value}")
    return tuple(value)


def _positive(value: Any, key: str, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise UserError(f"{where}: [tune] {key} must be a positive integer, got {value!r}")
    return value


def _choice(value: Any, options: tuple[str, ...], key: str, where: str) -> str:
    if value not in options:
        raise UserError(f"{where}: [tune] {key} = {value!r}; choose one of "
                        f"{', '.join(options)}{did_you_mean(str(value), options)}")
    return str(value)


def _hint(key: str, choices: tuple[str, ...]) -> str:
    return did_you_mean(key, choices) or f"; valid: {', '.join(choices)}"


def _parse_param(name: str, entry: Any, cls: type, default: Any, where: str) -> Param:
    from rlworks.core.config import config_from_dict, field_types

    types = field_types(cls)
    if name not in types:
        raise UserError(f"{where}: '{name}' is not a {cls.__name__} field"
                        f"{_hint(name, tuple(types))}")
    if name in _NOT_TUNABLE:
        raise UserError(f"{where}: '{name}' cannot be tuned; {_NOT_TUNABLE[name]}")
    if not isinstance(entry, dict):
        raise UserError(f"{where} must be a table, e.g. {name} = {{low = 1e-4, high = 1e-2, "
                        f"log = true}} or {name} = {{choices = [...]}}")
    for key in entry:
        if key not in _SPACE_KEYS:
            raise UserError(f"{where}: unknown key '{key}'{_hint(key, _SPACE_KEYS)}")

    def check(value: Any) -> None:  # the value must make a valid config (types, __post_init__)
        config_from_dict(cls, {name: value}, source=where, base=default)

    if "choices" in entry:
        param = _parse_choices(name, entry, where)
        for c in param.choices:
            check(c)
        return param
    tp = types[name]
    args = [a for a in typing.get_args(tp) if a is not type(None)] or [tp]
    if args[0] not in (int, float):
        raise UserError(f"{where}: '{name}' is not a number; use choices = [...]")
    param = _parse_range(name, "int" if args[0] is int else "float", entry, where)
    check(param.low)
    check(param.high)
    return param


def _parse_choices(name: str, entry: dict[str, Any], where: str) -> Param:
    if set(entry) - {"choices"}:
        raise UserError(f"{where}: give either choices or low/high, not both")
    choices = entry["choices"]
    if not isinstance(choices, list) or not choices:
        raise UserError(f"{where}: choices must be a non-empty list, got {choices!r}")
    # Optuna stores only scalars: a list choice (hidden_sizes) becomes "64,64".
    flat = tuple(",".join(map(str, c)) if isinstance(c, list) else c for c in choices)
    if len(set(flat)) != len(flat):
        raise UserError(f"{where}: choices lists a value twice: {choices}")
    return Param(name, "choice", choices=flat)


def _parse_range(name: str, kind: Literal["int", "float"], entry: dict[str, Any],
                 where: str) -> Param:
    if "low" not in entry or "high" not in entry:
        raise UserError(f"{where} needs low and high (or choices = [...])")
    low, high, log, step = entry["low"], entry["high"], entry.get("log", False), entry.get("step")
    numbers = [("low", low), ("high", high)] + ([("step", step)] if step is not None else [])
    for label, v in numbers:
        if isinstance(v, bool) or not isinstance(v, int if kind == "int" else int | float):
            what = "an integer" if kind == "int" else "a number"
            raise UserError(f"{where}: {label} must be {what}, got {v!r}")
    if not isinstance(log, bool):
        raise UserError(f"{where}: log must be true or false, got {log!r}")
    if low >= high:
        raise UserError(f"{where}: low ({low}) must be below high ({high})")
    if log and low <= 0:
        raise UserError(f"{where}: a log scale needs low > 0, got low = {low}")
    if step is not None and (step <= 0 or log):
        raise UserError(f"{where}: step must be positive and cannot be combined with log")
    if kind == "float":
        low, high = float(low), float(high)
    return Param(name, kind, low, high, log, step)


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(d, default=list))
