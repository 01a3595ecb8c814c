"""Batched sampling with a KV cache, and the log-probabilities RL needs.

``generate(model, tokenizer, prompts, n, sampling, generator)`` samples ``n`` completions per
prompt in one batch: prompts are left-padded (so every row's next token is at the same column),
the model's KV cache is filled once by the prompt forward and then extended one token per step,
and a row stops at the eos token, at a stop string, or at ``max_new_tokens`` (then it is
*truncated*, which the trainer can mask out). It returns a :class:`Rollout` whose completion
tensors are right-padded with a mask that is 1 exactly on the generated tokens, including the
token that stopped the row; no padding token ever has mask 1.

Log-probabilities: ``Rollout.logprobs`` are ``log softmax(logits / temperature)`` of the sampled
tokens, before top-k/top-p filtering, i.e. the sampling policy as the losses see it (the
``temperature`` option of the losses must match; see ``docs/llm/generation.md``).
:func:`sequence_logprobs` recomputes them (with gradients, or under a frozen reference model) for
a whole batch in one forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from rlworks.core.errors import UserError


@dataclass(frozen=True)
class SamplingConfig:
    """How completions are sampled. ``temperature=0`` means greedy."""

    temperature: float = 1.0
    top_p: float = 1.0
    """Nucleus sampling: keep the smallest set of tokens whose probability reaches ``top_p``."""
    top_k: int = 0
    """Keep the ``top_k`` most likely tokens (0 = all)."""
    max_new_tokens: int = 192
    stop_strings: tuple[str, ...] = ("</answer>",)
    """A row stops after the first token that completes one of these (kept in the text)."""

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise UserError(f"temperature must be >= 0, got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise UserError(f"top_p must lie in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise UserError(f"top_k must be >= 0, got {self.top_k}")
        if self.max_new_tokens < 1:
            raise UserError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass
class Rollout:
    """``N = len(prompts) * n`` sampled completions; row ``i`` answers prompt ``i // n``."""

    prompt_ids: torch.Tensor  # (N, Lp) left-padded
    prompt_mask: torch.Tensor  # (N, Lp) 1 on real prompt tokens
    completion_ids: torch.Tensor  # (N, Lc) right-padded with the pad id
    completion_mask: torch.Tensor  # (N, Lc) 1 on generated tokens (incl. the stop token)
    logprobs: torch.Tensor  # (N, Lc) sampling log-probs of the generated tokens, 0 on padding
    truncated: torch.Tensor  # (N,) bool: hit max_new_tokens without a stop
    completions: list[str]  # decoded completions (special tokens dropped)
    prompt_index: torch.Tensor  # (N,) index into the prompt list

    @property
    def lengths(self) -> torch.Tensor:  # (N,)
        return self.completion_mask.sum(dim=1)

    @property
    def num_tokens(self) -> int:
        return int(self.completion_mask.sum())


def preallocated_cache(model: Any, capacity: int) -> Any:
    """A Hugging Face KV cache whose layers write into buffers of ``capacity`` positions.

    The default ``DynamicCache`` concatenates the whole cache every step (O(length) copies per
    token); these layers copy each new key/value once and hand attention a view of the filled
    prefix, so attention still only sees the positions generated so far. Measured on TinyLM
    (128 sequences x 100 tokens, quiet machine, 3 alternating pairs): 1.16x faster than
    ``DynamicCache``.
    """
    from transformers.cache_utils import Cache, DynamicLayer

    class PreallocatedLayer(DynamicLayer):
        def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
            b, h, _, d = key_states.shape
            self.device = key_states.device
            self._k = key_states.new_empty((b, h, capacity, d))
            self._v = value_states.new_empty((b, h, capacity, value_states.shape[-1]))
            self._len = 0
            self.keys, self.values = self._k[:, :, :0], self._v[:, :, :0]
            self.is_initialized = True

        def update(
            self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
        ) -> tuple[torch.Tensor, torch.Tensor]:
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            end = self._len + key_states.shape[-2]
            if end > capacity:
                raise RuntimeError(f"KV cache capacity {capacity} exceeded ({end} positions)")
            self._k[:, :, self._len : end] = key_states
            self._v[:, :, self._len : end] = value_states
            self._len = end
            self.keys, self.values = self._k[:, :, :end], self._v[:, :, :end]
            return self.keys, self.values

    n_layers = model.config.get_text_config(decoder=True).num_hidden_layers
    return Cache(layers=[PreallocatedLayer() for _ in range(n_layers)])


