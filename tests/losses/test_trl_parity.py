"""Parity with TRL 1.16: the same batch through TRL's own code and through ours.

TRL's advantages live inline in ``_generate_and_score_completions`` and its loss in
``_compute_loss``; neither is a standalone function, so each test builds a real trainer around
a tiny randomly initialised Qwen2 and a character-level tokenizer (nothing is downloaded),
replaces only the text generation (``_generate``) with fixed completions, and then calls TRL's
``_generate_and_score_completions`` (rewards -> advantages, reference log-probs) and
``_compute_loss`` (the loss, backpropagated into the model). Our side computes per-token
log-probs from a deep copy of the same model with a plain forward pass and feeds them to
:func:`policy_loss`. Losses, advantages and every parameter gradient must agree to 1e-5.

Two things are set on the trainer after construction rather than through its config: the
reference model (a config with ``beta > 0`` would try to load one from the Hub by name) and
``current_gradient_accumulation_steps`` (set by TRL's training loop, which we do not run).
"""

from __future__ import annotations

import copy
import tempfile
from functools import partial

import pytest
import torch

trl = pytest.importorskip("trl")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")
datasets = pytest.importorskip("datasets")
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

from rlworks.losses.llm import (  # noqa: E402
    clipped_sequence_surrogate,
    constant_sum,
    kl_k1,
    kl_k3,
    kl_penalised_rewards,
    policy_loss,
    seq_mean_token_mean,
)
from rlworks.returns.group import ADVANTAGES  # noqa: E402

TOL = 1e-5
P, G = 2, 4
PROMPT_IDS = [[2, 3], [4, 5]]  # equal lengths: no left padding, so positions agree trivially
COMPLETION_IDS = [  # eos = 1; right-padded by TRL to T = 5
    [6, 7, 1],
    [8, 1],
    [2, 3, 4, 5, 1],
    [9],
    [3, 1],
    [4, 4, 4, 1],
    [5],
    [6, 7, 8, 9, 1],
]
REWARDS = [1.0, 0.0, 0.0, 1.0, 0.5, None, 1.0, 0.0]  # None: a failed reward -> NaN, advantage 0
MAX_COMPLETION_LENGTH = 6  # > T, so Dr. GRPO's divisor differs from B * T


def _tokenizer():
    vocab = {"<pad>": 0, "<eos>": 1, **{c: i + 2 for i, c in enumerate("abcdefgh")}}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="<pad>"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Split("", "isolated")
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>"
    )


def _tiny_qwen(seed: int):
    config = transformers.Qwen2Config(
        vocab_size=10,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=32,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=1,
    )
    torch.manual_seed(seed)
    return transformers.Qwen2ForCausalLM(config).float()


def _reward(completions, **_):
    return REWARDS[: len(completions)]


def _fake_generate(tok, n_returned: int):
    def generate(prompts):
        prompt_ids = [PROMPT_IDS[0] if p == "ab" else PROMPT_IDS[1] for p in prompts]
        texts = [tok.decode(c) for c in COMPLETION_IDS]
        if n_returned == 3:  # RLOOTrainer._generate
            return prompt_ids, COMPLETION_IDS, texts
        return prompt_ids, COMPLETION_IDS, None, texts, None, {}, None, None  # GRPOTrainer

    return generate


def _our_logps(model, batch, temperature: float) -> torch.Tensor:  # -> (B, T)
    """Per-token log-probs of the completion tokens from a plain forward pass."""
    ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
    attn = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
    t = batch["completion_ids"].shape[1]
    logits = model(input_ids=ids, attention_mask=attn).logits[:, -t - 1 : -1] / temperature
    logp = torch.log_softmax(logits.float(), dim=-1)  # (B, T, V)
    return logp.gather(-1, batch["completion_ids"][..., None]).squeeze(-1)


