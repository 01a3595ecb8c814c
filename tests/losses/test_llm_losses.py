"""LLM policy losses: golden values worked by hand, padding gradients, and errors."""

import math

import pytest
import torch

from rlworks.core.errors import UserError
from rlworks.losses.llm import (
    KL_ESTIMATORS,
    LOSS_AGGREGATIONS,
    SURROGATES,
    clipped_sequence_surrogate,
    clipped_token_surrogate,
    constant_sum,
    kl_k1,
    kl_k2,
    kl_k3,
    kl_penalised_rewards,
    policy_loss,
    seq_mean_token_mean,
    token_mean,
)

LN2 = math.log(2.0)  # 0.693147


def close(actual, expected):
    expected = torch.as_tensor(expected, dtype=actual.dtype)
    torch.testing.assert_close(actual, expected, atol=1e-6, rtol=0)


def log(*p):
    return torch.log(torch.tensor([list(p)]))


# --- KL estimators ------------------------------------------------------------------------


def test_kl_estimators_golden():
    # Token 0: pi = .5, ref = .25, so d = ln(ref / pi) = -ln 2.
    #   k1 = ln 2 = .693147; k2 = (ln 2)^2 / 2 = .240227;
    #   k3 = e^d - d - 1 = .5 + ln 2 - 1 = .193147.
    # Token 1: pi = .25, ref = .5, d = +ln 2.
    #   k1 = -ln 2; k2 = .240227; k3 = 2 - ln 2 - 1 = .306853.
    logp, ref = log(0.5, 0.25), log(0.25, 0.5)
    close(kl_k1(logp, ref), [[LN2, -LN2]])
    close(kl_k2(logp, ref), [[LN2**2 / 2, LN2**2 / 2]])
    close(kl_k3(logp, ref), [[LN2 - 0.5, 1 - LN2]])


def test_k1_and_k3_are_unbiased_in_expectation():
    # pi = [.5, .5], ref = [.25, .75]: KL(pi || ref) = .5 ln 2 + .5 ln(2/3) = .143841.
    # E_pi[k3] = sum_x pi (ref/pi - 1 - ln(ref/pi)) = (sum ref - 1) + KL = KL exactly.
    pi, ref = torch.tensor([0.5, 0.5]), torch.tensor([0.25, 0.75])
    kl = 0.5 * LN2 + 0.5 * math.log(2 / 3)
    for k in (kl_k1, kl_k3):
        close((pi * k(pi.log(), ref.log())).sum(), kl)


# --- aggregations -------------------------------------------------------------------------

PER_TOKEN = torch.tensor([[1.0, 2.0, 3.0], [4.0, 100.0, 100.0]])  # 100s sit on padding
MASK = torch.tensor([[1, 1, 1], [1, 0, 0]])


def test_aggregations_golden():
    # Counted tokens: row 0 = 1, 2, 3 (3 tokens); row 1 = 4 (1 token). Sum 10, 4 tokens.
    close(token_mean(PER_TOKEN, MASK), 10 / 4)  # 2.5
    close(seq_mean_token_mean(PER_TOKEN, MASK), (2 + 4) / 2)  # row means 2 and 4 -> 3
    close(constant_sum(PER_TOKEN, MASK), 10 / (2 * 3))  # B * T = 6
    close(constant_sum(PER_TOKEN, MASK, max_tokens=5), 10 / (2 * 5))  # B * max_tokens = 10


def test_aggregations_with_empty_rows_do_not_divide_by_zero():
    # Row 1 has no tokens: token_mean = 6 / 3 = 2; seq mean = (2 + 0) / 2 = 1 (the empty row
    # still counts in B); constant_sum = 6 / 6 = 1. A batch with no token at all gives 0.
    empty_row = torch.tensor([[1, 1, 1], [0, 0, 0]])
    close(token_mean(PER_TOKEN, empty_row), 2.0)
    close(seq_mean_token_mean(PER_TOKEN, empty_row), 1.0)
    close(constant_sum(PER_TOKEN, empty_row), 1.0)
    for agg in (token_mean, seq_mean_token_mean, constant_sum):
        close(agg(PER_TOKEN, torch.zeros(2, 3)), 0.0)
        close(agg(torch.zeros(0, 0), torch.zeros(0, 0)), 0.0)


# --- surrogates ---------------------------------------------------------------------------


