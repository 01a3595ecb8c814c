"""ReasonGym: hand-worked verifier examples, determinism, split disjointness, error injection."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rlworks.core.errors import UserError
from rlworks.core.seeding import make_rng
from rlworks.llm.tasks import (
    FAMILIES,
    Problem,
    TaskFamily,
    check_format,
    correctness_reward,
    extract_answer,
    format_completion,
    format_reward,
    generate_problem,
    get_family,
    make_sft_texts,
    make_split,
    parse_int,
    parse_int_list,
    safe_eval,
    split_of,
    to_rows,
    verify_countdown,
)
from rlworks.llm.tasks.arithmetic import ADDITION, MULTIPLICATION, times_digit
from rlworks.llm.tasks.countdown import COUNTDOWN
from rlworks.llm.tasks.expression import EXPRESSION, reduction_trace, render, to_lists
from rlworks.llm.tasks.sorting import SORTING

ALL = ["add", "mul", "expr", "countdown", "sort"]


def ans(text: str) -> str:
    return format_completion("", text)


# ---------------------------------------------------------------- extraction and format


def test_extract_answer_takes_the_last_tag_and_never_raises():
    assert extract_answer("<think>x</think><answer> 12 </answer>") == "12"
    assert extract_answer("<answer>1</answer> then <answer>2</answer>") == "2"
    assert extract_answer("<answer>\n3\n</answer>") == "3"
    assert extract_answer("no tags") is None
    assert extract_answer("<answer>12") is None
    assert extract_answer(None) is None
    assert extract_answer(12) is None


def test_parse_int_and_list_normalise_whitespace_and_commas():
    assert parse_int("1,234") == 1234
    assert parse_int(" -7 ") == -7
    assert parse_int("1 000") == 1000
    for bad in ("12a", "1.5", "", "--3", "1e3", None):
        assert parse_int(bad) is None
    assert parse_int_list("3, 7 12") == [3, 7, 12]
    assert parse_int_list("[1,2]") == [1, 2]
    for bad in ("1,,x", "", "[]", "1;2", None):
        assert parse_int_list(bad) is None


@pytest.mark.parametrize(
    ("completion", "ok"),
    [
        ("<think>a</think><answer>5</answer>", True),
        ("  <think>a\nb</think>\n<answer>5</answer>\n", True),
        ("<think></think><answer>5</answer>", True),
        ("<answer>5</answer>", False),  # no thought
        ("so <think>a</think><answer>5</answer>", False),  # text before
        ("<think>a</think><answer>5</answer> done", False),  # text after
        ("<think>a</think><answer> </answer>", False),  # empty answer
        ("<think>a<answer>4</answer></think><answer>5</answer>", False),  # tag in thought
        ("<think>a</think><answer>4</answer><answer>5</answer>", False),  # two answers
        ("<think>a</think>", False),
        (None, False),
    ],
)
def test_check_format(completion, ok):
    assert check_format(completion) is ok


# ---------------------------------------------------------------- addition and multiplication

# 4821 + 937, worked by hand: 1+7=8, 2+3=5, 8+9=17 (carry 1), 4+0+1=5 -> 5758.
ADD = Problem("add", 4, "4821+937=?\n", "5758", "add:937+4821", {"a": 4821, "b": 937})
# 377 * 13 = 377*3 + 377*10 = 1131 + 3770 = 4901.
MUL = Problem("mul", 3, "377*13=?\n", "4901", "mul:13*377", {"a": 377, "b": 13})


def test_addition_scratchpad_and_verify():
    assert ADDITION.solve(ADD) == "1+7+0=8\n2+3+0=5\n8+9+0=17\n4+0+1=5\ncarry 0"
    assert ADDITION.verify(ADD, ans("5758"))
    assert ADDITION.verify(ADD, ans(" 5,758 "))
    assert not ADDITION.verify(ADD, ans("5759"))
    assert not ADDITION.verify(ADD, "5758")  # no answer tag
    assert not ADDITION.verify(ADD, ans("5758.0"))


def test_addition_mistake_is_the_dropped_carry():
    # The only carry is out of the hundreds column; forgetting it gives 4+0+0=4 -> 4758.
    thought, answer = ADDITION.solve_with_mistake(ADD, make_rng(0))
    assert thought == "1+7+0=8\n2+3+0=5\n8+9+0=17\n4+0+0=4\ncarry 0"
    assert answer == "4758"


def test_multiplication_scratchpad_and_partial_product_slip():
    assert MULTIPLICATION.solve(MUL) == "377*3=1131\n377*10=3770\n1131+3770=4901"
    assert MULTIPLICATION.verify(MUL, ans("4901"))
    assert not MULTIPLICATION.verify(MUL, ans("4911"))
    # 7*3=21: write 1, carry 2 -- forgotten: 7*3+0=21 -> 1 carry 2; 3*3+2=11 -> 1111.
    assert times_digit(377, 3) == 1131
    assert times_digit(377, 3, drop_carry_at=0) == 1111
    thought, answer = MULTIPLICATION.solve_with_mistake(MUL, make_rng(3))
    assert answer != "4901" and thought.splitlines()[-1].endswith("=" + answer)


# ---------------------------------------------------------------- expressions


def test_expression_render_and_trace():
    tree = ("-", ("*", ("+", 3, 4), 2), 5)
    assert render(tree) == "(3+4)*2-5"
    assert render(("-", 8, ("-", 3, 2))) == "8-(3-2)"  # = 7, not 3
    assert render(("*", 2, ("*", 3, 4))) == "2*(3*4)"
    assert render(("-", ("-", 8, 3), 2)) == "8-3-2"
    lines, value = reduction_trace(tree)
    assert lines == ["3+4=7 => 7*2-5", "7*2=14 => 14-5", "14-5=9"]
    assert value == 9
    # A slip of +1 in the first step carries on: 8*2=16, 16-5=11.
    assert reduction_trace(tree, 0, 1) == (["3+4=8 => 8*2-5", "8*2=16 => 16-5", "16-5=11"], 11)
    p = Problem("expr", 3, "(3+4)*2-5=?\n", "9", "expr:(3+4)*2-5", {"tree": to_lists(tree)})
    assert EXPRESSION.solve(p) == "\n".join(lines)
    assert EXPRESSION.verify(p, ans("9")) and not EXPRESSION.verify(p, ans("-9"))
    neg = Problem("expr", 1, "3-5=?\n", "-2", "expr:3-5", {"tree": ["-", 3, 5]})
    assert EXPRESSION.verify(neg, ans("-2")) and not EXPRESSION.verify(neg, ans("2"))


# ---------------------------------------------------------------- countdown


def test_countdown_verifier_hand_examples():
    nums, target = [25, 3, 4, 7], 112  # (25+3)*4 = 112
    assert verify_countdown(ans("(25+3)*4"), nums, target)
    assert verify_countdown(ans("(25 + 3) * 4 = 112"), nums, target)
    assert verify_countdown(ans("4*(3+25)"), nums, target)
    assert not verify_countdown(ans("25*4+3*4"), nums, target)  # 4 used twice (= 112!)
    assert not verify_countdown(ans("112"), nums, target)  # 112 is not a given number
    assert not verify_countdown(ans("(25+3)*4*1"), nums, target)  # 1 is not given
    assert not verify_countdown(ans("(25-3)*4"), nums, target)  # 88
    assert not verify_countdown(ans("-3+(25)*4+15"), nums, target)  # unary minus, 15
    assert not verify_countdown(ans("28.0*4"), nums, target)  # float literal
    assert not verify_countdown(ans("(25+3*4"), nums, target)  # syntax
    assert not verify_countdown("(25+3)*4", nums, target)  # no answer tag
    # 8/(3-8/3) = 8/(1/3) = 24: exact fractions, every number once.
    assert verify_countdown(ans("8/(3-8/3)"), [8, 3, 3, 8], 24)
    # A number given twice may be used twice.
    assert verify_countdown(ans("3*3+5"), [3, 3, 5], 14)
    assert not verify_countdown(ans("3*3+5"), [3, 5, 9], 14)


def test_countdown_rejects_division_by_zero_powers_and_code():
    nums = [5, 5, 2, 9]
    assert not verify_countdown(ans("2/(5-5)"), nums, 1)
    assert safe_eval("2/(5-5)") is None
    for attack in (
        "2**100000",
        "9**9**9**9",
        "__import__('os').getcwd()",
        "(lambda: 1)()",
        "[5][0]",
        "5 if 2 else 9",
        "5//2",
        "5%2",
        "2<<100000",
        "(" * 500 + "5",
    ):
        assert safe_eval(attack) is None, attack
        assert not verify_countdown(ans(attack), nums, 25)
    assert safe_eval("8/(3-8/3)")[0] == 24


# ---------------------------------------------------------------- sorting


def test_sorting_scratchpad_and_verify():
    p = Problem("sort", 3, "sort 5 1 3\n", "1 3 5", "sort:1,3,5", {"values": [5, 1, 3]})
    assert SORTING.solve(p) == "1 | 5 3\n3 | 5\n5 |"
    for good in ("1 3 5", "1, 3, 5", "[1,3,5]", " 1,3,5 "):
        assert SORTING.verify(p, ans(good)), good
    for bad in ("1 5 3", "1 3", "1 3 5 5", "5 3 1", "one three five", ""):
        assert not SORTING.verify(p, ans(bad)), bad


# ---------------------------------------------------------------- all families


@pytest.mark.parametrize("name", ALL)
def test_malformed_completions_are_false_never_exceptions(name):
    fam = get_family(name)
    p = generate_problem(name, fam.pretrain_difficulties[-1], seed=0, index=0)
    rng = np.random.default_rng(0)
    alphabet = list("0123456789+-*/() ,<>=[]abc\n") + ["<answer>", "</answer>", "<think>"]
    junk = ["".join(rng.choice(alphabet, size=int(rng.integers(0, 40)))) for _ in range(200)]
    for c in [None, 123, b"<answer>1</answer>", "", "<answer>", "<answer></answer>", *junk]:
        assert fam.verify(p, c) in (False, True)  # type: ignore[arg-type]
    assert fam.verify(p, ans(p.answer))
    assert not fam.verify(p, ans("nonsense"))


@pytest.mark.parametrize("name", ALL)
def test_generation_is_deterministic_per_seed_and_index(name):
    fam = get_family(name)
    d = fam.eval_difficulties[0]
    a = generate_problem(name, d, seed=7, index=3)
    b = generate_problem(name, d, seed=7, index=3)
    assert a == b and a.data == b.data and a.id == b.id
    others = {generate_problem(name, d, seed=7, index=i).canonical for i in range(20)}
    assert len(others) > 10
    assert make_split(name, fam.pretrain_difficulties, 30, seed=1) == make_split(
        name, fam.pretrain_difficulties, 30, seed=1
    )
    assert [e.text for e in make_sft_texts(name, d, 20, seed=2, error_rate=0.5)] == [
        e.text for e in make_sft_texts(name, d, 20, seed=2, error_rate=0.5)
    ]


def test_difficulty_sets_operand_sizes_as_documented():
    for d in (1, 3, 7):
        for p in make_split("add", d, 20, seed=0, unique=False):
            assert len(str(p.data["a"])) == d and len(str(p.data["b"])) == d
    for d in (1, 2, 5, 6):
        for p in make_split("mul", d, 20, seed=0, unique=False):
            assert len(str(p.data["a"])) == d and len(str(p.data["b"])) == math.ceil(d / 2)
    for d in (1, 4, 8):
        for p in make_split("expr", d, 20, seed=0, unique=False):
            assert sum(p.prompt.count(op) for op in "+-*") == d
    for d in (2, 4, 6):
        for p in make_split("countdown", d, 20, seed=0, unique=False):
            assert len(p.data["numbers"]) == d and all(1 <= v <= 25 for v in p.data["numbers"])
            assert 10 <= p.data["target"] <= 999
            assert COUNTDOWN.verify(p, ans(p.answer))  # the construction uses all numbers
    for d in (2, 10, 20):
        for p in make_split("sort", d, 20, seed=0, unique=False):
            assert len(p.data["values"]) == len(set(p.data["values"])) == d


def test_problem_source_id_and_rows_roundtrip():
    p = generate_problem("add", 3, seed=0, index=0)
    assert p.source == "add/d3"
    assert len(p.id) == 16 and int(p.id, 16) >= 0
    swapped = Problem("add", 3, "x", p.answer, p.canonical, {})
    assert swapped.id == p.id  # the id is the canonical problem's
    rows = to_rows([p])
    assert set(rows[0]) >= {"prompt", "answer", "source", "difficulty"}
    assert Problem.from_row(rows[0]) == p


# ---------------------------------------------------------------- splits


def test_train_and_test_never_overlap_at_any_seed():
    test_ids: set[str] = set()
    train_ids: set[str] = set()
    for seed in (0, 1):
        for name, levels in (("add", (2, 3)), ("sort", (3,)), ("expr", (2,)), ("mul", (2,))):
            test_ids |= {p.canonical for p in make_split(name, levels, 60, "test", seed)}
            train_ids |= {
                p.canonical for p in make_split(name, levels, 600, "train", seed, unique=False)
            }
    assert len(test_ids) > 300 and len(train_ids) > 2000
    assert not test_ids & train_ids
    # Commuted operands are the same canonical problem, hence in the same split.
    ab = ADDITION.generate(make_rng(0), 3)
    a, b = ab.data["a"], ab.data["b"]
    ba = Problem("add", 3, f"{b}+{a}=?\n", ab.answer, f"add:{min(a, b)}+{max(a, b)}", {})
    assert ab.canonical == ba.canonical and ab.split == ba.split


def test_test_fraction_is_about_ten_percent():
    canon = {generate_problem("add", 4, 0, i).canonical for i in range(3000)}
    frac = sum(split_of(c) == "test" for c in canon) / len(canon)
    assert 0.08 < frac < 0.12  # binomial sd at n=3000 is 0.0055


def test_small_space_exhausted_is_a_user_error():
    with pytest.raises(UserError, match="add/d1"):
        make_split("add", 1, 50, "test", seed=0)  # only 55 unordered 1-digit pairs exist
    assert len(make_split("add", 1, 50, "test", seed=0, unique=False)) == 50


# ---------------------------------------------------------------- SFT text and error injection


def test_sft_error_rate_and_corrupted_scratchpads_really_are_wrong():
    ex = make_sft_texts("add", (3, 4, 5), 1500, seed=0, error_rate=0.25)
    wrong = [e for e in ex if not e.correct]
    assert abs(len(wrong) / len(ex) - 0.25) < 0.04  # sd 0.011
    for e in ex:
        assert check_format(e.completion)
        assert e.text == e.problem.prompt + e.completion
        assert ADDITION.verify(e.problem, e.completion) is e.correct


@pytest.mark.parametrize("name", ALL)
def test_every_family_injects_mistakes_that_verify_false(name):
    fam = get_family(name)
    levels = fam.pretrain_difficulties + fam.eval_difficulties
    ex = make_sft_texts(name, levels, 200, seed=1, error_rate=0.5)
    n_wrong = sum(not e.correct for e in ex)
    assert 60 < n_wrong < 140
    for e in ex:
        thought = e.completion.split("</think>")[0]
        assert fam.verify(e.problem, e.completion) is e.correct
        assert check_format(e.completion)
        if e.correct:
            assert thought == "<think>" + fam.solve(e.problem)
        else:
            assert thought != "<think>" + fam.solve(e.problem)  # the mistake is in the pad
    assert all(e.correct for e in make_sft_texts(name, levels, 30, seed=1, error_rate=0.0))
    assert not any(e.correct for e in make_sft_texts(name, levels, 30, seed=1, error_rate=1.0))


# ---------------------------------------------------------------- rewards and bad input


def test_reward_functions_match_the_reward_signature():
    problems = [ADD, ADD, MUL]
    prompts = [p.prompt for p in problems]
    completions = [ans("5758"), "<think>x</think><answer>5,758", format_completion("y", "4901")]
    assert correctness_reward(prompts, completions, problems=problems) == [1.0, 0.0, 1.0]
    assert format_reward(prompts, completions) == [1.0, 0.0, 1.0]
    columns = {k: [r[k] for r in to_rows(problems)] for k in to_rows(problems)[0]}
    columns.pop("prompt")
    assert correctness_reward(prompts, completions, **columns) == [1.0, 0.0, 1.0]
    with pytest.raises(UserError, match="completions has 2 entries for 3 prompts"):
        correctness_reward(prompts, completions[:2], problems=problems)
    with pytest.raises(UserError, match="problems=|columns"):
        correctness_reward(prompts, completions)


def test_bad_input_is_one_line_user_error():
    with pytest.raises(UserError, match="did you mean 'add'"):
        make_split("addd", 2, 10)
    with pytest.raises(UserError, match="out of range; use 1..12"):
        make_split("add", [2, 13], 10)
    with pytest.raises(UserError, match="split must be"):
        make_split("add", 2, 10, split="val")
    with pytest.raises(UserError, match="positive int"):
        make_split("add", 2, 0)
    with pytest.raises(UserError, match="empty"):
        make_split("add", [], 10)
    with pytest.raises(UserError, match="error_rate"):
        make_sft_texts("add", 2, 10, error_rate=1.5)
    with pytest.raises(UserError, match="out of range"):
        ADDITION.generate(make_rng(0), 0)
    assert sorted(FAMILIES) == sorted(ALL)
    assert all(isinstance(get_family(n), TaskFamily) for n in ALL)