def _old_logps(logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """A fixed perturbation of the current log-probs, large enough that some ratios clip."""
    gen = torch.Generator().manual_seed(7)
    noise = 0.3 * torch.randn(logp.shape, generator=gen)
    return ((logp.detach() + noise) * mask).detach()


def _setup(trainer_cls, config_cls, *, beta: float, temperature: float, **config):
    tok = _tokenizer()
    policy, ref = _tiny_qwen(0), _tiny_qwen(1)
    ours, ours_ref = copy.deepcopy(policy), copy.deepcopy(ref)
    args = config_cls(
        output_dir=tempfile.mkdtemp(),
        per_device_train_batch_size=P * G,
        num_generations=G,
        max_completion_length=MAX_COMPLETION_LENGTH,
        temperature=temperature,
        beta=0.0,
        report_to="none",
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        **config,
    )
    dataset = datasets.Dataset.from_dict({"prompt": ["ab", "cd"]})
    trainer = trainer_cls(
        model=policy, reward_funcs=_reward, args=args, train_dataset=dataset, processing_class=tok
    )
    trainer.current_gradient_accumulation_steps = 1
    trainer._generate = _fake_generate(tok, 3 if trainer_cls is trl.RLOOTrainer else 8)
    if beta:
        trl.trainer.utils.add_fused_lm_head(ref, temperature=temperature)
        trainer.ref_model, trainer.beta = ref.eval(), beta
    inputs = [{"prompt": "ab"}] * G + [{"prompt": "cd"}] * G
    batch = trainer._generate_and_score_completions(inputs)
    return trainer, policy, ours, ours_ref, batch


def _max_grad_diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    diffs = []
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert (pa.grad is None) == (pb.grad is None), name
        if pa.grad is not None:
            diffs.append((pa.grad - pb.grad).abs().max().item())
    return max(diffs)


GRPO_CASES = {
    # name: (TRL config, our advantage estimator, our aggregation, beta, bias-corrected KL, temp)
    "grpo": (dict(loss_type="grpo", scale_rewards="group"), "grpo", seq_mean_token_mean, 0.0,
             False, 1.0),
    "grpo_kl_k3": (dict(loss_type="grpo", scale_rewards="group", use_bias_correction_kl=False,
                        epsilon_high=0.28), "grpo", seq_mean_token_mean, 0.1, False, 0.7),
    "grpo_kl_k3_is": (dict(loss_type="grpo", scale_rewards="group", use_bias_correction_kl=True),
                      "grpo", seq_mean_token_mean, 0.1, True, 1.0),
    "dr_grpo": (dict(loss_type="dr_grpo", scale_rewards="none"), "dr_grpo",
                partial(constant_sum, max_tokens=MAX_COMPLETION_LENGTH), 0.0, False, 1.0),
    "dr_grpo_kl_k3": (dict(loss_type="dr_grpo", scale_rewards=False, use_bias_correction_kl=False),
                      "dr_grpo", partial(constant_sum, max_tokens=MAX_COMPLETION_LENGTH), 0.05,
                      False, 1.0),
}  # fmt: skip


@pytest.mark.parametrize("case", list(GRPO_CASES))
def test_grpo_family_matches_trl(case):
    trl_config, estimator, aggregate, beta, is_kl, temperature = GRPO_CASES[case]
    trainer, policy, ours, ours_ref, batch = _setup(
        trl.GRPOTrainer, trl.GRPOConfig, beta=beta, temperature=temperature, **trl_config
    )
    mask = batch["completion_mask"]

    # Advantages: TRL's, computed inside _generate_and_score_completions, against ours.
    rewards = torch.tensor([float("nan") if r is None else r for r in REWARDS]).view(P, G)
    advantages = ADVANTAGES.get(estimator)(rewards).reshape(-1)
    torch.testing.assert_close(advantages, batch["advantages"], atol=TOL, rtol=0)

    logp = _our_logps(ours, batch, temperature)
    old = _old_logps(logp, mask)
    batch["old_per_token_logps"] = old
    ref_logp = None
    if beta:
        with torch.no_grad():
            ref_logp = _our_logps(ours_ref, batch, temperature)
        torch.testing.assert_close(ref_logp * mask, batch["ref_per_token_logps"] * mask)

    trl_loss = trainer._compute_loss(policy, batch)
    trl_loss.backward()
    terms = policy_loss(
        logp, old, ref_logp, advantages, mask,
        clip_eps_low=trainer.epsilon_low, clip_eps_high=trainer.epsilon_high, beta=beta,
        kl_estimator=kl_k3, aggregate=aggregate, kl_importance_weighted=is_kl,
    )  # fmt: skip
    terms.loss.backward()

    assert terms.clip_frac_low + terms.clip_frac_high > 0.0  # the batch does exercise the clip
    assert abs(terms.loss.item() - trl_loss.item()) < TOL
    assert _max_grad_diff(policy, ours) < TOL


def test_rloo_matches_trl():
    """TRL's RLOOTrainer: k1 KL summed per sequence in the reward, a sequence-level ratio."""
    beta = 0.05
    trainer, policy, ours, ours_ref, batch = _setup(
        trl.RLOOTrainer, trl.RLOOConfig, beta=beta, temperature=1.0, epsilon=0.2
    )
    mask = batch["completion_mask"]
    with torch.no_grad():
        sampled_logp = _our_logps(ours, batch, 1.0)  # what TRL used for the KL in the reward
        ref_logp = _our_logps(ours_ref, batch, 1.0)
    rewards = torch.tensor([float("nan") if r is None else r for r in REWARDS])
    rewards = kl_penalised_rewards(rewards, sampled_logp, ref_logp, mask, beta, kl_k1)
    advantages = ADVANTAGES.get("rloo")(rewards.view(P, G)).reshape(-1)
    torch.testing.assert_close(advantages, batch["advantages"], atol=TOL, rtol=0)

    logp = _our_logps(ours, batch, 1.0)
    old = _old_logps(logp, mask)
    batch["old_logps"] = old.sum(-1)
    trl_loss = trainer._compute_loss(policy, batch)
    trl_loss.backward()
    terms = policy_loss(
        logp, old, None, advantages, mask, clip_eps_low=0.2, clip_eps_high=0.2, beta=0.0,
        aggregate=seq_mean_token_mean, surrogate=clipped_sequence_surrogate,
    )  # fmt: skip
    terms.loss.backward()

    assert terms.clip_frac_low + terms.clip_frac_high > 0.0
    assert abs(terms.loss.item() - trl_loss.item()) < TOL
    assert _max_grad_diff(policy, ours) < TOL
