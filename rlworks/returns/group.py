"""Advantage estimators for LLM rollouts: P prompts, G sampled completions each.

Outcome rewards arrive as ``rewards: (P, G)``, one scalar per completion, sample ``g`` of
prompt ``p`` at ``[p, g]``. A trainer that holds a flat ``(P * G,)`` batch in prompt-major order
(all of prompt 0's samples first, as TRL and verl lay them out) reshapes with
``rewards.view(P, G)`` and flattens the advantages back with ``.reshape(-1)``.

Papers:
  GRPO     Shao et al. 2024, DeepSeekMath, arXiv:2402.03300 (group mean / std baseline)
  Dr. GRPO Liu et al. 2025, "Understanding R1-Zero-Like Training", arXiv:2503.20783 (no std)
  RLOO     Ahmadian et al. 2024, "Back to Basics", arXiv:2402.14740 (leave-one-out mean)
  ReMax    Li et al. 2023, arXiv:2310.10505 (the greedy completion's reward as baseline)
  PPO/GAE  Schulman et al. 2016, arXiv:1506.02438, per token with a value head

Failed rewards. A NaN in ``rewards`` marks a completion whose reward could not be computed
(a reward function raised or returned ``None``). Such a sample is left out of every group
statistic (mean, std, leave-one-out mean) and its advantage is exactly 0; the caller should
also drop its tokens from the loss mask. A group with no usable sample, or too few for the
statistic (one sample and ``std_ddof=1``; one sample for RLOO), gets advantage 0 throughout.
This is what TRL 1.16 does with unscorable completions, so the two agree on NaN rewards too.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Literal

import torch

from rlworks.core.registry import Registry

Scale = Literal["group", "batch", "none"]


def _check_rewards(rewards: torch.Tensor, name: str = "rewards") -> None:
    if not isinstance(rewards, torch.Tensor) or rewards.dim() != 2:
        shape = tuple(rewards.shape) if isinstance(rewards, torch.Tensor) else type(rewards)
        raise ValueError(
            f"{name} must be a (P, G) tensor (prompts x samples per prompt), got shape {shape}; "
            "reshape a flat batch with rewards.view(P, G)"
        )
    if not rewards.is_floating_point():
        raise ValueError(f"{name} must be a float tensor, got dtype {rewards.dtype}")


def _nan_std(x: torch.Tensor, dim: int | None, ddof: int) -> torch.Tensor:
    """Standard deviation ignoring NaNs; NaN where fewer than ``ddof + 1`` values remain."""
    valid = ~torch.isnan(x)
    count = valid.sum(dim=dim, keepdim=True)
    mean = torch.where(valid, x, 0.0).sum(dim=dim, keepdim=True) / count
    sq = torch.where(valid, (x - mean) ** 2, 0.0).sum(dim=dim, keepdim=True)
    dof = count - ddof
    return torch.where(dof > 0, sq / dof.clamp(min=1), float("nan")).sqrt()


def _zero_invalid(advantages: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
    return torch.where(torch.isnan(rewards), 0.0, torch.nan_to_num(advantages, nan=0.0))


def group_relative(
    rewards: torch.Tensor,  # (P, G)
    scale: Scale = "group",
    std_ddof: int = 1,
    eps: float = 1e-4,
) -> torch.Tensor:  # (P, G)
    """GRPO's group-relative advantage ``(r - mean_group) / (std + eps)``.

    ``scale`` picks the std: ``"group"`` (GRPO, per prompt), ``"batch"`` (the std of all rewards
    in the batch, the mean is still per group; "REINFORCE++-baseline" style, TRL
    ``scale_rewards="batch"``) or ``"none"`` (Dr. GRPO: no division at all, since dividing by the
    std up-weights prompts that are nearly always solved or always failed).

    Defaults match TRL 1.16: Bessel's correction (``std_ddof=1``, like ``torch.std``) and
    ``eps=1e-4`` added to the std. verl also uses ``torch.std`` but ``eps=1e-6``.
    """
    _check_rewards(rewards)
    if scale not in ("group", "batch", "none"):
        raise ValueError(f"scale must be 'group', 'batch' or 'none', got {scale!r}")
    valid = ~torch.isnan(rewards)
    mean = torch.where(valid, rewards, 0.0).sum(1, keepdim=True) / valid.sum(1, keepdim=True)
    centred = rewards - mean  # (P, G); NaN where the reward or the whole group is missing
    if scale == "none":
        return _zero_invalid(centred, rewards)
    std = _nan_std(rewards, dim=1 if scale == "group" else None, ddof=std_ddof)  # (P,1)|(1,1)
    return _zero_invalid(centred / (std + eps), rewards)


def leave_one_out(rewards: torch.Tensor) -> torch.Tensor:  # (P, G) -> (P, G)
    """RLOO: ``r_i - mean_{j != i} r_j`` within each group. Needs ``G >= 2``.

    Equal to ``G / (G - 1) * (r_i - mean_group)``, so it sums to 0 over each full group.
    """
    _check_rewards(rewards)
    if rewards.shape[1] < 2:
        raise ValueError(
            f"leave_one_out needs at least 2 samples per prompt, got rewards of shape "
            f"{tuple(rewards.shape)}; sample G >= 2 completions per prompt"
        )
    valid = ~torch.isnan(rewards)
    total = torch.where(valid, rewards, 0.0).sum(1, keepdim=True)  # (P, 1)
    others = valid.sum(1, keepdim=True) - 1  # (P, 1): valid siblings of a valid sample
    baseline = (total - rewards) / others  # (P, G); inf/NaN when no sibling is valid
    advantages = torch.where(others > 0, rewards - baseline, 0.0)
    return _zero_invalid(advantages, rewards)


def greedy_baseline(
    rewards: torch.Tensor,  # (P, G)
    greedy_rewards: torch.Tensor,  # (P,) the reward of each prompt's greedy completion
) -> torch.Tensor:  # (P, G)
    """ReMax: ``r - r_greedy``. A NaN greedy reward zeroes that prompt's advantages."""
    _check_rewards(rewards)
    if greedy_rewards.shape != rewards.shape[:1]:
        raise ValueError(
            f"greedy_rewards must have shape (P,) = {tuple(rewards.shape[:1])} to match rewards "
            f"{tuple(rewards.shape)}, got {tuple(greedy_rewards.shape)}"
        )
    advantages = rewards - greedy_rewards[:, None]
    return torch.where(
        torch.isnan(greedy_rewards)[:, None], 0.0, _zero_invalid(advantages, rewards)
    )


