"""Dataset record: episode boundaries, returns, the content hash and validate() messages.

Expected values are worked out by hand from the arrays below, not from the code under test.
"""

import subprocess
import sys

import numpy as np
import pytest

from rlworks.core.errors import UserError
from rlworks.data.dataset import Dataset

# 7 transitions: episode [0, 3) terminates, [3, 5) is truncated, [5, 7) runs off the end unflagged.
OBS = np.array([[0, 0], [1, 1], [2, 2], [10, 10], [11, 11], [20, 20], [21, 21]], np.float32)
NEXT = np.array([[1, 1], [2, 2], [3, 3], [11, 11], [12, 12], [21, 21], [22, 22]], np.float32)
REWARDS = np.array([1.0, 2.0, 3.0, 10.0, 20.0, 0.5, 0.25], np.float32)
TERM = np.array([0, 0, 1, 0, 0, 0, 0], bool)
TRUNC = np.array([0, 0, 0, 0, 1, 0, 0], bool)


def make(**changes):
    arrays = dict(
        observations=OBS,
        actions=np.arange(7, dtype=np.int64),
        rewards=REWARDS,
        terminations=TERM,
        truncations=TRUNC,
        next_observations=NEXT,
        metadata={
            "env_id": "Toy-v0",
            "kind": "hand",
            "reference_scores": {"random": 0, "expert": 1},
        },
    )
    arrays.update(changes)
    return Dataset.from_arrays(**arrays)


def test_episodes_returns_and_unflagged_tail():
    ds = make()
    assert len(ds) == 7
    assert ds.episodes().tolist() == [[0, 3], [3, 5], [5, 7]]
    assert ds.num_episodes == 3
    np.testing.assert_allclose(ds.episode_returns(), [6.0, 30.0, 0.75])
    # The tail counts as an episode, but the stored flags are not rewritten.
    assert not ds.truncations[-1]


def test_record_is_frozen_and_caller_arrays_untouched():
    obs = OBS.copy()
    ds = make(observations=obs)
    with pytest.raises(ValueError):
        ds.observations[0, 0] = 5.0
    obs[6, 0] = 99.0  # the caller's array stays writable
    with pytest.raises(AttributeError):
        ds.rewards = REWARDS  # type: ignore[misc]


def test_terminal_wins_in_from_arrays():
    both = TRUNC.copy()
    both[2] = True  # step 2 is terminal and truncated
    ds = make(truncations=both)
    assert ds.terminations[2] and not ds.truncations[2]
    assert ds.truncations.tolist() == TRUNC.tolist()


def test_flags_as_numbers_are_read_as_bools_and_others_refused():
    ds = make(terminations=TERM.astype(np.float32), truncations=TRUNC.astype(np.int8))
    assert ds.terminations.dtype == bool and ds.terminations.tolist() == TERM.tolist()
    bad = TERM.astype(np.int64)
    bad[1] = 2
    with pytest.raises(UserError, match=r"'terminations': index 1 is 2"):
        make(terminations=bad)


def test_derived_next_observations_at_episode_ends():
    # Without next_observations: terminal step keeps its own obs; truncated and unflagged last
    # steps are dropped and the step before becomes the truncated end.
    ds = make(next_observations=None)
    assert ds.observations[:, 0].tolist() == [0, 1, 2, 10, 20]
    assert ds.next_observations[:, 0].tolist() == [1, 2, 2, 11, 21]
    assert ds.terminations.tolist() == [False, False, True, False, False]
    assert ds.truncations.tolist() == [False, False, False, True, True]
    assert ds.rewards.tolist() == [1.0, 2.0, 3.0, 10.0, 0.5]
    assert ds.metadata["next_observations"] == "derived"


