"""Multi-digit addition and multiplication with a scratchpad.

``add/dN``: both operands have N digits (N=1: 0..9). Thought: one line per column, right to
left, ``x+y+carry=sum``, then ``carry c`` for the final carry; the answer is that carry (if 1)
followed by the last digits of the sums, read bottom-up.
Mistakes: a dropped carry (the next column adds 0 instead of 1), or a column sum off by one.

``mul/dN``: the first operand has N digits, the second ceil(N/2) (1x1, 2x1, 3x2, 4x2, ...).
Thought: one partial product per digit of the second operand, shifted
(``4821*90=433890``), then running sums (``14463+433890=448353``). Mistakes: a dropped carry
inside a partial product, or a dropped carry in one running sum.
"""

from __future__ import annotations

import numpy as np

from rlworks.llm.tasks.base import Problem, check_difficulty
from rlworks.llm.tasks.verify import verify_int


def _operand(rng: np.random.Generator, digits: int) -> int:
    low = 0 if digits == 1 else 10 ** (digits - 1)
    return int(rng.integers(low, 10**digits))


def add_columns(
    a: int, b: int, drop_carry_at: int | None = None, off_by_one_at: int | None = None
) -> tuple[list[str], int]:
    """Column addition of ``a + b``: ``(lines, result)``; the two knobs inject a mistake.

    ``drop_carry_at=j``: the carry out of column j (0 = units) is forgotten.
    ``off_by_one_at=j``: column j's sum is written one too high (one too low if it is 19).
    """
    xs, ys = str(a)[::-1], str(b)[::-1]
    width = max(len(xs), len(ys))
    lines, digits, carry = [], [], 0
    for j in range(width):
        x = int(xs[j]) if j < len(xs) else 0
        y = int(ys[j]) if j < len(ys) else 0
        s = x + y + carry
        if j == off_by_one_at:
            s = s + 1 if s < 19 else s - 1
        lines.append(f"{x}+{y}+{carry}={s}")
        digits.append(s % 10)
        carry = 0 if j == drop_carry_at else s // 10
    lines.append(f"carry {carry}")  # the leading digit, written out so a dropped one shows
    result = carry * 10**width + sum(d * 10**j for j, d in enumerate(digits))
    return lines, result


def _carries(a: int, b: int) -> list[int]:
    """Columns of ``a + b`` with a carry out."""
    xs, ys = str(a)[::-1], str(b)[::-1]
    out, carry = [], 0
    for j in range(max(len(xs), len(ys))):
        s = (int(xs[j]) if j < len(xs) else 0) + (int(ys[j]) if j < len(ys) else 0) + carry
        carry = s // 10
        if carry:
            out.append(j)
    return out


class Addition:
    name = "add"
    difficulties = range(1, 13)
    pretrain_difficulties = (1, 2, 3, 4, 5)
    eval_difficulties = (6, 7, 8)
    difficulty_meaning = "digits of each operand"

    def generate(self, rng: np.random.Generator, difficulty: int) -> Problem:
        d = check_difficulty(self.name, difficulty, self.difficulties)
        a, b = _operand(rng, d), _operand(rng, d)
        lo, hi = sorted((a, b))
        return Problem(self.name, d, f"{a}+{b}=?\n", str(a + b), f"add:{lo}+{hi}", {"a": a, "b": b})

    def solve(self, problem: Problem) -> str:
        lines, _ = add_columns(problem.data["a"], problem.data["b"])
        return "\n".join(lines)

    def solve_with_mistake(self, problem: Problem, rng: np.random.Generator) -> tuple[str, str]:
        a, b = problem.data["a"], problem.data["b"]
        carries = _carries(a, b)
        if carries:  # forgetting a carry is the commonest slip
            lines, result = add_columns(a, b, drop_carry_at=int(rng.choice(carries)))
        else:
            width = max(len(str(a)), len(str(b)))
            lines, result = add_columns(a, b, off_by_one_at=int(rng.integers(width)))
        return "\n".join(lines), str(result)

    def verify(self, problem: Problem, completion: str) -> bool:
        return verify_int(completion, int(problem.answer))


