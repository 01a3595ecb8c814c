"""Sorting: ``sort/dN`` is a list of N distinct integers in 0..99, to be sorted ascending.

Thought: selection sort, one line per pick: ``picked | remaining...``. Mistake: at one step a
number that is not the smallest remaining is picked; later steps are correct, so the answer
is out of order. The answer is the numbers separated by spaces (commas are also accepted).
"""

from __future__ import annotations

import numpy as np

from rlworks.llm.tasks.base import Problem, check_difficulty
from rlworks.llm.tasks.verify import verify_int_list


def selection_trace(
    values: list[int], mistake_step: int | None = None, pick: int = 1
) -> tuple[list[str], list[int]]:
    """``(lines, output)``; at ``mistake_step`` the ``pick``-th smallest (0 = smallest) is taken."""
    rest, out, lines = list(values), [], []
    for i in range(len(values)):
        ranked = sorted(rest)
        chosen = ranked[min(pick, len(ranked) - 1)] if i == mistake_step else ranked[0]
        rest.remove(chosen)
        out.append(chosen)
        lines.append(f"{chosen} | {' '.join(map(str, rest))}".rstrip())
    return lines, out


class Sorting:
    name = "sort"
    difficulties = range(2, 21)
    pretrain_difficulties = (2, 3, 4, 5, 6, 7, 8)
    eval_difficulties = (10, 11, 12)
    difficulty_meaning = "length of the list (distinct integers in 0..99)"

    def generate(self, rng: np.random.Generator, difficulty: int) -> Problem:
        d = check_difficulty(self.name, difficulty, self.difficulties)
        values = [int(v) for v in rng.choice(100, size=d, replace=False)]
        return Problem(
            self.name,
            d,
            f"sort {' '.join(map(str, values))}\n",
            " ".join(map(str, sorted(values))),
            f"sort:{','.join(map(str, sorted(values)))}",
            {"values": values},
        )

    def solve(self, problem: Problem) -> str:
        return "\n".join(selection_trace(list(problem.data["values"]))[0])

    def solve_with_mistake(self, problem: Problem, rng: np.random.Generator) -> tuple[str, str]:
        values = list(problem.data["values"])
        step = int(rng.integers(len(values) - 1))  # the last step has nothing else to pick
        pick = int(rng.integers(1, len(values) - step))
        lines, out = selection_trace(values, step, pick)
        return "\n".join(lines), " ".join(map(str, out))

    def verify(self, problem: Problem, completion: str) -> bool:
        return verify_int_list(completion, [int(v) for v in problem.answer.split()])


SORTING = Sorting()
