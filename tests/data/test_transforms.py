"""Dataset transforms: RIQL corruption, trajectory weighting, mixing, proxy action labels.

Expected values are worked out by hand (the working is in the comments), not from the code
under test; statistical checks use tolerances computed from the sample size.
"""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlworks.core.errors import UserError
from rlworks.data.dataset import Dataset
from rlworks.data.transforms import (
    KINDS,
    RANDOM_REWARD_RANGE,
    ActionFree,
    CorruptionSpec,
    advantage_weights,
    concat_datasets,
    corrupt,
    corrupt_from_spec,
    fit_inverse_dynamics,
    label_actions,
    mix_datasets,
    parse_corruption_spec,
    parse_weights_spec,
    return_weights,
    split_action_free,
    weights_from_spec,
)

FIELD = {"observations": "observations", "actions": "actions", "rewards": "rewards",
         "dynamics": "next_observations"}
SIGMA_OBS = np.array([1.0, 2.0, 0.5])
SIGMA_ACT = np.array([0.25, 4.0])


def one_step_dataset(n=20_000):
    """``n`` one-step episodes. Column j alternates +sigma_j / -sigma_j, so its mean is 0 and its
    (population) std is exactly sigma_j; rewards alternate 1 / -2 (never 0)."""
    sign = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)[:, None]
    return Dataset.from_arrays(
        observations=(sign * SIGMA_OBS).astype(np.float64),
        actions=(sign * SIGMA_ACT).astype(np.float32),
        rewards=np.where(sign[:, 0] > 0, 1.0, -2.0).astype(np.float32),
        terminations=np.ones(n, bool),
        next_observations=(-sign * SIGMA_OBS).astype(np.float64),
        metadata={"env_id": "Toy-v0", "kind": "hand"},
    )


def linear_dynamics_dataset(episodes=40, length=50, seed=0):
    """s' = 0.9 s + B a with a ~ N(0, I): an IDM must learn a = B^+ (s' - 0.9 s)."""
    rng = np.random.default_rng(seed)
    b = rng.normal(size=(4, 2))
    obs, act, nxt, rew, trunc = [], [], [], [], []
    for _ in range(episodes):
        s = rng.normal(size=4)
        for t in range(length):
            a = rng.normal(size=2)
            s2 = 0.9 * s + b @ a
            obs.append(s)
            act.append(a)
            nxt.append(s2)
            rew.append(-float(s @ s))
            trunc.append(t == length - 1)
            s = s2
    return Dataset.from_arrays(
        np.array(obs, np.float32), np.array(act, np.float32), np.array(rew, np.float32),
        truncations=trunc, next_observations=np.array(nxt, np.float32),
        metadata={"env_id": "Linear-v0", "kind": "hand"},
    )


# ============================================================================ random corruption
@pytest.mark.parametrize("kind", KINDS)
def test_random_corruption_changes_exactly_round_rate_n_rows_of_one_field(kind):
    ds = one_step_dataset(1000)
    out = corrupt(ds, kind, rate=0.3, scale=1.0, seed=3)
    name = FIELD[kind]
    changed = (getattr(out, name) != getattr(ds, name)).reshape(len(ds), -1).any(axis=1)
    assert changed.sum() == 300  # round(0.3 * 1000), exactly
    np.testing.assert_array_equal(changed, out.infos[f"corrupted_{kind}"])
    for other in FIELD.values():
        if other != name:
            np.testing.assert_array_equal(getattr(out, other), getattr(ds, other))
    assert getattr(out, name).dtype == getattr(ds, name).dtype
    assert out.metadata["corruption"] == [{"kind": kind, "mode": "random", "rate": 0.3,
                                           "scale": 1.0, "seed": 3, "num_corrupted": 300}]
    assert out.metadata["env_id"] == "Toy-v0"
    assert len(ds.infos) == 0 and "corruption" not in ds.metadata  # the input is untouched


def test_rate_rounds_half_up_and_zero_rate_changes_nothing():
    ds = one_step_dataset(10)
    assert corrupt(ds, "actions", 0.25, 1.0).metadata["corruption"][0]["num_corrupted"] == 3
    out = corrupt(ds, "observations", 0.0, 1.0)
    np.testing.assert_array_equal(out.observations, ds.observations)
    assert "continuity" not in out.metadata