class RunningBaseline:
    """REINFORCE with an exponential moving average of past rewards as the baseline.

    ``advantages = r - b`` uses the baseline from *before* this batch, so it does not depend on
    the samples it is subtracted from (the estimator stays unbiased); then
    ``b <- momentum * b + (1 - momentum) * mean(batch)``. The first batch starts from ``initial``.
    NaN rewards are skipped by the mean and get advantage 0. The state is plain floats, so a
    trainer can write it to a JSON checkpoint.
    """

    def __init__(self, momentum: float = 0.9, initial: float = 0.0) -> None:
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.momentum = float(momentum)
        self.value = float(initial)
        self.updates = 0

    def __call__(self, rewards: torch.Tensor) -> torch.Tensor:  # (P, G) -> (P, G)
        _check_rewards(rewards)
        advantages = _zero_invalid(rewards - self.value, rewards)
        valid = rewards[~torch.isnan(rewards)]
        if valid.numel() > 0:
            batch_mean = float(valid.double().mean())
            self.value = self.momentum * self.value + (1.0 - self.momentum) * batch_mean
            self.updates += 1
        return advantages

    def state_dict(self) -> dict[str, Any]:
        return {"momentum": self.momentum, "value": self.value, "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.momentum = float(state["momentum"])
        self.value = float(state["value"])
        self.updates = int(state["updates"])


def token_gae(
    token_rewards: torch.Tensor,  # (B, T) reward at each completion token
    values: torch.Tensor,  # (B, T) V(prefix up to token t)
    mask: torch.Tensor,  # (B, T) 1 on completion tokens, right-padded with 0
    gamma: float = 1.0,
    gae_lambda: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:  # (B, T), (B, T)
    """GAE over completion tokens for PPO with a value head; returns ``(advantages, returns)``.

    delta_t = r_t + gamma * V_{t+1} - V_t, with V after the last real token = 0 (the episode
    ends there: nothing to bootstrap), and A_t = delta_t + gamma * lambda * A_{t+1}.
    ``returns = advantages + values``. Both are 0 on padding, whatever ``values`` holds there.
    The mask must be a prefix of ones per row (right padding); holes are rejected.
    """
    for name, x in (("values", values), ("mask", mask)):
        if x.shape != token_rewards.shape:
            raise ValueError(
                f"{name} must have the shape of token_rewards {tuple(token_rewards.shape)}, "
                f"got {tuple(x.shape)}"
            )
    if token_rewards.dim() != 2:
        raise ValueError(f"token_rewards must be (B, T), got shape {tuple(token_rewards.shape)}")
    live = mask.bool()
    if bool((live[:, 1:] & ~live[:, :-1]).any()):
        raise ValueError("mask must be right-padded (ones then zeros in each row); found a hole")
    live_f = live.to(token_rewards.dtype)
    r = token_rewards * live_f
    v = torch.where(live, values, 0.0)
    next_v = torch.cat([v[:, 1:], torch.zeros_like(v[:, :1])], dim=1)  # (B, T); 0 past the end
    deltas = r + gamma * next_v - v
    advantages = torch.zeros_like(deltas)
    last = torch.zeros_like(deltas[:, 0])  # (B,)
    for t in range(deltas.shape[1] - 1, -1, -1):
        last = (deltas[:, t] + gamma * gae_lambda * last) * live_f[:, t]
        advantages[:, t] = last
    return advantages, (advantages + v) * live_f


ADVANTAGES: Registry[Any] = Registry("advantage estimator")
"""Name -> estimator. ``grpo``, ``dr_grpo``, ``rloo``: ``fn(rewards) -> advantages``;
``remax``: ``fn(rewards, greedy_rewards)``; ``reinforce``: a class, ``RunningBaseline(momentum)``,
whose instances are ``fn(rewards)`` with state."""
ADVANTAGES.register("grpo", partial(group_relative, scale="group", std_ddof=1, eps=1e-4))
ADVANTAGES.register("dr_grpo", partial(group_relative, scale="none"))
ADVANTAGES.register("rloo", leave_one_out)
ADVANTAGES.register("remax", greedy_baseline)
ADVANTAGES.register("reinforce", RunningBaseline)
