"""Target networks: Polyak averaging (Lillicrap et al., 2016) and hard copies (tau = 1)."""

from __future__ import annotations

from collections.abc import Iterable

import torch


@torch.no_grad()
def polyak_update(params: Iterable[torch.Tensor], target_params: Iterable[torch.Tensor],
                  tau: float) -> None:
    """``target <- (1 - tau) * target + tau * online`` in place; ``tau = 1`` copies."""
    for p, tp in zip(params, target_params, strict=True):
        if tau == 1.0:
            tp.copy_(p)
        else:
            tp.lerp_(p, tau)
