"""Rewards: hand-computed golden values, the None/NaN combination rule, raising functions."""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path

import numpy as np
import pytest

from rlworks.core.errors import UserError
from rlworks.llm.rewards import (
    RewardSet,
    completion_lengths,
    correctness_reward,
    cosine_length_reward,
    format_reward,
    length_penalty,
)
from rlworks.llm.tasks import format_completion, make_split

LOGGER = "rlworks.llm.rewards"


def const(value):
    """A reward function that gives ``value`` to every completion."""

    def fn(prompts, completions, **columns):
        return [value] * len(completions)

    return fn


def keyword(word: str):
    """1.0 where the completion contains ``word``, else 0.0."""

    def fn(prompts, completions, **columns):
        return [1.0 if word in c else 0.0 for c in completions]

    return fn


def explode_on_boom(prompts, completions, **columns):
    return [1.0 / 0.0 if c == "boom" else 1.0 for c in completions]


# ---------------------------------------------------------------- length_penalty


def test_length_penalty_golden_values():
    # L_max = 10, L_cache = 4: zero up to 6, then (6 - L) / 4, and -1 beyond 10.
    #   L=6 -> 0; L=7 -> -1/4; L=8 -> -2/4; L=9 -> -3/4; L=10 -> -4/4; L=11 -> -1 (clipped)
    fn = length_penalty(10, cache_len=4)
    completions = ["a" * n for n in (0, 6, 7, 8, 9, 10, 11)]
    out = fn([""] * len(completions), completions)
    assert out == pytest.approx([0.0, 0.0, -0.25, -0.5, -0.75, -1.0, -1.0])


def test_length_penalty_uses_token_counts_when_given_and_default_cache():
    # cache_len defaults to max_len // 5 = 20 for max_len=100: soft zone (80, 100].
    # Tokens 90 -> (80 - 90) / 20 = -0.5, although the text has 1 character.
    fn = length_penalty(100)
    out = fn(["p", "p"], ["x", "y"], completion_lengths=[90, 50])
    assert out == pytest.approx([-0.5, 0.0])


def test_length_penalty_counts_conversational_contents():
    comp = [{"role": "assistant", "content": "abc"}, {"role": "assistant", "content": "de"}]
    assert completion_lengths([comp], {}).tolist() == [5.0]


@pytest.mark.parametrize("kwargs", [{"max_len": 0}, {"max_len": 10, "cache_len": 11}])
def test_length_penalty_rejects_bad_budgets(kwargs):
    with pytest.raises(UserError):
        length_penalty(**kwargs)


# ---------------------------------------------------------------- cosine_length_reward


def test_cosine_length_reward_golden_values():
    # R = r_L + (r_0 - r_L) * (1 + cos(pi L / L_max)) / 2 with L_max = 12.
    # L=0: cos 0 = 1 -> factor 1 -> r_0.
    # L=4: cos(pi/3) = 0.5 -> factor 0.75;
    #   correct: 0.5 + (1.0 - 0.5) * 0.75 = 0.875; wrong: -0.5 + (-1.0 + 0.5) * 0.75 = -0.875
    # L=6: cos(pi/2) = 0 -> factor 0.5; correct 0.75, wrong -0.75
    # L=12 or more: cut off -> exceed_penalty = -1.0 whatever the correctness.
    fn = cosine_length_reward(12, correctness=keyword("ok"))
    completions = ["ok", "ok", "xx", "ok", "xx", "ok", "xx"]
    lengths = [0, 4, 4, 6, 6, 12, 30]
    out = fn([""] * 7, completions, completion_lengths=lengths)
    assert out == pytest.approx([1.0, 0.875, -0.875, 0.75, -0.75, -1.0, -1.0])


def test_cosine_length_reward_orders_short_correct_first_and_long_wrong_above_short_wrong():
    fn = cosine_length_reward(100, correctness=keyword("ok"))
    r = fn([""] * 4, ["ok", "ok", "no", "no"], completion_lengths=[10, 90, 10, 90])
    assert r[0] > r[1] > 0 > r[3] > r[2]


def test_cosine_length_reward_passes_none_through_and_uses_reasongym_by_default():
    def maybe(prompts, completions, **columns):
        return [None, 1.0]

    fn = cosine_length_reward(10, correctness=maybe)
    assert fn(["", ""], ["a", "b"]) == [
        None,
        pytest.approx(0.5 + 0.5 * (1 + math.cos(0.1 * math.pi)) / 2),
    ]

    problems = make_split("add", [1], n=2, split="train", seed=0, unique=False)
    good = format_completion("", problems[0].answer)
    fn = cosine_length_reward(1000)
    out = fn([p.prompt for p in problems], [good, good], problems=problems)
    assert out[0] > 0.9  # correct and short


