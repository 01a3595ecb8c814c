"""Making datasets (rlworks.exec.datasets) at a tiny budget on Pendulum-v1: determinism, the
kinds' composition, reference scores, episode boundaries, the cache (reuse, --force, failures
keep it intact). The data-level half (names, budgets, the cache index) is in
tests/data/test_factory.py."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from rlworks.core.errors import UserError
from rlworks.data.dataset import FIELDS
from rlworks.data.factory import list_datasets, resolve_dataset
from rlworks.data.recipes import DATASET_ENVS, DATASET_KINDS, dataset_id, make_budget, pick_medium
from rlworks.exec import datasets
from rlworks.exec.datasets import make_dataset

# One SAC agent of 400 steps (snapshots every 100), 2,000-transition rollouts (10 episodes).
TINY = dict(agent_steps=400, learning_starts=100, size=2_000, snapshot_every=100,
            snapshot_episodes=2, reference_episodes=10)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("data-cache")
    for kind in DATASET_KINDS:
        make_dataset(f"pendulum-{kind}", budget=TINY, cache_dir=root, progress=False)
    return root


PENDULUM = DATASET_ENVS["pendulum"]


def entry(cache, kind):
    """The index entry of the fixture's ``kind`` dataset."""
    ds_id = dataset_id(PENDULUM, kind, 0, make_budget(PENDULUM, TINY))
    (found,) = [e for e in list_datasets(cache) if e["id"] == ds_id]
    return found


def load(cache, kind):
    return resolve_dataset(entry(cache, kind)["id"], cache_dir=cache)


def test_every_kind_is_cached_and_indexed(cache):
    entries = [entry(cache, kind) for kind in DATASET_KINDS]
    for e in entries:
        assert e["env_id"] == "Pendulum-v1" and e["seed"] == 0 and e["budget"] == TINY
        ds = resolve_dataset(e["id"], cache_dir=cache)
        assert ds.content_hash() == e["content_hash"] and len(ds) == e["transitions"]


def test_same_name_seed_and_budget_give_the_same_hash(cache, tmp_path):
    """A fresh cache retrains the agent and rolls out again: bit-identical."""
    path = make_dataset("pendulum-medium", budget=TINY, cache_dir=tmp_path, progress=False)
    assert resolve_dataset(str(path)).content_hash() == load(cache, "medium").content_hash()
    (agent,) = [p for p in (tmp_path / "agents").iterdir() if p.is_dir()]
    (cached,) = [p for p in (cache / "agents").iterdir() if p.is_dir()]
    a, b = (json.loads((d / "agent.json").read_text()) for d in (agent, cached))
    a.pop("train_time_s"), b.pop("train_time_s")
    assert a == b


def test_another_seed_gives_another_dataset(cache, tmp_path):
    budget = {**TINY, "agent_steps": 200, "size": 400}
    path = make_dataset("pendulum-random", seed=1, budget=budget, cache_dir=tmp_path,
                        progress=False)
    assert "-s1-" in path.name
    other = resolve_dataset(str(path))
    assert not np.array_equal(other.observations[:400], load(cache, "random").observations[:400])


def test_sizes_and_boundaries(cache):
    for kind in DATASET_KINDS:
        ds = load(cache, kind)
        ds.validate(check_continuity=True)
        assert ds.metadata["kind"] == kind and ds.metadata["env_id"] == "Pendulum-v1"
        assert ds.terminations[-1] or ds.truncations[-1]  # the last episode is closed
        if kind in ("random", "medium", "expert", "conservative"):
            assert len(ds) == TINY["size"]
            # Pendulum never terminates; its episodes are 200 steps, cut by the time limit.
            assert not ds.terminations.any()
            assert (np.diff(ds.episodes(), axis=1) == 200).all()
        assert ds.observations.dtype == np.float32 and ds.actions.dtype == np.float32
        assert (np.abs(ds.actions) <= 2.0).all()  # Pendulum's torque bounds


def test_reference_scores_are_stored_with_every_kind(cache):
    refs = [load(cache, kind).metadata["reference_scores"] for kind in DATASET_KINDS]
    assert all(r == refs[0] for r in refs)
    assert set(refs[0]) == {"random", "expert"}
    assert all(isinstance(v, float) and np.isfinite(v) for v in refs[0].values())
    gen = load(cache, "medium").metadata["generator"]
    assert gen["budget"] == TINY and gen["seed"] == 0
    assert gen["reference_episodes"] == TINY["reference_episodes"]
    assert gen["agent"]["algo"] == "sac" and gen["agent"]["expert_step"] == TINY["agent_steps"]
    assert [s for s, _ in gen["agent"]["snapshot_returns"]] == [100, 200, 300, 400]


def test_random_return_is_near_the_random_reference(cache):
    ds = load(cache, "random")
    ref = ds.metadata["reference_scores"]["random"]
    # Both are means of 10 episodes of the same uniform policy (Pendulum: std ~ 300).
    assert abs(ds.episode_returns().mean() - ref) < 0.3 * abs(ref)


def test_medium_expert_is_medium_then_expert(cache):
    me, m, e = (load(cache, k) for k in ("medium-expert", "medium", "expert"))
    assert len(me) == len(m) + len(e)
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(me, name),
                                      np.concatenate([getattr(m, name), getattr(e, name)]))
    assert me.num_episodes == m.num_episodes + e.num_episodes


def test_medium_expert_without_cached_parts_is_the_same(cache, tmp_path):
    """Built from scratch (no medium/expert in the cache) it rolls its parts out itself."""
    for sub in ("agents",):
        (tmp_path / sub).symlink_to(cache / sub)
    path = make_dataset("pendulum-medium-expert", budget=TINY, cache_dir=tmp_path,
                        progress=False)
    assert resolve_dataset(str(path)).content_hash() == load(cache, "medium-expert").content_hash()


