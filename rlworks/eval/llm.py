"""Evaluating a language-model policy on verifiable problems: greedy accuracy, pass@k, maj@k.

``sample_correct(model, tokenizer, problems, n, ...)`` samples ``n`` completions per problem and
verifies each with the problem's family; the ``(P, n)`` table it returns is all the other
measures need: pass@k by the unbiased estimator (:func:`rlworks.eval.passk.pass_at_k`), maj@k
by a vote over the extracted answers, and per-source tables (``source`` = ``family/dN``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlworks.eval.passk import maj_at_k, pass_at_k


@dataclass
class SampleTable:
    """``n`` verified samples for each of ``P`` problems."""

    sources: list[str]  # (P,) family/dN of each problem
    correct: np.ndarray  # (P, n) bool
    answers: list[list[str | None]]  # (P, n) extracted answers (None without an answer tag)
    num_tokens: int = 0
    seconds: float = 0.0
    lengths: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # (P, n) tokens

    @property
    def n(self) -> int:
        return int(self.correct.shape[1])

    def pass_at(self, k: int) -> float:
        """Mean unbiased pass@k over problems."""
        c = self.correct.sum(axis=1)
        return float(np.mean(pass_at_k(np.full_like(c, self.n), c, k)))

    def maj_at(self, k: int) -> float:
        """Majority vote over the first ``k`` samples (each no-answer sample is its own wrong
        answer, so no-answers never pool into a majority)."""
        codes, correct = _answer_codes(self.answers, self.correct)
        return float(np.mean(maj_at_k(codes[:, :k], correct, k)))

    def by_source(self) -> dict[str, SampleTable]:
        groups: dict[str, list[int]] = defaultdict(list)
        for i, s in enumerate(self.sources):
            groups[s].append(i)
        return {
            s: SampleTable(
                [s] * len(idx),
                self.correct[idx],
                [self.answers[i] for i in idx],
                lengths=self.lengths[idx] if self.lengths.size else self.lengths,
            )
            for s, idx in sorted(groups.items())
        }


def _answer_codes(
    answers: list[list[str | None]], correct: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes per problem (a distinct negative code per no-answer sample) and the code
    of a correct answer (-1 - n if none is correct, which no sample has)."""
    p, n = correct.shape
    codes = np.full((p, n), -1, dtype=np.int64)
    gold = np.full(p, -1 - n, dtype=np.int64)
    for i in range(p):
        seen: dict[str, int] = {}
        for j, a in enumerate(answers[i]):
            if a is None:
                codes[i, j] = -1 - j
                continue
            codes[i, j] = seen.setdefault(a, len(seen))
            if correct[i, j]:
                gold[i] = codes[i, j]
    return codes, gold


def sample_correct(
    model: Any,
    tokenizer: Any,
    problems: Sequence[Any],
    n: int,
    sampling: Any,
    generator: Any = None,
    max_rows: int = 512,
    progress: Callable[[int], None] | None = None,
) -> SampleTable:
    """Sample ``n`` completions per problem (``max_rows`` sequences per generation batch) and
    verify them. ``progress(k)`` is called with the number of problems just finished."""
    import time

    from rlworks.llm.generate import generate
    from rlworks.llm.tasks import extract_answer, get_family

    per_batch = max(1, max_rows // n)
    correct = np.zeros((len(problems), n), dtype=bool)
    lengths = np.zeros((len(problems), n), dtype=np.int64)
    answers: list[list[str | None]] = []
    tokens = 0
    t0 = time.perf_counter()
    for start in range(0, len(problems), per_batch):
        chunk = problems[start : start + per_batch]
        roll = generate(model, tokenizer, [p.prompt for p in chunk], n, sampling, generator)
        tokens += roll.num_tokens
        lens = roll.lengths.cpu().numpy()
        for i, p in enumerate(chunk):
            family = get_family(p.family)
            comps = roll.completions[i * n : (i + 1) * n]
            correct[start + i] = [family.verify(p, c) for c in comps]
            lengths[start + i] = lens[i * n : (i + 1) * n]
            answers.append([extract_answer(c) for c in comps])
        if progress is not None:
            progress(len(chunk))
    return SampleTable(
        [p.source for p in problems],
        correct,
        answers,
        num_tokens=tokens,
        seconds=time.perf_counter() - t0,
        lengths=lengths,
    )