def times_digit(a: int, digit: int, drop_carry_at: int | None = None) -> int:
    """``a * digit`` digit by digit; ``drop_carry_at=j`` forgets the carry out of position j."""
    result, carry = 0, 0
    s = str(a)[::-1]
    for j, ch in enumerate(s):
        t = int(ch) * digit + carry
        result += (t % 10) * 10**j
        carry = 0 if j == drop_carry_at else t // 10
    return result + carry * 10 ** len(s)


def _times_digit_carries(a: int, digit: int) -> list[int]:
    out, carry = [], 0
    for j, ch in enumerate(str(a)[::-1]):
        carry = (int(ch) * digit + carry) // 10
        if carry:
            out.append(j)
    return out


class Multiplication:
    name = "mul"
    difficulties = range(1, 9)
    pretrain_difficulties = (1, 2, 3)
    eval_difficulties = (4, 5)
    difficulty_meaning = "digits of the first operand; the second has ceil(N/2) digits"

    def generate(self, rng: np.random.Generator, difficulty: int) -> Problem:
        d = check_difficulty(self.name, difficulty, self.difficulties)
        a, b = _operand(rng, d), _operand(rng, (d + 1) // 2)
        lo, hi = sorted((a, b))
        return Problem(self.name, d, f"{a}*{b}=?\n", str(a * b), f"mul:{lo}*{hi}", {"a": a, "b": b})

    def solve(self, problem: Problem) -> str:
        return self._trace(problem.data["a"], problem.data["b"], None, None)[0]

    def solve_with_mistake(self, problem: Problem, rng: np.random.Generator) -> tuple[str, str]:
        a, b = problem.data["a"], problem.data["b"]
        k = len(str(b))
        partial_slips = [
            (i, j) for i, ch in enumerate(str(b)[::-1]) for j in _times_digit_carries(a, int(ch))
        ]
        # A slip in a running sum exists only with two or more partial products.
        sum_slips = [(i, j) for i in range(1, k) for j in _carries(*self._sum_operands(a, b, i))]
        if partial_slips and (not sum_slips or rng.random() < 0.5):
            slip = partial_slips[int(rng.integers(len(partial_slips)))]
            thought, result = self._trace(a, b, slip, None)
        elif sum_slips:
            slip = sum_slips[int(rng.integers(len(sum_slips)))]
            thought, result = self._trace(a, b, None, slip)
        else:  # no carry anywhere (e.g. 12*3): write one partial product's digit one too high
            thought, result = self._trace(a, b, None, None, bump=int(rng.integers(k)))
        return thought, str(result)

    @staticmethod
    def _sum_operands(a: int, b: int, i: int) -> tuple[int, int]:
        """The clean running sum before partial ``i`` and partial ``i`` (shifted)."""
        digits = str(b)[::-1]
        before = sum(a * int(digits[m]) * 10**m for m in range(i))
        return before, a * int(digits[i]) * 10**i

    @staticmethod
    def _trace(
        a: int,
        b: int,
        partial_slip: tuple[int, int] | None,
        sum_slip: tuple[int, int] | None,
        bump: int | None = None,
    ) -> tuple[str, int]:
        lines, partials = [], []
        for i, ch in enumerate(str(b)[::-1]):
            digit = int(ch)
            drop = partial_slip[1] if partial_slip and partial_slip[0] == i else None
            p = times_digit(a, digit, drop)
            if i == bump:
                p += 10 ** (len(str(a)) - 1)
            p *= 10**i
            lines.append(f"{a}*{digit}{'0' * i}={p}")
            partials.append(p)
        total = partials[0]
        for i, p in enumerate(partials[1:], start=1):
            drop = sum_slip[1] if sum_slip and sum_slip[0] == i else None
            new = add_columns(total, p, drop_carry_at=drop)[1]
            lines.append(f"{total}+{p}={new}")
            total = new
        return "\n".join(lines), total

    def verify(self, problem: Problem, completion: str) -> bool:
        return verify_int(completion, int(problem.answer))


ADDITION = Addition()
MULTIPLICATION = Multiplication()
