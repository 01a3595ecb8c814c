"""Replay buffer: next-step autoreset rows are never sampled, truncation bootstraps,
termination does not, n-step windows stop at episode ends and at the write head."""

import numpy as np
import pytest
import torch

from rlworks.data.replay import ReplayBuffer
from rlworks.track.checkpoint import flatten_state, unflatten_state

# One sub-env, gamma 0.5. (obs, reward, next_obs, terminated, truncated, valid):
STREAM = [
    (0.0, 1.0, 1.0, False, False, True),
    (1.0, 2.0, 2.0, False, True, True),  # time limit: next_obs 2 is the true final obs
    (2.0, 0.0, 100.0, False, False, False),  # autoreset step: not a transition
    (100.0, 4.0, 101.0, True, False, True),  # terminated
    (101.0, 0.0, 200.0, False, False, False),  # autoreset step
    (200.0, 8.0, 201.0, False, False, True),  # last written row
]


def fill(buffer: ReplayBuffer, with_truncations: bool = True) -> ReplayBuffer:
    for obs, rew, nxt, term, trunc, valid in STREAM:
        buffer.add(np.array([[obs]]), np.array([[0.0]]), np.array([rew]), np.array([[nxt]]),
                   np.array([term]), np.array([valid]),
                   truncations=np.array([trunc]) if with_truncations else None)
    return buffer


def by_obs(buffer: ReplayBuffer, n: int = 4000) -> dict[float, tuple[float, float, float]]:
    """Sample many transitions; map each distinct obs to (reward, discount, next_obs)."""
    b = buffer.sample(n, np.random.default_rng(0))
    out: dict[float, tuple[float, float, float]] = {}
    for o, r, d, nx in zip(b.obs[:, 0].tolist(), b.rewards.tolist(), b.discounts.tolist(),
                           b.next_obs[:, 0].tolist(), strict=True):
        assert out.setdefault(o, (r, d, nx)) == (r, d, nx)  # same transition, same values
    return out


def test_one_step_targets():
    got = by_obs(fill(ReplayBuffer(100, 1, (1,), (1,), gamma=0.5)))
    assert got == {
        0.0: (1.0, 0.5, 1.0),
        1.0: (2.0, 0.5, 2.0),  # truncated: bootstraps from the final obs
        100.0: (4.0, 0.0, 101.0),  # terminated: no bootstrap
        200.0: (8.0, 0.5, 201.0),
    }  # the autoreset rows (obs 2 and 101) never appear


@pytest.mark.parametrize("with_truncations", [True, False])
def test_three_step_windows(with_truncations):
    # Without truncation flags the invalid autoreset row after a time limit still cuts.
    buffer = fill(ReplayBuffer(100, 1, (1,), (1,), gamma=0.5, n_step=3), with_truncations)
    assert by_obs(buffer) == {
        0.0: (1.0 + 0.5 * 2.0, 0.25, 2.0),  # cut by the time limit, bootstraps from obs 2
        1.0: (2.0, 0.5, 2.0),
        100.0: (4.0, 0.0, 101.0),
        200.0: (8.0, 0.5, 201.0),  # the window stops at the last written row
    }


def test_windows_never_cross_the_write_head_after_wrapping():
    # Capacity 4 keeps the last four rows; the oldest valid one (obs 100) must not read
    # the overwritten rows, and obs 200 must not wrap into the oldest data.
    buffer = fill(ReplayBuffer(4, 1, (1,), (1,), gamma=0.5, n_step=3))
    assert buffer.full and buffer.pos == 2
    assert by_obs(buffer) == {100.0: (4.0, 0.0, 101.0), 200.0: (8.0, 0.5, 201.0)}


def test_windows_follow_each_sub_env_and_use_the_row_layout():
    buffer = ReplayBuffer(10, 2, (1,), (), action_dtype=np.int64, gamma=0.5, n_step=2)
    for t in range(3):  # env 0 rewards 1, 2, 3; env 1 rewards 10, 20, 30
        buffer.add(np.array([[t], [10 + t]]), np.array([t, t]), np.array([t + 1, 10 * (t + 1)]),
                   np.array([[t + 1], [11 + t]]), np.zeros(2, bool), np.ones(2, bool))
    assert buffer.capacity_per_env == 5 and buffer.num_transitions() == 6
    got = by_obs(buffer)
    assert got[0.0] == (1.0 + 0.5 * 2.0, 0.25, 2.0)
    assert got[10.0] == (10.0 + 0.5 * 20.0, 0.25, 12.0)
    assert got[12.0] == (30.0, 0.5, 13.0)
    assert buffer.sample(4, np.random.default_rng(1)).actions.dtype == torch.int64


def test_action_masks_are_stored_and_returned_for_the_bootstrap_obs():
    buffer = ReplayBuffer(10, 1, (1,), (), action_dtype=np.int64, gamma=0.5, n_step=2)
    masks = [np.array([[True, False, True]]), np.array([[False, True, True]]),
             np.array([[True, True, False]])]
    for t in range(2):
        buffer.add(np.array([[t]]), np.array([0]), np.array([1.0]), np.array([[t + 1]]),
                   np.array([False]), np.array([True]), action_mask=masks[t],
                   next_action_mask=masks[t + 1])
    b = buffer.sample(64, np.random.default_rng(0))
    assert b.next_action_mask is not None
    for o, m in zip(b.obs[:, 0].tolist(), b.next_action_mask.numpy(), strict=True):
        np.testing.assert_array_equal(m, masks[2][0])  # both windows end at row 1
        assert o in (0.0, 1.0)


def test_state_dict_round_trip_through_checkpoint_format():
    buffer = fill(ReplayBuffer(100, 1, (1,), (1,), gamma=0.5, n_step=3))
    arrays, skeleton = flatten_state(buffer.state_dict())
    assert all(len(a) == 6 for name, a in arrays.items() if name != "/pos")  # filled rows only
    fresh = ReplayBuffer(100, 1, (1,), (1,), gamma=0.5, n_step=3)
    fresh.load_state_dict(unflatten_state(arrays, skeleton))
    a = buffer.sample(32, np.random.default_rng(3))
    b = fresh.sample(32, np.random.default_rng(3))
    for x, y in zip(a, b, strict=True):
        if x is not None:
            torch.testing.assert_close(x, y, rtol=0, atol=0)
    with pytest.raises(ValueError, match="same config"):
        ReplayBuffer(3, 1, (1,), (1,)).load_state_dict(buffer.state_dict())


def test_sampling_an_empty_buffer_is_an_error():
    with pytest.raises(ValueError, match="without valid transitions"):
        ReplayBuffer(10, 1, (1,)).sample(4, np.random.default_rng(0))
