"""make_vec: the API others code against, backends, errors, seeding, autoreset, statistics."""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

from rlworks.core.errors import UserError
from rlworks.envs import env_ids, make_vec, native_ids
from rlworks.envs.native.base import NativeVecEnv

NATIVE = ["CartPole-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0",
          "Pendulum-v1"]


def sample_actions(envs, rng: np.random.Generator) -> np.ndarray:
    space = envs.single_action_space
    n = envs.num_envs
    if isinstance(space, gym.spaces.Discrete):
        return rng.integers(0, space.n, size=n)
    return rng.uniform(space.low, space.high, size=(n, *space.shape)).astype(np.float32)


@pytest.mark.parametrize("env_id", NATIVE)
def test_native_api(env_id: str) -> None:
    envs = make_vec(env_id, 5, seed=3)
    ref = gym.make(env_id)
    assert envs.num_envs == 5
    assert envs.single_observation_space == ref.observation_space
    assert envs.single_action_space == ref.action_space
    assert envs.observation_space.shape == (5, *ref.observation_space.shape)
    assert envs.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
    obs, infos = envs.reset()
    assert obs.dtype == np.float32 and obs.shape == (5, *ref.observation_space.shape)
    assert obs.flags.c_contiguous
    obs, rewards, terms, truncs, infos = envs.step(sample_actions(envs, np.random.default_rng(0)))
    assert obs.dtype == np.float32 and rewards.shape == (5,) and rewards.dtype.kind == "f"
    assert terms.dtype == bool and truncs.dtype == bool and terms.shape == truncs.shape == (5,)
    assert isinstance(infos, dict)
    envs.close()


@pytest.mark.parametrize("backend", ["gymnasium-sync", "gymnasium-vector", "envpool",
                                     "gymnasium-async"])
def test_other_backends_same_api(backend: str) -> None:
    envs = make_vec("CartPole-v1", 2, backend=backend, seed=1)
    obs, _ = envs.reset()
    assert obs.shape == (2, 4) and obs.dtype == np.float32
    assert envs.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
    returns = np.zeros(2)
    finished = []
    for _ in range(200):
        obs, rewards, terms, truncs, infos = envs.step(np.array([0, 1]))
        returns += rewards
        if "episode" in infos:
            for i in np.flatnonzero(infos["_episode"]):
                finished.append((infos["episode"]["r"][i], infos["episode"]["l"][i], returns[i]))
        returns[terms | truncs] = 0.0
    assert finished and all(r == length == ret for r, length, ret in finished)
    with pytest.raises(NotImplementedError, match="backend='native'"):
        envs.get_state()
    envs.close()


def test_auto_backend() -> None:
    assert isinstance(make_vec("CartPole-v1", 1).unwrapped, NativeVecEnv)
    assert type(make_vec("Taxi-v3", 1).unwrapped).__name__ == "GymnasiumVecEnv"


def test_errors_name_the_input() -> None:
    with pytest.raises(UserError, match="did you mean 'CartPole-v1'"):
        make_vec("CartPol-v1", 2)
    with pytest.raises(UserError, match="did you mean 'native'"):
        make_vec("CartPole-v1", 2, backend="nativ")
    with pytest.raises(UserError, match="unknown native env 'Taxi-v3'"):
        make_vec("Taxi-v3", 2, backend="native")
    with pytest.raises(UserError, match="num_envs"):
        make_vec("CartPole-v1", 0)
    with pytest.raises(UserError, match="vector_entry_point"):
        make_vec("Acrobot-v1", 2, backend="gymnasium-vector")
    envs = make_vec("CartPole-v1", 2)
    envs.reset()
    with pytest.raises(UserError, match=r"actions must lie in \[0, 2\)"):
        envs.step(np.array([0, 2]))
    with pytest.raises(UserError, match=r"actions must lie in \[0, 2\)"):
        envs.step(np.array([-1, 0]))
    with pytest.raises(UserError, match="shape"):
        envs.step(np.array([0, 1, 1]))
    assert set(native_ids()) <= set(env_ids()) and "Taxi-v3" in env_ids()


