"""Configs of the language-model trainers (no torch import, so ``--help`` stays fast).

Every field's docstring is its ``--help`` text; ``__post_init__`` rejects values that cannot
work with a one-line :class:`UserError` naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rlworks.core.errors import UserError


@dataclass(frozen=True)
class ModelShape:
    """Shape of a TinyLM built from scratch (ignored when training an existing checkpoint)."""

    arch: Literal["llama"] = "llama"
    """Hugging Face architecture of TinyLM (llama; see rlworks.llm.model for why not qwen2)."""
    hidden_size: int = 192
    """Width of the residual stream."""
    num_layers: int = 4
    """Transformer blocks."""
    num_heads: int = 6
    """Attention heads (hidden_size must be a multiple)."""
    intermediate_size: int = 512
    """Width of the MLP."""


@dataclass(frozen=True)
class TextTrainingConfig:
    """Fields shared by pretraining and SFT: next-token cross-entropy on completion tokens
    (the prompt is context only unless ``prompt_loss``); the learning rate warms up linearly,
    then follows a cosine down to ``min_lr_ratio * lr``."""

    tasks: str = "add:1-4,mul:1-3"
    """ReasonGym task mix of the text, ``family:levels`` joined by commas (levels: 'a-b',
    'n' or 'a+b')."""
    error_rate: float = 0.1
    """Share of texts whose chain of thought carries a realistic mistake."""
    steps: int = 1200
    """Optimiser steps; the run sees steps * batch_size texts."""
    batch_size: int = 64
    """Texts per optimiser step."""
    lr: float = 2e-3
    """Peak learning rate (AdamW)."""
    warmup_steps: int = 100
    """Linear warm-up steps."""
    min_lr_ratio: float = 0.1
    """Final learning rate as a fraction of lr (cosine decay)."""
    weight_decay: float = 0.1
    """AdamW weight decay (not applied to norms and biases)."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this (0: no clipping)."""
    prompt_loss: bool = False
    """Also train on the prompt tokens."""
    eval_tasks: str = "add:2"
    """Held-out (test split) problems for the greedy evaluation."""
    eval_problems: int = 128
    """Problems in the evaluation."""
    eval_every: int = 0
    """Evaluate greedy accuracy every N steps (0: only at the end)."""
    seed: int = 0
    """Seed of the data, the initial weights and the batch order."""
    torch_threads: int = 2
    """torch intra-op threads (2 measured faster than 1 for this batch on 2 cores)."""
    device: str = "auto"
    """'auto' (cuda when present, else cpu), 'cpu' or 'cuda'."""

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "eval_problems", "torch_threads"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.error_rate <= 1.0:
            raise UserError(f"error_rate must lie in [0, 1], got {self.error_rate}")
        if self.lr <= 0:
            raise UserError(f"lr must be > 0, got {self.lr}")
        if self.eval_every < 0 or self.warmup_steps < 0:
            raise UserError("eval_every and warmup_steps must be >= 0")


@dataclass(frozen=True)
class PretrainConfig(ModelShape, TextTrainingConfig):
    """Pretraining TinyLM from scratch on ReasonGym chain-of-thought text."""


@dataclass(frozen=True)
class SFTConfig(TextTrainingConfig):
    """Supervised fine-tuning of an existing checkpoint on prompt/completion text: a JSONL
    file (``--data``, one ``{"prompt": ..., "completion": ...}`` per line), or ReasonGym text
    of ``tasks``."""

    model: str = ""
    """Local checkpoint directory to fine-tune."""
    data: str = ""
    """JSONL file of {"prompt", "completion"} rows (cycled to fill the steps); empty =
    ReasonGym text of tasks."""
    error_rate: float = 0.0
    """Share of ReasonGym texts with a mistake (0: clean demonstrations)."""
    steps: int = 200
    """Optimiser steps."""
    lr: float = 2e-4
    """Peak learning rate (AdamW)."""
    warmup_steps: int = 20
    """Linear warm-up steps."""


Advantage = Literal["grpo", "dr_grpo", "rloo", "remax", "reinforce", "rejection", "gae"]
Aggregation = Literal["token_mean", "seq_mean_token_mean", "constant_sum"]
Sampler = Literal["uniform", "dump", "epochs"]


