"""Action distributions as plain functions (no ``torch.distributions`` objects in hot loops:
their argument validation and object creation cost more than the maths for small nets)."""

from __future__ import annotations

import math

import numpy as np
import torch

_LOG_2PI = math.log(2.0 * math.pi)


def mask_logits(logits: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Set the logits of illegal actions (``mask == False``) to the lowest finite float."""
    if mask is None:
        return logits
    return logits.masked_fill(~mask, torch.finfo(logits.dtype).min)


def categorical_logprob_entropy(logits: torch.Tensor, actions: torch.Tensor
                                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, A), (B,) -> log pi(a), entropy, both (B,)."""
    logp = torch.log_softmax(logits, dim=-1)
    p = logp.exp()
    # Masked logits give p == 0 and a huge negative logp; 0 * logp is 0, as it should be.
    entropy = -(p * logp).sum(-1)
    return logp.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1), entropy


def gaussian_logprob_entropy(mean: torch.Tensor, log_std: torch.Tensor, actions: torch.Tensor
                             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Diagonal Gaussian: (B, D) mean, (D,) or (B, D) log_std, (B, D) actions -> (B,), (B,)."""
    z = (actions - mean) * torch.exp(-log_std)
    logp = (-0.5 * z.square() - log_std - 0.5 * _LOG_2PI).sum(-1)
    entropy = (log_std + 0.5 * (1.0 + _LOG_2PI)).sum(-1).expand(mean.shape[0])
    return logp, entropy


# ----------------------------------------------------------------------------- numpy, acting
# Rollouts act on a few rows at a time, where numpy's per-call cost is a fraction of torch's.
# They return the same log-probabilities as the torch functions above (tests/nets).
def categorical_sample_np(logits: np.ndarray, rng: np.random.Generator
                          ) -> tuple[np.ndarray, np.ndarray]:
    """(B, A) logits -> sampled actions (B,) int64 and their log-probabilities (B,).

    Inverse-CDF sampling with one uniform per row. Masked logits (the lowest float) get
    probability 0 and are never drawn.
    """
    z = logits - logits.max(axis=-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))  # (B, A)
    cdf = np.cumsum(np.exp(logp), axis=-1)
    u = rng.random(len(logits)) * cdf[:, -1]  # scale by the total: rounding never overruns
    actions = (cdf <= u[:, None]).sum(axis=-1)  # first index whose cdf exceeds u
    return actions.astype(np.int64), np.take_along_axis(logp, actions[:, None], -1)[:, 0]


def gaussian_sample_np(mean: np.ndarray, log_std: np.ndarray, rng: np.random.Generator
                       ) -> tuple[np.ndarray, np.ndarray]:
    """(B, D) mean, (D,) log_std -> actions (B, D) float32 and log-probabilities (B,)."""
    noise = rng.standard_normal(mean.shape, dtype=np.float32)
    actions = mean + np.exp(log_std) * noise
    logp = (-0.5 * noise * noise - log_std - 0.5 * _LOG_2PI).sum(-1)
    return actions, logp
