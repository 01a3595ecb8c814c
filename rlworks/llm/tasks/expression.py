"""Expression evaluation: ``expr/dN`` is an expression with N binary operators (``+ - *``) on
the digits 1..9, with the parentheses its random tree needs (e.g. ``(3+4)*2-5``).

Thought: one reduction per line, innermost first, with the rewritten expression
(``3+4=7 => 7*2-5``). Mistake: one reduction is off by 1..3, and later lines carry it on.
Trees are nested tuples ``(op, left, right)`` with int leaves; ``data["tree"]`` stores them as
lists (JSON).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rlworks.llm.tasks.base import Problem, check_difficulty
from rlworks.llm.tasks.verify import verify_int

Tree = Any  # int | tuple[str, Tree, Tree]
_PREC = {"+": 1, "-": 1, "*": 2, "/": 2}


def render(tree: Tree) -> str:
    """The expression with minimal parentheses (left-associative operators)."""
    if not isinstance(tree, tuple):
        return str(tree) if tree >= 0 else f"({tree})"
    op, left, right = tree
    ls, rs = render(left), render(right)
    if isinstance(left, tuple) and _PREC[left[0]] < _PREC[op]:
        ls = f"({ls})"
    if isinstance(right, tuple) and _PREC[right[0]] <= _PREC[op]:
        rs = f"({rs})"
    return f"{ls}{op}{rs}"


def apply(op: str, x: int, y: int) -> int:
    if op == "+":
        return x + y
    if op == "-":
        return x - y
    if op == "*":
        return x * y
    return x // y  # only exact divisions are ever built


def evaluate(tree: Tree) -> int:
    if not isinstance(tree, tuple):
        return int(tree)
    return apply(tree[0], evaluate(tree[1]), evaluate(tree[2]))


def to_lists(tree: Tree) -> Any:
    return [tree[0], to_lists(tree[1]), to_lists(tree[2])] if isinstance(tree, tuple) else tree


def from_lists(obj: Any) -> Tree:
    return (obj[0], from_lists(obj[1]), from_lists(obj[2])) if isinstance(obj, list) else int(obj)


def random_tree(rng: np.random.Generator, n_ops: int, ops: str = "+-*") -> Tree:
    if n_ops == 0:
        return int(rng.integers(1, 10))
    k = int(rng.integers(0, n_ops))
    return (
        ops[int(rng.integers(len(ops)))],
        random_tree(rng, k, ops),
        random_tree(rng, n_ops - 1 - k, ops),
    )


def _reduce_once(tree: Tree, step: list[Any], delta: int) -> Tree:
    """Replace the first (post-order) node with two leaf children by its value (+ delta)."""
    op, left, right = tree
    if isinstance(left, tuple):
        return (op, _reduce_once(left, step, delta), right)
    if isinstance(right, tuple):
        return (op, left, _reduce_once(right, step, delta))
    value = apply(op, left, right) + delta
    step.append(f"{render(left)}{op}{render(right)}={value}")
    return value


def reduction_trace(
    tree: Tree, mistake_step: int | None = None, delta: int = 0
) -> tuple[list[str], int]:
    """``(lines, final value)``; step ``mistake_step`` is off by ``delta``."""
    lines: list[str] = []
    i = 0
    while isinstance(tree, tuple):
        step: list[str] = []
        tree = _reduce_once(tree, step, delta if i == mistake_step else 0)
        rest = f" => {render(tree)}" if isinstance(tree, tuple) else ""
        lines.append(step[0] + rest)
        i += 1
    return lines, int(tree)


class Expression:
    name = "expr"
    difficulties = range(1, 9)
    pretrain_difficulties = (1, 2, 3)
    eval_difficulties = (4, 5)
    difficulty_meaning = "number of binary operators (+ - *) on digits 1..9"

    def generate(self, rng: np.random.Generator, difficulty: int) -> Problem:
        d = check_difficulty(self.name, difficulty, self.difficulties)
        tree = random_tree(rng, d)
        text = render(tree)
        return Problem(
            self.name,
            d,
            f"{text}=?\n",
            str(evaluate(tree)),
            f"expr:{text}",
            {"tree": to_lists(tree)},
        )

    def solve(self, problem: Problem) -> str:
        return "\n".join(reduction_trace(from_lists(problem.data["tree"]))[0])

    def solve_with_mistake(self, problem: Problem, rng: np.random.Generator) -> tuple[str, str]:
        tree = from_lists(problem.data["tree"])
        n_steps = problem.difficulty
        gold = int(problem.answer)
        # A slip can vanish (e.g. multiplied by 0 later); the last step's slip never does.
        for step in [*rng.permutation(n_steps).tolist(), n_steps - 1]:
            delta = int(rng.choice([-3, -2, -1, 1, 2, 3]))
            lines, value = reduction_trace(tree, step, delta)
            if value != gold:
                return "\n".join(lines), str(value)
        raise AssertionError("unreachable: a slip in the last step changes the value")

    def verify(self, problem: Problem, completion: str) -> bool:
        return verify_int(completion, int(problem.answer))


EXPRESSION = Expression()
