"""Golden values of the offline loss terms, computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from rlworks.algos.offline.losses import (
    advantage_weights,
    cql_penalty,
    ensemble_min,
    ensemble_quantile,
    expectile_loss,
    huber_ensemble_loss,
    mse_ensemble_loss,
    td3bc_lambda,
)


def test_expectile_loss():
    # weights |0.7 - 1(u < 0)|: 0.3 for u = -2, 0.7 otherwise -> (1.2 + 0.7 + 0.175) / 3
    u = torch.tensor([-2.0, 1.0, 0.5])
    assert expectile_loss(u, 0.7).item() == pytest.approx(2.075 / 3)
    assert expectile_loss(u, 0.5).item() == pytest.approx(0.5 * (4 + 1 + 0.25) / 3)


def test_q_losses_average_over_members_and_batch():
    q = torch.tensor([[0.0, 3.0], [0.5, -1.0]])  # (K=2, B=2)
    y = torch.tensor([0.0, 1.0])  # differences [[0, 2], [0.5, -2]]
    assert mse_ensemble_loss(q, y).item() == pytest.approx((0 + 4 + 0.25 + 4) / 4)
    # delta 1: |2| > 1 -> 2 - 0.5; 0.5 <= 1 -> 0.25 / 2
    assert huber_ensemble_loss(q, y, 1.0).item() == pytest.approx((0 + 1.5 + 0.125 + 1.5) / 4)
    # delta 2: all quadratic, x^2 / 4
    assert huber_ensemble_loss(q, y, 2.0).item() == pytest.approx((0 + 1 + 0.0625 + 1) / 4)


def test_huber_is_linear_in_the_tails():
    y = torch.zeros(1)
    g = []
    for x in (10.0, 1000.0):
        q = torch.tensor([[x]], requires_grad=True)
        huber_ensemble_loss(q, y, 1.0).backward()
        g.append(q.grad.item())
    assert g == [1.0, 1.0]  # bounded gradient: a corrupted target cannot dominate


def test_ensemble_quantile_and_min():
    q = torch.tensor([[1.0, 5.0], [3.0, 2.0], [2.0, 8.0], [4.0, 0.0], [0.0, 1.0]])  # (5, 2)
    assert ensemble_quantile(q, 0.25).tolist() == [1.0, 1.0]  # position 1 of [0,1,2,3,4]
    assert ensemble_quantile(q, 0.3).tolist() == pytest.approx([1.2, 1.2])  # 1 + 0.2 * 1
    assert ensemble_quantile(q, 0.0).tolist() == ensemble_min(q).tolist() == [0.0, 0.0]
    assert ensemble_quantile(q, 1.0).tolist() == [4.0, 8.0]
    x = torch.randn(5, 64, generator=torch.Generator().manual_seed(0))
    for p in (0.1, 0.25, 0.5, 0.9):
        torch.testing.assert_close(ensemble_quantile(x, p), torch.quantile(x, p, dim=0))


def test_advantage_weights_are_clipped_and_detached():
    adv = torch.tensor([-1.0, 0.0, 0.5, 10.0], requires_grad=True)
    w = advantage_weights(adv, 3.0, 100.0)
    assert not w.requires_grad
    assert w.tolist() == pytest.approx([math.exp(-3.0), 1.0, math.exp(1.5), 100.0])
    # AWAC: exp(A / lambda) with lambda = 2 is temperature 0.5
    assert advantage_weights(adv, 0.5, 100.0)[2].item() == pytest.approx(math.exp(0.25))


def test_td3bc_lambda():
    q = torch.tensor([1.0, -3.0, 2.0], requires_grad=True)  # mean |Q| = 2
    lmbda = td3bc_lambda(q, 2.5)
    assert lmbda.item() == pytest.approx(1.25)
    assert not lmbda.requires_grad  # a constant of the actor loss


def test_cql_penalty_logsumexp():
    q_data = torch.tensor([[1.0, 0.0]])  # (K=1, B=2)
    q_sampled = torch.tensor([[[0.0, 1.0], [0.0, 1.0]]])  # (K=1, M=2, B=2)
    # b0: log(e^0 + e^0) - 1 = ln 2 - 1; b1: log(2 e^1) - 0 = 1 + ln 2; mean = ln 2
    assert cql_penalty(q_data, q_sampled, 1.0).tolist() == pytest.approx([math.log(2.0)])
    # temperature 2: 2 log(2 e^(q/2)) - data -> (2 ln 2 - 1, 2 ln 2 + 1), mean 2 ln 2
    assert cql_penalty(q_data, q_sampled, 2.0).tolist() == pytest.approx([2 * math.log(2.0)])
    # Gradient: the sampled actions' softmax (1/2 each) down, the data action's 1 up, / B
    q_s = q_sampled.clone().requires_grad_(True)
    q_d = q_data.clone().requires_grad_(True)
    cql_penalty(q_d, q_s, 1.0).sum().backward()
    assert q_s.grad.flatten().tolist() == pytest.approx([0.25] * 4)
    assert q_d.grad.flatten().tolist() == pytest.approx([-0.5, -0.5])
