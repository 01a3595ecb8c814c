"""pass@k against exact binomials, edge cases, maj@k tie rule, coverage."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from rlworks.eval.passk import coverage, maj_at_k, pass_at_k


def exact(n: int, c: int, k: int) -> Fraction:
    return 1 - Fraction(math.comb(n - c, k), math.comb(n, k))


def test_hand_computed() -> None:
    # 1 - C(3,2)/C(5,2) = 1 - 3/10
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7, abs=1e-15)
    assert pass_at_k(10, 1, 1) == pytest.approx(0.1, abs=1e-15)  # pass@1 = c / n
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5, abs=1e-15)  # 1 - C(3,2)/C(4,2)


def test_edges() -> None:
    assert pass_at_k(7, 0, 3) == 0.0
    assert pass_at_k(7, 7, 3) == 1.0
    assert pass_at_k(7, 5, 3) == 1.0  # n - c = 2 < k: every 3-subset holds a correct one
    assert pass_at_k(7, 4, 3) == pytest.approx(float(exact(7, 4, 3)), abs=1e-15)


def test_vectorised_matches_exact_fractions() -> None:
    n = np.array([5, 20, 100, 1024, 1024, 1024, 1024, 3000])
    c = np.array([2, 3, 1, 1, 17, 512, 0, 1500])
    for k in (1, 2, 5, 100, 512):
        ok = n >= k
        got = pass_at_k(n[ok], c[ok], k)
        pairs = zip(n[ok], c[ok], strict=True)
        want = np.array([float(exact(int(a), int(b), k)) for a, b in pairs])
        assert np.all(np.isfinite(got))
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-14)


def test_large_n_k_tiny_probability_keeps_relative_accuracy() -> None:
    # pass@k ~ k/n for c = 1: a naive 1 - ratio loses digits; expm1 keeps them.
    got = pass_at_k(10**6, 1, 1)
    assert got == pytest.approx(1e-6, rel=1e-12)
    got = pass_at_k(1024, 1, 512)
    assert got == pytest.approx(float(exact(1024, 1, 512)), rel=1e-12)


@pytest.mark.parametrize(
    ("n", "c", "k"), [(5, 6, 2), (5, -1, 2), (3, 1, 4), (5, 2, 0), (5.5, 2, 2)]
)
def test_bad_inputs(n: float, c: int, k: int) -> None:
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)  # type: ignore[arg-type]


def test_maj_at_k_and_tie_rule() -> None:
    answers = np.array([
        [3, 1, 1, 3, 2],  # k=4: 3 and 1 tie with 2 votes; 3 appears first -> 3
        [0, 1, 1, 0, 0],  # k=4: tie 0/1 -> 0 (first); k=5: 0 wins 3-2
        [5, 6, 7, 8, 9],  # all distinct -> first sample
    ])
    correct = np.array([3, 1, 6])
    np.testing.assert_array_equal(maj_at_k(answers, correct, 4), [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(maj_at_k(answers, correct, 1), [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(maj_at_k(answers, np.array([1, 0, 5]), 5), [0.0, 1.0, 1.0])
    with pytest.raises(ValueError):
        maj_at_k(answers, correct, 6)


def test_coverage() -> None:
    assert coverage(np.array([0, 3, 0, 1])) == 0.5
    # coverage equals pass@n
    c = np.array([0, 3, 0, 1])
    assert coverage(c) == pytest.approx(float(np.mean(pass_at_k(np.full(4, 8), c, 8))))
