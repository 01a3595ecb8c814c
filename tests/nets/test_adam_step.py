"""``adam_step``: the fused Adam kernel called directly gives bit-identical parameters and
state to ``optimizer.step()``, and falls back to it where it cannot."""

from __future__ import annotations

import pytest
import torch

from rlworks.nets.flat import adam_step


def _pair(**kw):
    torch.manual_seed(0)
    a = torch.nn.Parameter(torch.randn(300))
    b = torch.nn.Parameter(a.detach().clone())
    return a, b, torch.optim.Adam([a], **kw), torch.optim.Adam([b], **kw)


@pytest.mark.parametrize("kw", [
    dict(lr=1e-3, eps=1e-5, fused=True),
    dict(lr=3e-4, betas=(0.5, 0.9), weight_decay=0.01, fused=True),
    dict(lr=1e-3, fused=False),  # not fused: falls back
    dict(lr=1e-3, amsgrad=True, fused=True),  # AMSGrad: falls back
])
def test_bit_identical_to_optimizer_step(kw):
    a, b, opt_a, opt_b = _pair(**kw)
    gen = torch.Generator().manual_seed(1)
    for i in range(6):
        g = torch.randn(300, generator=gen)
        a.grad, b.grad = g.clone(), g.clone()
        for group in (*opt_a.param_groups, *opt_b.param_groups):
            group["lr"] = kw["lr"] * (1 - i / 10)  # a schedule, as PPO's annealing
        opt_a.step()
        adam_step(opt_b)
        assert torch.equal(a, b), f"step {i}"
    sa, sb = opt_a.state[a], opt_b.state[b]
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key