@pytest.mark.parametrize(("kind", "sigma"), [("observations", SIGMA_OBS), ("actions", SIGMA_ACT),
                                             ("dynamics", SIGMA_OBS)])
def test_random_noise_is_uniform_in_plus_minus_scale_times_std(kind, sigma):
    ds = one_step_dataset(20_000)
    scale = 0.7
    out = corrupt(ds, kind, rate=0.5, scale=scale, seed=1)
    rows = out.infos[f"corrupted_{kind}"]
    name = FIELD[kind]
    delta = getattr(out, name)[rows].astype(np.float64) - getattr(ds, name)[rows]
    u = (delta / (scale * sigma)).ravel()  # ~ U[-1, 1]: mean 0, var 1/3, E[u^4] = 1/5
    n = u.size
    tol = 1e-5 if kind == "actions" else 1e-12  # actions are stored as float32
    assert np.abs(u).max() <= 1 + tol
    assert abs(u.mean()) < 5 * math.sqrt((1 / 3) / n)
    # Var(u^2) = E[u^4] - E[u^2]^2 = 1/5 - 1/9 = 4/45; a Gaussian of std scale*std would give 1.
    assert abs((u**2).mean() - 1 / 3) < 5 * math.sqrt((4 / 45) / n)
    assert np.abs(u).max() > 0.99  # it fills the interval


def test_random_reward_corruption_replaces_with_uniform_30_scale():
    ds = one_step_dataset(20_000)
    scale = 0.5
    out = corrupt(ds, "rewards", rate=0.5, scale=scale, seed=2)
    r = out.rewards[out.infos["corrupted_rewards"]].astype(np.float64)
    half_width = RANDOM_REWARD_RANGE * scale  # U[-30 eps, 30 eps] = U[-15, 15]
    assert half_width == 15.0
    u = r / half_width
    assert np.abs(u).max() <= 1 + 1e-6
    assert abs(u.mean()) < 5 * math.sqrt((1 / 3) / u.size)
    assert abs((u**2).mean() - 1 / 3) < 5 * math.sqrt((4 / 45) / u.size)


def test_adversarial_reward_is_minus_scale_times_reward():
    ds = Dataset.from_arrays(np.zeros((4, 1), np.float32), np.zeros((4, 1), np.float32),
                             np.array([1.0, 2.0, 3.0, -4.0], np.float32),
                             terminations=np.ones(4, bool))
    out = corrupt(ds, "rewards", rate=0.5, scale=2.0, mode="adversarial", seed=0)
    mask = out.infos["corrupted_rewards"]
    assert mask.sum() == 2
    # r^ = -eps * r with eps = 2: 1 -> -2, 2 -> -4, 3 -> -6, -4 -> 8
    expected = np.where(mask, [-2.0, -4.0, -6.0, 8.0], [1.0, 2.0, 3.0, -4.0])
    np.testing.assert_array_equal(out.rewards, expected.astype(np.float32))


def test_same_seed_same_dataset_another_seed_differs():
    ds = one_step_dataset(500)
    a = corrupt_from_spec(ds, "dynamics:0.3:1.0,rewards:0.2:1.0", seed=7)
    b = corrupt_from_spec(ds, "dynamics:0.3:1.0,rewards:0.2:1.0", seed=7)
    c = corrupt_from_spec(ds, "dynamics:0.3:1.0,rewards:0.2:1.0", seed=8)
    assert a.content_hash() == b.content_hash() != c.content_hash()
    assert not np.array_equal(a.infos["corrupted_dynamics"], c.infos["corrupted_dynamics"])
    # A one-entry spec is the direct call.
    assert (corrupt_from_spec(ds, "actions:0.1:2", 4).content_hash()
            == corrupt(ds, "actions", 0.1, 2.0, seed=4).content_hash())