# ---------------------------------------------------------------- combination


def test_reward_set_weights_and_none_rule_golden():
    # components (weights 1.0 and 0.5):
    #   a = [1, None, None, 0.2]   b = [0.4, 2, None, None]
    # total = [1 + 0.5*0.4, 0 + 0.5*2, all None -> NaN, 0.2 + 0] = [1.2, 1.0, NaN, 0.2]
    def a(prompts, completions, **columns):
        return [1.0, None, None, 0.2]

    def b(prompts, completions, **columns):
        return [0.4, 2, None, None]

    rs = RewardSet([("a", a, 1.0), ("b", b, 0.5)])
    out = rs(["p"] * 4, ["c"] * 4)
    np.testing.assert_allclose(out.total, [1.2, 1.0, np.nan, 0.2])
    np.testing.assert_allclose(out.components["a"], [1.0, np.nan, np.nan, 0.2])
    np.testing.assert_allclose(out.components["b"], [0.4, 2.0, np.nan, np.nan])
    # means over the non-None values: a: (1 + 0.2)/2 = 0.6, std 0.4; b: 1.2, std 0.8
    # total: mean of 1.2, 1.0, 0.2 = 0.8; std sqrt((0.16 + 0.04 + 0.36)/3)
    m = out.metrics
    assert m["rewards/a/mean"] == pytest.approx(0.6)
    assert m["rewards/a/std"] == pytest.approx(0.4)
    assert m["rewards/b/mean"] == pytest.approx(1.2)
    assert m["rewards/b/std"] == pytest.approx(0.8)
    assert m["reward/mean"] == pytest.approx(0.8)
    assert m["reward/std"] == pytest.approx(math.sqrt(0.56 / 3))
    assert m["reward/nan_frac"] == pytest.approx(0.25)
    assert m["rewards/a/errors"] == 0.0


def test_reward_set_accepts_a_mapping_and_bare_functions():
    rs = RewardSet({"correct": (keyword("ok"), 1.0), "format": (format_reward, 0.2), "k": const(2)})
    assert rs.names == ["correct", "format", "k"]
    assert rs.weights == {"correct": 1.0, "format": 0.2, "k": 1.0}
    out = rs(["p", "p"], ["ok", "<think>t</think><answer>1</answer>"])
    # 1 + 0 + 2 = 3; 0 + 0.2 + 2 = 2.2
    np.testing.assert_allclose(out.total, [3.0, 2.2])


def test_reward_set_on_reasongym_rows():
    problems = make_split("add", [1, 2], n=4, split="train", seed=0, unique=False)
    prompts = [p.prompt for p in problems]
    completions = [format_completion("t", p.answer) for p in problems[:2]] + ["junk", "<answer>x"]
    rs = RewardSet({"correct": (correctness_reward, 1.0), "format": (format_reward, 0.2)})
    out = rs(prompts, completions, problems=problems)
    np.testing.assert_allclose(out.total, [1.2, 1.2, 0.0, 0.0])
    assert out.metrics["rewards/correct/mean"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    "spec",
    [
        {},
        [("a", "not callable", 1.0)],
        [("a", const(1.0), float("nan"))],
        [("a", const(1.0), float("inf"))],
        [("a", const(1.0), "1")],
        [("a", const(1.0), 1.0), ("a", const(0.0), 1.0)],
        [("", const(1.0), 1.0)],
        [("x/y", const(1.0), 1.0)],
        [("a", const(1.0))],
    ],
)
def test_reward_set_validates_at_construction(spec):
    with pytest.raises(UserError):
        RewardSet(spec)


def test_duplicate_name_message_names_it():
    with pytest.raises(UserError, match="'dup' appears twice"):
        RewardSet([("dup", const(1.0), 1.0), ("dup", const(0.0), 1.0)])


# ---------------------------------------------------------------- robustness


def test_raising_function_masks_only_the_bad_sample_and_logs_once(caplog):
    rs = RewardSet({"boomy": (explode_on_boom, 1.0), "fmt": (format_reward, 0.2)})
    completions = ["fine", "boom", "also fine"]
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        out = rs(["p"] * 3, completions)
        for _ in range(3):  # the same failure again: still one warning in all
            again = rs(["p"] * 3, completions)
    # the failing sample's total is NaN although fmt has a value for it
    np.testing.assert_allclose(out.total, [1.0, np.nan, 1.0])
    np.testing.assert_allclose(out.components["boomy"], [1.0, np.nan, 1.0])
    np.testing.assert_allclose(out.components["fmt"], [0.0, 0.0, 0.0])
    assert out.metrics["rewards/boomy/errors"] == 1.0
    assert out.metrics["rewards/fmt/errors"] == 0.0
    assert again.metrics["rewards/boomy/errors"] == 1.0
    assert rs.errors == {"boomy": 4, "fmt": 0}
    records = [r for r in caplog.records if r.name == LOGGER]
    assert len(records) == 1
    msg = records[0].getMessage()
    assert "'boomy'" in msg and "ZeroDivisionError" in msg and "'boom'" in msg


