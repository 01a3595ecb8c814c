"""The data-level half of the dataset factory: recipes (names, budgets, the medium pick), the
cache (store, index, resolve, errors) and the layering rule that ``rlworks/data/`` imports
nothing above it. Making datasets (training, rollouts) is tested in tests/exec/test_datasets.py.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rlworks.data
from rlworks.core.errors import UserError
from rlworks.data.dataset import Dataset
from rlworks.data.factory import (
    cached_file,
    list_datasets,
    load_cached,
    resolve_dataset,
    store_dataset,
)
from rlworks.data.recipes import DATASET_ENVS, make_budget, parse_name, pick_medium


def test_pick_medium_golden():
    # random -1200, expert -200: target -1200 + 1000 / 3 = -866.7
    curve = [(1, -1150.0), (2, -900.0), (3, -600.0), (4, -850.0), (5, -210.0)]
    assert pick_medium(curve, -1200.0, -200.0) == 1  # -900 (closer than -600; -850 is later)
    curve = [(1, -1150.0), (2, -1000.0), (3, -300.0)]  # the first to reach it is the closest
    assert pick_medium(curve, -1200.0, -200.0) == 1  # -1000: candidates exclude the final
    assert pick_medium([(1, -5.0)], -10.0, 0.0) == 0  # a lone snapshot
    curve = [(1, -1190.0), (2, -1180.0), (3, -200.0)]  # nothing reaches: closest candidate
    assert pick_medium(curve, -1200.0, -200.0) == 1


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
        resolve_dataset(name, cache_dir=tmp_path)
    assert "rlworks data" in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "index.json").exists()


def test_unbuilt_and_missing_datasets(tmp_path):
    with pytest.raises(UserError, match="`rlworks data make hopper-medium`"):
        resolve_dataset("hopper-medium", cache_dir=tmp_path)
    with pytest.raises(UserError, match="`rlworks data make idp-expert`"):
        resolve_dataset("inverted-double-pendulum-expert", cache_dir=tmp_path)
    with pytest.raises(UserError, match="does not exist"):
        resolve_dataset(str(tmp_path / "nope.hdf5"), cache_dir=tmp_path)


def test_budget_validation():
    recipe, kind = parse_name("IDP-medium-replay")
    assert (recipe.env_id, kind) == ("InvertedDoublePendulum-v5", "medium-replay")
    assert make_budget(recipe, {"size": "1e4"}).size == 10_000
    with pytest.raises(UserError, match="did you mean 'agent_steps'"):
        make_budget(recipe, {"agent_step": 10})
    with pytest.raises(UserError, match="positive"):
        make_budget(recipe, {"size": 0})
    with pytest.raises(UserError, match="learning_starts"):
        make_budget(recipe, {"agent_steps": 500})


def test_default_budgets_fit_the_table():
    for recipe in DATASET_ENVS.values():
        b = recipe.budget
        assert b.learning_starts < b.agent_steps and b.size <= 100_000
        assert b.agent_steps <= 200_000


def _tiny(seed: int = 0) -> Dataset:
    """Two 3-step episodes of a made-up 2-d env, with the metadata the index reads."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(7, 2)).astype(np.float32)
    keep = [0, 1, 2, 4, 5, 6]  # row 3 is the autoreset gap between the episodes
    return Dataset(
        observations=obs[keep], next_observations=obs[[1, 2, 3, 5, 6, 0]],
        actions=rng.uniform(-1, 1, (6, 1)).astype(np.float32),
        rewards=np.arange(6, dtype=np.float32),
        terminations=np.array([0, 0, 1, 0, 0, 0], bool),
        truncations=np.array([0, 0, 0, 0, 0, 1], bool),
        metadata={"name": "pendulum-random", "env_id": "Pendulum-v1", "kind": "random",
                  "reference_scores": {"random": 0.0, "expert": 10.0},
                  "generator": {"seed": seed, "budget": {"size": 6}}},
    ).validate()