@dataclass(frozen=True)
class RLConfig:
    """RL post-training of a causal LM on verifiable ReasonGym tasks: one loop for the GRPO
    family; each method is a preset of these fields (``rlworks llm train PRESET``).

    One step: sample ``prompts_per_step`` prompts, ``num_generations`` completions each, score
    them, compute advantages per prompt group, then ``num_iterations`` passes of
    ``minibatches`` clipped policy-gradient updates over that batch (so from the second pass on
    the importance ratio moves away from 1 and the clip acts).
    """

    model: str = ""
    """Local checkpoint directory (from `rlworks llm pretrain` or any causal LM)."""
    tasks: str = "add:2"
    """Training problems (train split), ``family:levels`` joined by commas."""
    eval_tasks: str = ""
    """Held-out problems (test split) for evaluation; empty = the same spec as tasks."""
    pool_size: int = 2000
    """Distinct training problems drawn from the train split."""
    pool_file: str = ""
    """JSON list of problem ids to keep from the pool (e.g. a LIMR selection from
    `rlworks llm limr`); empty = the whole pool."""
    steps: int = 100
    """RL steps (one batch of rollouts and its updates each)."""
    max_samples: int = 0
    """Stop after the step in which this many completions have been generated (filtered-out
    ones included), even before ``steps``: equal-samples comparisons with filtering; 0 = off."""
    prompts_per_step: int = 32
    """Prompts (groups) per step."""
    num_generations: int = 8
    """Completions sampled per prompt (G)."""
    max_new_tokens: int = 128
    """Longest completion; longer ones are truncated."""
    temperature: float = 1.0
    """Sampling temperature; the losses divide the logits by it too (as TRL and verl do)."""
    top_p: float = 1.0
    """Nucleus sampling threshold."""
    scale_logits: bool = True
    """Divide the logits by the sampling temperature in the loss too (TRL, verl); False
    scores tokens at temperature 1 (old log-probs are then recomputed by a forward pass)."""
    top_k: int = 0
    """Top-k sampling (0 = off)."""
    advantage: Advantage = "grpo"
    """Advantage estimator: grpo (group mean/std), dr_grpo (no std), rloo (leave-one-out),
    remax (greedy baseline), reinforce (running mean), rejection (1 for correct, else 0),
    gae (PPO: a value head and token-level GAE)."""
    scale_rewards: Literal["group", "batch", "none"] = "group"
    """For grpo: divide by the group's std, the batch's std, or nothing."""
    std_ddof: int = 1
    """Bessel correction of that std (1: torch.std as TRL and verl; 0: population std)."""
    adv_eps: float = 1e-4
    """Added to the std before dividing (TRL 1e-4, verl 1e-6)."""
    accept_threshold: float = 1.0
    """rejection (Expert Iteration): imitate samples whose total reward is at least this."""
    gamma: float = 1.0
    """gae: discount per token."""
    gae_lambda: float = 0.95
    """gae: GAE lambda."""
    critic_lr: float = 5e-4
    """gae: learning rate of the value model (a copy of the policy's body + a linear head)."""
    value_clip: float = 0.2
    """gae: clip of the value update around the rollout-time values (0: no clipping)."""
    baseline_momentum: float = 0.9
    """EMA momentum of the reinforce baseline."""
    aggregation: Aggregation = "seq_mean_token_mean"
    """Loss aggregation: seq_mean_token_mean (GRPO paper), token_mean (DAPO, TRL's default
    'dapo'/'bnpo'), constant_sum (Dr. GRPO: sum / (sequences * max_new_tokens))."""
    surrogate: Literal["token", "sequence"] = "token"
    """Importance ratio per token (GRPO, PPO) or per sequence (TRL's RLOO)."""
    clip_eps_low: float = 0.2
    """Lower clip of the ratio: 1 - clip_eps_low."""
    clip_eps_high: float = 0.2
    """Upper clip: 1 + clip_eps_high (DAPO's clip-higher uses 0.28)."""
    beta: float = 0.0
    """Weight of KL(pi || ref) to the initial model (0: no reference model is kept)."""
    kl_estimator: Literal["k1", "k2", "k3"] = "k3"
    """Per-token KL estimator (Schulman's k1/k2/k3)."""
    kl_in_reward: bool = False
    """Subtract beta * KL from the reward (RLOO, PPO-RLHF) instead of adding it to the loss."""
    num_iterations: int = 2
    """Optimisation passes over each batch of rollouts (GRPO's mu)."""
    minibatches: int = 2
    """Minibatches per pass (one optimiser step each)."""
    lora_rank: int = 0
    """Train LoRA adapters of this rank (peft) on the attention and MLP projections instead
    of all weights (0: full fine-tuning). The saved model has the adapters merged in."""
    lora_alpha: float = 16.0
    """LoRA scaling numerator (the update is scaled by lora_alpha / lora_rank)."""
    lr: float = 5e-5
    """AdamW learning rate (constant after warm-up). A pilot at 2e-4 on TinyLM lowered
    held-out accuracy in its first 25 steps; see docs/llm/results.md."""
    warmup_steps: int = 10
    """Linear warm-up in RL steps."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    grad_clip: float = 1.0
    """Global gradient-norm clip (0: none)."""
    mask_truncated: bool = False
    """Drop completions that hit max_new_tokens from the loss (DAPO)."""
    dynamic_sampling: bool = False
    """DAPO: drop groups whose rewards are all equal and sample more until the batch is full."""
    difficulty_band: str = ""
    """Balanced online difficulty filtering: keep groups whose accuracy lies in 'low,high'
    (e.g. '0.25,0.75'), sampling more until the batch is full; empty = off."""
    sampler: Sampler = "uniform"
    """Prompt sampler: uniform over the pool (with replacement), epochs (each epoch a fresh
    permutation of the pool; records every problem's reward per epoch for LIMR), or DUMP's
    UCB over the task sources."""
    dump_window: int = 300
    """DUMP: recent advantages per source that define its learnability."""
    dump_c: float = 1.0
    """DUMP: exploration weight of the UCB bonus."""
    dump_temperature: float = 0.1
    """DUMP: softmax temperature over UCB scores."""
    rewards: str = "correct:1.0,format:0.1"
    """Reward terms 'name:weight' (correct, format, length, cosine)."""
    max_rounds: int = 8
    """Filtering/dynamic sampling: at most this many generation rounds per step."""
    eval_every: int = 25
    """Evaluate every N steps (0: only at the start and end)."""
    eval_problems: int = 200
    """Held-out problems in each evaluation."""
    eval_samples: int = 8
    """Samples per problem for pass@1 (at the training temperature) in each evaluation."""
    seed: int = 0
    """Seed of prompt sampling, generation and every other random draw."""
    torch_threads: int = 2
    """torch intra-op threads."""
    device: str = "auto"
    """'auto' (cuda when present, else cpu), 'cpu' or 'cuda'."""
    checkpoint_every: int = 0
    """Save a resumable checkpoint every N steps (0: only at the end)."""

    def __post_init__(self) -> None:
        for name in (
            "pool_size",
            "steps",
            "prompts_per_step",
            "num_generations",
            "max_new_tokens",
            "num_iterations",
            "minibatches",
            "eval_problems",
            "eval_samples",
            "torch_threads",
            "max_rounds",
        ):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.advantage in ("grpo", "dr_grpo", "rloo") and self.num_generations < 2:
            raise UserError(
                f"advantage '{self.advantage}' compares samples of one prompt; "
                "set num_generations >= 2"
            )
        if (self.prompts_per_step * self.num_generations) % self.minibatches:
            raise UserError(
                f"prompts_per_step * num_generations = "
                f"{self.prompts_per_step * self.num_generations} does not split into "
                f"{self.minibatches} minibatches; change minibatches"
            )
        if self.temperature <= 0:
            raise UserError(f"temperature must be > 0 for RL sampling, got {self.temperature}")
        if self.beta < 0 or self.lr <= 0:
            raise UserError("beta must be >= 0 and lr > 0")
        if self.difficulty_band:
            _ = self.band  # raises on a malformed band
        for name in ("eval_every", "warmup_steps", "checkpoint_every", "max_samples"):
            if getattr(self, name) < 0:
                raise UserError(f"{name} must be >= 0, got {getattr(self, name)}")

    @property
    def band(self) -> tuple[float, float] | None:
        """The difficulty band as (low, high), or None when filtering is off."""
        if not self.difficulty_band:
            return None
        try:
            low, high = (float(x) for x in self.difficulty_band.split(","))
        except ValueError:
            raise UserError(
                f"difficulty_band {self.difficulty_band!r} must be 'low,high', e.g. '0.25,0.75'"
            ) from None
        if not 0.0 <= low <= high <= 1.0:
            raise UserError(f"difficulty_band needs 0 <= low <= high <= 1, got {low}, {high}")
        return low, high
