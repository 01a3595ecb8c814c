"""ReasonGym rewards as plain callables ``fn(prompts, completions, **columns) -> list[float]``.

Rows are aligned: ``completions[i]`` answers ``prompts[i]`` (repeat a prompt's row for each of
its G samples, as TRL does). The problem of row i comes from ``problems=[Problem, ...]`` or is
rebuilt from the dataset columns of :func:`rlworks.llm.tasks.dataset.to_rows`
(``family, difficulty, answer, canonical, data``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rlworks.core.errors import UserError
from rlworks.llm.tasks.base import Problem
from rlworks.llm.tasks.dataset import get_family
from rlworks.llm.tasks.verify import check_format

_COLUMNS = ("family", "difficulty", "answer", "canonical", "data")


def correctness_reward(
    prompts: Sequence[str],
    completions: Sequence[Any],
    problems: Sequence[Problem] | None = None,
    **columns: Any,
) -> list[float | None]:
    """1.0 where the completion's last ``<answer>`` is correct, else 0.0 (format not required)."""
    problems = _problems(prompts, completions, problems, columns)
    return [
        1.0 if get_family(p.family).verify(p, c) else 0.0
        for p, c in zip(problems, completions, strict=True)
    ]


def format_reward(
    prompts: Sequence[str], completions: Sequence[Any], **columns: Any
) -> list[float | None]:
    """1.0 where the completion is exactly ``<think>...</think><answer>...</answer>``."""
    _check_lengths(prompts, completions, "completions")
    return [1.0 if check_format(c) else 0.0 for c in completions]


def _problems(
    prompts: Sequence[str],
    completions: Sequence[Any],
    problems: Sequence[Problem] | None,
    columns: dict[str, Any],
) -> list[Problem]:
    _check_lengths(prompts, completions, "completions")
    if problems is not None:
        _check_lengths(prompts, problems, "problems")
        return list(problems)
    missing = [k for k in _COLUMNS if k not in columns]
    if missing:
        raise UserError(
            f"correctness_reward needs problems=[...] or the columns {missing} "
            "of to_rows(); pass the dataset rows' columns"
        )
    for k in _COLUMNS:
        _check_lengths(prompts, columns[k], k)
    return [
        Problem.from_row({"prompt": prompts[i], **{k: columns[k][i] for k in _COLUMNS}})
        for i in range(len(prompts))
    ]


def _check_lengths(prompts: Sequence[Any], other: Sequence[Any], name: str) -> None:
    if len(other) != len(prompts):
        raise UserError(
            f"{name} has {len(other)} entries for {len(prompts)} prompts; "
            "give one per prompt (repeat a prompt's row for each sample)"
        )