def test_store_dataset_indexes_with_the_callers_provenance(tmp_path):
    ds = _tiny()
    path = store_dataset(ds, tmp_path, "pendulum-random", "hdf5", {"git_rev": "abc123"})
    assert path == tmp_path / "pendulum-random.hdf5" == cached_file(tmp_path, "pendulum-random")
    (entry,) = list_datasets(tmp_path)
    assert entry["git_rev"] == "abc123" and entry["content_hash"] == ds.content_hash()
    assert (entry["id"], entry["kind"], entry["seed"], entry["transitions"],
            entry["episodes"], entry["return_mean"]) == ("pendulum-random", "random", 0, 6, 2,
                                                          7.5)
    assert resolve_dataset("pendulum-random", cache_dir=tmp_path).content_hash() \
        == ds.content_hash()
    loaded = load_cached(tmp_path, "pendulum-random")
    assert loaded is not None and loaded.content_hash() == ds.content_hash()
    assert load_cached(tmp_path, "pendulum-expert") is None
    # Rebuilt in the other format: the old file goes, the index points at the new one.
    again = store_dataset(_tiny(1), tmp_path, "pendulum-random", "npz", {})
    assert again.suffix == ".npz" and not path.exists()
    (entry,) = list_datasets(tmp_path)
    assert entry["file"] == again.name and "git_rev" not in entry
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name or ".partial" in p.name]
    assert json.loads((tmp_path / "index.json").read_text())["version"] == 1


def test_import_and_bad_input_do_not_load_torch(tmp_path):
    code = ("import sys\n"
            "from rlworks.data.factory import resolve_dataset, list_datasets\n"
            "from rlworks.core.errors import UserError\n"
            f"list_datasets({str(tmp_path)!r})\n"
            "try:\n    resolve_dataset('hoper-medium')\nexcept UserError:\n    pass\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------------- layering
UPPER = ("algos", "exec", "eval", "track", "cli")
_UPPER_NAME = re.compile(rf"rlworks\.({'|'.join(UPPER)})(\.\w+)*(:\w+)?")


def _imports_above_data(source: str, module: str) -> list[str]:
    """``module``'s imports (anywhere: top level, inside functions, relative ones resolved,
    ``importlib.import_module``/``__import__`` calls and lazy ``"pkg.mod:Class"`` strings)
    that name a layer above ``data/``, as ``"line: name"``."""
    found = []
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names = [node.value.strip()]  # import_module("..."), registry "module:Class"
        line = getattr(node, "lineno", 0)
        found += [f"{line}: {n}" for n in names if _UPPER_NAME.fullmatch(n)]
    return found


def _data_modules() -> list[tuple[Path, str]]:
    root = Path(rlworks.data.__file__).parent
    out = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts[-1] = "_"  # a package's __init__: relative imports start at the package
        out.append((path, ".".join(parts)))
    return out


def test_the_layering_check_catches_upward_imports():
    bad = ("import rlworks.track.store\n"
           "def f():\n    from rlworks.algos.online.sac import SAC\n"
           "    from ...exec import train\n"
           "    return importlib.import_module('rlworks.eval.evaluate')\n"
           "REG = {'sac': 'rlworks.algos.online.sac:SAC'}\n"
           "from rlworks.core.errors import UserError\n"
           "from . import dataset\n")
    found = _imports_above_data(bad, "rlworks.data.formats.x")
    assert sorted(found) == sorted([
        "1: rlworks.track.store", "3: rlworks.algos.online.sac",
        "3: rlworks.algos.online.sac.SAC", "4: rlworks.exec", "4: rlworks.exec.train",
        "5: rlworks.eval.evaluate", "6: rlworks.algos.online.sac:SAC"])
    assert not _imports_above_data("from rlworks.data.recipes import Budget\n"
                                   '"""Made by rlworks.exec.datasets."""\n', "rlworks.data.x")


def test_data_imports_nothing_above_it():
    """core < envs < data < nets < ... < algos < eval < track < exec < cli: no module of
    rlworks/data/ may import algos, exec, eval, track or cli, not even inside a function."""
    modules = _data_modules()
    assert {"rlworks.data.factory", "rlworks.data.recipes"} <= {m for _, m in modules}
    offenders = {str(path): found for path, module in modules
                 if (found := _imports_above_data(path.read_text(), module))}
    assert not offenders, f"data/ imports from a layer above it: {offenders}"


def test_unbuilt_default_name_points_at_builds_with_another_budget(tmp_path):
    store_dataset(_tiny(), tmp_path, "pendulum-random-s0-b1234abcd", "npz", {})
    with pytest.raises(UserError, match="the cache holds pendulum-random-s0-b1234abcd; build"):
        resolve_dataset("pendulum-random", cache_dir=tmp_path)
    with pytest.raises(UserError) as err:  # another kind: no such hint
        resolve_dataset("pendulum-medium", cache_dir=tmp_path)
    assert "the cache holds" not in str(err.value)
