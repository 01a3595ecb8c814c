"""Policy-gradient loss terms shared by PPO here and the LLM trainers later."""

from __future__ import annotations

from typing import NamedTuple

import torch


class SurrogateTerms(NamedTuple):
    loss: torch.Tensor        # scalar: the clipped surrogate to minimise
    clipfrac: torch.Tensor    # scalar: fraction of samples whose ratio was clipped
    approx_kl: torch.Tensor   # scalar: k3 estimate of KL(old || new), no gradient


def clipped_surrogate(
    logratio: torch.Tensor,    # (B,) log pi_new(a|s) - log pi_old(a|s)
    advantages: torch.Tensor,  # (B,)
    clip_low: float,
    clip_high: float | None = None,
) -> SurrogateTerms:
    """PPO's clipped objective, ``-mean(min(r A, clip(r, 1-eps_low, 1+eps_high) A))``.

    ``clip_high`` defaults to ``clip_low`` (symmetric PPO); DAPO's "clip-higher" sets it larger.
    """
    eps_high = clip_low if clip_high is None else clip_high
    ratio = logratio.exp()
    unclipped = ratio * advantages
    clipped = ratio.clamp(1.0 - clip_low, 1.0 + eps_high) * advantages
    loss = -torch.minimum(unclipped, clipped).mean()
    with torch.no_grad():
        clipfrac = ((ratio < 1.0 - clip_low) | (ratio > 1.0 + eps_high)).float().mean()
        approx_kl = ((ratio - 1.0) - logratio).mean()
    return SurrogateTerms(loss, clipfrac, approx_kl)
