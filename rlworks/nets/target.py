"""Target networks: Polyak averaging (Lillicrap et al., 2016) and hard copies (tau = 1)."""

from __future__ import annotations

from collections.abc import Iterable

import torch


@torch.no_grad()
def polyak_update(params: Iterable[torch.Tensor], target_params: Iterable[torch.Tensor],
                  tau: float) -> None:
    """``target <- (1 - tau) * target + tau * online`` in place; ``tau = 1`` copies.

    One multi-tensor kernel for all parameters (the per-tensor loop costs more than the maths
    for small networks).
    """
    sources, targets = list(params), list(target_params)
    if len(sources) != len(targets):
        raise ValueError(f"{len(sources)} parameters but {len(targets)} target parameters")
    if tau == 1.0:
        torch._foreach_copy_(targets, sources)
    else:
        torch._foreach_lerp_(targets, sources, tau)
