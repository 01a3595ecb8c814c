"""Batch plumbing of the LLM RL loop: the prompt pool, the reward set from its spec, LoRA
wrapping, and the group records that rollouts are cut into and merged from. The maths and the
loop itself are in :mod:`rlworks.algos.llm.grpo`."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from rlworks.core.errors import UserError


class PromptPool:
    """The training problems, with their sources (``family/dN``) for curricula."""

    def __init__(self, tasks: str, size: int, seed: int, split: str = "train") -> None:
        from rlworks.llm.tasks.dataset import make_split, parse_tasks

        mix = parse_tasks(tasks)
        self.problems: list[Any] = []
        for i, (family, levels) in enumerate(mix):
            count = size // len(mix) + (i < size % len(mix))
            self.problems.extend(make_split(family, levels, count, split=split, seed=seed))
        self._index()

    def restrict(self, ids: list[str], where: str) -> None:
        """Keep only the problems whose id is in ``ids`` (order of the pool)."""
        keep = set(ids)
        self.problems = [p for p in self.problems if p.id in keep]
        if not self.problems:
            raise UserError(
                f"none of the {len(keep)} problem ids in {where} is in the pool; build the "
                "pool with the same tasks, pool_size and seed as the run that selected them"
            )
        self._index()

    def _index(self) -> None:
        self.sources = sorted({p.source for p in self.problems})
        self.by_source = {
            s: [i for i, p in enumerate(self.problems) if p.source == s] for s in self.sources
        }

    def sample(
        self, n: int, rng: np.random.Generator, sources: list[str] | None = None
    ) -> list[Any]:
        """``n`` problems uniformly, or one from each given source (for DUMP)."""
        if sources is None:
            return [self.problems[i] for i in rng.integers(len(self.problems), size=n)]
        return [self.problems[int(rng.choice(self.by_source[s]))] for s in sources]


def add_lora(model: Any, rank: int, alpha: float) -> Any:
    """``model`` with peft LoRA adapters on every attention and MLP projection (the base
    weights frozen). :func:`merged_model` merges them back."""
    from peft import LoraConfig, get_peft_model

    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,  # type: ignore[arg-type]  # peft scales by alpha / r in floats
        lora_dropout=0.0,
        target_modules=targets,
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def merged_model(model: Any) -> Any:
    """A plain transformers model to save: LoRA adapters merged into a copy of the weights."""
    if hasattr(model, "merge_and_unload"):
        return copy.deepcopy(model).merge_and_unload()
    return model


def build_rewards(spec: str, max_new_tokens: int) -> Any:
    """``"correct:1.0,format:0.1"`` -> a :class:`RewardSet` (names: correct, format, length,
    cosine)."""
    from rlworks.llm.rewards import (
        RewardSet,
        correctness_reward,
        cosine_length_reward,
        format_reward,
        length_penalty,
    )

    makers = {
        "correct": lambda: correctness_reward,
        "format": lambda: format_reward,
        "length": lambda: length_penalty(max_new_tokens),
        "cosine": lambda: cosine_length_reward(max_new_tokens),
    }
    terms = []
    for part in [p.strip() for p in spec.split(",") if p.strip()]:
        name, _, weight = part.partition(":")
        if name not in makers:
            raise UserError(f"unknown reward '{name}' in {spec!r}; use {sorted(makers)}")
        try:
            w = float(weight) if weight else 1.0
        except ValueError:
            raise UserError(f"reward weight {weight!r} of '{name}' is not a number") from None
        terms.append((name, makers[name](), w))
    if not terms:
        raise UserError(f"rewards {spec!r} names no reward; e.g. 'correct:1.0,format:0.1'")
    return RewardSet(terms)


def read_ids(path: str) -> list[str]:
    import json
    from pathlib import Path

    try:
        ids = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read problem ids from {path!r}: {exc}") from None
    if isinstance(ids, dict):
        ids = ids.get("ids")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise UserError(f'{path!r} must hold a JSON list of problem ids (or {{"ids": [...]}})')
    return ids


def take_group(part: dict[str, Any], i: int) -> dict[str, Any]:
    """Group ``i`` of a rollout part (its G rows)."""
    g = part["rewards"].shape[1]
    rows = slice(i * g, (i + 1) * g)
    roll = part["roll"]
    return {
        "problems": [part["problems"][i]],
        "rewards": part["rewards"][i : i + 1],
        "correct": part["correct"][i : i + 1],
        "prompt_ids": roll.prompt_ids[rows],
        "prompt_mask": roll.prompt_mask[rows],
        "completion_ids": roll.completion_ids[rows],
        "completion_mask": roll.completion_mask[rows],
        "logprobs": roll.logprobs[rows],
        "truncated": roll.truncated[rows],
    }


def merge_groups(groups: list[dict[str, Any]], pad_id: int) -> dict[str, Any]:
    """Concatenate prompt groups into one batch (prompts re-padded on the left, completions
    on the right)."""
    lp = max(x["prompt_ids"].shape[1] for x in groups)
    lc = max(x["completion_ids"].shape[1] for x in groups)

    def pad(t: torch.Tensor, width: int, value: float, left: bool) -> torch.Tensor:
        extra = width - t.shape[1]
        if extra == 0:
            return t
        fill = torch.full((t.shape[0], extra), value, dtype=t.dtype)
        return torch.cat([fill, t] if left else [t, fill], dim=1)

    return {
        "problems": [pr for x in groups for pr in x["problems"]],
        "rewards": torch.cat([x["rewards"] for x in groups]),
        "correct": np.concatenate([x["correct"] for x in groups]),
        "prompt_ids": torch.cat([pad(x["prompt_ids"], lp, pad_id, True) for x in groups]),
        "prompt_mask": torch.cat([pad(x["prompt_mask"], lp, 0, True) for x in groups]),
        "completion_ids": torch.cat([pad(x["completion_ids"], lc, pad_id, False) for x in groups]),
        "completion_mask": torch.cat([pad(x["completion_mask"], lc, 0, False) for x in groups]),
        "logprobs": torch.cat([pad(x["logprobs"], lc, 0.0, False) for x in groups]),
        "truncated": torch.cat([x["truncated"] for x in groups]),
    }


def mean_metrics(items: list[dict[str, float]]) -> dict[str, float]:
    if not items:
        return {}
    keys = items[0].keys()
    return {k: float(np.nanmean([m[k] for m in items])) for k in keys}


def generated_accuracy(parts: list[dict[str, Any]]) -> dict[str, float]:
    """Correctness of every completion generated this step, filtered-out groups included:
    ``rollout/gen_accuracy`` over all of them, and per task source ``rollout/gen_correct/<s>``
    and ``rollout/gen_n/<s>`` (counts, so that windows over steps pool them exactly). Unlike
    ``rollout/accuracy`` (the trained batch), this measures the policy on what the sampler
    drew, before any filter; empty without a correctness reward."""
    correct: dict[str, float] = {}
    count: dict[str, float] = {}
    for part in parts:
        scores = part["correct"]  # (P, G), NaN where no verdict
        for problem, row in zip(part["problems"], scores, strict=True):
            ok = row[np.isfinite(row)]
            if ok.size:
                correct[problem.source] = correct.get(problem.source, 0.0) + float(ok.sum())
                count[problem.source] = count.get(problem.source, 0.0) + float(ok.size)
    if not count:
        return {}
    out = {"rollout/gen_accuracy": sum(correct.values()) / sum(count.values())}
    for src in sorted(count):
        out[f"rollout/gen_correct/{src}"] = correct[src]
        out[f"rollout/gen_n/{src}"] = count[src]
    return out
