"""An ensemble of independent MLPs evaluated together (twin critics of SAC/TD3, REDQ, ...).

Member ``k``'s layer weights are slice ``k`` of one stacked parameter ``(K, in, out)``, so a
layer of all members is one ``torch.baddbmm``: fewer, larger kernels than K separate nets,
and one optimiser tensor per layer. Each member is initialised like ``nn.Linear`` (uniform in
``+-1/sqrt(fan_in)``), drawn from ``generator``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


class EnsembleMLP(nn.Module):
    """``size`` MLPs ``in_dim -> hidden... -> out_dim`` with ReLU between layers."""

    def __init__(self, size: int, in_dim: int, hidden_sizes: Sequence[int], out_dim: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.size = size
        sizes = [in_dim, *hidden_sizes, out_dim]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            bound = 1.0 / math.sqrt(a)
            w = torch.empty(size, a, b).uniform_(-bound, bound, generator=generator)
            bias = torch.empty(size, 1, b).uniform_(-bound, bound, generator=generator)
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(bias))

    def forward(self, x: torch.Tensor, member: int | None = None) -> torch.Tensor:
        """(B, in) shared by all members, or (K, B, in) one batch each -> (K, B, out).

        With ``member`` given only that member runs: (B, in) -> (1, B, out).
        """
        k = self.size if member is None else 1
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(k, *x.shape)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            if member is not None:
                w, b = w[member : member + 1], b[member : member + 1]
            if i < last:
                x = torch.baddbmm(b, x, w).relu_()  # (K, B, hidden); in place: baddbmm's
                # backward does not need its output
            elif w.shape[-1] == 1:
                # A scalar head (critics) as multiply-and-sum: a batched matmul with one
                # output column, and its backward's outer product, are slow on CPU.
                x = (x * w.transpose(1, 2)).sum(-1, keepdim=True) + b  # (K, B, 1)
            else:
                x = torch.baddbmm(b, x, w)  # (K, B, out)
        return x
