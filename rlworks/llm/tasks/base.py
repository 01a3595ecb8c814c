"""The records of ReasonGym: a :class:`Problem`, the :class:`TaskFamily` protocol, the
completion format and the hash split that keeps train and test problems apart.

A completion has the form ``<think>THOUGHT</think><answer>ANSWER</answer>``; the prompt is the
question followed by a newline, so ``prompt + completion`` is one SFT text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from rlworks.core.errors import UserError

TEST_FRACTION = 0.1
"""Share of all canonical problems (any family, any difficulty) in the test split."""

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"


@dataclass(frozen=True)
class Problem:
    """One verifiable problem. ``data`` holds what the verifier and solver need (JSON-able)."""

    family: str
    difficulty: int
    prompt: str
    """The question and a trailing newline; the completion follows it directly."""
    answer: str
    """The gold answer in canonical form (``"5758"``, ``"3 7 12 45"``, ``"(25+3)*4"``)."""
    canonical: str
    """The problem up to presentation (commutative operands sorted, list as a multiset, ...);
    the split and the id are functions of it, so equal problems share both."""
    data: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def source(self) -> str:
        """``family/d<difficulty>``, e.g. ``"add/d3"``: the unit of curricula and pass@k tables."""
        return f"{self.family}/d{self.difficulty}"

    @property
    def id(self) -> str:
        """A stable 16-hex-digit id of the canonical problem (independent of seed and index)."""
        return _digest("id", self.canonical)[:16]

    @property
    def split(self) -> str:
        return split_of(self.canonical)

    def to_row(self) -> dict[str, Any]:
        """A flat dict (dataset row); :meth:`from_row` rebuilds the problem from it."""
        return {
            "prompt": self.prompt,
            "answer": self.answer,
            "source": self.source,
            "family": self.family,
            "difficulty": self.difficulty,
            "id": self.id,
            "canonical": self.canonical,
            "data": dict(self.data),
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Problem:
        missing = [
            k
            for k in ("family", "difficulty", "prompt", "answer", "canonical", "data")
            if k not in row
        ]
        if missing:
            raise UserError(f"problem row lacks {missing}; build rows with Problem.to_row()")
        return cls(
            row["family"],
            int(row["difficulty"]),
            row["prompt"],
            row["answer"],
            row["canonical"],
            dict(row["data"]),
        )


@runtime_checkable
class TaskFamily(Protocol):
    """A family of verifiable problems with a difficulty knob.

    ``difficulty_meaning`` says what the integer difficulty controls; ``pretrain_difficulties``
    are the levels meant for pretraining/SFT text and ``eval_difficulties`` the harder levels
    meant for the RL evaluation split (longer operands than most of pretraining).
    """

    name: str
    difficulties: range
    pretrain_difficulties: tuple[int, ...]
    eval_difficulties: tuple[int, ...]
    difficulty_meaning: str

    def generate(self, rng: np.random.Generator, difficulty: int) -> Problem: ...

    def solve(self, problem: Problem) -> str:
        """A correct chain of thought (the text between ``<think>`` and ``</think>``)."""
        ...

    def solve_with_mistake(self, problem: Problem, rng: np.random.Generator) -> tuple[str, str]:
        """``(thought, answer)`` with one realistic mistake that propagates to a wrong answer."""
        ...

    def verify(self, problem: Problem, completion: str) -> bool:
        """True iff the last ``<answer>`` of ``completion`` is correct; never raises."""
        ...


def format_completion(thought: str, answer: str) -> str:
    return f"{THINK_OPEN}{thought}{THINK_CLOSE}{ANSWER_OPEN}{answer}{ANSWER_CLOSE}"


def split_of(canonical: str) -> str:
    """``"test"`` for a fixed :data:`TEST_FRACTION` of canonical problems, else ``"train"``.

    A pure function of the problem, so no seed or index can turn a test problem into a train one.
    """
    bucket = int(_digest("split", canonical)[:8], 16) / 16**8
    return "test" if bucket < TEST_FRACTION else "train"


def check_difficulty(family: str, difficulty: int, allowed: range) -> int:
    if isinstance(difficulty, bool) or not isinstance(difficulty, int | np.integer):
        raise UserError(f"difficulty of '{family}' must be an int, got {difficulty!r}")
    if int(difficulty) not in allowed:
        raise UserError(
            f"difficulty {difficulty} of '{family}' is out of range; "
            f"use {allowed.start}..{allowed.stop - 1}"
        )
    return int(difficulty)


def _digest(salt: str, text: str) -> str:
    return hashlib.blake2b(f"{salt}\x00{text}".encode(), digest_size=16).hexdigest()
