"""GAE golden values, computed by hand (gamma = lambda = 0.5, so gamma * lambda = 0.25)."""

import numpy as np
import pytest

from rlworks.returns.gae import compute_gae

R = np.array([[1.0], [1.0], [1.0]])
V = np.array([[0.5], [1.0], [2.0]])
NEXT_V = np.array([[1.0], [2.0], [4.0]])
NO = np.zeros((3, 1), dtype=bool)


def at(step: int) -> np.ndarray:
    flags = np.zeros((3, 1), dtype=bool)
    flags[step] = True
    return flags


def test_gae_without_episode_end():
    # deltas: 1 + .5*1 - .5 = 1, 1 + .5*2 - 1 = 1, 1 + .5*4 - 2 = 1
    # A2 = 1, A1 = 1 + .25*1 = 1.25, A0 = 1 + .25*1.25 = 1.3125
    adv, ret = compute_gae(R, V, NEXT_V, NO, NO, gamma=0.5, gae_lambda=0.5)
    np.testing.assert_allclose(adv[:, 0], [1.3125, 1.25, 1.0])
    np.testing.assert_allclose(ret[:, 0], [1.8125, 2.25, 3.0])


def test_gae_truncated_step_bootstraps_from_final_obs():
    # Step 1 truncated: delta_1 = 1 + .5 * V(final obs)=2 - 1 = 1 still bootstraps,
    # but the trace is cut: A1 = 1, A0 = 1 + .25*1 = 1.25.
    adv, _ = compute_gae(R, V, NEXT_V, NO, at(1), gamma=0.5, gae_lambda=0.5)
    np.testing.assert_allclose(adv[:, 0], [1.25, 1.0, 1.0])


def test_gae_terminated_step_does_not_bootstrap():
    # Step 1 terminated: delta_1 = 1 + 0 - 1 = 0, A1 = 0, A0 = 1 + .25*0 = 1.
    adv, _ = compute_gae(R, V, NEXT_V, at(1), at(1), gamma=0.5, gae_lambda=0.5)
    np.testing.assert_allclose(adv[:, 0], [1.0, 0.0, 1.0])


@pytest.mark.parametrize("lam", [0.0, 1.0])
def test_gae_limits(lam):
    # lambda = 0 is the one-step TD error; lambda = 1 the discounted Monte Carlo return minus V.
    rng = np.random.default_rng(0)
    r, v = rng.normal(size=(2, 5, 2))
    nv = np.concatenate([v[1:], rng.normal(size=(1, 2))])  # V(s_{t+1}) is the next row's V
    gamma = 0.9
    adv, _ = compute_gae(r, v, nv, np.zeros((5, 2)), np.zeros((5, 2)), gamma, lam)
    if lam == 0.0:
        np.testing.assert_allclose(adv, r + gamma * nv - v)
    else:
        for t in range(5):
            mc = sum(gamma ** (k - t) * r[k] for k in range(t, 5)) + gamma ** (5 - t) * nv[-1]
            np.testing.assert_allclose(adv[t], mc - v[t])
