"""Value-function loss terms."""

from __future__ import annotations

import torch


def value_loss(
    values: torch.Tensor,      # (B,) new predictions
    returns: torch.Tensor,     # (B,) targets
    old_values: torch.Tensor | None = None,  # (B,) predictions at rollout time
    clip_eps: float | None = None,
) -> torch.Tensor:
    """``0.5 * mean((V - R)^2)``; with ``clip_eps`` the PPO2-style pessimistic clipped variant,
    ``0.5 * mean(max((V - R)^2, (V_old + clip(V - V_old, -eps, eps) - R)^2))``."""
    sq = (values - returns).square()
    if clip_eps is None or old_values is None:
        return 0.5 * sq.mean()
    clipped = old_values + (values - old_values).clamp(-clip_eps, clip_eps)
    return 0.5 * torch.maximum(sq, (clipped - returns).square()).mean()