def test_medium_replay_is_the_training_buffer_up_to_the_medium_snapshot(cache):
    from rlworks.envs import make_vec

    ds = load(cache, "medium-replay")
    step = ds.metadata["generator"]["agent"]["medium_step"]
    assert step in (100, 200, 300)  # never the final (expert) snapshot
    # One env: `step` rows, minus one autoreset row after each finished 200-step episode.
    assert len(ds) == step - step // 201
    # The first transition starts at the training env's first reset (seeded by the run seed).
    envs = make_vec("Pendulum-v1", 1, seed=0)
    first_obs, _ = envs.reset()
    envs.close()
    np.testing.assert_array_equal(ds.observations[0], first_obs[0])
    assert ds.truncations[-1]  # cut at the medium snapshot


def test_medium_is_the_snapshot_closest_to_a_third(cache):
    agent = load(cache, "medium").metadata["generator"]["agent"]
    refs = load(cache, "medium").metadata["reference_scores"]
    curve = [tuple(p) for p in agent["snapshot_returns"]]
    assert curve[pick_medium(curve, refs["random"], refs["expert"])][0] == agent["medium_step"]
    target = refs["random"] + (refs["expert"] - refs["random"]) / 3
    assert agent["medium_target"] == pytest.approx(target)


def test_conservative_stays_near_the_deterministic_medium_policy(cache):
    from rlworks.data.recipes import CONSERVATIVE_NOISE
    from rlworks.exec.datasets import Agent

    ds = load(cache, "conservative")
    (agent_dir,) = [p for p in (cache / "agents").iterdir() if p.is_dir()]
    learner = Agent(agent_dir).policy("medium")
    try:
        mean = learner.act(np.array(ds.observations), deterministic=True)
    finally:
        learner.close()
    residual = (ds.actions - mean)[np.abs(mean).max(1) < 1.5]  # away from the clipped bounds
    # Noise std is CONSERVATIVE_NOISE of half the range (2.0 on Pendulum's [-2, 2]).
    assert residual.std() == pytest.approx(CONSERVATIVE_NOISE * 2.0, rel=0.15)


def test_cache_is_reused_and_force_rebuilds_identically(cache):
    old = entry(cache, "random")
    path = cache / old["file"]
    before = path.stat()
    again = make_dataset("pendulum-random", budget=TINY, cache_dir=cache, progress=False)
    assert again == path and path.stat().st_mtime_ns == before.st_mtime_ns
    rebuilt = make_dataset("pendulum-random", budget=TINY, cache_dir=cache, progress=False,
                           force=True)
    assert rebuilt == path and path.stat().st_ino != before.st_ino  # a new file, renamed in
    assert resolve_dataset(str(path)).content_hash() == old["content_hash"]
    assert not [p for p in cache.iterdir() if ".tmp" in p.name or ".partial" in p.name]


def test_failed_make_leaves_the_cached_file_and_index_untouched(cache, monkeypatch):
    path = cache / entry(cache, "expert")["file"]
    before, index = path.read_bytes(), (cache / "index.json").read_bytes()

    def broken(*args, **kwargs):
        raise RuntimeError("simulated crash during the rollout")

    monkeypatch.setattr(datasets, "rollout", broken)
    with pytest.raises(RuntimeError, match="simulated"):
        make_dataset("pendulum-expert", budget=TINY, cache_dir=cache, progress=False,
                     force=True)
    with pytest.raises(UserError, match="snapshot_every"):  # bad input: refused up front
        make_dataset("pendulum-expert", budget={**TINY, "snapshot_every": 10**6},
                     cache_dir=cache, force=True)
    assert path.read_bytes() == before and (cache / "index.json").read_bytes() == index
    assert not [p for p in cache.iterdir() if ".tmp" in p.name or ".partial" in p.name]


def test_npz_cache_format(cache):
    path = make_dataset("pendulum-random", budget={**TINY, "size": 400}, cache_dir=cache,
                        progress=False, format="npz")
    assert path.suffix == ".npz"
    ds = resolve_dataset(path.stem, cache_dir=cache)
    np.testing.assert_array_equal(ds.observations, load(cache, "random").observations[:400])


BAD_NAMES = {
    "hoper-medium": "did you mean 'hopper'",
    "hopper-medum": "did you mean 'medium'",
    "halfchetah-medium-replay": "did you mean 'halfcheetah'",
    "pendulum": "did you mean",
    "nonsense": "ENV-KIND",
}


@pytest.mark.parametrize("name", sorted(BAD_NAMES))
def test_bad_names_name_the_fix(name, tmp_path):
    with pytest.raises(UserError, match=BAD_NAMES[name]) as err:
        make_dataset(name, cache_dir=tmp_path)
    assert "rlworks data" in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "index.json").exists()


def test_bad_budget_seed_and_format_are_refused():
    with pytest.raises(UserError, match="did you mean 'agent_steps'"):
        make_dataset("pendulum-random", budget={"agent_step": 10})
    with pytest.raises(UserError, match="seed"):
        make_dataset("pendulum-random", seed=-1)
    with pytest.raises(UserError, match="format"):
        make_dataset("pendulum-random", format="csv")


def test_import_and_bad_input_do_not_load_torch():
    code = ("import sys\n"
            "from rlworks.exec.datasets import make_dataset\n"
            "from rlworks.core.errors import UserError\n"
            "try:\n    make_dataset('hoper-medium')\nexcept UserError:\n    pass\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)
