"""A lean KV-cached forward for Llama-family models, on the Hugging Face model's own weights.

Sampling a batch of completions runs the model once per generated token. For a small model
on a CPU, most of that time is not arithmetic but the generic machinery around it: building
a 4-D attention mask from the 2-D one every step, the cache and attention-interface dispatch,
three separate q/k/v and two gate/up projections, keyword plumbing through every module.
:class:`FastDecoder` runs the same maths as ``LlamaForCausalLM.forward`` (and Qwen2's, which
only adds q/k/v biases) as a handful of fused tensor operations:

* q, k, v come out of one matrix product with the concatenated weights, gate and up out of
  another (the concatenations are made once per :func:`~rlworks.llm.generate.generate` call,
  so they always reflect the current weights);
* rotary cos/sin are computed once for every position the call can reach, by the model's own
  ``rotary_emb`` module, and gathered per step;
* keys and values go into preallocated buffers, and attention is one
  ``scaled_dot_product_attention`` call per layer with a boolean key mask that is kept, not
  rebuilt.

It supports exactly the configurations whose maths it reproduces (see :func:`unsupported`);
anything else (LoRA-wrapped layers, other activations, sliding windows, rope types whose
tables depend on the sequence length) falls back to the Hugging Face forward. Parity with
the Hugging Face forward is a test (``tests/llm/test_fast_decode.py``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

SUPPORTED = ("LlamaForCausalLM", "Qwen2ForCausalLM")


def unsupported(model: Any) -> str | None:
    """Why :class:`FastDecoder` cannot run ``model`` (``None`` when it can)."""
    name = type(model).__name__
    if name not in SUPPORTED:
        return f"architecture {name} (fast path: {', '.join(SUPPORTED)})"
    cfg = model.config.get_text_config(decoder=True)
    if getattr(cfg, "hidden_act", "silu") != "silu":
        return f"activation {cfg.hidden_act}"
    if getattr(cfg, "use_sliding_window", False):
        return "sliding-window attention"
    rope = getattr(cfg, "rope_parameters", None) or getattr(cfg, "rope_scaling", None) or {}
    rope_type = str(rope.get("rope_type", rope.get("type", "default"))) if rope else "default"
    if rope_type not in ("default", "linear", "llama3"):
        # 'dynamic', 'yarn', 'longrope', ...: tables or scaling depend on the sequence length
        return f"rope type {rope_type}"
    if getattr(cfg, "pretraining_tp", 1) != 1:
        return "pretraining_tp > 1"
    for layer in model.model.layers:
        a, m = layer.self_attn, layer.mlp
        for lin in (a.q_proj, a.k_proj, a.v_proj, a.o_proj, m.gate_proj, m.up_proj, m.down_proj):
            if type(lin) is not nn.Linear:  # e.g. peft's LoRA layers
                return f"layer type {type(lin).__name__}"
    if type(model.get_output_embeddings()) is not nn.Linear:
        return "output head type"
    return None


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    # exactly LlamaRMSNorm: normalise in float32, cast back, then scale
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(x.dtype)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


class _Layer:
    """One decoder layer's weights, with q/k/v and gate/up concatenated."""

    def __init__(self, layer: Any) -> None:
        a, m = layer.self_attn, layer.mlp
        self.wqkv = torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]).detach()
        biases = [a.q_proj.bias, a.k_proj.bias, a.v_proj.bias]
        self.bqkv = torch.cat(biases).detach() if all(b is not None for b in biases) else None
        if self.bqkv is None and any(b is not None for b in biases):
            self.bqkv = torch.cat(
                [b if b is not None else torch.zeros(p.weight.shape[0], dtype=p.weight.dtype,
                                                     device=p.weight.device)
                 for b, p in zip(biases, (a.q_proj, a.k_proj, a.v_proj), strict=True)]
            ).detach()
        self.wo, self.bo = a.o_proj.weight.detach(), _detach(a.o_proj.bias)
        self.wgu = torch.cat([m.gate_proj.weight, m.up_proj.weight]).detach()
        gb, ub = m.gate_proj.bias, m.up_proj.bias
        self.bgu = torch.cat([gb, ub]).detach() if gb is not None and ub is not None else None
        self.wd, self.bd = m.down_proj.weight.detach(), _detach(m.down_proj.bias)
        self.ln1, self.eps1 = layer.input_layernorm.weight.detach(), _eps(layer.input_layernorm)
        self.ln2 = layer.post_attention_layernorm.weight.detach()
        self.eps2 = _eps(layer.post_attention_layernorm)


