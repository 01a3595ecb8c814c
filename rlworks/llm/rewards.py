"""Reward functions for LLM RL post-training and their weighted combination.

A reward function is a plain callable ``fn(prompts, completions, **columns) -> list[float | None]``
(TRL's convention): row i of every list belongs together, and ``None`` means "this function has
nothing to say about sample i". :class:`RewardSet` evaluates several named functions on one batch,
weights them into one total per sample and reports ``rewards/<name>/mean`` metrics.

Built-ins: :func:`correctness_reward` and :func:`format_reward` (ReasonGym, re-exported),
:func:`length_penalty` (DAPO's overlong soft punishment, Yu et al. 2025, arXiv:2503.14476) and
:func:`cosine_length_reward` (Yeo et al. 2025, "Demystifying Long Chain-of-Thought Reasoning in
LLMs", arXiv:2502.03373; used by Open-RS, Dang & Ngo 2025, arXiv:2503.16219).

A reward function that raises must not stop a run: :class:`RewardSet` retries the batch sample by
sample, gives the failing samples no reward (their total is NaN, so the trainer masks them out),
logs the first failure of each function once and counts failures in ``rewards/<name>/errors``.
A function that returns the wrong number of values, or something other than a finite number or
None, is a programming error and raises :class:`~rlworks.core.errors.UserError`.
See ``docs/llm/rewards.md``.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from rlworks.core.errors import UserError
from rlworks.llm.tasks.rewards import correctness_reward, format_reward

__all__ = [
    "RewardBatch",
    "RewardFn",
    "RewardSet",
    "RewardTerm",
    "completion_lengths",
    "correctness_reward",
    "cosine_length_reward",
    "format_reward",
    "length_penalty",
]

logger = logging.getLogger("rlworks.llm.rewards")

RewardFn = Callable[..., Sequence[float | None]]
"""``fn(prompts, completions, **columns) -> list[float | None]``, one value per completion."""

_REPR_CHARS = 160  # how much of an offending sample a warning shows


# ---------------------------------------------------------------- lengths


def completion_lengths(completions: Sequence[Any], columns: Mapping[str, Any]) -> np.ndarray:
    """Length of each completion: tokens if ``columns`` has ``completion_lengths``, else characters.

    # (N,) -> (N,) float. A conversational completion (a list of ``{"content": ...}`` messages)
    counts the characters of all its contents.
    """
    given = columns.get("completion_lengths")
    if given is not None:
        lengths = np.asarray(given, dtype=float)
        if lengths.shape != (len(completions),):
            raise UserError(
                f"completion_lengths has shape {lengths.shape} for {len(completions)} "
                "completions; give one token count per completion"
            )
        return lengths
    return np.array([_char_length(c) for c in completions], dtype=float)


def _char_length(completion: Any) -> int:
    if isinstance(completion, str):
        return len(completion)
    if isinstance(completion, list) and all(
        isinstance(m, Mapping) and "content" in m for m in completion
    ):
        return sum(len(str(m["content"])) for m in completion)
    raise TypeError(
        f"cannot measure the length of a {type(completion).__name__} completion; pass "
        "completion_lengths=[...] (token counts)"
    )


# ---------------------------------------------------------------- length-based rewards


def length_penalty(max_len: int, cache_len: int | None = None) -> RewardFn:
    """DAPO's overlong soft punishment (Yu et al. 2025) as a reward function.

    With ``L`` the completion length, ``L_max = max_len`` and ``L_cache = cache_len``::

        R(L) = 0                                  if L <= L_max - L_cache
        R(L) = ((L_max - L_cache) - L) / L_cache  if L_max - L_cache < L <= L_max
        R(L) = -1                                 if L > L_max

    so the penalty grows linearly from 0 to -1 over the last ``L_cache`` units of the budget.
    ``cache_len`` defaults to ``max_len // 5`` (DAPO: 4096 of 20480 tokens). Lengths are tokens
    when the batch has a ``completion_lengths`` column, characters otherwise.
    """
    max_len = _positive_int("max_len", max_len)
    cache = max_len // 5 if cache_len is None else _positive_int("cache_len", cache_len)
    if cache > max_len:
        raise UserError(f"cache_len={cache} exceeds max_len={max_len}; use cache_len <= max_len")
    start = max_len - cache  # the soft zone is (start, max_len]

    def fn(prompts: Sequence[str], completions: Sequence[Any], **columns: Any) -> list[float]:
        lengths = completion_lengths(completions, columns)  # (N,)
        penalty = np.clip((start - lengths) / cache, -1.0, 0.0)
        return [float(p) for p in penalty]

    fn.__name__ = fn.__qualname__ = f"length_penalty(max_len={max_len}, cache_len={cache})"
    return fn


def cosine_length_reward(
    max_len: int,
    *,
    r0_correct: float = 1.0,
    rL_correct: float = 0.5,
    r0_wrong: float = -1.0,
    rL_wrong: float = -0.5,
    exceed_penalty: float = -1.0,
    correctness: RewardFn = correctness_reward,
) -> RewardFn:
    """The cosine length-scaling reward of Yeo et al. (2025), used by Open-RS.

    With ``L`` the completion length and ``L_max = max_len``, a correct completion gets
    ``CosFn(L; r0_correct, rL_correct)``, a wrong one ``CosFn(L; r0_wrong, rL_wrong)``, where::

        CosFn(L; r_0, r_L) = r_L + (r_0 - r_L) * (1 + cos(pi * L / L_max)) / 2

    goes from ``r_0`` at L = 0 to ``r_L`` at L = L_max along half a cosine. A completion with
    ``L >= L_max`` counts as cut off and gets ``exceed_penalty`` (the paper's r_e). With the
    defaults (Open-R1's cosine reward, which Open-RS trains with: correct 1.0 -> 0.5, wrong
    -1.0 -> -0.5) short correct answers earn most and long wrong answers are punished least, so
    the model is pushed to think longer only when it is unsure. Open-R1 has no cut-off case; the
    paper does, and tunes all five values per experiment.

    ``correctness`` is called with the same arguments; a score >= 0.5 counts as correct, and a
    sample it returns None for gets None. Lengths are tokens when the batch has a
    ``completion_lengths`` column, characters otherwise.
    """
    max_len = _positive_int("max_len", max_len)
    params = {
        "r0_correct": r0_correct,
        "rL_correct": rL_correct,
        "r0_wrong": r0_wrong,
        "rL_wrong": rL_wrong,
        "exceed_penalty": exceed_penalty,
    }
    for key, value in params.items():
        _finite(key, value)
    if not callable(correctness):
        raise UserError(f"correctness={correctness!r} is not callable; pass a reward function")

    def fn(
        prompts: Sequence[str], completions: Sequence[Any], **columns: Any
    ) -> list[float | None]:
        scores = list(correctness(prompts, completions, **columns))
        if len(scores) != len(completions):
            raise UserError(
                f"the correctness function returned {len(scores)} values for "
                f"{len(completions)} completions; it must return one per completion"
            )
        lengths = completion_lengths(completions, columns)  # (N,)
        out: list[float | None] = []
        for score, length in zip(scores, lengths, strict=True):
            if score is None:
                out.append(None)
            elif length >= max_len:
                out.append(float(exceed_penalty))
            else:
                r0, rL = (r0_correct, rL_correct) if score >= 0.5 else (r0_wrong, rL_wrong)
                out.append(float(rL + (r0 - rL) * (1.0 + math.cos(math.pi * length / max_len)) / 2))
        return out

    fn.__name__ = fn.__qualname__ = f"cosine_length_reward(max_len={max_len})"
    return fn


# ---------------------------------------------------------------- combination


@dataclass(frozen=True)
class RewardTerm:
    """One named, weighted reward function of a :class:`RewardSet`."""

    name: str
    """Metric name: ``rewards/<name>/mean``; no ``/``."""
    fn: RewardFn
    weight: float


class RewardBatch(NamedTuple):
    """The rewards of one batch of N completions."""

    total: np.ndarray
    """(N,) float: the weighted sum; NaN where a sample has no usable reward (mask it out)."""
    components: dict[str, np.ndarray]
    """name -> (N,) float, unweighted; NaN where the function returned None or raised."""
    metrics: dict[str, float]
    """``rewards/<name>/{mean,std,errors}``, ``reward/{mean,std,nan_frac}`` (NaN-aware)."""


class RewardSet:
    """A weighted combination of named reward functions.

    ``RewardSet({"correct": (correctness_reward, 1.0), "format": (format_reward, 0.2)})`` or
    ``RewardSet([("correct", correctness_reward, 1.0), ("format", format_reward, 0.2)])``;
    ``rs(prompts, completions, **columns)`` returns a :class:`RewardBatch`.

    How missing values combine, for sample i:

    * a component that returned None ("not applicable") adds 0 to the weighted sum;
    * if every component returned None, the total is NaN (nothing was said about the sample);
    * if any component raised on the sample, the total is NaN: a sum without, say, its
      correctness term would be a different, biased reward, so the sample is masked out instead.
    """

    def __init__(
        self,
        rewards: Mapping[str, tuple[RewardFn, float] | RewardFn]
        | Sequence[tuple[str, RewardFn, float]],
    ) -> None:
        self.terms: tuple[RewardTerm, ...] = _parse_terms(rewards)
        self.errors: dict[str, int] = {t.name: 0 for t in self.terms}
        """Samples on which each function raised, summed over all calls."""
        self._warned: set[str] = set()

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.terms]

    @property
    def weights(self) -> dict[str, float]:
        return {t.name: t.weight for t in self.terms}

    def __len__(self) -> int:
        return len(self.terms)

    def __repr__(self) -> str:
        inner = ", ".join(f"{t.name}={_label(t.fn)}*{t.weight:g}" for t in self.terms)
        return f"RewardSet({inner})"

    def __call__(
        self, prompts: Sequence[Any], completions: Sequence[Any], **columns: Any
    ) -> RewardBatch:
        n = len(completions)
        if len(prompts) != n:
            raise UserError(
                f"{len(prompts)} prompts for {n} completions; give one prompt per completion "
                "(repeat a prompt's row for each of its samples)"
            )
        components: dict[str, np.ndarray] = {}
        metrics: dict[str, float] = {}
        total = np.zeros(n)  # (N,)
        failed_any = np.zeros(n, dtype=bool)  # (N,)
        for term in self.terms:
            values, failed = self._evaluate(term, prompts, completions, columns)  # (N,), (N,)
            components[term.name] = values
            total += term.weight * np.nan_to_num(values, nan=0.0)
            failed_any |= failed
            n_failed = int(failed.sum())
            self.errors[term.name] += n_failed
            mean, std = _nan_stats(values)
            metrics[f"rewards/{term.name}/mean"] = mean
            metrics[f"rewards/{term.name}/std"] = std
            metrics[f"rewards/{term.name}/errors"] = float(n_failed)
        if n:
            all_none = np.all(np.isnan(np.stack(list(components.values()))), axis=0)  # (N,)
            total[all_none | failed_any] = np.nan
        mean, std = _nan_stats(total)
        metrics["reward/mean"] = mean
        metrics["reward/std"] = std
        metrics["reward/nan_frac"] = float(np.isnan(total).mean()) if n else 0.0
        return RewardBatch(total, components, metrics)

    # ------------------------------------------------------------ evaluation

    def _evaluate(
        self,
        term: RewardTerm,
        prompts: Sequence[Any],
        completions: Sequence[Any],
        columns: dict[str, Any],
    ) -> tuple[np.ndarray, np.ndarray]:
        """(values (N,) with NaN for None/raised, failed (N,) bool)."""
        n = len(completions)
        try:
            out = term.fn(prompts, completions, **columns)
        except UserError:
            raise  # a misconfigured call (missing columns, ...) fails every sample alike
        except Exception as batch_err:  # any bug in user code must not stop training
            return self._evaluate_per_sample(term, prompts, completions, columns, batch_err)
        return _as_values(term, out, n), np.zeros(n, dtype=bool)

    def _evaluate_per_sample(
        self,
        term: RewardTerm,
        prompts: Sequence[Any],
        completions: Sequence[Any],
        columns: dict[str, Any],
        batch_err: Exception,
    ) -> tuple[np.ndarray, np.ndarray]:
        n = len(completions)
        values = np.full(n, np.nan)
        failed = np.zeros(n, dtype=bool)
        first: tuple[int, Exception] | None = None
        for i in range(n):
            row = {k: _row(v, i, n) for k, v in columns.items()}
            try:
                out = term.fn([prompts[i]], [completions[i]], **row)
            except UserError:
                raise
            except Exception as err:
                failed[i] = True
                if first is None:
                    first = (i, err)
                continue
            values[i] = _as_values(term, out, 1)[0]
        self._warn_once(term, prompts, completions, batch_err, first)
        return values, failed

    def _warn_once(
        self,
        term: RewardTerm,
        prompts: Sequence[Any],
        completions: Sequence[Any],
        batch_err: Exception,
        first: tuple[int, Exception] | None,
    ) -> None:
        if term.name in self._warned:
            return
        self._warned.add(term.name)
        if first is None:
            logger.warning(
                "reward '%s' (%s) raised %s on a batch but on none of its samples alone; "
                "used the per-sample values (logged once per reward function)",
                term.name,
                _label(term.fn),
                _describe(batch_err),
            )
            return
        i, err = first
        sample = _short(f"prompt={prompts[i]!r}, completion={completions[i]!r}")
        logger.warning(
            "reward '%s' (%s) raised %s on sample %d (%s); such samples get no reward "
            "(NaN total, masked out) and are counted in rewards/%s/errors; further errors of "
            "this function are not logged",
            term.name,
            _label(term.fn),
            _describe(err),
            i,
            sample,
            term.name,
        )


# ---------------------------------------------------------------- helpers


def _parse_terms(rewards: Any) -> tuple[RewardTerm, ...]:
    if isinstance(rewards, Mapping):
        items = []
        for name, spec in rewards.items():
            fn, weight = spec if isinstance(spec, tuple) and len(spec) == 2 else (spec, 1.0)
            items.append((name, fn, weight))
    elif isinstance(rewards, Sequence) and not isinstance(rewards, str):
        items = list(rewards)
    else:
        raise UserError(
            f"RewardSet takes {{name: (fn, weight)}} or [(name, fn, weight), ...], "
            f"not {type(rewards).__name__}"
        )
    if not items:
        raise UserError("RewardSet needs at least one reward function")
    terms: list[RewardTerm] = []
    seen: set[str] = set()
    for item in items:
        if not (isinstance(item, tuple) and len(item) == 3):
            raise UserError(f"reward entry {item!r} is not a (name, fn, weight) tuple")
        name, fn, weight = item
        if not isinstance(name, str) or not name or "/" in name:
            raise UserError(f"reward name {name!r} must be a non-empty string without '/'")
        if name in seen:
            raise UserError(f"reward name '{name}' appears twice; give each function its own name")
        seen.add(name)
        if not callable(fn):
            raise UserError(
                f"reward '{name}' is {fn!r}, not callable; pass fn(prompts, completions, **columns)"
            )
        terms.append(RewardTerm(name, fn, _finite(f"weight of reward '{name}'", weight)))
    return tuple(terms)


def _as_values(term: RewardTerm, out: Any, n: int) -> np.ndarray:
    """Check one function's output and turn it into (n,) floats with NaN for None."""
    where = f"reward '{term.name}' ({_label(term.fn)})"
    if isinstance(out, str | bytes | Mapping) or not isinstance(out, Sequence | np.ndarray):
        raise UserError(
            f"{where} returned {_short(repr(out))} for {n} completions; return a list with one "
            "float (or None) per completion"
        )
    if len(out) != n:
        raise UserError(
            f"{where} returned {len(out)} values for {n} completions; return exactly one float "
            "(or None) per completion, in order"
        )
    values = np.empty(n)
    for i, v in enumerate(out):
        if v is None:
            values[i] = np.nan
        elif isinstance(v, numbers.Real | np.bool_) and math.isfinite(float(v)):
            values[i] = float(v)
        else:
            raise UserError(
                f"{where} returned {_short(repr(v))} for completion {i}; return a finite "
                "float, or None where the reward does not apply"
            )
    return values


def _row(value: Any, i: int, n: int) -> Any:
    """Row i of a per-sample column (a list, tuple or array of length n); other values as is."""
    if isinstance(value, list | tuple | np.ndarray) and len(value) == n:
        return value[i : i + 1]
    return value


def _nan_stats(x: np.ndarray) -> tuple[float, float]:
    finite = x[~np.isnan(x)]
    if finite.size == 0:
        return float("nan"), float("nan")
    return float(finite.mean()), float(finite.std())


def _label(fn: Any) -> str:
    return str(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn))


def _describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {_short(str(err))}"


def _short(text: str, limit: int = _REPR_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _finite(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise UserError(f"{name} is {value!r}; give a finite number")
    if not math.isfinite(float(value)):
        raise UserError(f"{name} is {value}; give a finite number")
    return float(value)


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise UserError(f"{name}={value!r}; give a positive integer")
    return int(value)
