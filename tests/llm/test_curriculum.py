"""Curricula: difficulty band, batch refill, DUMP's UCB sampler and LIM scores, worked by hand."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from rlworks.core.errors import UserError
from rlworks.core.seeding import make_rng
from rlworks.llm.curriculum import (
    DifficultyFilter,
    DumpSampler,
    FilteredBatcher,
    group_accuracy,
    limr_scores,
    limr_select,
)

# ---------------------------------------------------------------- difficulty filter


def test_difficulty_filter_bounds_are_inclusive():
    f = DifficultyFilter(low=0.25, high=0.75)
    acc = [0.0, 0.125, 0.25, 0.5, 0.75, 0.875, 1.0, np.nan]
    assert f.keep(acc).tolist() == [False, False, True, True, True, False, False, False]


def test_difficulty_filter_with_four_samples_keeps_exactly_the_mixed_groups():
    # G = 4: accuracies 0, 1/4, 2/4, 3/4, 1 -> the band keeps 1..3 correct
    correct = np.array([[0, 0, 0, 0], [1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]])
    acc = group_accuracy(correct)
    np.testing.assert_allclose(acc, [0.0, 0.25, 0.5, 0.75, 1.0])
    assert DifficultyFilter().keep(acc).tolist() == [False, True, True, True, False]


def test_group_accuracy_ignores_masked_samples():
    # row 0: NaN skipped -> 1/2; row 1: all NaN -> NaN
    acc = group_accuracy([[1.0, np.nan, 0.0], [np.nan, np.nan, np.nan]])
    assert acc[0] == pytest.approx(0.5) and math.isnan(acc[1])


@pytest.mark.parametrize("low,high", [(-0.1, 0.5), (0.5, 1.1), (0.8, 0.2)])
def test_difficulty_filter_rejects_bad_bands(low, high):
    with pytest.raises(UserError):
        DifficultyFilter(low, high)


def test_filtered_batcher_refills_until_full_and_reports_metrics():
    b: FilteredBatcher[str] = FilteredBatcher(batch_prompts=3)
    assert b.next_sample_size() == 3  # nothing seen yet: kept_frac = 1
    # round 1: 4 prompts, accuracies 0 (too hard), 0.5 (kept), 1 (too easy), 0.25 (kept)
    mask = b.add(["a", "b", "c", "d"], [0.0, 0.5, 1.0, 0.25])
    assert mask.tolist() == [False, True, False, True]
    assert not b.ready and b.need == 1
    # kept 2 of 4 so far -> sample ceil(1 / 0.5) = 2 next
    assert b.next_sample_size() == 2
    # round 2: both kept; one more than needed
    b.add(["e", "f"], [0.75, 0.5])
    assert b.ready and b.next_sample_size() == 0
    batch, m = b.pop()
    assert batch == ["b", "d", "e"]
    # 4 of 6 kept; 1 too hard, 1 too easy, 2 rounds, "f" dropped
    assert m["curriculum/kept_frac"] == pytest.approx(4 / 6)
    assert m["curriculum/sampled"] == 6.0
    assert m["curriculum/too_hard_frac"] == pytest.approx(1 / 6)
    assert m["curriculum/too_easy_frac"] == pytest.approx(1 / 6)
    assert m["curriculum/rounds"] == 2.0
    assert m["curriculum/dropped"] == 1.0
    assert b.need == 3  # surplus dropped, counters reset
    assert b.pop()[1]["curriculum/sampled"] == 0.0


def test_filtered_batcher_carry_over_keeps_surplus():
    b: FilteredBatcher[int] = FilteredBatcher(batch_prompts=2, carry_over=True)
    b.add([1, 2, 3], [0.5, 0.5, 0.5])
    assert b.pop()[0] == [1, 2]
    assert b.need == 1
    b.add([4], [0.5])
    assert b.pop()[0] == [3, 4]


def test_filtered_batcher_state_round_trip():
    b: FilteredBatcher[int] = FilteredBatcher(4, DifficultyFilter(0.2, 0.8))
    b.add([1, 2, 3, 4, 5], [0.0, 0.5, 0.5, 1.0, 0.3])
    b.pop()
    state = json.loads(json.dumps(b.state_dict()))
    c: FilteredBatcher[int] = FilteredBatcher(1)
    c.load_state_dict(state)
    assert c.state_dict() == b.state_dict()
    assert c.kept_frac == pytest.approx(3 / 5)
    assert c.difficulty_filter == DifficultyFilter(0.2, 0.8)


def test_filtered_batcher_rejects_mismatched_accuracies():
    with pytest.raises(UserError):
        FilteredBatcher(2).add(["a", "b"], [0.5])
    with pytest.raises(UserError):
        FilteredBatcher(0)


# ---------------------------------------------------------------- DUMP


def test_dump_unseen_sources_first_then_hand_computed_ucb_and_softmax():
    d = DumpSampler(["a", "b", "c"], window=300, c=1.0, temperature=0.1)
    np.testing.assert_allclose(d.probs(), [1 / 3, 1 / 3, 1 / 3])
    d.update(["a", "a"], [0.5, -0.5])  # signed advantages: absolute values are used
    # a seen, b and c unseen -> all mass on b and c
    np.testing.assert_allclose(d.probs(), [0.0, 0.5, 0.5])
    d.update(["b", "b", "c", "c"], [0.1, 0.3, 0.0, 0.0])
    # n = (2, 2, 2), N = 6; bonus = sqrt(2 ln 6 / 2) = sqrt(1.791759) = 1.338566
    # learnability = (0.5, 0.2, 0.0) -> UCB = (1.838566, 1.538566, 1.338566)
    np.testing.assert_allclose(d.learnability(), [0.5, 0.2, 0.0])
    bonus = math.sqrt(math.log(6))
    np.testing.assert_allclose(d.ucb(), [0.5 + bonus, 0.2 + bonus, bonus])
    # softmax(UCB / 0.1): exponents relative to the max are (0, -3, -5)
    # e^-3 = 0.0497871, e^-5 = 0.0067379, sum = 1.0565250
    # p = (0.9464991, 0.0471234, 0.0063775)
    np.testing.assert_allclose(d.probs(), [0.9464991, 0.0471234, 0.0063775], atol=1e-7)
    m = d.metrics()
    assert m["curriculum/p/a"] == pytest.approx(0.9464991)
    assert m["curriculum/n/c"] == 2.0


def test_dump_window_keeps_only_recent_samples_but_counts_all():
    d = DumpSampler(["a", "b"], window=2)
    d.update(["a", "a", "a"], [1.0, 1.0, 0.0])
    d.update(["b"], [np.nan])  # masked sample: skipped entirely
    # window [1.0, 0.0] -> 0.5; n_a = 3 (the bonus counts every sample); b still unseen
    assert d.learnability()[0] == pytest.approx(0.5)
    assert d.counts.tolist() == [3, 0]
    assert math.isnan(d.learnability()[1])
    # with N = n_a = 3: bonus = sqrt(2 ln 3 / 3)
    d2 = DumpSampler(["a"], window=2)
    d2.update(["a", "a", "a"], [1.0, 1.0, 0.0])
    assert d2.ucb()[0] == pytest.approx(0.5 + math.sqrt(2 * math.log(3) / 3))


def test_dump_moves_mass_from_a_solved_source_to_a_learnable_one():
    rng = make_rng(0, "dump-test")
    d = DumpSampler(["solved", "learnable"], window=50)
    p_learnable = []
    for _ in range(20):
        ids = d.sample(32, rng)
        # solved: every group all-correct, advantages 0; learnable: |A| around 0.8
        adv = [0.0 if s == "solved" else 0.8 + 0.1 * rng.standard_normal() for s in ids]
        d.update(ids, adv)
        p_learnable.append(d.probs()[1])
    assert min(p_learnable[-5:]) > 0.9  # the solved source keeps only its UCB exploration share
    assert d.counts[1] > d.counts[0]


def test_dump_sampling_is_reproducible_with_a_seeded_generator():
    d = DumpSampler(["a", "b", "c"])
    d.update(["a", "b", "c"], [0.3, 0.1, 0.2])
    first = d.sample(50, make_rng(7, "dump"))
    again = d.sample(50, make_rng(7, "dump"))
    other = d.sample(50, make_rng(8, "dump"))
    assert first == again
    assert first != other
    assert set(first) <= {"a", "b", "c"}


def test_dump_state_dict_round_trip_is_json_and_exact():
    d = DumpSampler(["a", "b", "c"], window=3, c=0.5, temperature=0.2)
    d.update(["a", "a", "a", "a", "b"], [0.1, 0.2, 0.3, 0.4, 0.9])
    state = json.loads(json.dumps(d.state_dict()))
    e = DumpSampler(["a", "b", "c"])
    e.load_state_dict(state)
    np.testing.assert_array_equal(e.probs(), d.probs())
    assert e.window == 3 and e.c == 0.5 and e.temperature == 0.2
    e.update(["a"], [1.0])  # the restored window still has its maxlen
    assert e.learnability()[0] == pytest.approx((0.3 + 0.4 + 1.0) / 3)
    assert e.sample(10, make_rng(1)) == e.sample(10, make_rng(1))


def test_dump_errors():
    with pytest.raises(UserError, match="did you mean 'add/d1'"):
        DumpSampler(["add/d1", "mul/d2"]).update(["add/d2"], [0.1])
    with pytest.raises(UserError):
        DumpSampler(["a", "a"])
    with pytest.raises(UserError):
        DumpSampler([])
    with pytest.raises(UserError):
        DumpSampler(["a"], temperature=0.0)
    with pytest.raises(UserError):
        DumpSampler(["a"], window=0)
    with pytest.raises(UserError):
        DumpSampler(["a"]).update(["a", "a"], [0.1])
    with pytest.raises(UserError):
        DumpSampler(["a"]).load_state_dict(DumpSampler(["b"]).state_dict())


# ---------------------------------------------------------------- LIMR


def test_limr_scores_three_sample_golden():
    # epochs K = 3; sample 0 learns, sample 1 never solved, sample 2 always solved
    r = np.array([[0.0, 0.5, 1.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    # r_avg = (1/3, 1/2, 2/3); denominator = (2/3)^2 + (1/2)^2 + (1/3)^2 = 29/36
    # sample 0: (-1/3)^2 + 0 + (1/3)^2 = 8/36 -> 1 - 8/29 = 21/29
    # sample 1: (1/3)^2 + (1/2)^2 + (2/3)^2 = 29/36 -> 0
    # sample 2: (2/3)^2 + (1/2)^2 + (1/3)^2 = 29/36 -> 0
    np.testing.assert_allclose(limr_scores(r), [21 / 29, 0.0, 0.0], atol=1e-12)
    assert limr_select(r, threshold=0.6).tolist() == [0]
    assert limr_select(r, threshold=None, top_frac=0.5).tolist() == [0, 1]  # tie -> lower index


def test_limr_degenerate_all_solved_scores_one():
    r = np.ones((4, 3))  # r_avg = 1 every epoch: 0/0 -> every score is 1
    np.testing.assert_array_equal(limr_scores(r), np.ones(4))
    assert limr_select(r).tolist() == [0, 1, 2, 3]


def test_limr_partly_solved_epochs_still_score():
    # epoch 0 has r_avg = 1 (adds 0 to both sums); epoch 1: r_avg = 0.5, denominator 0.25
    # sample 0: (1 - 0.5)^2 = 0.25 -> 0; sample 1: 0.25 -> 0
    np.testing.assert_allclose(limr_scores([[1.0, 1.0], [1.0, 0.0]]), [0.0, 0.0])


@pytest.mark.parametrize(
    "rewards", [np.zeros(3), np.zeros((0, 2)), [[0.5, 1.5]], [[0.5, np.nan]], [[-0.1, 0.2]]]
)
def test_limr_rejects_bad_input(rewards):
    with pytest.raises(UserError):
        limr_scores(rewards)


def test_limr_select_arguments():
    r = [[0.0, 1.0], [0.0, 0.0]]
    with pytest.raises(UserError):
        limr_select(r, threshold=0.5, top_frac=0.5)
    with pytest.raises(UserError):
        limr_select(r, threshold=None)
    with pytest.raises(UserError):
        limr_select(r, threshold=None, top_frac=0.0)


def test_docs_examples_run(capsys):
    doc = Path(__file__).resolve().parents[2] / "docs" / "llm" / "curricula.md"
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(), re.S)
    assert len(blocks) == 3
    for i, block in enumerate(blocks):
        exec(compile(block, f"{doc.name} block {i}", "exec"), {})
    assert "[0.7241 0.     0.    ]" in capsys.readouterr().out
