"""Countdown: ``countdown/dN`` gives N numbers in 1..25 and a target in 10..999 reachable with
``+ - * /`` using every number once (subtraction stays positive, divisions are exact). A
completion may use any of the numbers, each at most once; its answer is an expression such as
``(25+3)*4``, checked by :func:`rlworks.llm.tasks.verify.verify_countdown` (never ``eval``).

Thought: the construction's steps, one per line (``25+3=28``). Mistake: one step is written
with a wrong operator but the intended result (``25-3=28``), and the answer expression built
from those steps misses the target.
"""

from __future__ import annotations

import numpy as np

from rlworks.llm.tasks.base import Problem, check_difficulty
from rlworks.llm.tasks.expression import Tree, apply, from_lists, render, to_lists
from rlworks.llm.tasks.verify import safe_eval, verify_countdown

MAX_NUMBER = 25
TARGET_RANGE = (10, 999)


def _steps(tree: Tree) -> list[tuple[Tree, int]]:
    """Internal nodes in post-order with their values."""
    if not isinstance(tree, tuple):
        return []
    out = _steps(tree[1]) + _steps(tree[2])
    out.append((tree, _value(tree)))
    return out


def _value(tree: Tree) -> int:
    return tree if not isinstance(tree, tuple) else apply(tree[0], _value(tree[1]), _value(tree[2]))


def _replace_op(tree: Tree, index: int, op: str, counter: list[int]) -> Tree:
    """The tree with the ``index``-th internal node (post-order) given operator ``op``."""
    if not isinstance(tree, tuple):
        return tree
    left = _replace_op(tree[1], index, op, counter)
    right = _replace_op(tree[2], index, op, counter)
    here = counter[0]
    counter[0] += 1
    return (op if here == index else tree[0], left, right)


def _combine(rng: np.random.Generator, pool: list[Tree]) -> Tree:
    while len(pool) > 1:
        i, j = (int(k) for k in rng.choice(len(pool), size=2, replace=False))
        a, b = _value(pool[i]), _value(pool[j])
        if a < b:
            i, j, a, b = j, i, b, a
        ops = ["+", "*"] + (["-"] if a > b else []) + (["/"] if b > 1 and a % b == 0 else [])
        node = (ops[int(rng.integers(len(ops)))], pool[i], pool[j])
        pool = [t for k, t in enumerate(pool) if k not in (i, j)] + [node]
    return pool[0]


class Countdown:
    name = "countdown"
    difficulties = range(2, 7)
    pretrain_difficulties = (2, 3)
    eval_difficulties = (4,)
    difficulty_meaning = "how many numbers are given (all are needed for the constructed target)"

    def generate(self, rng: np.random.Generator, difficulty: int) -> Problem:
        d = check_difficulty(self.name, difficulty, self.difficulties)
        while True:  # rejection keeps the target in range; a few tries on average
            numbers = [int(v) for v in rng.integers(1, MAX_NUMBER + 1, size=d)]
            tree = _combine(rng, list(numbers))
            target = _value(tree)
            if TARGET_RANGE[0] <= target <= TARGET_RANGE[1]:
                break
        shown = " ".join(map(str, numbers))
        return Problem(
            self.name,
            d,
            f"make {target} from {shown}\n",
            render(tree),
            f"countdown:{','.join(map(str, sorted(numbers)))}->{target}",
            {"numbers": numbers, "target": target, "tree": to_lists(tree)},
        )

    def solve(self, problem: Problem) -> str:
        steps = _steps(from_lists(problem.data["tree"]))
        return "\n".join(f"{_value(t[1])}{t[0]}{_value(t[2])}={v}" for t, v in steps)

    def solve_with_mistake(self, problem: Problem, rng: np.random.Generator) -> tuple[str, str]:
        tree = from_lists(problem.data["tree"])
        steps = _steps(tree)
        candidates = [(i, op) for i in range(len(steps)) for op in "+-*/" if op != steps[i][0][0]]
        for k in rng.permutation(len(candidates)).tolist():
            i, op = candidates[k]
            wrong = _replace_op(tree, i, op, [0])
            result = safe_eval(render(wrong))
            if result is None or result[0] != problem.data["target"]:
                lines = [
                    f"{_value(t[1])}{op if j == i else t[0]}{_value(t[2])}={v}"
                    for j, (t, v) in enumerate(steps)
                ]
                return "\n".join(lines), render(wrong)
        raise AssertionError(f"no operator slip misses the target of {problem.prompt!r}")

    def verify(self, problem: Problem, completion: str) -> bool:
        return verify_countdown(completion, problem.data["numbers"], problem.data["target"])


COUNTDOWN = Countdown()
