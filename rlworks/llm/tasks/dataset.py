"""The registry of task families, seeded generation, train/test splits and SFT text.

``generate_problem(family, difficulty, seed, index)`` is a pure function of its arguments.
``make_split`` walks the indices 0, 1, 2, ... of each difficulty and keeps the problems whose
hash split (:func:`rlworks.llm.tasks.base.split_of`) matches, so a test problem is never a train
problem at any seed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlworks.core.errors import UserError
from rlworks.core.registry import Registry
from rlworks.core.seeding import make_rng
from rlworks.llm.tasks.base import Problem, TaskFamily, format_completion

FAMILIES: Registry[TaskFamily] = Registry("task family")
FAMILIES.register("add", "rlworks.llm.tasks.arithmetic:ADDITION")
FAMILIES.register("mul", "rlworks.llm.tasks.arithmetic:MULTIPLICATION")
FAMILIES.register("expr", "rlworks.llm.tasks.expression:EXPRESSION")
FAMILIES.register("countdown", "rlworks.llm.tasks.countdown:COUNTDOWN")
FAMILIES.register("sort", "rlworks.llm.tasks.sorting:SORTING")

SPLITS = ("train", "test")


def get_family(name: str) -> TaskFamily:
    """The family registered as ``name``; an unknown name is a :class:`UserError`."""
    return FAMILIES.get(name)


def generate_problem(family: str, difficulty: int, seed: int, index: int) -> Problem:
    """Problem number ``index`` of ``family`` at ``difficulty`` for ``seed`` (deterministic)."""
    rng = make_rng(seed, "reasongym", family, int(difficulty), int(index))
    return get_family(family).generate(rng, difficulty)


def make_split(
    family: str,
    difficulties: int | Iterable[int],
    n: int,
    split: str = "train",
    seed: int = 0,
    unique: bool = True,
) -> list[Problem]:
    """``n`` problems of ``split``, spread evenly over ``difficulties`` and interleaved
    (``d1, d2, d1, d2, ...``). ``unique`` drops repeated canonical problems.
    """
    levels = _levels(family, difficulties)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise UserError(f"n must be a positive int, got {n!r}")
    if split not in SPLITS:
        raise UserError(f"split must be 'train' or 'test', got {split!r}")
    counts = [n // len(levels) + (i < n % len(levels)) for i in range(len(levels))]
    per_level = [
        _draw(family, d, c, split, seed, unique) for d, c in zip(levels, counts, strict=True)
    ]
    out: list[Problem] = []
    for i in range(max(counts)):
        out.extend(problems[i] for problems in per_level if i < len(problems))
    return out


def to_rows(problems: Iterable[Problem]) -> list[dict[str, Any]]:
    """Dataset rows (``prompt, answer, source, family, difficulty, id, canonical, data``)."""
    return [p.to_row() for p in problems]


@dataclass(frozen=True)
class SftExample:
    """One SFT text: ``prompt + completion``; ``correct`` is False for an injected mistake."""

    problem: Problem
    completion: str
    correct: bool

    @property
    def text(self) -> str:
        return self.problem.prompt + self.completion


def sft_example(problem: Problem, rng: np.random.Generator, error_rate: float) -> SftExample:
    """The solved problem; with probability ``error_rate`` the thought carries a mistake that
    propagates to a wrong answer."""
    family = get_family(problem.family)
    if rng.random() < error_rate:
        thought, answer = family.solve_with_mistake(problem, rng)
        return SftExample(problem, format_completion(thought, answer), False)
    return SftExample(problem, format_completion(family.solve(problem), problem.answer), True)


def make_sft_texts(
    family: str,
    difficulties: int | Iterable[int],
    n: int,
    seed: int = 0,
    error_rate: float = 0.1,
    split: str = "train",
    unique: bool = False,
) -> list[SftExample]:
    """``n`` SFT examples from ``make_split(...)``; each is wrong with prob. ``error_rate``
    (independent draws from the seed's ``"sft"`` stream)."""
    if not 0.0 <= error_rate <= 1.0:
        raise UserError(f"error_rate must lie in [0, 1], got {error_rate!r}")
    problems = make_split(family, difficulties, n, split, seed, unique)
    rng = make_rng(seed, "reasongym-sft", family)
    return [sft_example(p, rng, error_rate) for p in problems]


def _levels(family: str, difficulties: int | Iterable[int]) -> list[int]:
    fam = get_family(family)
    levels: Sequence[Any] = (
        [difficulties] if isinstance(difficulties, int | np.integer) else list(difficulties)
    )
    if not levels:
        raise UserError(
            f"difficulties of '{family}' is empty; give e.g. {list(fam.pretrain_difficulties)}"
        )
    bad = [
        d
        for d in levels
        if isinstance(d, bool)
        or not isinstance(d, int | np.integer)
        or int(d) not in fam.difficulties
    ]
    if bad:
        r = fam.difficulties
        raise UserError(
            f"difficulties {bad} of '{family}' are out of range; use {r.start}..{r.stop - 1}"
        )
    return [int(d) for d in levels]


def _draw(
    family: str, difficulty: int, count: int, split: str, seed: int, unique: bool
) -> list[Problem]:
    out: list[Problem] = []
    seen: set[str] = set()
    max_candidates = 50 * count + 1000
    for index in range(max_candidates):
        if len(out) == count:
            break
        p = generate_problem(family, difficulty, seed, index)
        if p.split != split or (unique and p.id in seen):
            continue
        seen.add(p.id)
        out.append(p)
    else:
        if len(out) < count:
            raise UserError(
                f"found only {len(out)} {'unique ' if unique else ''}{split} "
                f"problems of {family}/d{difficulty} in {max_candidates} draws; "
                "ask for fewer, a higher difficulty, or unique=False"
            )
    return out


def parse_tasks(spec: str) -> list[tuple[str, tuple[int, ...]]]:
    """``"add:1-5,mul:3"`` -> ``[("add", (1, 2, 3, 4, 5)), ("mul", (3,))]``.

    A family without levels (``"add"``) takes its ``pretrain_difficulties``; levels are a
    range ``a-b``, a single number, or several joined by ``+`` (``"mul:1+3"``).
    """
    out: list[tuple[str, tuple[int, ...]]] = []
    for part in [p.strip() for p in str(spec).split(",") if p.strip()]:
        name, _, levels = part.partition(":")
        family = get_family(name.strip())
        if not levels.strip():
            out.append((name.strip(), tuple(family.pretrain_difficulties)))
            continue
        chosen: list[int] = []
        for piece in levels.split("+"):
            lo, dash, hi = piece.strip().partition("-")
            try:
                chosen.extend(range(int(lo), int(hi) + 1) if dash else [int(lo)])
            except ValueError:
                raise UserError(
                    f"bad difficulty {piece.strip()!r} in task spec {part!r}; "
                    "write e.g. 'add:1-5' or 'mul:1+3'"
                ) from None
        out.append((name.strip(), tuple(_levels(name.strip(), chosen))))
    if not out:
        raise UserError(f"task spec {spec!r} names no family; write e.g. 'add:1-5,mul:1-3'")
    return out