def test_observation_corruption_breaks_continuity_as_in_the_paper():
    ds = linear_dynamics_dataset(episodes=4, length=10)
    out = corrupt(ds, "states", rate=0.5, scale=1.0, seed=0)  # "states" is the paper's word
    np.testing.assert_array_equal(out.next_observations, ds.next_observations)  # s'_{t-1} kept
    assert out.metadata["continuity"] is False
    out.validate()  # the record says continuity is not expected, so validate() allows it
    unflagged = Dataset.from_arrays(
        **{k: getattr(out, k) for k in ("observations", "actions", "rewards", "terminations",
                                          "truncations", "next_observations")},
        check_continuity=False,
    )
    with pytest.raises(UserError, match="next_observations"):
        unflagged.validate(check_continuity=True)  # ... but it really is broken
    # Actions and rewards leave continuity alone.
    corrupt(ds, "actions", 0.5, 1.0).validate(check_continuity=True)


# ============================================================================ adversarial
W = torch.tensor([1.0, -2.0, 0.5])  # dQ/ds
V = torch.tensor([2.0, -1.0])  # dQ/da


def linear_q(obs, act):
    return obs @ W + act @ V


def test_adversarial_observations_move_against_the_gradient_inside_the_ball():
    ds = one_step_dataset(400)
    scale = 0.5
    out = corrupt(ds, "observations", 0.5, scale, mode="adversarial", seed=0, q_fn=linear_q)
    rows = out.infos["corrupted_observations"]
    delta = out.observations[rows] - ds.observations[rows]
    bound = scale * SIGMA_OBS
    assert np.all(np.abs(delta) <= bound + 1e-6)
    # 100 sign steps of 0.01 eps from z0 ~ U[-eps, eps] end at clip(z0 - eps sign(w)): never on
    # the gradient's side of the clean point.
    assert np.all(delta * np.sign(W.numpy()) <= 1e-6)
    q = lambda o: o @ W.numpy().astype(np.float64)  # noqa: E731
    assert np.all(q(out.observations[rows]) <= q(ds.observations[rows]) + 1e-6)
    # With 200 steps every start reaches the corner s - eps * std * sign(w).
    out = corrupt(ds, "observations", 0.5, scale, mode="adversarial", seed=0, q_fn=linear_q,
                  attack_steps=200)
    rows = out.infos["corrupted_observations"]
    expected = ds.observations[rows] - bound * np.array([1.0, -1.0, 1.0])
    np.testing.assert_allclose(out.observations[rows], expected, atol=1e-6)


def test_adversarial_actions_and_dynamics_reach_the_corner():
    ds = one_step_dataset(200)
    out = corrupt(ds, "actions", 0.5, 1.0, mode="adversarial", q_fn=linear_q, attack_steps=200)
    rows = out.infos["corrupted_actions"]
    # a^ = a - eps * std_a * sign(v), sign(v) = (+1, -1)
    np.testing.assert_allclose(out.actions[rows], ds.actions[rows] - SIGMA_ACT * [1.0, -1.0],
                               atol=1e-5)
    p = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])

    def policy(obs):
        return obs @ p

    # Q(s', pi(s')) = s' @ (w + P v) = s' @ (1 + 2, -2 - 1, 0.5) -> sign (+1, -1, +1)
    out = corrupt(ds, "dynamics", 0.5, 1.0, mode="adversarial", q_fn=linear_q, policy_fn=policy,
                  attack_steps=200)
    rows = out.infos["corrupted_dynamics"]
    np.testing.assert_allclose(out.next_observations[rows],
                               ds.next_observations[rows] - SIGMA_OBS * [1.0, -1.0, 1.0],
                               atol=1e-6)


def test_adversarial_needs_a_critic_and_for_dynamics_a_policy():
    ds = one_step_dataset(10)
    with pytest.raises(UserError, match="q_fn"):
        corrupt(ds, "observations", 0.5, 1.0, mode="adversarial")
    with pytest.raises(UserError, match="policy_fn"):
        corrupt(ds, "dynamics", 0.5, 1.0, mode="adversarial", q_fn=linear_q)
    corrupt(ds, "rewards", 0.5, 1.0, mode="adversarial")  # needs neither


def test_integer_observations_are_refused():
    ds = Dataset.from_arrays(np.arange(4)[:, None], np.zeros((4, 1), np.float32),
                             np.zeros(4, np.float32), terminations=np.ones(4, bool))
    with pytest.raises(UserError, match="int64.*float32"):
        corrupt(ds, "observations", 0.5, 1.0)