def _stop_token_ids(tokenizer: Any, stop_strings: Sequence[str]) -> tuple[set[int], list[str]]:
    """Stop strings that are one token become ids; the rest are matched on decoded text."""
    ids: set[int] = set()
    textual: list[str] = []
    for s in stop_strings:
        enc = tokenizer.encode(s, add_special_tokens=False)
        if len(enc) == 1:
            ids.add(int(enc[0]))
        else:
            textual.append(s)
    return ids, textual


def filter_logits(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """``(B, V) -> (B, V)``: logits outside the top-k / nucleus set become ``-inf``."""
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        # drop a token when the mass strictly before it already reaches top_p
        drop_sorted = (probs.cumsum(dim=-1) - probs) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


@torch.no_grad()
def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    n: int = 1,
    sampling: SamplingConfig | None = None,
    generator: torch.Generator | None = None,
    fast: bool | None = None,
) -> Rollout:
    """Sample ``n`` completions for each prompt (rows ``i*n .. i*n+n-1`` belong to prompt i).

    ``fast``: run the model through :class:`rlworks.llm.fast.FastDecoder` (the same maths on
    the model's own weights, 2-3x faster per token on TinyLM) when it supports the model
    (``None``, the default), always (``True``: an error if it cannot), or never (``False``:
    the Hugging Face forward with :func:`preallocated_cache`).
    """
    from rlworks.llm.fast import FastDecoder, unsupported
    sampling = sampling or SamplingConfig()
    if len(prompts) == 0:
        raise UserError("the prompt set is empty; give at least one prompt")
    if n < 1:
        raise UserError(f"n (samples per prompt) must be >= 1, got {n}")
    device = next(model.parameters()).device
    enc = tokenizer(list(prompts), padding=True, return_tensors="pt")
    prompt_ids = enc["input_ids"].repeat_interleave(n, dim=0).to(device)  # (N, Lp)
    prompt_mask = enc["attention_mask"].repeat_interleave(n, dim=0).to(device)
    if tokenizer.padding_side != "left" and not bool(prompt_mask[:, -1].all()):
        raise UserError("the tokenizer pads on the right; set tokenizer.padding_side = 'left'")
    rows = prompt_ids.shape[0]
    stop_ids, stop_texts = _stop_token_ids(tokenizer, sampling.stop_strings)
    if tokenizer.eos_token_id is not None:
        stop_ids.add(int(tokenizer.eos_token_id))
    stop_tensor = torch.tensor(sorted(stop_ids), device=device, dtype=torch.long)
    pad_id = int(tokenizer.pad_token_id)

    was_training = model.training
    model.eval()
    attention = prompt_mask.clone()
    positions = (prompt_mask.cumsum(dim=1) - 1).clamp(min=0)
    capacity = prompt_ids.shape[1] + sampling.max_new_tokens
    reason = unsupported(model) if fast is not False else "switched off"
    if fast and reason is not None:
        raise UserError(f"fast decoding cannot run this model: {reason}; pass fast=None")
    decoder = FastDecoder(model, rows, capacity) if reason is None else None
    if decoder is not None:
        logits = decoder.prefill(prompt_ids, prompt_mask, positions).float()  # (N, V)
    else:
        cache = preallocated_cache(model, capacity)
        out = model(
            input_ids=prompt_ids,
            attention_mask=attention,
            position_ids=positions,
            cache=cache,
            use_cache=True,
        )
        logits = out.logits[:, -1, :].float()  # (N, V)
    next_pos = positions[:, -1:] + 1  # (N, 1)

    tokens: list[torch.Tensor] = []
    logps: list[torch.Tensor] = []
    alive = torch.ones(rows, dtype=torch.bool, device=device)
    alive_steps: list[torch.Tensor] = []
    texts = [""] * rows if stop_texts else None
    for step in range(sampling.max_new_tokens):
        if sampling.greedy:
            token = logits.argmax(dim=-1)
            logp = torch.zeros(rows, device=device)
        else:
            scaled = logits / sampling.temperature
            logp_all = scaled.log_softmax(dim=-1)
            probs = filter_logits(scaled, sampling.top_k, sampling.top_p).softmax(dim=-1)
            token = torch.multinomial(probs, 1, generator=generator).squeeze(1)
            logp = logp_all.gather(1, token[:, None]).squeeze(1)
        token = torch.where(alive, token, torch.full_like(token, pad_id))
        tokens.append(token)
        logps.append(torch.where(alive, logp, torch.zeros_like(logp)))
        alive_steps.append(alive.clone())
        stopped = torch.isin(token, stop_tensor) if len(stop_tensor) else torch.zeros_like(alive)
        if texts is not None:
            stopped = stopped | _text_stops(tokenizer, token, alive, texts, stop_texts)
        alive = alive & ~stopped
        if not bool(alive.any()) or step == sampling.max_new_tokens - 1:
            break
        if decoder is not None:
            logits = decoder.step(token, next_pos[:, 0]).float()
        else:
            attention = torch.cat([attention, torch.ones_like(attention[:, :1])], dim=1)
            out = model(
                input_ids=token[:, None],
                attention_mask=attention,
                position_ids=next_pos,
                cache=cache,
                use_cache=True,
            )
            logits = out.logits[:, -1, :].float()
        next_pos = next_pos + 1
    if was_training:
        model.train()

    completion_ids = torch.stack(tokens, dim=1)  # (N, Lc)
    completion_mask = torch.stack(alive_steps, dim=1).long()
    logprobs = torch.stack(logps, dim=1)
    completions = tokenizer.batch_decode(completion_ids, skip_special_tokens=True)
    return Rollout(
        prompt_ids=prompt_ids,
        prompt_mask=prompt_mask,
        completion_ids=completion_ids,
        completion_mask=completion_mask,
        logprobs=logprobs,
        truncated=alive.clone(),
        completions=completions,
        prompt_index=torch.arange(len(prompts), device=device).repeat_interleave(n),
    )


