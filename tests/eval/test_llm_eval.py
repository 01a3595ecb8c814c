"""SampleTable: pass@k, maj@k (no-answers never pool into a majority) and per-source tables,
checked by hand; the pass@k CI helper and k grid of `rlworks llm eval`."""

from __future__ import annotations

import numpy as np
import pytest

from rlworks.eval.llm import SampleTable
from rlworks.exec.llm_eval import pass_at_k_ci, powers_of_two


def _table():
    correct = np.array([[1, 0, 0, 0], [0, 0, 0, 0], [1, 1, 0, 1]], dtype=bool)
    answers = [["5", "4", "4", None], [None, None, None, "7"], ["9", "9", "8", "9"]]
    return SampleTable(["add/d1", "add/d1", "mul/d2"], correct, answers,
                       lengths=np.array([[3, 4, 5, 6], [1, 1, 1, 1], [2, 2, 2, 2]]))


def test_pass_at_k_by_hand():
    t = _table()
    # pass@1 = mean(c / n) = (1/4 + 0 + 3/4) / 3 = 1/3
    assert t.pass_at(1) == pytest.approx(1 / 3)
    # pass@2 per problem: 1 - C(n-c,2)/C(4,2): 1 - 3/6 = 0.5; 0; 1 - 0/6 = 1 -> 0.5
    assert t.pass_at(2) == pytest.approx(0.5)


def test_majority_vote_by_hand_and_no_answers_do_not_pool():
    t = _table()
    # problem 0, k=4: "4" twice beats "5" once -> wrong; problem 1: the three no-answers are
    # distinct wrong answers, "7" once; first sample wins the 1-1 tie: a no-answer -> wrong;
    # problem 2: "9" x3 -> correct.  maj@4 = 1/3
    assert t.maj_at(4) == pytest.approx(1 / 3)
    # k=1: first samples "5" (correct), None (wrong), "9" (correct) -> 2/3
    assert t.maj_at(1) == pytest.approx(2 / 3)


def test_by_source():
    t = _table()
    by = t.by_source()
    assert list(by) == ["add/d1", "mul/d2"]
    assert by["add/d1"].pass_at(1) == pytest.approx(1 / 8)
    assert by["mul/d2"].lengths.tolist() == [[2, 2, 2, 2]]


def test_k_grid_and_ci_contains_the_point():
    assert powers_of_two(256) == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert powers_of_two(100) == [1, 2, 4, 8, 16, 32, 64, 100]
    mean, lo, hi = pass_at_k_ci(_table().correct, 1, np.random.default_rng(0), reps=500)
    assert lo <= mean <= hi and mean == pytest.approx(1 / 3)
