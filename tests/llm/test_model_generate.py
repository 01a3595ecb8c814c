"""TinyLM, its tokenizer, checkpoint loading through plain transformers, and generation."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from rlworks.core.errors import UserError  # noqa: E402
from rlworks.llm.generate import (  # noqa: E402
    SamplingConfig,
    filter_logits,
    generate,
    sequence_logprobs,
)
from rlworks.llm.model import (  # noqa: E402
    TinyLMConfig,
    build_tinylm,
    count_parameters,
    load_policy,
    save_policy,
)
from rlworks.llm.tokenizer import TAGS, build_char_tokenizer, check_policy_tokenizer  # noqa: E402

SMALL = TinyLMConfig(
    hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=128
)
PROMPTS = ["12+34=?\n", "7*8=?\n", "sort 5 1 3\n"]


@pytest.fixture(scope="module")
def small():
    return build_tinylm(SMALL, seed=0)


def test_tokenizer_tags_are_single_tokens_and_text_round_trips():
    tok = build_char_tokenizer()
    for tag in TAGS:
        assert len(tok.encode(tag, add_special_tokens=False)) == 1
    text = "12+34=?\n<think>2+4+0=6\ncarry 0</think><answer>46</answer>"
    ids = tok(text)["input_ids"]
    assert ids[0] == tok.bos_token_id
    # 57 characters, 32 of them in the four tags -> 25 + 4 tokens, plus bos
    assert len(ids) == 30
    assert tok.decode(ids, skip_special_tokens=True) == text


def test_tokenizer_loads_back_with_auto_tokenizer(tmp_path):
    from transformers import AutoTokenizer

    tok = build_char_tokenizer()
    tok.save_pretrained(tmp_path)
    back = AutoTokenizer.from_pretrained(tmp_path)
    text = "<think>9*9=81</think><answer>81</answer>"
    assert back(text)["input_ids"] == tok(text)["input_ids"]
    assert back.padding_side == "left" and back.pad_token_id == tok.pad_token_id


def test_tokenizer_without_answer_tags_is_a_one_line_error():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<eos>": 1, **{c: i + 2 for i, c in enumerate("0123456789")}}
    raw = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    tok = PreTrainedTokenizerFast(
        tokenizer_object=raw, unk_token="<unk>", eos_token="<eos>", pad_token="<eos>"
    )
    with pytest.raises(UserError, match="cannot write the answer tag '<think>'") as err:
        check_policy_tokenizer(tok, where="the tokenizer at 'x'")
    assert "\n" not in str(err.value)


def test_tinylm_default_size_is_in_the_issue_range():
    model, _ = build_tinylm(TinyLMConfig(), seed=0)
    assert 1_000_000 <= count_parameters(model) <= 20_000_000


def test_build_is_a_function_of_the_seed_and_leaves_global_rng_alone(small):
    state = torch.random.get_rng_state()
    again, _ = build_tinylm(SMALL, seed=0)
    other, _ = build_tinylm(SMALL, seed=1)
    assert torch.equal(torch.random.get_rng_state(), state)
    a, b, c = (dict(m.named_parameters()) for m in (small[0], again, other))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_saved_policy_loads_with_plain_transformers(small, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tok = small
    path = save_policy(model, tok, tmp_path / "ckpt", {"note": "test"})
    plain = AutoModelForCausalLM.from_pretrained(path)
    plain_tok = AutoTokenizer.from_pretrained(path)
    # The model directory's config.json must not make AutoTokenizer swap in another class
    # (it does for model_type qwen2), so the tokenization is the char tokenizer's exactly.
    text = "12+34=?\n<think>4+2+0=6\n</think><answer>46</answer>"
    assert plain_tok(text)["input_ids"] == tok(text)["input_ids"]
    ids = plain_tok(PROMPTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        want = model(**ids).logits
        got = plain(**ids).logits
    torch.testing.assert_close(got, want)
    ours, _ = load_policy(path)
    with torch.no_grad():
        torch.testing.assert_close(ours(**ids).logits, want)


def test_load_policy_errors_name_the_path(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_policy(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no config.json"):
        load_policy(tmp_path / "empty")


def test_greedy_generation_matches_transformers_generate(small):
    """Our KV-cache loop against Hugging Face's own ``generate`` (an independent reference)."""
    model, tok = small
    sampling = SamplingConfig(temperature=0.0, max_new_tokens=12, stop_strings=())
    ours = generate(model, tok, PROMPTS, 1, sampling)
    enc = tok(PROMPTS, padding=True, return_tensors="pt")
    ref = model.generate(
        **enc,
        do_sample=False,
        max_new_tokens=12,
        min_new_tokens=12,
        pad_token_id=tok.pad_token_id,
        eos_token_id=None,
    )
    new = ref[:, enc["input_ids"].shape[1] :]
    assert ours.completion_ids.shape == new.shape
    assert torch.equal(ours.completion_ids, new)


