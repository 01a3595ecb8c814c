"""n-step windows, golden values computed by hand with gamma = 0.5 and rewards 1, 2, 4."""

import numpy as np

from rlworks.returns.nstep import nstep_returns, nstep_targets

R = np.array([[1.0, 2.0, 4.0]])
NO = np.zeros((1, 3), dtype=bool)
V = np.array([8.0])  # value of the bootstrap observation


def at(step: int) -> np.ndarray:
    flags = np.zeros((1, 3), dtype=bool)
    flags[0, step] = True
    return flags


def test_full_window_bootstraps_after_n_steps():
    # G = 1 + .5*2 + .25*4 = 3; discount .5^3 = .125; target 3 + .125*8 = 4
    w = nstep_returns(R, NO, NO, gamma=0.5)
    np.testing.assert_allclose(w.returns, [3.0])
    np.testing.assert_allclose(w.discounts, [0.125])
    np.testing.assert_array_equal(w.last, [2])
    np.testing.assert_allclose(nstep_targets(w, V), [4.0])


def test_truncated_episode_bootstraps_from_its_final_obs():
    # Time limit at step 1: the window stops there but still bootstraps.
    # G = 1 + .5*2 = 2; discount .5^2 = .25; target 2 + .25*8 = 4 (from next_obs of step 1)
    w = nstep_returns(R, NO, at(1), gamma=0.5)
    np.testing.assert_allclose(w.returns, [2.0])
    np.testing.assert_allclose(w.discounts, [0.25])
    np.testing.assert_array_equal(w.last, [1])
    np.testing.assert_allclose(nstep_targets(w, V), [4.0])


def test_terminated_episode_does_not_bootstrap():
    # Termination at step 1: G = 1 + .5*2 = 2, discount 0, target 2 whatever V is.
    w = nstep_returns(R, at(1), NO, gamma=0.5)
    np.testing.assert_allclose(w.returns, [2.0])
    np.testing.assert_allclose(w.discounts, [0.0])
    np.testing.assert_array_equal(w.last, [1])
    np.testing.assert_allclose(nstep_targets(w, V), [2.0])


def test_termination_on_first_step_and_one_step_windows():
    # Terminated at step 0: G = 1, discount 0. A 1-step window: G = r, discount gamma.
    w = nstep_returns(R, at(0), NO, gamma=0.5)
    np.testing.assert_allclose([w.returns[0], w.discounts[0], w.last[0]], [1.0, 0.0, 0])
    w1 = nstep_returns(R[:, :1], NO[:, :1], NO[:, :1], gamma=0.9)
    np.testing.assert_allclose([w1.returns[0], w1.discounts[0]], [1.0, 0.9])


def test_rows_are_independent_and_entries_after_the_cut_are_ignored():
    rewards = np.array([[1.0, 2.0, 4.0], [1.0, np.nan, np.nan]])
    dones = np.array([[False, False, False], [True, False, False]])
    w = nstep_returns(rewards, np.zeros((2, 3), dtype=bool), dones, gamma=0.5)
    np.testing.assert_allclose(w.returns, [3.0, 1.0])
    np.testing.assert_allclose(w.discounts, [0.125, 0.5])
