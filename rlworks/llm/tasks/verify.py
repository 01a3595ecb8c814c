"""Answer extraction, verifiers and the format check. None of them raises on a completion:
anything malformed (no answer tag, not a string, garbage, a disallowed expression) is simply
not correct.

* :func:`extract_answer`: the content of the last ``<answer>...</answer>``.
* :func:`parse_int` / :func:`parse_int_list`: whitespace and commas normalised (``"1,234"``).
* :func:`safe_eval`: countdown expressions, parsed with :mod:`ast`; only integer literals,
  ``+ - * /`` and parentheses are allowed (no names, calls, powers or unary minus), evaluated
  exactly with :class:`fractions.Fraction`. ``eval`` is never called.
* :func:`check_format`: the whole completion is ``<think>...</think><answer>...</answer>``.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from collections.abc import Sequence
from fractions import Fraction

_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_FORMAT_RE = re.compile(r"\s*<think>(.*?)</think>\s*<answer>(.*?)</answer>\s*", re.DOTALL)
_INT_RE = re.compile(r"[+-]?\d{1,400}")
_TAGS = ("<think>", "</think>", "<answer>", "</answer>")
MAX_EXPRESSION_CHARS = 200
"""Longer countdown answers are rejected before parsing (bounds parser time and depth)."""

_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}


def extract_answer(completion: object) -> str | None:
    """The stripped content of the last ``<answer>...</answer>``, or None."""
    if not isinstance(completion, str):
        return None
    found = _ANSWER_RE.findall(completion)
    return found[-1].strip() if found else None


def parse_int(text: str | None) -> int | None:
    """``" 1,234 "`` -> 1234; None unless the text is one integer."""
    if text is None:
        return None
    cleaned = re.sub(r"[\s,]", "", text)
    return int(cleaned) if _INT_RE.fullmatch(cleaned) else None


def parse_int_list(text: str | None) -> list[int] | None:
    """``"3, 7 12"`` or ``"[3,7,12]"`` -> [3, 7, 12]; None unless every item is an integer."""
    if text is None:
        return None
    body = text.strip()
    if body.startswith("[") and body.endswith("]"):
        body = body[1:-1]
    items = [t for t in re.split(r"[\s,]+", body) if t]
    if not items or not all(_INT_RE.fullmatch(t) for t in items):
        return None
    return [int(t) for t in items]


def check_format(completion: object) -> bool:
    """True iff the completion is exactly one ``<think>...</think>`` then one non-empty
    ``<answer>...</answer>`` (surrounding whitespace allowed, no stray tags inside)."""
    if not isinstance(completion, str):
        return False
    m = _FORMAT_RE.fullmatch(completion)
    if m is None:
        return False
    thought, answer = m.group(1), m.group(2)
    if any(tag in thought or tag in answer for tag in _TAGS):
        return False
    return bool(answer.strip())


def verify_int(completion: object, gold: int) -> bool:
    return parse_int(extract_answer(completion)) == gold


def verify_int_list(completion: object, gold: Sequence[int]) -> bool:
    return parse_int_list(extract_answer(completion)) == list(gold)


def safe_eval(expression: str) -> tuple[Fraction, list[int]] | None:
    """``(value, integer literals used)`` of an arithmetic expression, or None if it is not
    one (disallowed syntax, division by zero, too long)."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        return None
    try:
        tree = ast.parse(expression.strip(), mode="eval")
        used: list[int] = []
        return _eval_node(tree.body, used), used
    except (SyntaxError, ValueError, ZeroDivisionError, RecursionError, _Disallowed):
        return None


def verify_countdown(completion: object, numbers: Sequence[int], target: int) -> bool:
    """The last answer is an expression over ``numbers`` (each at most once) equal to
    ``target``. A trailing ``= N`` is ignored (``"(25+3)*4 = 112"`` is read as ``(25+3)*4``)."""
    answer = extract_answer(completion)
    if not answer:
        return False
    result = safe_eval(answer.split("=", 1)[0])
    if result is None:
        return False
    value, used = result
    if Counter(used) - Counter(numbers):  # some number used more often than it is given
        return False
    return value == target


class _Disallowed(Exception):
    pass


def _eval_node(node: ast.AST, used: list[int]) -> Fraction:
    if isinstance(node, ast.Constant) and type(node.value) is int and node.value >= 0:
        used.append(node.value)
        return Fraction(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left, right = _eval_node(node.left, used), _eval_node(node.right, used)
        op = _OPS[type(node.op)]
        if op == "+":
            return left + right
        if op == "-":
            return left - right
        if op == "*":
            return left * right
        return left / right  # ZeroDivisionError -> None in safe_eval
    raise _Disallowed(type(node).__name__)