def test_hash_is_stable_across_processes():
    code = (
        "import sys; sys.path.insert(0, 'tests/data');"
        "from test_dataset import make; print(make().content_hash())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == make().content_hash()
    assert len(make().content_hash()) == 64


def test_hash_ignores_memory_layout_and_metadata_key_order():
    fortran = np.asfortranarray(OBS)
    meta = {"reference_scores": {"expert": 1, "random": 0}, "kind": "hand", "env_id": "Toy-v0"}
    assert make(observations=fortran, metadata=meta).content_hash() == make().content_hash()


@pytest.mark.parametrize(
    "change",
    [
        lambda: {"rewards": np.where(np.arange(7) == 6, np.float32(0.5), REWARDS)},
        lambda: {"rewards": REWARDS.astype(np.float64)},  # same values, other dtype
        lambda: {"actions": np.arange(7, dtype=np.int32)},
        lambda: {"observations": OBS + np.array([[0, 1]] + [[0, 0]] * 6, np.float32)},
        lambda: {"metadata": {"env_id": "Toy-v1"}},
        lambda: {"infos": {"cost": np.zeros(7)}},
    ],
)
def test_hash_changes_when_one_thing_changes(change):
    assert make(**change()).content_hash() != make().content_hash()


def test_hash_changes_with_shape_of_same_bytes():
    a = make(actions=np.zeros((7, 2), np.float32))
    b = make(actions=np.zeros((7, 2, 1), np.float32))
    assert a.content_hash() != b.content_hash()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"rewards": REWARDS[:6]}, r"'rewards' has 6 rows but observations has 7"),
        ({"actions": np.zeros(5)}, r"'actions' has 5 rows"),
        ({"infos": {"cost": np.zeros(3)}}, r"'infos/cost' has 3 rows"),
        ({"rewards": REWARDS.reshape(7, 1)}, r"'rewards' has shape \(7, 1\)"),
        ({"rewards": np.arange(7)}, r"'rewards' has dtype int64"),
        ({"observations": OBS.astype(str)}, r"'observations' has dtype <U"),
        ({"next_observations": NEXT.astype(np.float64)}, r"'next_observations' is float64"),
        (
            {"rewards": np.where(np.arange(7) == 4, np.nan, REWARDS)},
            r"'rewards': index 4 holds NaN",
        ),
        (
            {"actions": np.where(np.arange(7) == 5, np.inf, 0.0)},
            r"'actions': index 5 holds NaN or inf",
        ),
        (
            {"observations": np.where(np.arange(7)[:, None] == 3, np.nan, OBS).astype(np.float32)},
            r"'observations': index 3 holds NaN",
        ),
        ({"metadata": {"x": object()}}, r"metadata: .*not JSON-serialisable"),
    ],
)
def test_validate_names_field_and_index(change, message):
    with pytest.raises(UserError, match=message):
        make(**change)


def test_missing_boundary_is_found_and_can_be_allowed():
    term = TERM.copy()
    term[2] = False  # episode 0 no longer ends, but next_observations[2] != observations[3]
    with pytest.raises(
        UserError, match=r"'next_observations': index 2 differs from observations\[3\]"
    ):
        make(terminations=term)
    ds = make(terminations=term, check_continuity=False)
    assert ds.episodes().tolist() == [[0, 5], [5, 7]]


def test_metadata_continuity_false_skips_only_the_continuity_check():
    nxt = NEXT.copy()
    nxt[0] = [9, 9]  # a perturbed next state inside episode 0
    meta = {"env_id": "Toy-v0", "continuity": False}
    ds = make(next_observations=nxt, metadata=meta)  # accepted: the record says so
    assert ds.validate() is ds
    with pytest.raises(UserError, match="index 0 differs"):
        make(next_observations=nxt)  # without the flag it is still a missing boundary
    bad = OBS.copy().astype(np.float32)
    bad[1, 0] = np.nan
    with pytest.raises(UserError, match="observations"):  # other checks still run
        make(observations=bad, next_observations=nxt, metadata=meta)


def test_validate_refuses_both_flags_on_direct_construction():
    ds = Dataset(OBS, np.zeros(7), REWARDS, TERM, TERM.copy(), NEXT)
    with pytest.raises(
        UserError, match=r"'truncations': index 2 is set together with terminations"
    ):
        ds.validate()
