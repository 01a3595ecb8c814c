"""Every offline learner and preset: a smoke run, exact resume through a checkpoint, the
Learner protocol, preset hygiene, and its dataset plumbing (normalisation, action scaling)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import rlworks.algos.offline  # noqa: F401  (registers)
from rlworks.algos.offline import OFFLINE_ALGOS
from rlworks.algos.offline.configs import IQLConfig
from rlworks.core.config import config_from_dict
from rlworks.core.errors import UserError
from rlworks.core.learner import Learner
from rlworks.core.registry import ALGORITHMS
from rlworks.track.checkpoint import load_checkpoint, save_checkpoint

ALGOS = sorted(OFFLINE_ALGOS)
TINY = {"total_steps": 80, "steps_per_iter": 20, "batch_size": 32, "hidden_sizes": (16, 16)}


def make(algo: str, dataset: str, **extra):
    spec = ALGORITHMS.get(algo)
    cfg = config_from_dict(spec.config_class(), {**dict(spec.overrides), "dataset": dataset,
                                                 **TINY, **extra})
    return spec.learner_class()(cfg)


def flat_tensors(state, prefix=""):
    out = {}
    if isinstance(state, dict):
        for k, v in state.items():
            out |= flat_tensors(v, f"{prefix}/{k}")
    elif isinstance(state, list | tuple):
        for i, v in enumerate(state):
            out |= flat_tensors(v, f"{prefix}/{i}")
    elif isinstance(state, torch.Tensor | np.ndarray):
        out[prefix] = torch.as_tensor(np.asarray(state))
    else:
        out[prefix] = state
    return out


@pytest.mark.parametrize("algo", ALGOS)
def test_smoke_run_satisfies_the_learner_protocol(algo, pendulum_path):
    learner = make(algo, pendulum_path)
    assert isinstance(learner, Learner)
    assert learner.env_id == "Pendulum-v1"  # from the dataset's metadata
    assert learner.reference_scores == {"random": -1200.0, "expert": -150.0}
    metrics = learner.iterate()
    assert learner.global_step == 20
    assert metrics and all(k.startswith("train/") for k in metrics)
    assert all(np.isfinite(v) for v in metrics.values()), metrics
    obs = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    for deterministic in (True, False):
        actions = learner.act(obs, deterministic=deterministic)
        assert actions.shape == (5, 1) and np.all(np.abs(actions) <= 2.0)
    np.testing.assert_array_equal(learner.act(obs), learner.act(obs))
    learner.close()


@pytest.mark.parametrize("algo", ALGOS)
def test_resume_through_a_checkpoint_is_bit_identical(algo, pendulum_path, tmp_path):
    straight = make(algo, pendulum_path)
    for _ in range(4):
        last = straight.iterate()

    first = make(algo, pendulum_path)
    first.iterate()
    first.iterate()
    save_checkpoint(tmp_path, first.global_step, first.state_dict())
    step, state, _ = load_checkpoint(tmp_path / f"step_{first.global_step:012d}.json")
    resumed = make(algo, pendulum_path)
    resumed.load_state_dict(state)
    assert resumed.global_step == step == 40
    resumed.iterate()
    got = resumed.iterate()

    assert got == last
    a, b = flat_tensors(straight.state_dict()), flat_tensors(resumed.state_dict())
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], torch.Tensor):
            assert torch.equal(a[key], b[key]), key
        else:
            assert a[key] == b[key], key


@pytest.mark.parametrize("algo", ["iql", "cql"])
def test_state_dict_round_trip_does_not_alias(algo, pendulum_path):
    learner = make(algo, pendulum_path)
    learner.iterate()
    state = learner.state_dict()
    before = flat_tensors(state)
    clone = make(algo, pendulum_path)
    clone.load_state_dict(state)
    clone.iterate()  # training the clone must not change the dict it was loaded from
    after = flat_tensors(state)
    assert all(torch.equal(before[k], after[k]) if isinstance(before[k], torch.Tensor)
               else before[k] == after[k] for k in before)


def test_a_changed_dataset_refuses_the_checkpoint(pendulum_path, tmp_path):
    from rlworks.data.formats import load_dataset, save_dataset

    learner = make("bc", pendulum_path)
    learner.iterate()
    state = learner.state_dict()
    ds = load_dataset(pendulum_path)
    other = tmp_path / "other.npz"
    save_dataset(dataclasses.replace(ds, rewards=ds.rewards + 1.0), other)
    with pytest.raises(UserError, match="differs from the one this checkpoint"):
        make("bc", str(other)).load_state_dict(state)


def test_riql_preset_differs_from_iql_only_in_its_declared_keys():
    spec = ALGORITHMS.get("riql")
    assert spec.config_class() is IQLConfig and ALGORITHMS.get("iql").overrides == ()
    base, preset = IQLConfig(), config_from_dict(IQLConfig, dict(spec.overrides))
    changed = {f.name for f in dataclasses.fields(IQLConfig)
               if getattr(base, f.name) != getattr(preset, f.name)}
    declared = {k for k, _ in spec.overrides}
    # huber_delta and q_quantile are declared to pin RIQL's values; they equal IQL's defaults
    assert changed == declared - {"huber_delta", "q_quantile"}
    assert preset.q_loss == "huber" and preset.q_aggregation == "quantile"
    assert preset.num_critics == 5 and preset.normalize_obs


def test_observation_normalisation_and_action_scaling(pendulum_path):
    from rlworks.data.formats import load_dataset

    ds = load_dataset(pendulum_path)
    learner = make("td3bc", pendulum_path)  # normalize_obs on by default
    data = learner.data
    obs = ds.observations.astype(np.float32)
    np.testing.assert_allclose(data.obs_mean, obs.mean(0), rtol=1e-6)
    np.testing.assert_allclose(data.obs_std, obs.std(0) + 1e-3, rtol=1e-6)
    table = data.table.numpy()
    np.testing.assert_allclose(table[:, :3], (obs - data.obs_mean) / data.obs_std, rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(table[:, 3], ds.actions[:, 0] / 2.0, atol=1e-6)  # [-2, 2] -> [-1, 1]
    np.testing.assert_array_equal(table[:, -1], ~ds.terminations)
    np.testing.assert_array_equal(data.to_env(torch.tensor([[1.0], [-1.0], [0.25]])),
                                  [[2.0], [-2.0], [0.5]])
    np.testing.assert_allclose(data.obs_tensor(ds.observations[:4]).numpy(), table[:4, :3],
                               rtol=1e-5, atol=1e-6)


def test_iql_reward_scaling_and_cosine_schedule(pendulum_path):
    from rlworks.data.formats import load_dataset

    returns = load_dataset(pendulum_path).episode_returns()
    learner = make("iql", pendulum_path)
    assert learner.data.reward_scale == pytest.approx(1000.0 / (returns.max() - returns.min()))
    assert learner.actor_lr(0) == pytest.approx(3e-4)
    assert learner.actor_lr(40) == pytest.approx(1.5e-4)  # half way through 80 steps
    assert learner.actor_lr(80) == pytest.approx(0.0, abs=1e-12)
    assert make("riql", pendulum_path).data.reward_scale == 1.0


def test_reweighting_samples_with_the_given_probabilities(pendulum_path, monkeypatch):
    import rlworks.algos.offline.common as common

    n = len(make("bc", pendulum_path).data.table)
    p = np.zeros(n)
    p[[3, 7]] = [0.25, 0.75]
    monkeypatch.setattr(common, "sampling_probabilities", lambda ds, spec: p)
    learner = make("bc", pendulum_path, reweight="anything", batch_size=4000)
    idx = learner.data.sample_indices(1).numpy().ravel()
    assert set(idx) == {3, 7}
    assert abs((idx == 7).mean() - 0.75) < 0.03


def test_squashed_sample_matches_torch_distributions():
    from torch.distributions import Normal, TanhTransform, TransformedDistribution

    from rlworks.algos.offline.cql import squashed_sample

    g = torch.Generator().manual_seed(0)
    mean, log_std = torch.randn(4, 2, generator=g), torch.randn(4, 2, generator=g) * 0.3
    noise = torch.randn(3, 4, 2, generator=g)  # (N, B, A) broadcast over the batch
    actions, logp = squashed_sample(mean, log_std, noise)
    dist = TransformedDistribution(Normal(mean, log_std.exp()), [TanhTransform()])
    expected = dist.log_prob(actions.clamp(-1 + 1e-6, 1 - 1e-6)).sum(-1)
    torch.testing.assert_close(actions, torch.tanh(mean + log_std.exp() * noise))
    torch.testing.assert_close(logp, expected, rtol=1e-3, atol=1e-3)


def test_cql_lagrange_variant_tunes_its_penalty_weight(pendulum_path):
    fixed = make("cql", pendulum_path)
    tuned = make("cql", pendulum_path, lagrange_threshold=10.0)
    m_fixed, m_tuned = fixed.iterate(), tuned.iterate()
    assert m_fixed["train/cql_weight"] == 5.0
    assert tuned.log_alpha_prime.item() != 0.0 and m_tuned["train/cql_weight"] != 5.0
    assert np.isfinite(list(m_tuned.values())).all()


@pytest.mark.parametrize("algo", ALGOS)
def test_every_config_field_is_documented(algo):
    from rlworks.core.config import field_docs

    cls = ALGORITHMS.get(algo).config_class()
    docs = field_docs(cls)
    missing = [f.name for f in dataclasses.fields(cls) if not docs.get(f.name)]
    assert not missing, missing
