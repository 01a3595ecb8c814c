"""The policy model: any local Hugging Face causal LM, and TinyLM built here from a config.

TinyLM is a plain ``transformers`` Llama model (RoPE, RMSNorm, SwiGLU), initialised from its
config with the character tokenizer of :mod:`rlworks.llm.tokenizer` and saved with
``save_pretrained``. A TinyLM directory is an ordinary checkpoint: plain
``AutoModelForCausalLM.from_pretrained`` and ``AutoTokenizer.from_pretrained`` load it, and a
user's own local checkpoint goes through the same :func:`load_policy` path. Weights are
safetensors; nothing is ever downloaded (``local_files_only=True``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rlworks.core.errors import UserError

ARCHS = ("llama",)
# Not qwen2: transformers 5's AutoTokenizer overrides the tokenizer class saved with a qwen2
# checkpoint (qwen2 is in its MODELS_WITH_INCORRECT_HUB_TOKENIZER_CLASS) and rebuilds it as
# Qwen2's byte-level BPE, which silently re-tokenizes TinyLM's character vocabulary.
METADATA_FILE = "rlworks.json"


@dataclass(frozen=True)
class TinyLMConfig:
    """Shape of a TinyLM. The defaults give about 1.6M parameters (embeddings tied)."""

    arch: Literal["llama"] = "llama"
    """Hugging Face architecture (see ARCHS for why not qwen2)."""
    hidden_size: int = 192
    num_layers: int = 4
    num_heads: int = 6
    num_kv_heads: int = 6
    """Fewer than ``num_heads`` gives grouped-query attention."""
    intermediate_size: int = 512
    max_positions: int = 512
    """Longest prompt + completion the model is built for (rotary embeddings)."""
    tie_embeddings: bool = True
    rope_theta: float = 10000.0

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise UserError(f"TinyLM arch must be one of {ARCHS}, got {self.arch!r}")
        if self.hidden_size % self.num_heads:
            raise UserError(
                f"hidden_size {self.hidden_size} is not a multiple of num_heads {self.num_heads}"
            )
        if self.num_heads % self.num_kv_heads:
            raise UserError(
                f"num_heads {self.num_heads} is not a multiple of num_kv_heads {self.num_kv_heads}"
            )


def hf_config(cfg: TinyLMConfig, tokenizer: Any) -> Any:
    """The ``transformers`` config of a TinyLM over ``tokenizer``'s vocabulary."""
    import transformers

    return transformers.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads,
        max_position_embeddings=cfg.max_positions,
        tie_word_embeddings=cfg.tie_embeddings,
        rope_theta=cfg.rope_theta,  # type: ignore[call-arg]  # taken by its **kwargs
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def build_tinylm(cfg: TinyLMConfig, seed: int) -> tuple[Any, Any]:
    """A freshly initialised TinyLM and its character tokenizer: ``(model, tokenizer)``.

    The initial weights are a function of ``seed`` alone (a local torch generator is installed
    for the duration of ``__init__``; the global torch RNG is restored afterwards).
    """
    import torch
    from transformers import AutoModelForCausalLM

    from rlworks.llm.tokenizer import build_char_tokenizer

    tokenizer = build_char_tokenizer(model_max_length=cfg.max_positions)
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)  # HF initialises from the global generator; restored below
        model = AutoModelForCausalLM.from_config(hf_config(cfg, tokenizer))
    finally:
        torch.random.set_rng_state(state)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def count_parameters(model: Any, trainable_only: bool = False) -> int:
    """Number of distinct parameters (tied embeddings counted once)."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) in seen or (trainable_only and not p.requires_grad):
            continue
        seen.add(id(p))
        total += p.numel()
    return total


def save_policy(
    model: Any, tokenizer: Any, path: str | Path, metadata: dict[str, Any] | None = None
) -> Path:
    """``save_pretrained`` the model (safetensors) and tokenizer into ``path``, plus an
    ``rlworks.json`` with ``metadata``. Written to a temporary sibling and renamed, so a crash
    never leaves a half-written checkpoint where a good one was."""
    import shutil

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / METADATA_FILE).write_text(json.dumps(metadata or {}, indent=2, sort_keys=True))
    old = path.with_name(path.name + ".old")
    if path.exists():
        if old.exists():
            shutil.rmtree(old)
        path.rename(old)
    tmp.rename(path)
    if old.exists():
        shutil.rmtree(old)
    return path


def load_policy(path: str | Path, device: str = "cpu", dtype: Any = None) -> tuple[Any, Any]:
    """``(model, tokenizer)`` from a local directory through ``from_pretrained``.

    Any causal LM checkpoint works (TinyLM or a user's own). A missing directory, a directory
    without a model, or a tokenizer that cannot write the answer tags is a one-line
    :class:`UserError` naming the path.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlworks.llm.tokenizer import check_policy_tokenizer

    path = Path(path)
    if not path.is_dir():
        raise UserError(
            f"model directory {str(path)!r} does not exist; give a local checkpoint "
            "directory (e.g. one written by `rlworks llm pretrain`)"
        )
    if not (path / "config.json").is_file():
        raise UserError(
            f"{str(path)!r} has no config.json, so it is not a Hugging Face checkpoint; "
            "point at the directory that save_pretrained wrote"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model: Any = AutoModelForCausalLM.from_pretrained(
            path, local_files_only=True, dtype=dtype or "auto"
        )
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot load the model at {str(path)!r}: {first}") from exc
    if tokenizer.pad_token_id is None and tokenizer.eos_token_id is not None:
        tokenizer.pad_token = tokenizer.eos_token  # the usual fallback; pads are masked out
    check_policy_tokenizer(tokenizer, where=f"the tokenizer at {str(path)!r}")
    tokenizer.padding_side = "left"
    return model.to(device), tokenizer


def build_value_model(policy: Any) -> Any:
    """The policy's body (deep copy, so the two train separately) plus a zero-initialised
    linear head, as a ``torch.nn.Module`` with a ``values(...)`` method."""
    import copy

    import torch

    class _Critic(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = copy.deepcopy(policy.get_decoder())
            self.head = torch.nn.Linear(policy.config.hidden_size, 1)
            torch.nn.init.zeros_(self.head.weight)
            torch.nn.init.zeros_(self.head.bias)

        def values(
            self,
            prompt_ids: torch.Tensor,
            prompt_mask: torch.Tensor,
            completion_ids: torch.Tensor,
            completion_mask: torch.Tensor,
        ) -> torch.Tensor:  # (N, Lc)
            ids = torch.cat([prompt_ids, completion_ids], dim=1)
            mask = torch.cat([prompt_mask, completion_mask], dim=1)
            positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
            hidden = self.body(
                input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False
            ).last_hidden_state  # (N, Lp + Lc, H)
            lc = completion_ids.shape[1]
            return self.head(hidden[:, -lc - 1 : -1, :]).squeeze(-1).float()

    return _Critic().to(next(policy.parameters()).device)