def test_clipped_token_surrogate_golden():
    # eps_low .2, eps_high .3 -> clip range [.8, 1.3].
    #   r 1.5, A  1: min(1.5, 1.3) = 1.3   -> loss -1.3, upper clip active
    #   r  .5, A -1: min(-.5, -.8) = -.8   -> loss  .8,  lower clip active
    #   r 1.1, A -1: min(-1.1, -1.1)       -> loss 1.1,  no clip
    #   r  .9, A  2: min(1.8, 1.8)         -> loss -1.8, no clip
    #   r 1.5, A -1: min(-1.5, -1.3) = -1.5 -> loss 1.5, clip not active (gradient flows)
    log_r = torch.log(torch.tensor([[1.5, 0.5, 1.1, 0.9, 1.5]]))
    adv = torch.tensor([[1.0, -1.0, -1.0, 2.0, -1.0]])
    ones = torch.ones(1, 5)
    s = clipped_token_surrogate(log_r, torch.zeros(1, 5), adv, ones, 0.2, 0.3)
    close(s.per_token_loss, [[-1.3, 0.8, 1.1, -1.8, 1.5]])
    close(s.clip_frac_low, 1 / 5)
    close(s.clip_frac_high, 1 / 5)
    # Clip fractions count only masked-in tokens: drop the upper-clipped token 0 -> 0 / 4 high.
    s = clipped_token_surrogate(log_r, torch.zeros(1, 5), adv, torch.tensor([[0, 1, 1, 1, 1]]),
                                0.2, 0.3)  # fmt: skip
    close(s.clip_frac_low, 1 / 4)
    close(s.clip_frac_high, 0.0)


def test_clipped_sequence_surrogate_golden():
    # Row 0: log r = ln 2 + ln .75 = ln 1.5, A = 1 -> min(1.5, 1.2) -> loss -1.2, upper clip.
    # Row 1: only token 0 counts, log r = ln .5, A = 1 -> min(.5, .8) -> loss -.5, no clip.
    logp = torch.log(torch.tensor([[2.0, 0.75], [0.5, 9.0]]))
    mask = torch.tensor([[1, 1], [1, 0]])
    s = clipped_sequence_surrogate(logp, torch.zeros(2, 2), torch.ones(2, 1), mask, 0.2, 0.2)
    close(s.ratio, [[1.5], [0.5]])
    close(seq_mean_token_mean(s.per_token_loss, mask), (-1.2 - 0.5) / 2)
    close(s.clip_frac_high, 0.5)
    close(s.clip_frac_low, 0.0)


# --- policy_loss --------------------------------------------------------------------------


def _golden_batch():
    # B = 2, T = 2; row 1 has one token. On-policy (old = logp), so every ratio is 1 and the
    # per-token surrogate is -A. pi = .5 everywhere; ref = .25 on row 0 (k3 = ln 2 - .5 =
    # .193147 per token) and .5 on row 1 (k3 = 0).
    logp = torch.full((2, 2), math.log(0.5), requires_grad=True)
    ref = torch.log(torch.tensor([[0.25, 0.25], [0.5, 0.5]]))
    mask = torch.tensor([[1, 1], [1, 0]])
    adv = torch.tensor([1.0, -2.0])
    return logp, ref, mask, adv


def test_policy_loss_golden_grpo_aggregation():
    # pg = mean(mean(-1, -1), mean(2)) = (-1 + 2) / 2 = .5
    # kl = mean(mean(.193147, .193147), 0) = .0965736 ; loss = .5 + .1 * .0965736 = .5096574
    logp, ref, mask, adv = _golden_batch()
    t = policy_loss(logp, logp.detach(), ref, adv, mask,
                    clip_eps_low=0.2, clip_eps_high=0.2, beta=0.1)  # fmt: skip
    k3 = LN2 - 0.5
    close(t.pg_loss, 0.5)
    close(t.kl, k3 / 2)
    close(t.loss, 0.5 + 0.1 * k3 / 2)
    close(t.ratio_mean, 1.0)
    close(t.clip_frac_low + t.clip_frac_high + t.approx_kl_old, 0.0)
    # Gradient by hand. d(-r A)/d logp = -A at r = 1; d k3 / d logp = 1 - ref/pi.
    # Row 0 tokens: -1 / (2 tokens * 2 rows) + .1 * (1 - .5) / 4 = -.25 + .0125 = -.2375
    # Row 1 token 0: 2 / (1 * 2) + 0 = 1. Padding: exactly 0.
    t.loss.backward()
    close(logp.grad, [[-0.2375, -0.2375], [1.0, 0.0]])


def test_policy_loss_golden_token_mean():
    # pg = (-1 - 1 + 2) / 3 = 0 ; kl = 2 * .193147 / 3 = .128765 ; loss = .0128765
    logp, ref, mask, adv = _golden_batch()
    t = policy_loss(logp, logp.detach(), ref, adv, mask, clip_eps_low=0.2, clip_eps_high=0.2,
                    beta=0.1, aggregate=token_mean)  # fmt: skip
    close(t.pg_loss, 0.0)
    close(t.loss, 0.1 * 2 * (LN2 - 0.5) / 3)