# ============================================================================ spec parsing
def test_spec_parses_kinds_modes_and_aliases():
    assert parse_corruption_spec("dynamics:0.3:1.0") == [CorruptionSpec("dynamics", 0.3, 1.0)]
    assert parse_corruption_spec(" rewards:0.3:1:adversarial , states:0:2 ") == [
        CorruptionSpec("rewards", 0.3, 1.0, "adversarial"),
        CorruptionSpec("observations", 0.0, 2.0, "random"),
    ]


@pytest.mark.parametrize(("spec", "message"), [
    ("", "is empty"),
    ("dynamics", "has 1 field"),
    ("dynamics:0.3", "has 2 field"),
    ("dynamics:0.3:1:random:x", "has 5 field"),
    ("dynamic:0.3:1", "did you mean 'dynamics'"),
    ("dynamics:1.5:1", "rate 1.5 is outside"),
    ("dynamics:x:1", "RATE 'x' is not a number"),
    ("dynamics:0.3:-1", "scale -1.0 must be"),
    ("dynamics:0.3:inf", "scale inf must be"),
    ("dynamics:0.3:1:adversarail", "did you mean 'adversarial'"),
    ("rewards:0.1:1,rewards:0.2:1", "names rewards twice"),
])
def test_bad_specs_name_the_spec_and_the_expected_form(spec, message):
    with pytest.raises(UserError, match=message) as err:
        parse_corruption_spec(spec)
    text = str(err.value)
    assert "\n" not in text
    if "twice" not in message:
        assert "KIND:RATE:SCALE[:MODE]" in text


@settings(max_examples=200, deadline=None)
@given(kind=st.sampled_from(KINDS), rate=st.floats(0, 1), scale=st.floats(0, 1e6),
       mode=st.sampled_from(["", ":random", ":adversarial"]))
def test_spec_round_trips(kind, rate, scale, mode):
    (parsed,) = parse_corruption_spec(f"{kind}:{rate!r}:{scale!r}{mode}")
    assert parsed == CorruptionSpec(kind, rate, scale, mode[1:] or "random")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("dynamicsrewardobt:.,0123456789-e ")), max_size=40))
def test_any_text_parses_or_raises_user_error(text):
    for parse in (parse_corruption_spec, parse_weights_spec):
        try:
            parse(text)
        except UserError as err:
            assert "\n" not in str(err)


# ============================================================================ weighting
def three_episodes(rewards):
    """Episodes [0, 2), [2, 3), [3, 6) (lengths 2, 1, 3), first observations 0, 1, 2."""
    obs = np.array([[0.0], [0.5], [1.0], [2.0], [2.5], [3.0]], np.float32)
    return Dataset.from_arrays(obs, np.zeros((6, 1), np.float32), np.array(rewards, np.float32),
                               terminations=[0, 1, 1, 0, 0, 1], next_observations=obs + 0.5)


def test_return_weights_three_episodes_by_hand():
    ds = three_episodes([0, 0, 5, 3, 3, 4])  # returns G = 0, 5, 10
    w = return_weights(ds, temperature=0.5)
    # G^ = (G - 0) / 10 = 0, 0.5, 1; G^ / alpha = 0, 1, 2; exp -> 1, e, e^2
    # Z = sum_j |tau_j| exp(G^_j / alpha) = 2 * 1 + 1 * 2.718281828 + 3 * 7.389056099 = 26.885450125
    # p = 1 / Z, e / Z, e^2 / Z = 0.0371948394, 0.1011060561, 0.2748347550 per transition
    p = [0.0371948394, 0.1011060561, 0.2748347550]
    np.testing.assert_allclose(w, [p[0], p[0], p[1], p[2], p[2], p[2]], rtol=1e-9)
    assert w.shape == (6,) and w.sum() == pytest.approx(1.0, abs=1e-12)
    # Trajectory masses |tau_i| p_i: 0.074, 0.101, 0.824.
    np.testing.assert_allclose([w[:2].sum(), w[2], w[3:].sum()],
                               [2 * p[0], p[1], 3 * p[2]], rtol=1e-9)