def test_native_make_does_not_import_gymnasium() -> None:
    code = ("import sys, time; t = time.perf_counter(); from rlworks.envs import make_vec; "
            "e = make_vec('CartPole-v1', 4); e.reset(); e.step([0, 1, 0, 1]); "
            "from rlworks.core.errors import UserError\n"
            "try: make_vec('CartPole-v1', 2, backend='nativ')\n"
            "except UserError: pass\n"
            "assert 'gymnasium' not in sys.modules, 'gymnasium imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("env_id", NATIVE)
def test_seeding(env_id: str) -> None:
    a, b, c = make_vec(env_id, 4, seed=7), make_vec(env_id, 4, seed=7), make_vec(env_id, 4, seed=8)
    np.testing.assert_array_equal(a.reset()[0], b.reset()[0])
    assert not np.array_equal(a.reset()[0], c.reset()[0])
    # reset(seed=s) re-seeds exactly as construction with seed=s does
    np.testing.assert_array_equal(c.reset(seed=7)[0], make_vec(env_id, 4, seed=7).reset()[0])


def test_gymnasium_seed_applied_without_explicit_reset_seed() -> None:
    a = make_vec("CartPole-v1", 3, backend="gymnasium-sync", seed=5)
    b = make_vec("CartPole-v1", 3, backend="gymnasium-sync", seed=5)
    np.testing.assert_array_equal(a.reset()[0], b.reset()[0])
    c = make_vec("CartPole-v1", 3, backend="gymnasium-sync", seed=6)
    assert not np.array_equal(a.reset(seed=5)[0], c.reset()[0])


def test_next_step_autoreset_table() -> None:
    """The documented timeline, with a 3-step limit: end at t=3, reset at t=4."""
    envs = make_vec("Pendulum-v1", 2, seed=0, max_episode_steps=3)
    obs0, _ = envs.reset()
    rows = []
    for t in range(1, 8):
        obs, rewards, terms, truncs, infos = envs.step(np.array([[1.0], [-1.0]], np.float32))
        rows.append((t, rewards[0], bool(terms[0]), bool(truncs[0]), "episode" in infos))
    assert [r[3] for r in rows] == [False, False, True, False, False, False, True]
    assert [r[4] for r in rows] == [False, False, True, False, False, False, True]
    assert rows[3][1] == 0.0 and rows[0][1] < 0 and rows[4][1] < 0  # reward 0 on the reset step


def test_reset_step_ignores_action() -> None:
    a = make_vec("CartPole-v1", 3, seed=0, max_episode_steps=2)
    b = make_vec("CartPole-v1", 3, seed=0, max_episode_steps=2)
    a.reset()
    b.reset()
    for _ in range(2):
        a.step(np.array([0, 0, 0]))
        b.step(np.array([0, 0, 0]))
    oa = a.step(np.array([0, 0, 0]))[0]  # the autoreset step: actions ignored
    ob = b.step(np.array([1, 1, 1]))[0]
    np.testing.assert_array_equal(oa, ob)
    assert np.all(np.abs(oa) <= 0.05)  # a CartPole start state


def test_episode_statistics_hand_numbers() -> None:
    """MountainCar: reward -1 every step, never solved by always pushing left in 5 steps."""
    envs = make_vec("MountainCar-v0", 3, seed=0, max_episode_steps=5)
    envs.reset()
    seen = []
    for t in range(1, 13):
        _, rewards, terms, truncs, infos = envs.step(np.zeros(3, dtype=np.int64))
        if "episode" in infos:
            assert infos["_episode"].all()
            seen.append((t, infos["episode"]["r"].tolist(), infos["episode"]["l"].tolist()))
    # episodes end at t=5 and t=11 (t=6 is the autoreset step, not counted)
    assert seen == [(5, [-5.0] * 3, [5] * 3), (11, [-5.0] * 3, [5] * 3)]


@pytest.mark.parametrize("env_id", NATIVE)
def test_episode_statistics_sum_raw_rewards(env_id: str) -> None:
    envs = make_vec(env_id, 6, seed=1, normalize_reward=True, normalize_obs=True,
                    max_episode_steps=40)
    raw = make_vec(env_id, 6, seed=1, max_episode_steps=40)
    envs.reset()
    raw.reset()
    rng = np.random.default_rng(0)
    returns, lengths, ended, n_ended = np.zeros(6), np.zeros(6, int), np.zeros(6, bool), 0
    for _ in range(130):
        actions = sample_actions(envs, rng)
        _, scaled, terms, truncs, infos = envs.step(actions)
        _, rewards, terms_raw, _, _ = raw.step(actions)
        np.testing.assert_array_equal(terms, terms_raw)
        returns[ended], lengths[ended] = 0.0, 0
        returns[~ended] += rewards[~ended]
        lengths[~ended] += 1
        ended = terms | truncs
        if ended.any():
            np.testing.assert_array_equal(infos["_episode"], ended)
            np.testing.assert_allclose(infos["episode"]["r"], np.where(ended, returns, 0.0))
            np.testing.assert_array_equal(infos["episode"]["l"], np.where(ended, lengths, 0))
            n_ended += ended.sum()
        else:
            assert "episode" not in infos
    assert n_ended >= 6


MUJOCO_WARNINGS = """
import sys, warnings
warnings.simplefilter("default")
import gymnasium as gym
from rlworks.envs import make_vec
for seed in range(3):
    if sys.argv[1] == "rlworks":
        make_vec("HalfCheetah-v5", 1, backend="gymnasium-sync", seed=seed).close()
    else:
        gym.make("HalfCheetah-v5").close()
"""


def test_mujoco_warnings_show_once_not_per_env() -> None:
    """MuJoCo 4.x prints a deprecation notice for every HalfCheetah model it compiles;
    built through rlworks it goes through ``warnings`` and shows once."""
    pytest.importorskip("mujoco")

    def notices(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", MUJOCO_WARNINGS, mode], capture_output=True,
                             text=True, timeout=120, check=True)
        return (out.stdout + out.stderr).count("settotalmass")

    plain = notices("gymnasium")
    if plain == 0:
        pytest.skip("this MuJoCo version does not warn about HalfCheetah's model")
    assert plain == 3  # one per env, printed by MuJoCo itself
    assert notices("rlworks") == 1
