"""The RL post-training methods as presets of one loop (:mod:`rlworks.algos.llm.grpo`).

A preset is the set of :class:`~rlworks.algos.llm.configs.RLConfig` fields in which a method
differs from the base (``grpo``, whose values are the config's defaults). Presets never copy
the loop; ``tests/llm/test_presets.py`` checks that each differs from the base only in the keys
it declares, and that those keys exist.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from rlworks.core.errors import unknown

PRESETS: dict[str, MappingProxyType[str, Any]] = {
    # GRPO (DeepSeekMath): group mean/std advantages, per-token clipped ratio, per-sequence
    # token mean. beta = 0 as in TRL's default (the paper used 0.04: `--beta 0.04`).
    "grpo": MappingProxyType({}),
    # Dr. GRPO (Liu et al. 2025, "Understanding R1-Zero-Like Training"): no std division and a
    # constant normaliser, removing the length and difficulty biases.
    "dr_grpo": MappingProxyType({"scale_rewards": "none", "aggregation": "constant_sum"}),
    # RLOO (Ahmadian et al. 2024): the mean of the other G-1 samples as the baseline.
    "rloo": MappingProxyType({"advantage": "rloo"}),
    # ReMax (Li et al. 2023): the reward of the greedy completion as the baseline.
    "remax": MappingProxyType({"advantage": "remax"}),
    # PPO (Ouyang et al. 2022 style, outcome reward): a value model and token-level GAE,
    # advantages whitened over the batch.
    "ppo": MappingProxyType({"advantage": "gae", "aggregation": "token_mean"}),
    # REINFORCE with an exponential moving-average baseline.
    "reinforce": MappingProxyType({"advantage": "reinforce"}),
    # DAPO (Yu et al. 2025): clip-higher, dynamic sampling, token-level loss, overlong shaping.
    "dapo": MappingProxyType(
        {
            "clip_eps_high": 0.28,
            "dynamic_sampling": True,
            "aggregation": "token_mean",
            "rewards": "correct:1.0,format:0.1,length:1.0",
        }
    ),
    # Expert Iteration: imitate the correct samples (rejection-sampling SFT); advantages are
    # 1 for a correct completion and 0 otherwise, with no ratio clipping (one pass).
    "expert_iteration": MappingProxyType(
        {
            "advantage": "rejection",
            "num_iterations": 1,
            "clip_eps_low": 1.0,
            "clip_eps_high": 1e9,
            "aggregation": "token_mean",
        }
    ),
    # Balanced online difficulty filtering (Bae et al. 2025): train on groups whose accuracy
    # lies in [0.25, 0.75], sampling more prompts to fill the batch.
    "grpo_filtered": MappingProxyType({"difficulty_band": "0.25,0.75"}),
    # DUMP (Wang et al. 2025): UCB over task sources of the mean absolute advantage.
    "grpo_dump": MappingProxyType({"sampler": "dump"}),
}


def preset_overrides(name: str) -> dict[str, Any]:
    """The config fields preset ``name`` sets; an unknown name is a UserError with a hint."""
    if name not in PRESETS:
        raise unknown("preset", name, PRESETS)
    return dict(PRESETS[name])
