"""Group advantage estimators: golden values worked by hand, properties, and errors."""

import json
import math

import pytest
import torch

from rlworks.core.errors import UserError
from rlworks.returns.group import (
    ADVANTAGES,
    RunningBaseline,
    greedy_baseline,
    group_relative,
    leave_one_out,
    token_gae,
)

NAN = float("nan")
EPS = 1e-4


def close(actual, expected):
    torch.testing.assert_close(
        actual, torch.tensor(expected, dtype=actual.dtype), atol=1e-6, rtol=0
    )


# --- group_relative (GRPO, Dr. GRPO) ------------------------------------------------------


def test_grpo_golden():
    # [1, 0, 0, 1]: mean .5, deviations +-.5, sum of squares 1, var (ddof=1) 1/3,
    # std 0.57735; A = +-.5 / (0.57735 + 1e-4) = +-0.865876.
    a = 0.5 / (3**-0.5 + EPS)
    close(group_relative(torch.tensor([[1.0, 0.0, 0.0, 1.0]])), [[a, -a, -a, a]])


def test_grpo_golden_two_groups_and_ddof0():
    # Group 2 [3, 1, 2, 2]: mean 2, deviations 1, -1, 0, 0, sum sq 2.
    # ddof=1: std sqrt(2/3) = 0.816497 ; ddof=0: std sqrt(2/4) = 0.707107.
    r = torch.tensor([[1.0, 0.0, 0.0, 1.0], [3.0, 1.0, 2.0, 2.0]])
    a1, b1 = 0.5 / (3**-0.5 + EPS), 1 / ((2 / 3) ** 0.5 + EPS)
    close(group_relative(r), [[a1, -a1, -a1, a1], [b1, -b1, 0, 0]])
    a0, b0 = 0.5 / (0.5 + 1e-6), 1 / (0.5**0.5 + 1e-6)
    close(group_relative(r, std_ddof=0, eps=1e-6), [[a0, -a0, -a0, a0], [b0, -b0, 0, 0]])


def test_batch_scale_golden():
    # Group means .5 and 2 -> centred [[.5, -.5], [1, -1]]. Batch std of the raw rewards
    # [1, 0, 3, 1]: mean 1.25, squares .0625 + 1.5625 + 3.0625 + .0625 = 4.75, /3 -> std 1.258306.
    r = torch.tensor([[1.0, 0.0], [3.0, 1.0]])
    s = (4.75 / 3) ** 0.5 + EPS
    close(group_relative(r, scale="batch"), [[0.5 / s, -0.5 / s], [1 / s, -1 / s]])


def test_dr_grpo_golden_is_centred_reward():
    # No std: [1, 0, 0, 1] - .5 and [3, 1, 2, 2] - 2.
    r = torch.tensor([[1.0, 0.0, 0.0, 1.0], [3.0, 1.0, 2.0, 2.0]])
    close(group_relative(r, scale="none"), [[0.5, -0.5, -0.5, 0.5], [1, -1, 0, 0]])
    close(ADVANTAGES.get("dr_grpo")(r), [[0.5, -0.5, -0.5, 0.5], [1, -1, 0, 0]])


