"""The fast KV-cached forward reproduces the Hugging Face forward of the same weights."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from rlworks.core.errors import UserError  # noqa: E402
from rlworks.llm.fast import FastDecoder, unsupported  # noqa: E402
from rlworks.llm.generate import SamplingConfig, generate  # noqa: E402
from rlworks.llm.model import TinyLMConfig, build_tinylm  # noqa: E402

MHA = TinyLMConfig(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=4,
                   intermediate_size=128)
GQA = TinyLMConfig(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2,
                   intermediate_size=128, tie_embeddings=False)
PROMPTS = ["12+34=?\n", "7*8=?\n", "sort 5 1 3 9 2\n"]


def qwen2_with_biases(tok):
    """A Qwen2 model (q/k/v biases, GQA, untied head) with random, non-zero biases."""
    cfg = transformers.Qwen2Config(
        vocab_size=len(tok), hidden_size=64, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        tie_word_embeddings=False, pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
    )
    torch.manual_seed(0)
    model = transformers.Qwen2ForCausalLM(cfg).eval()
    with torch.no_grad():
        for layer in model.model.layers:
            for lin in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                lin.bias.normal_(0.0, 0.5)
    return model


def models():
    out = []
    for cfg in (MHA, GQA):
        model, tok = build_tinylm(cfg, seed=3)
        out.append((model.eval(), tok))
    out.append((qwen2_with_biases(out[0][1]), out[0][1]))
    return out


@pytest.mark.parametrize("which", [0, 1, 2], ids=["llama-mha", "llama-gqa-untied", "qwen2-bias"])
def test_prefill_and_steps_equal_the_hf_forward_on_the_whole_sequence(which):
    model, tok = models()[which]
    assert unsupported(model) is None
    enc = tok(PROMPTS, padding=True, return_tensors="pt")  # left-padded, different lengths
    ids, mask = enc["input_ids"], enc["attention_mask"]
    assert not bool(mask.all()), "the prompts must need padding for this test to mean much"
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    rng = torch.Generator().manual_seed(0)
    new = torch.randint(4, len(tok), (len(PROMPTS), 6), generator=rng)
    with torch.no_grad():
        dec = FastDecoder(model, len(PROMPTS), ids.shape[1] + new.shape[1])
        fast = [dec.prefill(ids, mask, positions)]
        pos = positions[:, -1] + 1
        for t in range(new.shape[1]):
            fast.append(dec.step(new[:, t], pos))
            pos = pos + 1
        # reference: one HF forward over prompt + the appended tokens, no cache
        full = torch.cat([ids, new], 1)
        full_mask = torch.cat([mask, torch.ones_like(new)], 1)
        ref = model(input_ids=full, attention_mask=full_mask,
                    position_ids=(full_mask.cumsum(1) - 1).clamp(min=0)).logits
    lp = ids.shape[1]
    for t, logits in enumerate(fast):
        torch.testing.assert_close(logits, ref[:, lp - 1 + t], atol=1e-5, rtol=1e-5)
        assert torch.isfinite(logits).all()


def test_generate_samples_the_same_tokens_with_and_without_the_fast_path():
    model, tok = models()[1]
    sampling = SamplingConfig(temperature=1.0, top_p=0.95, max_new_tokens=24)
    runs = []
    for fast in (False, True):
        gen = torch.Generator().manual_seed(7)
        runs.append(generate(model, tok, PROMPTS, 4, sampling, gen, fast=fast))
    slow, quick = runs
    assert torch.equal(slow.completion_ids, quick.completion_ids)
    assert torch.equal(slow.completion_mask, quick.completion_mask)
    torch.testing.assert_close(slow.logprobs, quick.logprobs, atol=1e-5, rtol=1e-5)
    assert slow.completions == quick.completions


def test_lora_wrapped_model_falls_back_and_fast_true_is_a_clear_error():
    peft = pytest.importorskip("peft")
    model, tok = build_tinylm(MHA, seed=0)
    lora = peft.get_peft_model(
        model, peft.LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"])
    )
    # peft wraps the model too; the fast path is told the base causal LM
    inner = lora.get_base_model()
    assert "layer type" in (unsupported(inner) or "")
    sampling = SamplingConfig(max_new_tokens=4)
    roll = generate(inner, tok, PROMPTS[:1], 2, sampling, torch.Generator().manual_seed(0))
    assert roll.completion_ids.shape[0] == 2
    with pytest.raises(UserError, match="fast decoding cannot run this model"):
        generate(inner, tok, PROMPTS[:1], 2, sampling, torch.Generator().manual_seed(0),
                 fast=True)


def test_capacity_is_enforced():
    model, tok = models()[0]
    enc = tok(PROMPTS[:1], return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    with torch.no_grad():
        dec = FastDecoder(model, 1, ids.shape[1] + 1)
        dec.prefill(ids, mask, (mask.cumsum(1) - 1))
        dec.step(torch.tensor([5]), torch.tensor([ids.shape[1]]))
        with pytest.raises(RuntimeError, match="capacity"):
            dec.step(torch.tensor([5]), torch.tensor([ids.shape[1] + 1]))