def test_warning_is_once_per_function_per_reward_set(caplog):
    def other(prompts, completions, **columns):
        raise RuntimeError("always broken")

    rs = RewardSet([("a", explode_on_boom, 1.0), ("b", other, 1.0)])
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        rs(["p", "p"], ["boom", "x"])
        rs(["p", "p"], ["boom", "x"])
        out = RewardSet([("a", explode_on_boom, 1.0)])(["p"], ["boom"])  # a new set warns anew
    records = [r for r in caplog.records if r.name == LOGGER]
    assert len(records) == 3
    assert np.isnan(out.total).all()


def test_warning_truncates_a_long_sample(caplog):
    rs = RewardSet([("a", explode_on_boom, 1.0)])
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        rs(["p" * 10_000], ["boom"])
    msg = caplog.records[0].getMessage()
    assert len(msg) < 600 and "..." in msg


def test_per_sample_retry_slices_columns_and_keeps_shared_values():
    seen = []

    def needs_row(prompts, completions, answer, scale, **columns):
        if len(completions) > 1:
            raise ValueError("this function only handles one completion at a time")
        seen.append((answer, scale))
        return [float(answer[0]) * scale]

    rs = RewardSet([("r", needs_row, 1.0)])
    out = rs(["p", "q"], ["a", "b"], answer=["3", "4"], scale=2.0)
    np.testing.assert_allclose(out.total, [6.0, 8.0])
    assert seen == [(["3"], 2.0), (["4"], 2.0)]
    assert out.metrics["rewards/r/errors"] == 0.0


def test_all_samples_raising_gives_all_nan_and_nan_metrics():
    def broken(prompts, completions, **columns):
        raise KeyError("missing")

    out = RewardSet([("b", broken, 1.0)])(["p", "p"], ["x", "y"])
    assert np.isnan(out.total).all()
    assert math.isnan(out.metrics["reward/mean"])
    assert out.metrics["rewards/b/errors"] == 2.0
    assert out.metrics["reward/nan_frac"] == 1.0


def test_wrong_length_is_a_user_error_naming_the_function():
    def short(prompts, completions, **columns):
        return [1.0]

    rs = RewardSet({"shorty": (short, 1.0)})
    with pytest.raises(UserError, match=r"reward 'shorty' \(.*short\) returned 1 values for 3"):
        rs(["p"] * 3, ["a", "b", "c"])


@pytest.mark.parametrize("bad", ["1.0", float("nan"), float("inf"), [1.0], {"x": 1}])
def test_non_number_is_a_user_error(bad):
    def weird(prompts, completions, **columns):
        return [1.0, bad]

    with pytest.raises(UserError, match="'weird'.*completion 1"):
        RewardSet([("weird", weird, 1.0)])(["p", "p"], ["a", "b"])


@pytest.mark.parametrize("bad", [None, 1.0, "abc", {"a": 1.0}])
def test_non_list_output_is_a_user_error(bad):
    def odd(prompts, completions, **columns):
        return bad

    with pytest.raises(UserError, match="'odd'.*one float"):
        RewardSet([("odd", odd, 1.0)])(["p"], ["a"])


def test_user_error_inside_a_function_propagates():
    # correctness_reward without problems or columns is misconfigured for every sample alike
    rs = RewardSet({"correct": (correctness_reward, 1.0)})
    with pytest.raises(UserError, match="columns"):
        rs(["p"], ["c"])


def test_prompt_and_completion_count_mismatch():
    with pytest.raises(UserError, match="2 prompts for 1 completions"):
        RewardSet({"k": (const(1.0), 1.0)})(["p", "q"], ["c"])


def test_empty_batch():
    out = RewardSet({"k": (const(1.0), 1.0)})([], [])
    assert out.total.shape == (0,)
    assert math.isnan(out.metrics["reward/mean"])


def test_docs_examples_run(capsys):
    doc = Path(__file__).resolve().parents[2] / "docs" / "llm" / "rewards.md"
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(), re.S)
    assert len(blocks) >= 4
    for i, block in enumerate(blocks):
        exec(compile(block, f"{doc.name} block {i}", "exec"), {})
    assert "[1.2 1.  nan 0.2]" in capsys.readouterr().out
