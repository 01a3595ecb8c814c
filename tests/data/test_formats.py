"""D4RL-style HDF5, Minari and npz: bit-identical round trips, the D4RL reading rules, and
damaged files (cut, mis-shaped, NaN-laden, wrong dtypes, missing keys) that always end in one
UserError naming the file or field."""

import json
import os

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlworks.core.errors import UserError
from rlworks.data.dataset import FIELDS, Dataset
from rlworks.data.formats import (
    load_dataset,
    load_hdf5,
    load_minari,
    load_minari_id,
    save_dataset,
    save_minari,
)

SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
SUFFIX = {"hdf5": "d.hdf5", "npz": "d.npz", "minari": "d-v0"}


def episodes_to_arrays(lengths, ends, rng, obs_shape, obs_dtype, act):
    """Consecutive episodes whose next_observations are the next row inside each episode."""
    obs, nxt, term, trunc = [], [], [], []
    for length, end in zip(lengths, ends, strict=True):
        rows = (rng.standard_normal((length + 1, *obs_shape)) * 50).astype(obs_dtype)
        obs.append(rows[:-1])
        nxt.append(rows[1:])
        flags = np.zeros((2, length), bool)
        if end == "term":
            flags[0, -1] = True
        elif end == "trunc":
            flags[1, -1] = True
        term.append(flags[0])
        trunc.append(flags[1])
    n = sum(lengths)
    return dict(
        observations=np.concatenate(obs),
        next_observations=np.concatenate(nxt),
        actions=act(n),
        rewards=rng.standard_normal(n).astype(np.float32),
        terminations=np.concatenate(term),
        truncations=np.concatenate(trunc),
    )


def continuous(rng=None):
    rng = rng or np.random.default_rng(0)
    arrays = episodes_to_arrays(
        [3, 1, 4, 2],
        ["term", "trunc", "term", None],  # the last episode is unfinished at the end
        rng,
        (3,),
        np.float32,
        lambda n: rng.uniform(-2, 2, (n, 2)),  # float64 actions
    )
    n = len(arrays["rewards"])
    infos = {"cost": rng.standard_normal(n), "step": np.arange(n, dtype=np.int16)}
    meta = {"env_id": "Toy-v0", "kind": "hand", "reference_scores": {"random": -3.5, "expert": 7}}
    return Dataset.from_arrays(**arrays, infos=infos, metadata=meta)


def discrete_images():
    rng = np.random.default_rng(1)
    arrays = episodes_to_arrays(
        [2, 3, 1],
        ["trunc", "term", None],
        rng,
        (4, 4),
        np.uint8,
        lambda n: rng.integers(0, 5, n),  # int64 scalar actions -> Discrete
    )
    return Dataset.from_arrays(**arrays, metadata={"source": "test"})


def int32_actions():
    rng = np.random.default_rng(2)
    arrays = episodes_to_arrays(
        [2, 2],
        ["term", "term"],
        rng,
        (2,),
        np.float64,
        lambda n: rng.integers(-3, 3, (n, 1)).astype(np.int32),
    )
    return Dataset.from_arrays(**arrays)


def assert_identical(a: Dataset, b: Dataset):
    for name in FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape, name
        assert x.tobytes() == y.tobytes(), name
    assert sorted(a.infos) == sorted(b.infos)
    for key in a.infos:
        x, y = a.infos[key], b.infos[key]
        assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes(), key
    assert a.metadata == b.metadata
    assert a.content_hash() == b.content_hash()


@pytest.mark.parametrize("make", [continuous, discrete_images, int32_actions])
def test_round_trip_hdf5_minari_npz_is_bit_identical(tmp_path, make):
    ds = make()
    current = ds
    for i, fmt in enumerate(["hdf5", "minari", "npz", "hdf5", "npz", "minari"]):
        path = save_dataset(current, tmp_path / f"{i}-{SUFFIX[fmt]}", format=fmt)
        current = load_dataset(path)
        assert_identical(ds, current)


