"""Token-level policy losses for LLM post-training (the GRPO family), with KL estimators.

Every per-token tensor is ``(B, T)``: B completions (all prompts' samples, flattened), T
completion positions, right-padded; ``mask`` is ``(B, T)`` with 1 on tokens that count
(bool or 0/1 floats). ``logp`` is log pi_theta(token) under the policy being trained, after any
temperature scaling of the logits; ``old_logp`` under the policy that sampled the batch;
``ref_logp`` under the frozen reference model.

Papers:
  PPO      Schulman et al. 2017, arXiv:1707.06347 (the clipped surrogate)
  GRPO     Shao et al. 2024, arXiv:2402.03300 (per-sequence token mean, k3 KL in the loss)
  DAPO     Yu et al. 2025, arXiv:2503.14476 (token mean over the batch, clip-higher)
  Dr. GRPO Liu et al. 2025, arXiv:2503.20783 (sum over tokens / a constant)
  KL       Schulman, "Approximating KL Divergence", 2020, http://joschu.net/blog/kl-approx.html

A variant is a choice of components, made once by name through the registries at the bottom
(``KL_ESTIMATORS``, ``LOSS_AGGREGATIONS``, ``SURROGATES``); no function here branches on a
loss-type string.

Padding. :func:`policy_loss` replaces padded entries of its inputs by 0 before any
arithmetic, so a ``-inf`` or NaN there cannot leak into the loss, and the gradient with
respect to ``logp`` at a padded position is exactly 0.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from rlworks.core.registry import Registry

Tensor = torch.Tensor
KLEstimator = Callable[[Tensor, Tensor], Tensor]
Aggregation = Callable[[Tensor, Tensor], Tensor]

# ---------------------------------------------------------------------------------------------
# KL(pi || ref) per token, from samples of pi. With d = ref_logp - logp (the log of the ratio
# ref / pi at the sampled token): k1 = -d is unbiased but noisy and can be negative; k2 = d^2 / 2
# is biased, low variance, >= 0; k3 = exp(d) - d - 1 is unbiased, low variance, >= 0.


def kl_k1(logp: Tensor, ref_logp: Tensor) -> Tensor:  # (B, T), (B, T) -> (B, T)
    return logp - ref_logp


def kl_k2(logp: Tensor, ref_logp: Tensor) -> Tensor:  # (B, T), (B, T) -> (B, T)
    return 0.5 * (logp - ref_logp) ** 2


def kl_k3(logp: Tensor, ref_logp: Tensor) -> Tensor:  # (B, T), (B, T) -> (B, T)
    d = ref_logp - logp
    return torch.exp(d) - d - 1.0


# ---------------------------------------------------------------------------------------------
# Aggregations: (B, T) per-token values and the mask -> one scalar. Each is a weighted sum of
# the masked entries, so aggregate(a + b) = aggregate(a) + aggregate(b).


def token_mean(per_token: Tensor, mask: Tensor) -> Tensor:  # (B, T), (B, T) -> ()
    """Sum over every token of the batch / number of tokens (DAPO; TRL ``"bnpo"``).

    Each token weighs the same, so long completions weigh more. A batch with no tokens gives 0.
    """
    m = mask.to(per_token.dtype)
    return (per_token * m).sum() / m.sum().clamp(min=1.0)


def seq_mean_token_mean(per_token: Tensor, mask: Tensor) -> Tensor:  # (B, T), (B, T) -> ()
    """Mean over each sequence's tokens, then over sequences (GRPO paper; TRL ``"grpo"``).

    Each sequence weighs the same, so a token of a short completion weighs more. A row with no
    tokens contributes 0 and still counts in the mean over B, as in TRL.
    """
    m = mask.to(per_token.dtype)
    per_seq = (per_token * m).sum(-1) / m.sum(-1).clamp(min=1.0)  # (B,)
    return per_seq.sum() / max(per_seq.shape[0], 1)


def constant_sum(
    per_token: Tensor,  # (B, T)
    mask: Tensor,  # (B, T)
    max_tokens: int | None = None,
) -> Tensor:  # ()
    """Sum over tokens / (B * max_tokens) (Dr. GRPO; TRL ``"dr_grpo"``).

    The divisor does not depend on the lengths, so no length bias. ``max_tokens`` defaults to
    T; TRL divides by ``max_completion_length`` from its config, so bind that with
    ``functools.partial(constant_sum, max_tokens=...)`` to match it. An empty batch gives 0.
    """
    m = mask.to(per_token.dtype)
    width = per_token.shape[-1] if max_tokens is None else max_tokens
    return (per_token * m).sum() / max(per_token.shape[0] * width, 1)


def _masked_mean(x: Tensor, mask: Tensor) -> Tensor:  # (B, T)|(B, 1), (B, T) -> ()
    m = mask.to(x.dtype)
    return (x * m).sum() / m.sum().clamp(min=1.0)


# ---------------------------------------------------------------------------------------------
# Surrogates: the per-token policy-gradient loss before aggregation.


class Surrogate(NamedTuple):
    per_token_loss: Tensor  # (B, T) to aggregate over the mask
    ratio: Tensor  # (B, T) or (B, 1): the importance ratio pi / pi_old that was clipped
    clip_frac_low: Tensor  # () share of counted tokens where the lower clip cut the gradient
    clip_frac_high: Tensor  # () share where the upper clip did


def _clip(
    log_ratio: Tensor,  # (B, T) or (B, 1)
    advantages: Tensor,  # broadcastable to log_ratio
    clip_eps_low: float,
    clip_eps_high: float,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    ratio = torch.exp(log_ratio)
    clipped = torch.clamp(ratio, 1.0 - clip_eps_low, 1.0 + clip_eps_high)
    loss = -torch.minimum(ratio * advantages, clipped * advantages)
    with torch.no_grad():
        # The clip is active (zero gradient) only on the side that the advantage pushes towards.
        low = (ratio < 1.0 - clip_eps_low) & (advantages < 0)
        high = (ratio > 1.0 + clip_eps_high) & (advantages > 0)
    return loss, ratio, low, high


def clipped_token_surrogate(
    logp: Tensor,  # (B, T)
    old_logp: Tensor,  # (B, T)
    advantages: Tensor,  # (B, 1) or (B, T)
    mask: Tensor,  # (B, T)
    clip_eps_low: float,
    clip_eps_high: float,
) -> Surrogate:
    """PPO's clipped objective per token: ``-min(r A, clip(r, 1 - lo, 1 + hi) A)``.

    ``r = exp(logp - old_logp)`` per token. ``clip_eps_high > clip_eps_low`` is DAPO's
    clip-higher. The clip fractions count tokens under ``mask`` whose gradient the clip removed.
    """
    loss, ratio, low, high = _clip(logp - old_logp, advantages, clip_eps_low, clip_eps_high)
    return Surrogate(loss, ratio, _masked_mean(low, mask), _masked_mean(high, mask))


def clipped_sequence_surrogate(
    logp: Tensor,  # (B, T)
    old_logp: Tensor,  # (B, T)
    advantages: Tensor,  # (B, 1)
    mask: Tensor,  # (B, T)
    clip_eps_low: float,
    clip_eps_high: float,
) -> Surrogate:
    """The clipped objective on whole sequences, ``r = pi(y) / pi_old(y)``, as TRL's RLOO.

    ``log r = sum_t mask * (logp - old_logp)``. The per-sequence loss is copied onto each of
    the sequence's tokens, so ``seq_mean_token_mean`` gives the mean over sequences of the
    sequence loss (TRL's RLOOTrainer). Clip fractions are over sequences with a token.
    """
    m = mask.to(logp.dtype)
    log_ratio = ((logp - old_logp) * m).sum(-1, keepdim=True)  # (B, 1)
    loss, ratio, low, high = _clip(log_ratio, advantages, clip_eps_low, clip_eps_high)
    has_tokens = (m.sum(-1, keepdim=True) > 0).to(m.dtype)  # (B, 1)
    return Surrogate(
        loss.expand_as(m), ratio, _masked_mean(low, has_tokens), _masked_mean(high, has_tokens)
    )


# ---------------------------------------------------------------------------------------------
# The assembled loss.


class PolicyLossTerms(NamedTuple):
    loss: Tensor  # () what to minimise: pg_loss + beta * kl
    pg_loss: Tensor  # () aggregated clipped surrogate
    kl: Tensor  # () aggregated KL(pi || ref) estimate, with gradient; 0 without ref_logp
    clip_frac_low: Tensor  # () no gradient
    clip_frac_high: Tensor  # () no gradient
    ratio_mean: Tensor  # () mean importance ratio over counted tokens (sequences), no gradient
    approx_kl_old: Tensor  # () k3 estimate of KL(pi_old || pi) over counted tokens, no gradient


def _as_2d_advantages(advantages: Tensor, batch: int, width: int) -> Tensor:
    if advantages.dim() == 1 and advantages.shape[0] == batch:
        return advantages[:, None]
    if advantages.dim() == 2 and advantages.shape[0] == batch and advantages.shape[1] in (1, width):
        return advantages
    raise ValueError(
        f"advantages must have shape (B,), (B, 1) or (B, T) with (B, T) = {(batch, width)}, "
        f"got {tuple(advantages.shape)}"
    )


def _check_token_shapes(logp: Tensor, **others: Tensor | None) -> None:
    if logp.dim() != 2:
        raise ValueError(f"logp must be (B, T) per-token log-probs, got shape {tuple(logp.shape)}")
    for name, x in others.items():
        if x is not None and x.shape != logp.shape:
            raise ValueError(
                f"{name} must have the shape of logp {tuple(logp.shape)}, got {tuple(x.shape)}"
            )


def policy_loss(
    logp: Tensor,  # (B, T) with gradient
    old_logp: Tensor,  # (B, T)
    ref_logp: Tensor | None,  # (B, T), or None when beta == 0
    advantages: Tensor,  # (B,), (B, 1) or (B, T)
    mask: Tensor,  # (B, T)
    *,
    clip_eps_low: float,
    clip_eps_high: float,
    beta: float,
    kl_estimator: KLEstimator = kl_k3,
    aggregate: Aggregation = seq_mean_token_mean,
    surrogate: Callable[..., Surrogate] = clipped_token_surrogate,
    kl_importance_weighted: bool = False,
) -> PolicyLossTerms:
    """Clipped policy loss plus ``beta`` times a KL(pi || ref) penalty, both aggregated alike.

    The defaults are the GRPO paper's: per-token ratio, k3 in the loss, per-sequence token mean.
    ``kl_importance_weighted`` multiplies the per-token KL by the ratio pi / pi_old, which
    corrects for the tokens having been sampled from pi_old (TRL 1.16's
    ``use_bias_correction_kl``, on by default there).
    """
    _check_token_shapes(logp, old_logp=old_logp, ref_logp=ref_logp, mask=mask)
    if ref_logp is None and beta != 0.0:
        raise ValueError(f"ref_logp is None but beta = {beta}; pass ref_logp or set beta = 0")
    adv = _as_2d_advantages(advantages, *logp.shape)
    live = mask.bool()
    # Zero the padding first (not after): a -inf there would otherwise give NaN gradients.
    logp = torch.where(live, logp, 0.0)
    old_logp = torch.where(live, old_logp, 0.0).detach()
    adv = torch.where(live, adv, 0.0) if adv.shape[1] > 1 else adv

    surr = surrogate(logp, old_logp, adv, mask, clip_eps_low, clip_eps_high)
    pg_loss = aggregate(surr.per_token_loss, mask)
    if ref_logp is None:
        kl = torch.zeros((), dtype=logp.dtype, device=logp.device)
    else:
        per_token_kl = kl_estimator(logp, torch.where(live, ref_logp, 0.0).detach())  # (B, T)
        if kl_importance_weighted:
            per_token_kl = per_token_kl * torch.exp(logp - old_logp)
        kl = aggregate(per_token_kl, mask)
    loss = pg_loss + beta * kl

    with torch.no_grad():
        seq_level = surr.ratio.shape[1] == 1 and logp.shape[1] != 1
        ratio_mask = (mask.sum(-1, keepdim=True) > 0) if seq_level else mask
        ratio_mean = _masked_mean(surr.ratio, ratio_mask)
        approx_kl_old = _masked_mean(kl_k3(old_logp, logp), mask)
    return PolicyLossTerms(
        loss, pg_loss, kl, surr.clip_frac_low, surr.clip_frac_high, ratio_mean, approx_kl_old
    )


def kl_penalised_rewards(
    rewards: Tensor,  # (B,) outcome rewards, or (B, T) token rewards
    logp: Tensor,  # (B, T) of the sampling policy
    ref_logp: Tensor,  # (B, T)
    mask: Tensor,  # (B, T)
    beta: float,
    estimator: KLEstimator = kl_k1,
) -> Tensor:  # shape of rewards
    """KL in the reward instead of the loss: ``rewards - beta * KL``, with no gradient.

    Token rewards ``(B, T)`` (PPO with a value head, before :func:`token_gae`) lose
    ``beta * kl_t`` at each counted token. Outcome rewards ``(B,)`` (RLOO, REINFORCE, before
    the advantage estimator) lose ``beta * sum_t kl_t``, the sequence's KL. The default k1 is
    what the RLOO paper and TRL's RLOOTrainer use.
    """
    _check_token_shapes(logp, ref_logp=ref_logp, mask=mask)
    if rewards.shape not in (logp.shape, logp.shape[:1]):
        raise ValueError(
            f"rewards must have shape (B,) = {tuple(logp.shape[:1])} or (B, T) = "
            f"{tuple(logp.shape)}, got {tuple(rewards.shape)}"
        )
    with torch.no_grad():
        live = mask.bool()
        per_token = torch.where(live, estimator(logp, ref_logp), 0.0)  # (B, T)
        penalty = per_token if rewards.dim() == 2 else per_token.sum(-1)
        return rewards - beta * penalty


KL_ESTIMATORS: Registry[KLEstimator] = Registry("KL estimator")
KL_ESTIMATORS.register("k1", kl_k1)
KL_ESTIMATORS.register("k2", kl_k2)
KL_ESTIMATORS.register("k3", kl_k3)

LOSS_AGGREGATIONS: Registry[Aggregation] = Registry("loss aggregation")
"""``constant_sum`` divides by B * T unless bound to a fixed length with ``functools.partial``."""
LOSS_AGGREGATIONS.register("token_mean", token_mean)
LOSS_AGGREGATIONS.register("seq_mean_token_mean", seq_mean_token_mean)
LOSS_AGGREGATIONS.register("constant_sum", constant_sum)

SURROGATES: Registry[Any] = Registry("policy surrogate")
SURROGATES.register("token", clipped_token_surrogate)
SURROGATES.register("sequence", clipped_sequence_surrogate)
