"""Supervised training of a causal LM on prompt/completion text: TinyLM pretraining from scratch
on ReasonGym chain-of-thought text, and SFT of an existing checkpoint (Expert Iteration reuses
:func:`sft_step`).

The loss is the mean next-token cross-entropy over the completion tokens of the batch (prompt
tokens are context only unless ``prompt_loss``); every text ends with the eos token, so the
model learns to stop. Batches are right-padded; padding never enters the loss.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from rlworks.algos.llm.configs import PretrainConfig, SFTConfig, TextTrainingConfig
from rlworks.core.seeding import make_rng

IGNORE = -100


@dataclass(frozen=True)
class TokenizedText:
    ids: list[int]  # bos + prompt + completion + eos
    loss_from: int  # first index whose token is a training target


def tokenize_pairs(
    tokenizer: Any, pairs: Sequence[tuple[str, str]], prompt_loss: bool = False
) -> list[TokenizedText]:
    """Tokenize ``(prompt, completion)`` pairs; the completion is followed by eos."""
    prompts = tokenizer([p for p, _ in pairs], add_special_tokens=True)["input_ids"]
    comps = tokenizer([c for _, c in pairs], add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    return [
        TokenizedText(list(p) + list(c) + [eos], 1 if prompt_loss else len(p))
        for p, c in zip(prompts, comps, strict=True)
    ]


def collate(batch: Sequence[TokenizedText], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (IGNORE off-target)."""
    width = max(len(t.ids) for t in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, t in enumerate(batch):
        n = len(t.ids)
        ids[i, :n] = torch.tensor(t.ids)
        mask[i, :n] = 1
        labels[i, t.loss_from : n] = ids[i, t.loss_from : n]
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def sft_loss(model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Mean cross-entropy over the target tokens and their count."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    targets = batch["labels"][:, 1:]  # (B, T-1): token t+1 is predicted at position t
    loss = torch.nn.functional.cross_entropy(
        logits[:, :-1].flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE
    )
    return loss, int((targets != IGNORE).sum())


def cosine_lr(step: int, total: int, lr: float, warmup: int, min_ratio: float) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine from ``lr`` to ``min_ratio * lr``."""
    if warmup and step < warmup:
        return lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def make_optimizer(model: Any, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW with decay on matrices only (norm weights and biases are not decayed)."""
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), fused=False)


def pretrain_texts(cfg: TextTrainingConfig) -> list[tuple[str, str]]:
    """``steps * batch_size`` (prompt, completion) pairs from the task mix, shuffled by seed.

    Families share the texts equally; within a family the levels are interleaved evenly.
    """
    from rlworks.llm.tasks.dataset import make_sft_texts, parse_tasks

    mix = parse_tasks(cfg.tasks)
    total = cfg.steps * cfg.batch_size
    pairs: list[tuple[str, str]] = []
    for i, (family, levels) in enumerate(mix):
        count = total // len(mix) + (i < total % len(mix))
        examples = make_sft_texts(
            family, levels, count, seed=cfg.seed, error_rate=cfg.error_rate, split="train"
        )
        pairs.extend((e.problem.prompt, e.completion) for e in examples)
    order = make_rng(cfg.seed, "pretrain-order").permutation(len(pairs))
    return [pairs[i] for i in order]


def length_batches(
    data: Sequence[TokenizedText], batch_size: int, rng: Any, pool: int = 32
) -> list[list[TokenizedText]]:
    """Batches of similar length: each run of ``pool`` batches' worth of texts is sorted by
    length and cut into batches, and the batch order is then shuffled. Cuts the padding of a
    mixed-length corpus (mean 40, max 66 tokens here) from about 40% to a few percent, with
    every text still seen exactly once."""
    batches: list[list[TokenizedText]] = []
    span = batch_size * pool
    for start in range(0, len(data), span):
        chunk = sorted(data[start : start + span], key=lambda t: len(t.ids))
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def pretrain(
    cfg: PretrainConfig,
    on_metrics: Callable[[int, dict[str, float]], None] | None = None,
    on_step: Callable[[int], None] | None = None,
) -> tuple[Any, Any, dict[str, float]]:
    """Train a TinyLM from scratch: ``(model, tokenizer, final_metrics)``.

    ``on_metrics(step, metrics)`` receives the training and evaluation metrics (every 25 steps
    and at each evaluation); ``on_step(step)`` is called after every optimiser step.
    """
    from rlworks.llm.model import TinyLMConfig, build_tinylm

    torch.set_num_threads(cfg.torch_threads)
    shape = TinyLMConfig(
        arch=cfg.arch,
        hidden_size=cfg.hidden_size,
        num_layers=cfg.num_layers,
        num_heads=cfg.num_heads,
        num_kv_heads=cfg.num_heads,
        intermediate_size=cfg.intermediate_size,
    )
    model, tokenizer = build_tinylm(shape, seed=cfg.seed)
    return train_on_text(model, tokenizer, cfg, pretrain_texts(cfg), on_metrics, on_step)


