"""Multi-layer perceptrons, the body of every small-network agent."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}


def make_mlp(in_dim: int, hidden_sizes: Sequence[int], out_dim: int, activation: str = "relu",
             out_gain: float | None = None, hidden_gain: float | None = None,
             generator: torch.Generator | None = None) -> nn.Sequential:
    """``in_dim -> hidden... -> out_dim`` with ``activation`` between layers.

    With a gain given, weights are orthogonally initialised (as in the PPO code; the output
    layer of a policy uses a small gain such as 0.01) and biases zeroed; otherwise torch's
    default init is kept. ``generator`` makes the initialisation independent of torch's
    global RNG.
    """
    act = ACTIVATIONS[activation]
    layers: list[nn.Module] = []
    sizes = [in_dim, *hidden_sizes]
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [_linear(a, b, hidden_gain, generator), act()]
    layers.append(_linear(sizes[-1], out_dim, out_gain, generator))
    return nn.Sequential(*layers)


def _linear(a: int, b: int, gain: float | None, generator: torch.Generator | None) -> nn.Linear:
    layer = nn.Linear(a, b)
    with torch.no_grad():
        if gain is not None:
            nn.init.orthogonal_(layer.weight, gain, generator=generator)
            layer.bias.zero_()
        elif generator is not None:
            # torch's default (kaiming-uniform with a=sqrt(5)), drawn from `generator`.
            bound = 1.0 / math.sqrt(a)
            layer.weight.uniform_(-bound, bound, generator=generator)
            layer.bias.uniform_(-bound, bound, generator=generator)
    return layer
