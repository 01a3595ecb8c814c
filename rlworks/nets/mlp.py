"""Multi-layer perceptrons, the body of every small-network agent."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
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


class StackedMLP(nn.Module):
    """K independent MLPs with equal hidden sizes, evaluated as one batched matmul per layer.

    Member k's layer is slice k of a stacked ``(K, in, out)`` weight, so K small networks
    (PPO's actor and critic, say) cost one kernel per layer instead of K: on CPU, where small
    networks are bound by per-op overhead, that is most of the time. Members may have
    different output widths; narrower ones are zero-padded to the widest and the padding is
    never read (its weights get zero gradient). Each member is initialised orthogonally with
    its own output gain, exactly as K separate ``make_mlp(..., out_gain=g)`` calls would be.
    """

    def __init__(self, in_dim: int, hidden_sizes: Sequence[int], out_dims: Sequence[int],
                 out_gains: Sequence[float], activation: str = "tanh",
                 hidden_gain: float = math.sqrt(2.0),
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.out_dims = tuple(out_dims)
        self.act = {"tanh": torch.tanh, "relu": torch.relu}[activation]
        acts: dict[str, Callable[[np.ndarray], np.ndarray]] = {
            "tanh": np.tanh, "relu": lambda h: np.maximum(h, 0.0)}
        self.np_act = acts[activation]
        sizes = [in_dim, *hidden_sizes, max(out_dims)]
        k = len(out_dims)
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        last = len(sizes) - 2
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            w = torch.zeros(k, a, b)
            for m in range(k):
                cols = self.out_dims[m] if i == last else b
                gain = out_gains[m] if i == last else hidden_gain
                block = torch.empty(cols, a)  # nn.Linear's (out, in) layout, then transposed
                nn.init.orthogonal_(block, gain, generator=generator)
                w[m, :, :cols] = block.T
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(torch.zeros(k, 1, b)))
        # The same Parameter objects as a plain tuple: iterating a ParameterList goes through
        # __getitem__ and string indices, measurable at thousands of small forwards a second.
        self._layers = tuple(zip(self.weights, self.biases, strict=True))

    def numpy_forward(self, x: np.ndarray) -> np.ndarray:
        """:meth:`forward` in numpy, without autograd: (B, in) -> (K, B, max_out).

        For acting in a rollout, where a batch is a few rows and torch's per-op overhead is
        most of the cost (measured 2.8x faster on 8 CartPole rows). Reads the parameters
        through zero-copy views, so it always sees the current weights.
        """
        h = x
        last = len(self._layers) - 1
        for i, (w, b) in enumerate(self._layers):
            h = np.matmul(h, w.detach().numpy()) + b.detach().numpy()  # (K, B, out)
            if i < last:
                h = self.np_act(h)
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in) -> (K, B, max_out)."""
        h = x.unsqueeze(0).expand(len(self.out_dims), *x.shape)
        last = len(self._layers) - 1
        for i, (w, b) in enumerate(self._layers):
            h = torch.baddbmm(b, h, w)
            if i < last:
                h = self.act(h)
        return h

