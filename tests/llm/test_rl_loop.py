"""The RL post-training loop: every preset runs, runs repeat exactly, resume is exact, and bad
input is a one-line error. A tiny random TinyLM keeps these fast; rewards here are simple
callables so that advantages are non-zero from the first step."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from rlworks.algos.llm.configs import RLConfig  # noqa: E402
from rlworks.algos.llm.grpo import GRPOLearner  # noqa: E402
from rlworks.algos.llm.presets import PRESETS, preset_overrides  # noqa: E402
from rlworks.core.errors import UserError  # noqa: E402
from rlworks.llm.model import TinyLMConfig, build_tinylm, save_policy  # noqa: E402


def digit_share(prompts, completions, **_):
    """Share of digits in the completion: varies between samples of a random model."""
    return [sum(ch.isdigit() for ch in c) / max(1, len(c)) for c in completions]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.set_num_threads(1)
    model, tok = build_tinylm(
        TinyLMConfig(
            hidden_size=48, num_layers=2, num_heads=4, num_kv_heads=4, intermediate_size=96
        ),
        seed=0,
    )
    return save_policy(model, tok, tmp_path_factory.mktemp("m") / "tiny")


def _cfg(model_dir, **over):
    base = dict(
        model=str(model_dir),
        tasks="add:1-2",
        prompts_per_step=2,
        num_generations=4,
        max_new_tokens=16,
        torch_threads=1,
        eval_problems=4,
        eval_samples=2,
        pool_size=40,
        lr=1e-3,
    )
    return RLConfig(**{**base, **over})


def _learner(model_dir, **over):
    return GRPOLearner(_cfg(model_dir, **over), rewards={"digits": (digit_share, 1.0)})


def _numbers(metrics):
    return {k: v for k, v in metrics.items() if not k.startswith("perf/")}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_takes_steps_and_moves_the_weights(model_dir, preset):
    over = preset_overrides(preset)
    if preset == "grpo_filtered":
        over["difficulty_band"] = "0.0,1.0"  # digit_share is no accuracy: keep every group
    if preset == "expert_iteration":
        over["accept_threshold"] = 0.2  # imitate the digit-heavy samples
    learner = _learner(model_dir, **over)
    before = [p.detach().clone() for p in learner.model.parameters()]
    for _ in range(2):
        metrics = learner.iterate()
    assert learner.global_step == 2
    assert np.isfinite(metrics["train/loss"])
    moved = any(
        not torch.equal(a, b) for a, b in zip(before, learner.model.parameters(), strict=True)
    )
    assert moved, f"{preset}: no parameter changed in two steps"


def test_kl_to_the_reference_grows_once_the_policy_moves(model_dir):
    learner = _learner(model_dir, beta=0.1, kl_estimator="k3", num_iterations=1, minibatches=1)
    kls = [learner.iterate()["train/kl"] for _ in range(3)]
    assert kls[0] == pytest.approx(0.0, abs=1e-6)  # first minibatch: policy == reference
    assert kls[-1] > 0.0


def test_several_passes_move_the_importance_ratio(model_dir):
    one = _learner(model_dir, num_iterations=1, minibatches=1).iterate()
    two = _learner(model_dir, num_iterations=3, minibatches=1).iterate()
    assert one["train/ratio_mean"] == pytest.approx(1.0, abs=1e-5)
    assert abs(two["train/ratio_mean"] - 1.0) > 1e-4


def test_same_config_and_seed_give_identical_metrics(model_dir):
    a = _learner(model_dir)
    b = _learner(model_dir)
    for _ in range(3):
        assert _numbers(a.iterate()) == _numbers(b.iterate())


def test_resume_from_a_state_dict_continues_exactly(model_dir):
    from rlworks.track.checkpoint import flatten_state, unflatten_state

    whole = _learner(model_dir, sampler="dump")
    first = [_numbers(whole.iterate()) for _ in range(3)]
    part = _learner(model_dir, sampler="dump")
    part.iterate()
    arrays, skeleton = flatten_state(part.state_dict())  # as a checkpoint stores it
    resumed = _learner(model_dir, sampler="dump")
    resumed.load_state_dict(unflatten_state(arrays, skeleton))
    assert [_numbers(resumed.iterate()) for _ in range(2)] == first[1:]


def test_a_reward_function_that_raises_masks_the_sample_and_training_goes_on(model_dir):
    def flaky(prompts, completions, **_):
        if len(completions) > 1:
            raise RuntimeError("batch call fails")  # per-sample retry isolates the bad ones
        return [None if "7" in completions[0] else 1.0 / (1 + len(completions[0]))]

    def boom(prompts, completions, **_):
        if any("1" in c for c in completions):
            raise ValueError("cannot score")
        return [0.5] * len(completions)

    learner = GRPOLearner(_cfg(model_dir), rewards={"flaky": (flaky, 1.0), "boom": (boom, 1.0)})
    for _ in range(2):
        metrics = learner.iterate()
    assert np.isfinite(metrics["train/loss"])
    assert learner.rewards.errors["boom"] > 0


def test_wrong_length_reward_is_a_user_error(model_dir):
    learner = GRPOLearner(_cfg(model_dir), rewards={"short": (lambda p, c, **_: [1.0], 1.0)})
    with pytest.raises(UserError, match="short"):
        learner.iterate()


def test_missing_model_directory_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        GRPOLearner(RLConfig(model=str(tmp_path / "nope")))


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_differ_from_the_base_only_in_their_declared_keys(name):
    base = RLConfig(model="m")
    fields = {f.name for f in dataclasses.fields(RLConfig)}
    over = preset_overrides(name)
    assert set(over) <= fields
    cfg = dataclasses.replace(base, **over)
    changed = {k for k in fields if getattr(cfg, k) != getattr(base, k)}
    assert changed == set(over), f"{name} declares keys it does not change"


def test_config_errors_name_the_field():
    with pytest.raises(UserError, match="num_generations"):
        RLConfig(advantage="grpo", num_generations=1)
    with pytest.raises(UserError, match="difficulty_band"):
        RLConfig(difficulty_band="0.8,0.2")
    with pytest.raises(UserError, match="minibatches"):
        RLConfig(prompts_per_step=3, num_generations=3, minibatches=2)


def test_ppo_and_epoch_sampler_resume_exactly(model_dir):
    from rlworks.track.checkpoint import flatten_state, unflatten_state

    over = dict(advantage="gae", sampler="epochs", pool_size=6)
    whole = _learner(model_dir, **over)
    first = [_numbers(whole.iterate()) for _ in range(3)]
    assert "train/value_loss" in first[0]
    part = _learner(model_dir, **over)
    part.iterate()
    arrays, skeleton = flatten_state(part.state_dict())
    resumed = _learner(model_dir, **over)
    resumed.load_state_dict(unflatten_state(arrays, skeleton))
    assert [_numbers(resumed.iterate()) for _ in range(2)] == first[1:]
    assert resumed.trajectories == whole.trajectories


def test_epoch_sampler_visits_every_problem_once_per_epoch(model_dir):
    learner = _learner(model_dir, sampler="epochs", pool_size=6, prompts_per_step=2)
    for _ in range(6):  # 3 steps per epoch -> 2 epochs
        learner.iterate()
    ids = {p.id for p in learner.pool.problems}
    assert set(learner.trajectories) == ids
    assert all(len(v) == 2 for v in learner.trajectories.values())


def test_pool_file_restricts_the_pool(model_dir, tmp_path):
    import json

    full = _learner(model_dir, pool_size=10)
    keep = [p.id for p in full.pool.problems[:3]]
    (tmp_path / "ids.json").write_text(json.dumps({"ids": keep}))
    learner = _learner(model_dir, pool_size=10, pool_file=str(tmp_path / "ids.json"))
    assert [p.id for p in learner.pool.problems] == keep
    (tmp_path / "bad.json").write_text(json.dumps(["nope"]))
    with pytest.raises(UserError, match="none of the 1 problem ids"):
        _learner(model_dir, pool_size=10, pool_file=str(tmp_path / "bad.json"))


def test_lora_trains_only_adapters_and_saves_a_plain_model(model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    from rlworks.algos.llm.batch import merged_model
    from rlworks.llm.model import save_policy

    learner = _learner(model_dir, lora_rank=4)
    trainable = [n for n, p in learner.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    base = {
        n: p.detach().clone() for n, p in learner.model.named_parameters() if not p.requires_grad
    }
    learner.iterate()
    learner.iterate()
    assert all(torch.equal(p, base[n]) for n, p in learner.model.named_parameters() if n in base)
    path = save_policy(merged_model(learner.model), learner.tokenizer, tmp_path / "lora")
    plain = AutoModelForCausalLM.from_pretrained(path)
    ids = learner.tokenizer(["12+3=?\n"], return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(
            plain(**ids).logits, learner.model(**ids).logits, atol=1e-5, rtol=1e-5
        )


@pytest.mark.parametrize("scale_logits", [True, False])
def test_first_pass_ratio_is_one_with_and_without_temperature_scaling(model_dir, scale_logits):
    metrics = _learner(
        model_dir, temperature=0.7, scale_logits=scale_logits, num_iterations=1, minibatches=1
    ).iterate()
    assert metrics["train/ratio_mean"] == pytest.approx(1.0, abs=1e-5)


def test_generated_accuracy_counts_every_sample_by_source_by_hand():
    from types import SimpleNamespace

    from rlworks.algos.llm.batch import generated_accuracy

    a, b = SimpleNamespace(source="add/d1"), SimpleNamespace(source="add/d3")
    parts = [
        {"problems": [a, b], "correct": np.array([[1.0, 1.0, 0.0], [0.0, np.nan, 0.0]])},
        {"problems": [b], "correct": np.array([[1.0, 0.0, 0.0]])},
    ]
    m = generated_accuracy(parts)
    # add/d1: 2 of 3; add/d3: 1 of 5 (one NaN verdict left out); all: 3 of 8
    assert m["rollout/gen_correct/add/d1"] == 2.0 and m["rollout/gen_n/add/d1"] == 3.0
    assert m["rollout/gen_correct/add/d3"] == 1.0 and m["rollout/gen_n/add/d3"] == 5.0
    assert m["rollout/gen_accuracy"] == pytest.approx(3 / 8)
    assert generated_accuracy([{"problems": [a], "correct": np.full((1, 3), np.nan)}]) == {}


def test_filtered_step_reports_every_generated_sample(model_dir):
    # A random model answers nothing right: the band drops every group, yet the generated
    # samples (up to max_rounds refills) are all counted, by source.
    learner = GRPOLearner(
        _cfg(model_dir, difficulty_band="0.25,0.75", max_rounds=2, rewards="correct:1.0")
    )
    metrics = learner.iterate()
    counted = sum(v for k, v in metrics.items() if k.startswith("rollout/gen_n/"))
    assert counted == learner.samples_seen > 0
    assert metrics["rollout/gen_accuracy"] == 0.0
    assert metrics.get("train/skipped") == 1.0