def test_advantage_weights_three_episodes_by_hand():
    ds = three_episodes([0, 0, 6, 2, 2, 2])  # returns G = 0, 6, 6; s0 = 0, 1, 2
    # Least squares G ~ c + b s0: mean s0 = 1, mean G = 4, cov = (4 + 0 + 2) / 3 = 2,
    # var = 2 / 3, so b = 3, c = 1; V = 1, 4, 7; A = G - V = -1, 2, -1; A^ = 0, 1, 0.
    # With alpha = 0.5: exp(A^ / alpha) = 1, e^2, 1; Z = 2 + 7.389056099 + 3 = 12.389056099.
    p_low, p_high = 1 / 12.389056099, 7.389056099 / 12.389056099  # 0.0807163994, 0.5964180031
    w = advantage_weights(ds, temperature=0.5)
    np.testing.assert_allclose(w, [p_low, p_low, p_high, p_low, p_low, p_low], rtol=1e-8)


def test_equal_returns_give_uniform_weights_and_specs_dispatch():
    ds = three_episodes([1, 1, 2, 1, 0, 1])  # every return is 2
    np.testing.assert_allclose(return_weights(ds), np.full(6, 1 / 6))
    ds = three_episodes([0, 0, 5, 3, 3, 4])
    np.testing.assert_array_equal(weights_from_spec(ds, "return"), return_weights(ds, 0.1))
    np.testing.assert_array_equal(weights_from_spec(ds, "RETURN:0.5"), return_weights(ds, 0.5))
    np.testing.assert_array_equal(weights_from_spec(ds, "advantage:2"),
                                  advantage_weights(ds, 2.0))
    np.testing.assert_array_equal(weights_from_spec(ds, "uniform"), np.full(6, 1 / 6))


@pytest.mark.parametrize(("spec", "message"), [
    ("retrun", "did you mean 'return'"),
    ("return:0", "TEMPERATURE is 0.0"),
    ("return:-1", "TEMPERATURE is -1.0"),
    ("return:abc", "TEMPERATURE 'abc' is not a number"),
    ("return:0.1:2", "too many fields"),
    ("uniform:0.1", "too many fields"),
])
def test_bad_weighting_specs(spec, message):
    with pytest.raises(UserError, match=message) as err:
        parse_weights_spec(spec)
    assert "NAME[:TEMPERATURE]" in str(err.value)


# ============================================================================ mixing
def constant_episodes(episodes, length, reward, unflagged_tail=False):
    n = episodes * length
    term = np.zeros(n, bool)
    term[length - 1::length] = True
    if unflagged_tail:
        term[-1] = False
    obs = np.arange(n, dtype=np.float32)[:, None]
    return Dataset.from_arrays(obs, np.zeros((n, 1), np.float32), np.full(n, reward, np.float32),
                               terminations=term, next_observations=obs + 1,
                               check_continuity=False, metadata={"kind": f"r{reward}"})


def test_mix_datasets_takes_whole_episodes_at_the_asked_fraction():
    low = constant_episodes(95, 2, 0.0)
    high = constant_episodes(10, 3, 1.0)
    mixed = mix_datasets(low, high, high_fraction=0.05, seed=0)
    # round(0.05 * 95 / 0.95) = 5 high episodes of 3 steps next to 95 low ones of 2 steps.
    assert mixed.num_episodes == 100 and len(mixed) == 95 * 2 + 5 * 3
    returns = mixed.episode_returns()
    assert (returns == 3.0).sum() == 5 and (returns == 0.0).sum() == 95
    assert mixed.infos["from_high"].sum() == 15
    np.testing.assert_array_equal(mixed.infos["from_high"], mixed.rewards == 1.0)
    assert mixed.metadata["kind"] == "mixed" and mixed.metadata["mix"]["high_episodes"] == 5
    assert mix_datasets(low, high, 0.05, seed=0).content_hash() == mixed.content_hash()
    assert mix_datasets(low, high, 0.05, seed=1).content_hash() != mixed.content_hash()
    with pytest.raises(UserError, match="needs 95 high episodes"):
        mix_datasets(low, high, high_fraction=0.5)