def test_minari_layout_and_api(tmp_path, monkeypatch):
    import minari

    ds = continuous()
    save_minari(ds, tmp_path / "toy-v0")
    mds = minari.load_dataset  # read through the package's own look-up by id
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    m = mds("toy-v0")
    assert m.total_episodes == 4 and m.total_steps == 10
    eps = list(m.iterate_episodes())
    # Minari keeps one more observation row than actions per episode.
    assert [len(e.observations) for e in eps] == [4, 2, 5, 3]
    assert [len(e.infos["cost"]) for e in eps] == [4, 2, 5, 3]
    assert eps[0].terminations.tolist() == [False, False, True]
    assert eps[3].truncations.tolist() == [False, False]  # the unfinished tail stays unflagged
    assert m.storage.metadata["ref_min_score"] == -3.5 and m.storage.metadata["ref_max_score"] == 7
    assert_identical(ds, load_minari_id("toy-v0"))
    assert_identical(ds, load_minari(tmp_path / "toy-v0"))
    monkeypatch.delenv("MINARI_DATASETS_PATH")
    assert_identical(ds, load_minari_id("toy-v0", root=tmp_path))
    with pytest.raises(UserError, match="no local Minari dataset 'nope-v0'"):
        load_minari_id("nope-v0", root=tmp_path)


def test_minari_spaces_from_env_id_or_arrays(tmp_path):
    import minari

    rng = np.random.default_rng(3)
    arrays = episodes_to_arrays(
        [2],
        ["trunc"],
        rng,
        (3,),
        np.float32,
        lambda n: rng.uniform(-2, 2, (n, 1)).astype(np.float32),
    )
    ds = Dataset.from_arrays(**arrays, metadata={"env_id": "Pendulum-v1"})
    save_minari(ds, tmp_path / "p")
    m = minari.MinariDataset(tmp_path / "p" / "data")
    assert m.observation_space.high.tolist() == [1.0, 1.0, 8.0]  # Pendulum's own Box
    assert m.action_space.high.tolist() == [2.0]
    save_minari(discrete_images(), tmp_path / "d")
    m = minari.MinariDataset(tmp_path / "d" / "data")
    assert m.action_space.n == 5 and m.observation_space.dtype == np.uint8


def test_minari_refuses_what_it_cannot_hold(tmp_path):
    ds = continuous()
    nxt = ds.next_observations.copy()
    nxt[0] += 1  # next_observations[0] != observations[1] inside an episode
    broken = Dataset.from_arrays(
        ds.observations,
        ds.actions,
        ds.rewards,
        ds.terminations,
        ds.truncations,
        nxt,
        check_continuity=False,
    )
    with pytest.raises(UserError, match=r"'next_observations': index 0"):
        save_minari(broken, tmp_path / "x")
    save_minari(ds, tmp_path / "y")
    with pytest.raises(UserError, match="already exists"):
        save_minari(ds, tmp_path / "y")


def write_d4rl(path, **arrays):
    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            f.create_dataset(key, data=value)


def test_d4rl_file_terminal_wins_and_next_observations_derived(tmp_path):
    obs = np.arange(6, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)
    write_d4rl(
        tmp_path / "real.hdf5",
        observations=obs,
        actions=np.zeros((6, 1), np.float32),
        rewards=np.arange(6, dtype=np.float32),
        terminals=np.array([0, 1, 0, 0, 0, 0], np.float32),  # stored as numbers, as D4RL does
        timeouts=np.array([0, 1, 0, 1, 0, 0], bool),  # step 1 has both flags
    )
    ds = load_hdf5(tmp_path / "real.hdf5")
    # Episodes [0, 2) terminal (terminal wins), [2, 4) timeout, [4, 6) unfinished.
    # The timeout's and the tail's last steps (3 and 5) have no next observation: dropped.
    assert ds.observations[:, 0].tolist() == [0, 1, 2, 4]
    assert ds.next_observations[:, 0].tolist() == [1, 1, 3, 5]
    assert ds.terminations.tolist() == [False, True, False, False]
    assert ds.truncations.tolist() == [False, False, True, True]
    assert ds.metadata == {"next_observations": "derived"}


