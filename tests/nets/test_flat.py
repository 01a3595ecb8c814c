"""FlatParameters: the same gradients, clipping and Adam steps as the per-tensor versions."""

import torch
from torch import nn

from rlworks.nets.flat import FlatParameters


def _nets() -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    a = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    b = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    b.load_state_dict(a.state_dict())
    return a, b


def test_flat_training_matches_per_tensor_training():
    ref, net = _nets()
    flat = FlatParameters(net.parameters())
    opt_ref = torch.optim.Adam(ref.parameters(), lr=1e-2)
    opt = torch.optim.Adam([flat.param], lr=1e-2)
    x = torch.randn(32, 4, generator=torch.Generator().manual_seed(1))
    for _ in range(5):
        opt_ref.zero_grad()
        (ref(x) ** 2).sum().backward()
        norm_ref = nn.utils.clip_grad_norm_(ref.parameters(), 0.1)
        opt_ref.step()
        flat.zero_grad()
        (net(x) ** 2).sum().backward()
        norm = flat.clip_grad_norm_(0.1)
        opt.step()
        torch.testing.assert_close(norm, norm_ref)
        assert norm > 0.1  # the clip really acted
    for p_ref, p in zip(ref.parameters(), net.parameters(), strict=True):
        torch.testing.assert_close(p, p_ref)
    # the module's parameters are views of the flat buffer, and load_state_dict writes into it
    net.load_state_dict({k: torch.zeros_like(v) for k, v in net.state_dict().items()})
    assert float(flat.param.abs().sum()) == 0.0