def sft(
    cfg: SFTConfig,
    on_metrics: Callable[[int, dict[str, float]], None] | None = None,
    on_step: Callable[[int], None] | None = None,
) -> tuple[Any, Any, dict[str, float]]:
    """Fine-tune the checkpoint ``cfg.model`` on ``cfg.data`` (or ReasonGym text of
    ``cfg.tasks``): ``(model, tokenizer, final_metrics)``."""
    from rlworks.core.errors import UserError
    from rlworks.llm.model import load_policy

    if not cfg.model:
        raise UserError("--model is required: the checkpoint directory to fine-tune")
    torch.set_num_threads(cfg.torch_threads)
    model, tokenizer = load_policy(cfg.model)
    pairs = read_pairs(cfg.data) if cfg.data else pretrain_texts(cfg)
    need = cfg.steps * cfg.batch_size
    order = make_rng(cfg.seed, "sft-order").permutation(len(pairs))
    pairs = [pairs[order[i % len(pairs)]] for i in range(need)]  # cycle the file if short
    return train_on_text(model, tokenizer, cfg, pairs, on_metrics, on_step)


def read_pairs(path: str) -> list[tuple[str, str]]:
    """``(prompt, completion)`` rows of a JSONL file; a bad row is a one-line error."""
    import json
    from pathlib import Path

    from rlworks.core.errors import UserError

    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise UserError(f"cannot read SFT data {path!r}: {exc.strerror}") from None
    pairs = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            pairs.append((str(row["prompt"]), str(row["completion"])))
        except (ValueError, KeyError, TypeError):
            raise UserError(
                f"{path}:{n} is not a JSON object with 'prompt' and 'completion'"
            ) from None
    if not pairs:
        raise UserError(f"SFT data {path!r} has no rows")
    return pairs


def train_on_text(
    model: Any,
    tokenizer: Any,
    cfg: TextTrainingConfig,
    pairs: list[tuple[str, str]],
    on_metrics: Callable[[int, dict[str, float]], None] | None = None,
    on_step: Callable[[int], None] | None = None,
) -> tuple[Any, Any, dict[str, float]]:
    """The text-training loop shared by :func:`pretrain` and :func:`sft`."""
    device = resolve_device(cfg.device)
    model.to(device).train()
    data = tokenize_pairs(tokenizer, pairs, cfg.prompt_loss)
    batches = length_batches(data, cfg.batch_size, make_rng(cfg.seed, "pretrain-batches"))
    opt = make_optimizer(model, cfg.lr, cfg.weight_decay)
    eval_problems = _eval_problems(cfg)
    tokens_seen, window_tokens, window_loss, window_n = 0, 0, 0.0, 0
    t_window = time.perf_counter()
    metrics: dict[str, float] = {}
    for step in range(cfg.steps):
        lr = cosine_lr(step, cfg.steps, cfg.lr, cfg.warmup_steps, cfg.min_lr_ratio)
        for group in opt.param_groups:
            group["lr"] = lr
        batch = {k: v.to(device) for k, v in collate(batches[step], tokenizer.pad_token_id).items()}
        loss, n_targets = sft_loss(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = (
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            if cfg.grad_clip > 0
            else torch.tensor(0.0)
        )
        opt.step()
        n_tokens = int(batch["attention_mask"].sum())
        tokens_seen += n_tokens
        window_tokens += n_tokens
        window_loss += float(loss.detach()) * n_targets
        window_n += n_targets
        done = step + 1
        if on_step is not None:
            on_step(done)
        if done % 25 == 0 or done == cfg.steps:
            elapsed = time.perf_counter() - t_window
            metrics = {
                "train/loss": window_loss / max(1, window_n),
                "train/lr": lr,
                "train/grad_norm": float(grad_norm),
                "train/tokens": float(tokens_seen),
                "perf/tokens_per_s": window_tokens / max(elapsed, 1e-9),
            }
            window_tokens, window_loss, window_n = 0, 0.0, 0
            t_window = time.perf_counter()
            if (cfg.eval_every and done % cfg.eval_every == 0) or done == cfg.steps:
                metrics.update(greedy_eval(model, tokenizer, eval_problems))
                t_window = time.perf_counter()
            if on_metrics is not None:
                on_metrics(done, metrics)
    model.eval()
    return model, tokenizer, metrics


def _eval_problems(cfg: TextTrainingConfig) -> list[Any]:
    from rlworks.llm.tasks.dataset import make_split, parse_tasks

    problems: list[Any] = []
    mix = parse_tasks(cfg.eval_tasks)
    for i, (family, levels) in enumerate(mix):
        count = cfg.eval_problems // len(mix) + (i < cfg.eval_problems % len(mix))
        problems.extend(make_split(family, levels, count, split="test", seed=cfg.seed))
    return problems


def greedy_eval(model: Any, tokenizer: Any, problems: Sequence[Any]) -> dict[str, float]:
    """``eval/greedy_acc`` (and per source) of greedy decoding on ``problems``."""
    from rlworks.eval.llm import sample_correct
    from rlworks.llm.generate import SamplingConfig

    table = sample_correct(model, tokenizer, problems, 1, SamplingConfig(temperature=0.0))
    out = {"eval/greedy_acc": float(table.correct.mean())}
    by = table.by_source()
    if len(by) > 1:
        out.update({f"eval/{s}/greedy_acc": float(t.correct.mean()) for s, t in by.items()})
    return out