def test_d4rl_terminal_wins_with_stored_next_observations(tmp_path):
    ds = continuous()
    path = save_dataset(ds, tmp_path / "a.hdf5")
    with h5py.File(path, "a") as f:
        timeouts = f["timeouts"][()]
        timeouts[2] = True  # step 2 is also terminal
        f["timeouts"][...] = timeouts
    back = load_dataset(path)
    assert back.terminations[2] and not back.truncations[2]
    assert_identical(ds, back)


def test_d4rl_metadata_is_a_json_attribute(tmp_path):
    ds = continuous()
    path = save_dataset(ds, tmp_path / "a.h5")
    with h5py.File(path, "r") as f:
        assert json.loads(f.attrs["rlworks_metadata"])["reference_scores"] == {
            "random": -3.5,
            "expert": 7,
        }
        assert sorted(f.keys()) == [
            "actions",
            "infos",
            "next_observations",
            "observations",
            "rewards",
            "terminals",
            "timeouts",
        ]


def test_paths_and_formats(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_dataset(tmp_path / "missing")
    with pytest.raises(UserError, match="does not exist"):
        load_dataset(tmp_path / "missing.npz")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(UserError, match="neither"):
        load_dataset(tmp_path / "x.txt")
    with pytest.raises(UserError, match="unknown dataset format 'hdf'; did you mean 'hdf5'"):
        save_dataset(continuous(), tmp_path / "a", format="hdf")


def test_npz_never_unpickles(tmp_path):
    ds = continuous()
    arrays = {name: getattr(ds, name) for name in FIELDS}
    arrays["rewards"] = np.array([object()] * len(ds), dtype=object)
    np.savez(tmp_path / "p.npz", **arrays)
    with pytest.raises(UserError, match=r"field 'rewards' cannot be read"):
        load_dataset(tmp_path / "p.npz")


# ---------------------------------------------------------------- damaged files (hypothesis)
FORMATS = ["hdf5", "npz", "minari"]


def main_file(path, fmt):
    return path / "data" / "main_data.hdf5" if fmt == "minari" else path


@SETTINGS
@given(fmt=st.sampled_from(FORMATS), keep=st.floats(0.0, 0.98))
def test_cut_files_give_one_clear_error(tmp_path_factory, fmt, keep):
    path = save_dataset(continuous(), tmp_path_factory.mktemp("cut") / SUFFIX[fmt], format=fmt)
    target = main_file(path, fmt)
    data = target.read_bytes()
    target.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(UserError) as err:
        load_dataset(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def raw_arrays(ds):
    """The fields as a writer of ``fmt`` names them, plus infos."""
    arrays = {name: np.array(getattr(ds, name)) for name in FIELDS}
    arrays["infos/cost"] = np.array(ds.infos["cost"])
    return arrays


D4RL_NAME = {"terminations": "terminals", "truncations": "timeouts"}


def write_raw(path, fmt, arrays):
    if fmt == "npz":
        np.savez(path, **arrays)
    else:
        write_d4rl(path, **{D4RL_NAME.get(k, k): v for k, v in arrays.items()})


def shown(fmt, field):
    return D4RL_NAME.get(field, field) if fmt == "hdf5" else field


@SETTINGS
@given(
    fmt=st.sampled_from(["hdf5", "npz"]),
    field=st.sampled_from([*FIELDS, "infos/cost"]),
    data=st.data(),
)
def test_mis_shaped_arrays_are_named(tmp_path_factory, fmt, field, data):
    arrays = raw_arrays(continuous())
    a = arrays[field]
    # An extra axis is wrong for rewards (must be (N,)) and for one of the observation arrays
    # (they must match); actions and infos may have any trailing shape.
    wrong_axis = field in ("rewards", "observations", "next_observations")
    how = data.draw(st.sampled_from(["rows", "extra_axis"] if wrong_axis else ["rows"]))
    if how == "rows":
        arrays[field] = a[: data.draw(st.integers(1, len(a) - 1))]
    else:
        arrays[field] = a[..., None]
    path = tmp_path_factory.mktemp("shape") / SUFFIX[fmt]
    write_raw(path, fmt, arrays)
    with pytest.raises(UserError) as err:
        load_dataset(path)
    msg = str(err.value)
    # A mismatch in observations is reported on the other fields measured against it.
    assert (
        f"'{field}'" in msg
        or f"'{shown(fmt, field)}'" in msg
        or (field == "observations" and "observations" in msg)
    )


@SETTINGS
@given(
    fmt=st.sampled_from(["hdf5", "npz"]),
    field=st.sampled_from(
        ["observations", "next_observations", "actions", "rewards", "infos/cost"]
    ),
    index=st.integers(0, 9),
    value=st.sampled_from([np.nan, np.inf, -np.inf]),
)
def test_nan_laden_arrays_are_named_with_index(tmp_path_factory, fmt, field, index, value):
    arrays = raw_arrays(continuous())
    a = arrays[field]
    a[index] = value
    path = tmp_path_factory.mktemp("nan") / SUFFIX[fmt]
    write_raw(path, fmt, arrays)
    with pytest.raises(UserError, match=rf"'{field}': index {index} holds NaN or inf"):
        load_dataset(path)


@SETTINGS
@given(
    fmt=st.sampled_from(["hdf5", "npz"]),
    field=st.sampled_from(FIELDS),
    kind=st.sampled_from(["str", "int", "float"]),
)
def test_wrong_dtypes_are_named(tmp_path_factory, fmt, field, kind):
    arrays = raw_arrays(continuous())
    a = arrays[field]
    if kind == "str":
        arrays[field] = a.astype("S8" if fmt == "hdf5" else "U8")
    elif kind == "int":
        arrays[field] = a.astype(np.int64) + 3  # flags become 3/4: not 0/1
    else:
        arrays[field] = a.astype(np.float16) + np.float16(0.5)
    path = tmp_path_factory.mktemp("dtype") / SUFFIX[fmt]
    write_raw(path, fmt, arrays)
    if (field, kind) in {("actions", "int"), ("actions", "float"), ("rewards", "float")}:
        assert getattr(load_dataset(path), field).dtype == arrays[field].dtype  # allowed dtypes
        return
    with pytest.raises(UserError) as err:
        load_dataset(path)
    msg = str(err.value)
    # Changing observations alone is reported as a mismatch with next_observations.
    named = {field, shown(fmt, field), "next_observations"} - (
        {"next_observations"} if field not in ("observations", "next_observations") else set()
    )
    assert any(f"'{n}'" in msg for n in named), msg


@SETTINGS
@given(fmt=st.sampled_from(["hdf5", "npz"]), field=st.sampled_from(FIELDS))
def test_missing_keys_are_named(tmp_path_factory, fmt, field):
    arrays = raw_arrays(continuous())
    del arrays[field]
    path = tmp_path_factory.mktemp("missing") / SUFFIX[fmt]
    write_raw(path, fmt, arrays)
    if fmt == "hdf5" and field == "next_observations":  # optional in D4RL files: derived
        assert load_dataset(path).metadata["next_observations"] == "derived"
        return
    with pytest.raises(UserError, match=rf"lacks field '{shown(fmt, field)}'"):
        load_dataset(path)


def test_minari_damaged_episode_is_one_error(tmp_path):
    path = save_minari(continuous(), tmp_path / "m")
    with h5py.File(path / "data" / "main_data.hdf5", "a") as f:
        del f["episode_1"]["rewards"]
    with pytest.raises(UserError, match=f"Minari dataset '{path}' cannot be read"):
        load_dataset(path)
    assert os.path.isdir(path)
