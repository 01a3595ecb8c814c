"""The character-level tokenizer of TinyLM, and the checks any policy tokenizer must pass.

TinyLM reads text one character at a time: digits stay single tokens (so column arithmetic
lines up), and the four ReasonGym tags are single tokens of their own, which halves the length
of a completion's markup and lets generation stop on one token id. The tokenizer is a
``tokenizers`` WordLevel model wrapped in ``transformers.PreTrainedTokenizerFast`` and saved with
``save_pretrained``, so ``AutoTokenizer.from_pretrained(dir)`` loads it like any checkpoint's.

Vocabulary (ids are fixed, so two builds give the same tokenizer): ``<pad> <bos> <eos> <unk>``,
the tags ``<think> </think> <answer> </answer>``, newline, then printable ASCII 32..126.
"""

from __future__ import annotations

from typing import Any

from rlworks.core.errors import UserError
from rlworks.llm.tasks.base import ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, THINK_OPEN

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
TAGS = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)
CHARS = "\n" + "".join(chr(c) for c in range(32, 127))


def char_vocab() -> dict[str, int]:
    """Token -> id: specials, tags, then characters (tag strings come before their letters)."""
    tokens = [PAD, BOS, EOS, UNK, *TAGS, *CHARS]
    return {tok: i for i, tok in enumerate(tokens)}


def build_char_tokenizer(model_max_length: int = 512) -> Any:
    """A ``PreTrainedTokenizerFast`` that splits text into the tags and single characters.

    Encoding prepends ``<bos>``; ``decode`` joins tokens without spaces. Padding is on the left
    (generation appends on the right, so every row's last prompt token sits at the same column).
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = char_vocab()
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tags = "|".join(t.replace("/", "\\/") for t in TAGS)
    # Each match (a tag, or any single character incl. newline) becomes its own piece.
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(f"{tags}|\\n|."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, vocab[BOS])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        padding_side="left",
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
    )


def check_policy_tokenizer(tokenizer: Any, where: str = "the tokenizer") -> None:
    """Raise a one-line :class:`UserError` unless ``tokenizer`` can write the answer tags and
    has the pad and eos tokens generation needs.

    A tag that does not survive ``decode(encode(tag))`` (it maps to an unknown token, or the
    tokenizer drops it) would make every completion unverifiable, so it is caught here, before
    any training starts.
    """
    for tag in TAGS:
        ids = tokenizer.encode(tag, add_special_tokens=False)
        back = tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        if back.strip() != tag or (
            tokenizer.unk_token_id is not None and tokenizer.unk_token_id in ids
        ):
            raise UserError(
                f"{where} cannot write the answer tag {tag!r} (it decodes to {back!r}); "
                f"add the tags with tokenizer.add_tokens({list(TAGS)}) and resize the "
                "model's embeddings, or use a tokenizer that has them"
            )
    if tokenizer.eos_token_id is None:
        raise UserError(f"{where} has no eos token; set tokenizer.eos_token before training")
    if tokenizer.pad_token_id is None:
        raise UserError(
            f"{where} has no pad token; set tokenizer.pad_token (e.g. to the eos token)"
        )