def test_grpo_nan_rewards_are_left_out_and_get_zero():
    # Row 0 [2, nan, 0, 1]: valid 2, 0, 1 -> mean 1, deviations 1, -1, 0, var 2/2 = 1, std 1.
    # Row 1: all failed -> 0. Row 2: one valid sample, ddof=1 std undefined -> 0.
    r = torch.tensor([[2.0, NAN, 0.0, 1.0], [NAN, NAN, NAN, NAN], [NAN, 5.0, NAN, NAN]])
    a = 1 / (1 + EPS)
    close(group_relative(r), [[a, 0, -a, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    close(group_relative(r, scale="none"), [[1, 0, -1, 0], [0, 0, 0, 0], [0, 0, 0, 0]])


def test_constant_group_gives_zero_not_nan():
    close(group_relative(torch.tensor([[1.0, 1.0, 1.0]])), [[0.0, 0.0, 0.0]])


# --- leave_one_out (RLOO), greedy_baseline (ReMax) ----------------------------------------


def test_rloo_golden():
    # [1, 0, 0, 1]: a 1 sees the others' mean (0 + 0 + 1) / 3 = 1/3 -> 2/3;
    # a 0 sees (1 + 0 + 1) / 3 = 2/3 -> -2/3.
    close(leave_one_out(torch.tensor([[1.0, 0.0, 0.0, 1.0]])), [[2 / 3, -2 / 3, -2 / 3, 2 / 3]])


def test_rloo_nan_golden():
    # [4, 2, nan]: the valid ones see only each other: 4 - 2 = 2, 2 - 4 = -2; nan -> 0.
    # [5, nan, nan]: no valid sibling -> 0.
    r = torch.tensor([[4.0, 2.0, NAN], [5.0, NAN, NAN]])
    close(leave_one_out(r), [[2.0, -2.0, 0.0], [0.0, 0.0, 0.0]])


def test_rloo_needs_two_samples():
    with pytest.raises(ValueError, match="at least 2 samples"):
        leave_one_out(torch.tensor([[1.0], [2.0]]))


def test_remax_golden():
    # r - r_greedy per prompt: [1, 0] - .5, [.5, 1] - 1; a NaN greedy reward zeroes the row.
    r = torch.tensor([[1.0, 0.0], [0.5, 1.0], [3.0, 4.0]])
    close(greedy_baseline(r, torch.tensor([0.5, 1.0, NAN])), [[0.5, -0.5], [-0.5, 0.0], [0, 0]])


def test_remax_shape_error_names_argument():
    with pytest.raises(ValueError, match="greedy_rewards"):
        greedy_baseline(torch.zeros(2, 3), torch.zeros(3))


@pytest.mark.parametrize("name", ["grpo", "dr_grpo", "rloo"])
@pytest.mark.parametrize("seed", range(5))
def test_advantages_sum_to_zero_per_group(name, seed):
    g = torch.Generator().manual_seed(seed)
    rewards = torch.randn(6, 5, generator=g, dtype=torch.float64)
    rewards[rewards > 1.2] = NAN  # failed samples drop out and the rest still sum to 0
    adv = ADVANTAGES.get(name)(rewards)
    torch.testing.assert_close(adv.sum(1), torch.zeros(6, dtype=torch.float64))


def test_rloo_is_rescaled_dr_grpo():
    # With G samples, r_i - mean_{j != i} r_j = G / (G - 1) * (r_i - mean).
    r = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(leave_one_out(r), 4 / 3 * group_relative(r, scale="none"))


@pytest.mark.parametrize("bad", [torch.zeros(4), torch.zeros(2, 2, 2), torch.zeros(2, 3).long()])
def test_rewards_shape_and_dtype_errors(bad):
    with pytest.raises(ValueError, match="rewards"):
        group_relative(bad)


def test_unknown_scale():
    with pytest.raises(ValueError, match="scale"):
        group_relative(torch.zeros(1, 2), scale="grp")  # type: ignore[arg-type]


# --- RunningBaseline (REINFORCE) ----------------------------------------------------------


def test_running_baseline_golden_and_json_state():
    # momentum .5, b0 = 0.
    # [1, 3]: A = [1, 3]; b = .5 * 0 + .5 * 2 = 1.
    # [0, 2]: A = [-1, 1]; b = .5 * 1 + .5 * 1 = 1.
    # [5, nan]: A = [4, 0]; mean of valid = 5, b = .5 * 1 + .5 * 5 = 3.
    base = RunningBaseline(momentum=0.5)
    close(base(torch.tensor([[1.0, 3.0]])), [[1.0, 3.0]])
    close(base(torch.tensor([[0.0, 2.0]])), [[-1.0, 1.0]])
    state = json.loads(json.dumps(base.state_dict()))
    restored = RunningBaseline()
    restored.load_state_dict(state)
    close(restored(torch.tensor([[5.0, NAN]])), [[4.0, 0.0]])
    assert restored.value == 3.0 and restored.updates == 3


def test_running_baseline_rejects_bad_momentum():
    with pytest.raises(ValueError, match="momentum"):
        RunningBaseline(momentum=1.0)


# --- token_gae (PPO with a value head) ----------------------------------------------------


def test_token_gae_golden():
    # Row 0, gamma = lambda = .5, mask [1, 1, 0] (the 9 and 7 on padding must be ignored):
    #   V after the last real token is 0. delta_1 = 1 + 0 - .25 = .75; A_1 = .75.
    #   delta_0 = 0 + .5 * .25 - .5 = -.375; A_0 = -.375 + .25 * .75 = -.1875.
    #   returns = A + V = [.3125, 1.0, 0].
    r = torch.tensor([[0.0, 1.0, 9.0]])
    v = torch.tensor([[0.5, 0.25, 7.0]])
    m = torch.tensor([[1, 1, 0]])
    adv, ret = token_gae(r, v, m, gamma=0.5, gae_lambda=0.5)
    close(adv, [[-0.1875, 0.75, 0.0]])
    close(ret, [[0.3125, 1.0, 0.0]])


def test_token_gae_monte_carlo_limit():
    # gamma = lambda = 1: A_t = (sum of future rewards) - V_t = 1 - V_t, returns = 1.
    adv, ret = token_gae(torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([[0.2, 0.4, 0.6]]),
                         torch.ones(1, 3))  # fmt: skip
    close(adv, [[0.8, 0.6, 0.4]])
    close(ret, [[1.0, 1.0, 1.0]])


def test_token_gae_errors():
    with pytest.raises(ValueError, match="right-padded"):
        token_gae(torch.zeros(1, 3), torch.zeros(1, 3), torch.tensor([[1, 0, 1]]))
    with pytest.raises(ValueError, match="values"):
        token_gae(torch.zeros(1, 3), torch.zeros(1, 2), torch.ones(1, 3))


# --- registry -----------------------------------------------------------------------------


def test_registry_names_and_lookup():
    assert ADVANTAGES.names() == ["dr_grpo", "grpo", "reinforce", "remax", "rloo"]
    r = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    close(ADVANTAGES.get("grpo")(r), group_relative(r).tolist())
    assert isinstance(ADVANTAGES.get("reinforce")(momentum=0.9), RunningBaseline)
    with pytest.raises(UserError, match="did you mean 'grpo'"):
        ADVANTAGES.get("gpro")
    assert not math.isnan(ADVANTAGES.get("rloo")(r).sum().item())
