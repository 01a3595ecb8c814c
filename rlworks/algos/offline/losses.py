"""Loss terms of the offline learners: pure functions of tensors, each with a golden test
(``tests/algos/offline/test_losses.py``).

Shapes: ``B`` batch, ``K`` ensemble members, ``M`` sampled actions per state.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def expectile_loss(diff: torch.Tensor, expectile: float) -> torch.Tensor:
    """IQL's asymmetric squared loss ``mean(|tau - 1(u < 0)| u^2)``, ``u = Q - V``: (B,) -> ().

    With tau > 0.5, V is pushed towards an upper expectile of Q over the dataset's actions.
    """
    weight = torch.where(diff < 0, 1.0 - expectile, expectile)
    return (weight * diff.square()).mean()


def mse_ensemble_loss(q: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``mean_k mean_b (Q_k - y)^2``: (K, B), (B,) -> () (IQL's Q loss, averaged over members)."""
    return (q - target).square().mean()


def huber_ensemble_loss(q: torch.Tensor, target: torch.Tensor, delta: float) -> torch.Tensor:
    """RIQL's Huber loss ``l(x) = x^2 / (2 delta)`` if ``|x| <= delta`` else ``|x| - delta / 2``,
    averaged over members and batch: (K, B), (B,) -> (). Quadratic near 0, linear in the
    heavy tails that dynamics corruption puts into the TD targets."""
    return F.smooth_l1_loss(q, target.expand_as(q), beta=delta)


def ensemble_min(q: torch.Tensor) -> torch.Tensor:
    """(K, B) -> (B,): the clipped double-Q estimate (IQL, TD3, SAC)."""
    return q.amin(0)


def ensemble_quantile(q: torch.Tensor, quantile: float) -> torch.Tensor:
    """(K, B) -> (B,): the ``quantile``-quantile over members with linear interpolation,
    exactly as ``torch.quantile(q, quantile, dim=0)`` (RIQL's estimator), without its cost."""
    k = q.shape[0]
    pos = quantile * (k - 1)
    lo = math.floor(pos)
    frac = pos - lo
    s = q.sort(0).values  # (K, B)
    if frac == 0.0:
        return s[lo]
    return s[lo] + frac * (s[lo + 1] - s[lo])


def advantage_weights(adv: torch.Tensor, temperature: float, max_weight: float) -> torch.Tensor:
    """``min(exp(temperature * A), max_weight)``: (B,) -> (B,), no gradient.

    IQL's weights are ``exp(beta * A)``; AWAC's ``exp(A / lambda)`` (temperature 1/lambda).
    """
    return torch.exp(temperature * adv.detach()).clamp(max=max_weight)


def td3bc_lambda(q_pi: torch.Tensor, alpha: float) -> torch.Tensor:
    """TD3+BC's ``lambda = alpha / mean|Q(s, pi(s))|``, a constant of the actor loss:
    (B,) -> ()."""
    return alpha / q_pi.abs().mean().detach()


def cql_penalty(q_data: torch.Tensor, q_sampled: torch.Tensor, temperature: float
                ) -> torch.Tensor:
    """CQL(H)'s conservative gap per member: (K, B), (K, M, B) -> (K,).

    ``mean_b [temperature * logsumexp_m(q_sampled / temperature) - Q(s, a_data)]``. The
    caller subtracts the log density of each sampled action from ``q_sampled`` first when the
    log-sum-exp is importance sampled (CQL's ``min_q_version=3``).
    """
    lse = temperature * torch.logsumexp(q_sampled / temperature, dim=1)  # (K, B)
    return (lse - q_data).mean(-1)