def _text_stops(
    tokenizer: Any, token: torch.Tensor, alive: torch.Tensor, texts: list[str], stops: list[str]
) -> torch.Tensor:
    """Append each live row's new token text and report rows whose text now ends a stop."""
    hit = torch.zeros_like(alive)
    for i in torch.nonzero(alive).flatten().tolist():
        texts[i] += tokenizer.decode([int(token[i])], skip_special_tokens=True)
        tail = texts[i][-max(len(s) for s in stops) - 8 :]
        if any(s in tail for s in stops):
            hit[i] = True
    return hit


def sequence_logprobs(
    model: Any,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    completion_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    temperature: float = 1.0,
) -> torch.Tensor:
    """``(N, Lc)`` log-probabilities of the completion tokens under ``model`` (one forward pass
    over prompt + completion; logits divided by ``temperature``; 0 where the mask is 0).

    Gradients flow when called outside ``torch.no_grad()``.
    """
    input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
    mask = torch.cat([prompt_mask, completion_mask], dim=1)
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    lc = completion_ids.shape[1]
    # logits at position t predict token t+1: keep the Lc positions before each completion token
    logits = (
        model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=False,
            logits_to_keep=lc + 1,
        )
        .logits[:, :-1, :]
        .float()
    )
    if temperature != 1.0:
        logits = logits / temperature
    logp = logits.log_softmax(dim=-1).gather(2, completion_ids[:, :, None]).squeeze(2)
    return logp * completion_mask