@pytest.mark.parametrize("aggregate", [token_mean, seq_mean_token_mean, constant_sum])
@pytest.mark.parametrize("surrogate", [clipped_token_surrogate, clipped_sequence_surrogate])
def test_padding_gets_exactly_zero_gradient(aggregate, surrogate):
    g = torch.Generator().manual_seed(0)
    logp = -torch.rand(3, 5, generator=g)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0]])
    logp[mask == 0] = -math.inf  # garbage on padding must not leak (no NaN, no gradient)
    logp.requires_grad_(True)
    old = logp.detach() + 0.3 * torch.randn(3, 5, generator=g)
    ref = logp.detach() - 0.2
    t = policy_loss(logp, old, ref, torch.randn(3, generator=g), mask, clip_eps_low=0.2,
                    clip_eps_high=0.28, beta=0.05, aggregate=aggregate, surrogate=surrogate,
                    kl_importance_weighted=True)  # fmt: skip
    t.loss.backward()
    assert torch.isfinite(t.loss)
    assert torch.equal(logp.grad[mask == 0], torch.zeros(int((mask == 0).sum())))
    assert (logp.grad[mask == 1] != 0).any()


def test_kl_importance_weighting_changes_only_the_kl_term():
    # Weighted by r = pi / pi_old: with r = 2 on every token, kl doubles, pg is unchanged.
    logp, ref, mask, adv = _golden_batch()
    old = logp.detach() - LN2
    kw = dict(clip_eps_low=10.0, clip_eps_high=10.0, beta=0.1)
    plain = policy_loss(logp, old, ref, adv, mask, **kw)
    weighted = policy_loss(logp, old, ref, adv, mask, kl_importance_weighted=True, **kw)
    close(weighted.kl, 2 * plain.kl)
    close(weighted.pg_loss, plain.pg_loss)


def test_policy_loss_errors_name_the_argument():
    x, m = torch.zeros(2, 3), torch.ones(2, 3)
    kw = dict(clip_eps_low=0.2, clip_eps_high=0.2, beta=0.0)
    with pytest.raises(ValueError, match="old_logp"):
        policy_loss(x, torch.zeros(2, 4), None, torch.zeros(2), m, **kw)
    with pytest.raises(ValueError, match="mask"):
        policy_loss(x, x, None, torch.zeros(2), torch.ones(3, 3), **kw)
    with pytest.raises(ValueError, match="advantages"):
        policy_loss(x, x, None, torch.zeros(3), m, **kw)
    with pytest.raises(ValueError, match="advantages"):
        policy_loss(x, x, None, torch.zeros(2, 2), m, **kw)
    with pytest.raises(ValueError, match="ref_logp"):
        policy_loss(x, x, torch.zeros(2, 2), torch.zeros(2), m, **kw)
    with pytest.raises(ValueError, match="ref_logp is None"):
        policy_loss(x, x, None, torch.zeros(2), m, clip_eps_low=0.2, clip_eps_high=0.2, beta=0.1)
    with pytest.raises(ValueError, match="logp must be"):
        policy_loss(torch.zeros(6), torch.zeros(6), None, torch.zeros(6), torch.ones(6), **kw)


# --- KL in the reward ---------------------------------------------------------------------


def test_kl_penalised_rewards_golden():
    # k1 per token: [ln(.5/.25), ln(.5/.5)] = [ln 2, 0]; the third token is padding.
    # Outcome reward 1 -> 1 - .1 * ln 2 = .930685. Token rewards [1, 0, 5] -> [.930685, 0, 5].
    logp, ref = log(0.5, 0.5, 0.5), log(0.25, 0.5, 0.01)
    mask = torch.tensor([[1, 1, 0]])
    close(kl_penalised_rewards(torch.tensor([1.0]), logp, ref, mask, 0.1), [1 - 0.1 * LN2])
    token_r = torch.tensor([[1.0, 0.0, 5.0]])
    close(kl_penalised_rewards(token_r, logp, ref, mask, 0.1), [[1 - 0.1 * LN2, 0.0, 5.0]])
    with pytest.raises(ValueError, match="rewards"):
        kl_penalised_rewards(torch.zeros(2), logp, ref, mask, 0.1)


# --- registries ---------------------------------------------------------------------------


def test_registries():
    assert KL_ESTIMATORS.names() == ["k1", "k2", "k3"]
    assert KL_ESTIMATORS.get("k3") is kl_k3
    assert LOSS_AGGREGATIONS.names() == ["constant_sum", "seq_mean_token_mean", "token_mean"]
    assert SURROGATES.get("sequence") is clipped_sequence_surrogate
    with pytest.raises(UserError, match="did you mean 'token_mean'"):
        LOSS_AGGREGATIONS.get("token_man")