def _detach(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.detach()


def _eps(norm: Any) -> float:
    return float(getattr(norm, "variance_epsilon", getattr(norm, "eps", 1e-6)))


class FastDecoder:
    """KV-cached forward for ``rows`` sequences of at most ``capacity`` positions.

    ``prefill(ids, mask, positions)`` runs the (left-padded) prompts and returns the logits
    of each row's last position; ``step(tokens, positions)`` appends one token per row and
    returns its logits. Call under ``torch.no_grad()``; the model's weights must not change
    between the two (they are read once, at construction).
    """

    def __init__(self, model: Any, rows: int, capacity: int) -> None:
        reason = unsupported(model)
        if reason is not None:
            raise ValueError(f"FastDecoder does not support this model: {reason}")
        cfg = model.config.get_text_config(decoder=True)
        base = model.model
        self.n_heads = int(cfg.num_attention_heads)
        self.n_kv = int(getattr(cfg, "num_key_value_heads", None) or self.n_heads)
        self.head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // self.n_heads)
        self.scaling = self.head_dim**-0.5
        self.layers = [_Layer(layer) for layer in base.layers[: cfg.num_hidden_layers]]
        self.embed = base.embed_tokens.weight.detach()
        self.norm, self.norm_eps = base.norm.weight.detach(), _eps(base.norm)
        head = model.get_output_embeddings()
        self.head_w, self.head_b = head.weight.detach(), _detach(head.bias)
        dev, dtype = self.embed.device, self.embed.dtype
        # cos/sin of every reachable position, from the model's own rotary module
        pos = torch.arange(capacity, device=dev)[None]
        cos, sin = base.rotary_emb(self.embed[:1][None], position_ids=pos)
        self.cos, self.sin = cos[0], sin[0]  # (capacity, head_dim)
        shape = (rows, self.n_kv, capacity, self.head_dim)
        self.k = [torch.empty(shape, device=dev, dtype=dtype) for _ in self.layers]
        self.v = [torch.empty(shape, device=dev, dtype=dtype) for _ in self.layers]
        self.key_ok = torch.zeros(rows, capacity, dtype=torch.bool, device=dev)
        self.length = 0
        self.capacity = capacity

    def _forward(self, x: torch.Tensor, positions: torch.Tensor,
                 attn_mask: torch.Tensor) -> torch.Tensor:
        """``x`` (N, L, D) at absolute cache slots ``length .. length+L-1``."""
        n, seq, _ = x.shape
        start, end = self.length, self.length + seq
        cos = self.cos[positions][:, None]  # (N, 1, L, d)
        sin = self.sin[positions][:, None]
        hq, hk, d = self.n_heads, self.n_kv, self.head_dim
        for i, lw in enumerate(self.layers):
            h = _rms_norm(x, lw.ln1, lw.eps1)
            qkv = F.linear(h, lw.wqkv, lw.bqkv)
            q, k, v = qkv.split((hq * d, hk * d, hk * d), dim=-1)
            q = _rotate(q.view(n, seq, hq, d).transpose(1, 2), cos, sin)
            k = _rotate(k.view(n, seq, hk, d).transpose(1, 2), cos, sin)
            self.k[i][:, :, start:end] = k
            self.v[i][:, :, start:end] = v.view(n, seq, hk, d).transpose(1, 2)
            att = F.scaled_dot_product_attention(
                q, self.k[i][:, :, :end], self.v[i][:, :, :end], attn_mask=attn_mask,
                scale=self.scaling, enable_gqa=hq != hk,
            )
            x = x + F.linear(att.transpose(1, 2).reshape(n, seq, hq * d), lw.wo, lw.bo)
            h = _rms_norm(x, lw.ln2, lw.eps2)
            gate, up = F.linear(h, lw.wgu, lw.bgu).chunk(2, dim=-1)
            x = x + F.linear(F.silu(gate) * up, lw.wd, lw.bd)
        self.length = end
        return x

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(_rms_norm(x, self.norm, self.norm_eps), self.head_w, self.head_b)

    def prefill(self, ids: torch.Tensor, mask: torch.Tensor,
                positions: torch.Tensor) -> torch.Tensor:
        """Left-padded prompts ``ids`` (N, Lp) with ``mask`` and rotary ``positions``;
        returns ``(N, V)`` logits of the last column."""
        if self.length:
            raise RuntimeError("prefill must come first")
        seq = ids.shape[1]
        if seq > self.capacity:
            raise RuntimeError(f"KV cache capacity {self.capacity} exceeded ({seq} positions)")
        self.key_ok[:, :seq] = mask.bool()
        causal = torch.ones(seq, seq, dtype=torch.bool, device=ids.device).tril()
        allowed = causal[None] & self.key_ok[:, None, :seq]
        # a padding query attends to itself, so no row of the softmax is empty (no NaNs);
        # no real query ever sees a padding key
        allowed = allowed | torch.eye(seq, dtype=torch.bool, device=ids.device)[None]
        x = self._forward(F.embedding(ids, self.embed), positions, allowed[:, None])
        return self._logits(x[:, -1])

    def step(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """One new token per row ``tokens`` (N,) at rotary ``positions`` (N,); ``(N, V)``."""
        end = self.length + 1
        if end > self.capacity:
            raise RuntimeError(f"KV cache capacity {self.capacity} exceeded ({end} positions)")
        self.key_ok[:, self.length] = True
        attn = self.key_ok[:, None, None, :end]
        x = self._forward(F.embedding(tokens[:, None], self.embed), positions[:, None], attn)
        return self._logits(x[:, -1])