def test_an_unflagged_tail_stays_its_own_episode_when_moved():
    low = constant_episodes(3, 2, 0.0, unflagged_tail=True)  # last episode runs off the end
    high = constant_episodes(4, 2, 1.0, unflagged_tail=True)
    mixed = mix_datasets(low, high, high_fraction=0.5, seed=3)  # 3 low + 3 high
    assert mixed.num_episodes == 6
    assert sorted(mixed.episode_returns().tolist()) == [0, 0, 0, 2, 2, 2]
    joined = concat_datasets(low, high)
    assert joined.num_episodes == 7 and joined.truncations[5]


# ============================================================================ proxy labels
def test_split_action_free_by_episode_from_the_lowest_returns():
    ds = constant_episodes(10, 2, 0.0)
    rewards = np.repeat(np.array([5, 3, 9, 0, 7, 1, 8, 2, 6, 4], np.float32), 2)
    ds = Dataset.from_arrays(ds.observations, ds.actions, rewards, ds.terminations,
                             next_observations=ds.next_observations, check_continuity=False)
    labelled, free = split_action_free(ds, labelled_fraction=0.2, seed=0, from_lowest=0.5)
    # Episode returns are 2 x (5, 3, 9, 0, 7, 1, 8, 2, 6, 4); the 5 lowest are 0, 2, 4, 6, 8
    # (episodes 3, 5, 7, 1, 9), and round(0.2 * 10) = 2 of them are labelled.
    assert labelled.num_episodes == 2 and len(free.episodes()) == 8
    assert set(labelled.episode_returns().tolist()) <= {0.0, 2.0, 4.0, 6.0, 8.0}
    assert isinstance(free, ActionFree) and not hasattr(free, "actions")
    assert free.metadata["actions"] == "removed"
    src = np.concatenate([labelled.infos["source_index"], free.infos["source_index"]])
    np.testing.assert_array_equal(np.sort(src), np.arange(20))
    np.testing.assert_array_equal(free.observations, ds.observations[free.infos["source_index"]])
    again, _ = split_action_free(ds, 0.2, seed=0, from_lowest=0.5)
    assert again.content_hash() == labelled.content_hash()
    with pytest.raises(UserError, match="labels 0"):
        split_action_free(ds, 0.01)


def test_inverse_dynamics_recovers_linear_dynamics_actions():
    ds = linear_dynamics_dataset()
    labelled, free = split_action_free(ds, labelled_fraction=0.5, seed=0)
    model = fit_inverse_dynamics(labelled, hidden=(64, 64), steps=800, seed=0)
    out = label_actions(free, model)
    true = ds.actions[free.infos["source_index"]]
    rmse = float(np.sqrt(((out.actions - true) ** 2).mean()))
    assert rmse < 0.15  # actions have std 1; predicting their mean would give about 1.0
    out.validate(check_continuity=True)
    assert out.actions.dtype == np.float32 and out.metadata["actions"] == "proxy"
    assert out.metadata["proxy_labels"]["steps"] == 800
    np.testing.assert_array_equal(out.observations, free.observations)
    union = concat_datasets(labelled, out)
    assert union.num_episodes == ds.num_episodes
    assert [p["actions"] for p in union.metadata["parts"]] == ["true", "proxy"]


def test_inverse_dynamics_is_deterministic_and_takes_plain_arrays():
    ds = linear_dynamics_dataset(episodes=6, length=10)
    labelled, free = split_action_free(ds, labelled_fraction=0.5, seed=1)
    a = label_actions(free, fit_inverse_dynamics(labelled, hidden=(16,), steps=30, seed=5))
    b = label_actions(free, fit_inverse_dynamics(labelled, hidden=(16,), steps=30, seed=5))
    c = label_actions(free, fit_inverse_dynamics(labelled, hidden=(16,), steps=30, seed=6))
    np.testing.assert_array_equal(a.actions, b.actions)
    assert not np.array_equal(a.actions, c.actions)
    arrays = {k: getattr(free, k) for k in ("observations", "rewards", "terminations",
                                            "truncations", "next_observations")}
    model = fit_inverse_dynamics(labelled, hidden=(16,), steps=30, seed=5,
                                 action_bounds=(-0.1, 0.1))
    clipped = label_actions(arrays, model)
    assert np.abs(clipped.actions).max() <= 0.1 + 1e-7
    with pytest.raises(UserError, match="missing"):
        label_actions({"observations": free.observations}, model)