def test_sampled_logprobs_equal_a_full_forward_and_padding_is_masked(small):
    model, tok = small
    gen = torch.Generator().manual_seed(0)
    roll = generate(model, tok, PROMPTS, 4, SamplingConfig(max_new_tokens=30, temperature=0.7), gen)
    assert roll.completion_ids.shape[0] == 12
    assert roll.prompt_index.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    full = sequence_logprobs(
        model,
        roll.prompt_ids,
        roll.prompt_mask,
        roll.completion_ids,
        roll.completion_mask,
        temperature=0.7,
    )
    torch.testing.assert_close(full, roll.logprobs, atol=1e-5, rtol=1e-5)
    pad = roll.completion_mask == 0
    assert torch.all(roll.completion_ids[pad] == tok.pad_token_id)
    assert torch.all(roll.logprobs[pad] == 0)
    # a row that stopped has its stop token as its last masked-in token
    for i in range(12):
        n = int(roll.lengths[i])
        if not roll.truncated[i]:
            assert int(roll.completion_ids[i, n - 1]) in {
                tok.eos_token_id,
                tok.convert_tokens_to_ids("</answer>"),
            }
        else:
            assert n == 30


def test_sampling_is_reproducible_from_the_generator(small):
    model, tok = small
    cfg = SamplingConfig(max_new_tokens=20)
    a = generate(model, tok, PROMPTS, 2, cfg, torch.Generator().manual_seed(5))
    b = generate(model, tok, PROMPTS, 2, cfg, torch.Generator().manual_seed(5))
    c = generate(model, tok, PROMPTS, 2, cfg, torch.Generator().manual_seed(6))
    assert a.completions == b.completions
    assert a.completions != c.completions


def test_top_k_one_is_greedy(small):
    model, tok = small
    greedy = generate(model, tok, PROMPTS, 1, SamplingConfig(temperature=0.0, max_new_tokens=15))
    topk = generate(
        model,
        tok,
        PROMPTS,
        1,
        SamplingConfig(top_k=1, max_new_tokens=15),
        torch.Generator().manual_seed(0),
    )
    assert torch.equal(greedy.completion_ids, topk.completion_ids)


def test_filter_logits_by_hand():
    # probabilities 0.5, 0.3, 0.15, 0.05 (log of them as logits)
    logits = torch.log(torch.tensor([[0.15, 0.5, 0.05, 0.3]]))
    # top_p = 0.8: mass before each token in sorted order is 0, 0.5, 0.8, 0.95 -> keep the
    # tokens with 0 and 0.5 before them (0.5 and 0.3); 0.15 has 0.8 >= 0.8 before it: dropped
    kept = torch.isfinite(filter_logits(logits, 0, 0.8))
    assert kept.tolist() == [[False, True, False, True]]
    kept = torch.isfinite(filter_logits(logits, 3, 1.0))
    assert kept.tolist() == [[True, True, False, True]]


def test_empty_prompt_set_and_bad_sampling_are_user_errors(small):
    model, tok = small
    with pytest.raises(UserError, match="prompt set is empty"):
        generate(model, tok, [], 2)
    with pytest.raises(UserError, match="top_p"):
        SamplingConfig(top_p=0.0)
