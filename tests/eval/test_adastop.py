"""Unit tests of rlworks.eval.adastop: hand-computed boundaries, error control, early
acceptance, interim-by-interim feeding, inputs and outputs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from rlworks.core.errors import UserError
from rlworks.eval.adastop import AdaStop, format_decision_table, read_adastop_csv


def finish(test: AdaStop, rng: np.random.Generator, means: dict[str, float]) -> AdaStop:
    while not test.is_finished:
        test.partial_compare({a: rng.normal(means.get(a, 0.0), 1.0, size=test.n)
                              for a in test.algorithms_to_run})
    return test


# Hand computation, n=2, K=1: pooled x = [3, 4, 0, 1]; the 6 splits s (indices in "a") give
# mean(x[s]) - mean(x[~s]) = {0,1}: 3, {0,2}: -1, {0,3}: 0, {1,2}: 0, {1,3}: 1, {2,3}: -3.
# |D| sorted = [0, 0, 1, 1, 3, 3]; the mass above position i is (5 - i) / 6.
# alpha=0.5: smallest i with (5-i)/6 <= 0.5 is i=3 -> b_sup = 1; T = 3 > 1: reject.
# alpha=0.3: i=4 -> b_sup = 3; T = 3 is not > 3: equal (also for any alpha < 1/3).
# package_compat (signed D sorted [-3,-1,0,0,1,3]), alpha=0.5: i=3 -> b_sup = 0.
@pytest.mark.parametrize(("alpha", "compat", "b_sup", "decision"), [
    (0.5, False, 1.0, "larger"), (0.3, False, 3.0, "equal"), (0.5, True, 0.0, "larger"),
    (0.3, True, 1.0, "larger"),  # signed, alpha=0.3: i=4 -> b_sup = 1
])
def test_hand_computed_n2_k1(alpha: float, compat: bool, b_sup: float, decision: str) -> None:
    test = AdaStop(n=2, K=1, B=100, alpha=alpha, rng=0, package_compat=compat)
    results = test.partial_compare({"a": [3.0, 4.0], "b": [0.0, 1.0]})
    assert test.boundaries == [(-math.inf, pytest.approx(b_sup))]
    assert results[0].decision == decision and results[0].interim == 1
    assert results[0].statistic == pytest.approx(3.0)
    assert test.is_finished


def test_sign_of_decision_follows_pair_order() -> None:
    test = AdaStop(n=2, K=1, B=100, alpha=0.5, rng=0)
    (r,) = test.partial_compare({"a": [0.0, 1.0], "b": [3.0, 4.0]})
    assert (r.a, r.b, r.decision) == ("a", "b", "smaller")


def test_two_interims_hand_computed() -> None:
    """n=1, K=2: C=2 splits per block, D = +-(a_j - b_j); paths are the 4 sign patterns."""
    test = AdaStop(n=1, K=2, B=100, alpha=0.5, rng=0)
    test.partial_compare({"a": [1.0], "b": [0.0]})
    # Interim 1: |D| = [1, 1], level 0.25: mass above i=1 is 0 <= .25 -> b_sup = 1, T=1 not > 1.
    assert test.boundaries[0][1] == 1.0 and not test.is_finished
    (r,) = test.partial_compare({"a": [2.0], "b": [0.0]})
    # Interim 2: both paths survive (|D| <= 1); extended: |+-1 +-2| = [3, 1, 1, 3], mass 1/4
    # each, level 0.5 in all, 0 spent: sorted [1, 1, 3, 3], mass above i=1 is 2/4 <= 0.5
    # -> b_sup = 1; T = 2 * (1.5 - 0) = 3 > 1: "larger" at interim 2.
    assert test.boundaries[1][1] == 1.0
    assert (r.decision, r.interim) == ("larger", 2)


def test_family_wise_error_under_equal_means() -> None:
    """All means equal: the chance of any rejection stays <= alpha (+3 binomial s.e.)."""
    alpha, reps = 0.1, 300
    rng = np.random.default_rng(0)
    rejected = rejected_compat = 0
    for r in range(reps):
        names = ["a", "b", "c"]
        test = finish(AdaStop(n=3, K=2, B=1_000, alpha=alpha, algorithms=names, rng=r), rng, {})
        rejected += any(d.decision != "equal" for d in test.decisions)
        compat = AdaStop(n=3, K=2, B=1_000, alpha=alpha, algorithms=names, rng=r,
                         package_compat=True)
        rejected_compat += any(d.decision != "equal" for d in finish(compat, rng, {}).decisions)
    slack = 3 * math.sqrt(alpha * (1 - alpha) / reps)
    assert rejected / reps <= alpha + slack
    # The package's signed null is anti-conservative (documented deviation).
    assert rejected_compat > rejected


def test_family_wise_error_sampled_permutations() -> None:
    """Same, with B below the number of permutations (sampled paths from interim 1)."""
    alpha, reps = 0.1, 200
    rng = np.random.default_rng(1)
    rejected = 0
    for r in range(reps):
        test = finish(AdaStop(n=5, K=2, B=200, alpha=alpha, algorithms=["a", "b"], rng=r),
                      rng, {})
        rejected += any(d.decision != "equal" for d in test.decisions)
    assert rejected / reps <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / reps)


def test_clear_winner_is_found_at_first_interim() -> None:
    rng = np.random.default_rng(2)
    test = AdaStop(n=5, K=3, alpha=0.05, algorithms=["best", "x", "y"], rng=0)
    test.partial_compare({"best": rng.normal(10, 1, 5), "x": rng.normal(0, 1, 5),
                          "y": rng.normal(0, 1, 5)})
    by_pair = {(r.a, r.b): r for r in test.decisions}
    assert by_pair["best", "x"].decision == "larger" and by_pair["best", "x"].interim == 1
    assert by_pair["best", "y"].decision == "larger"
    assert by_pair["x", "y"].decision == "continue" and by_pair["x", "y"].interim is None
    # Only x and y still need runs; scores for "best" are now refused.
    assert test.algorithms_to_run == ["x", "y"]
    with pytest.raises(ValueError, match="no longer compared"):
        test.partial_compare({"best": np.zeros(5), "x": np.zeros(5), "y": np.zeros(5)})


def test_early_acceptance_with_beta() -> None:
    """beta > 0 accepts some equalities before the last interim; beta = 0 never does."""
    names = [f"a{i}" for i in range(5)]
    early = {}
    for beta in (0.0, 0.3):
        count = 0
        for r in range(5):
            test = AdaStop(n=2, K=3, B=10_000, beta=beta, algorithms=names, rng=r)
            finish(test, np.random.default_rng(r), {})
            count += sum(d.decision == "equal" and (d.interim or 0) < 3 for d in test.decisions)
            if beta > 0:
                assert test.boundaries[0][0] > -math.inf
        early[beta] = count
    assert early[0.0] == 0
    assert early[0.3] > 0


def test_same_seed_same_decisions_in_sampled_mode() -> None:
    def run(seed: int) -> list:
        test = AdaStop(n=5, K=3, B=300, algorithms=["a", "b", "c"], rng=seed)
        finish(test, np.random.default_rng(7), {"a": 0.8})
        return [(r.decision, r.interim) for r in test.decisions] + test.boundaries
    assert run(3) == run(3)


def test_compare_to_first_and_explicit_pairs() -> None:
    assert AdaStop(2, 1, algorithms=["a", "b", "c"], comparisons="first").pairs == [(0, 1),
                                                                                     (0, 2)]
    test = AdaStop(2, 1, algorithms=["a", "b", "c"], comparisons=[("c", "a"), (1, 2)])
    assert test.pairs == [(2, 0), (1, 2)]
    with pytest.raises(ValueError, match="unknown algorithm 'd'"):
        AdaStop(2, 1, algorithms=["a", "b", "c"], comparisons=[("a", "d")])


@pytest.mark.parametrize(("scores", "match"), [
    ({"a": [1.0, 2.0], "b": [1.0]}, r"scores\['b'\] must have shape \(2,\)"),
    ({"a": [1.0, 2.0]}, r"missing algorithms \['b'\]"),
    ({"a": [1.0, 2.0], "b": [1.0, 2.0], "ppo": [0.0, 0.0]}, "unknown algorithm 'ppo'"),
    ({"a": [1.0, np.nan], "b": [1.0, 2.0]}, "NaN"),
])
def test_bad_scores_name_the_input(scores: dict, match: str) -> None:
    test = AdaStop(n=2, K=2, algorithms=["a", "b"])
    with pytest.raises(ValueError, match=match):
        test.partial_compare(scores)


def test_errors_are_user_errors_and_finished_test_refuses_more() -> None:
    test = AdaStop(n=2, K=1, rng=0)
    test.partial_compare({"PPO": [1.0, 2.0], "SAC": [1.5, 2.5]})
    assert test.is_finished
    with pytest.raises(UserError, match="finished at interim 1"):
        test.partial_compare({"PPO": [1.0, 2.0], "SAC": [1.0, 2.0]})
    with pytest.raises(ValueError, match="did you mean 'PPO'"):
        AdaStop(n=2, K=2, algorithms=["PPO", "SAC"]).partial_compare({"PP0": [1, 2]})
    for kwargs, match in (({"n": 0, "K": 1}, "n must"), ({"n": 2, "K": 0}, "K must"),
                          ({"n": 2, "K": 1, "alpha": 1.5}, "alpha must"),
                          ({"n": 2, "K": 1, "B": 1}, "B must"),
                          ({"n": 2, "K": 1, "comparisons": "pairs"}, "comparisons must")):
        with pytest.raises(ValueError, match=match):
            AdaStop(**kwargs)


def test_read_adastop_csv_package_layout(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"PPO": [1.0, 2.0, 3.0], "SAC": [0.5, 0.25, 4.0]})
    path = tmp_path / "walker.csv"
    frame.to_csv(path)  # the package's CLI reads this with read_csv(index_col=0)
    scores = read_adastop_csv(path)
    assert list(scores) == ["PPO", "SAC"]
    np.testing.assert_array_equal(scores["SAC"], [0.5, 0.25, 4.0])
    test = AdaStop(n=3, K=2, rng=0)
    test.partial_compare(scores)
    table = format_decision_table(test)
    assert "| PPO vs SAC |" in table and "continue" in table
    (tmp_path / "bad.csv").write_text(",PPO\n0,1.0\n1,oops\n")
    with pytest.raises(ValueError, match="line 3, column 'PPO'"):
        read_adastop_csv(tmp_path / "bad.csv")
    with pytest.raises(ValueError, match="does not exist"):
        read_adastop_csv(tmp_path / "missing.csv")
