"""The experiment scripts under experiments/: they start, and their report helpers are right.

The scripts themselves run for hours; these tests check what can break without a run: that
each script imports and answers ``--help``, how a stored run is matched to the job that made it,
and the table a claim writes (by hand: IQM of 1..5 keeps the middle three, mean 3.0).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(p for p in (ROOT / "experiments").glob("*.py") if not p.name.startswith("_"))


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_script_answers_help(script: Path) -> None:
    out = subprocess.run([sys.executable, str(script), "--help"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "usage:" in out.stdout


def test_offline_claims_matches_stored_runs_to_jobs() -> None:
    oc = _load("offline_claims")
    job = oc.Job("wsrl", "pendulum-medium", 2, init="abc123", label="wsrl")
    record = SimpleNamespace(
        algo="wsrl", seed=2,
        config={"dataset": "pendulum-medium",
                "init_checkpoint": "/s/artefacts/abc123/checkpoints/step_000001000.json"})
    assert oc.run_key(record) == job.key()
    # Another seed, corruption or weighting is another job.
    assert oc.run_key(SimpleNamespace(algo="iql", seed=0, config={
        "dataset": "d", "corrupt": "dynamics:0.3:1.0", "reweight": ""})) == oc.Job(
        "iql", "d", 0, corrupt="dynamics:0.3:1.0").key()
    assert oc.run_key(SimpleNamespace(algo="iql", seed=0, config={"dataset": "d"})) != oc.Job(
        "iql", "d", 0, reweight="return:0.1").key()


def test_offline_claims_table_by_hand() -> None:
    oc = _load("offline_claims")
    rows = oc.table({"bc": np.zeros(5), "iql": np.array([5.0, 1.0, 4.0, 2.0, 3.0])}, "bc", "t")
    assert rows[0].startswith("| method | seeds |") and "P(method > bc)" in rows[0]
    bc, iql = rows[2].split(" | "), rows[3].split(" | ")
    assert bc[0] == "| bc" and bc[3].startswith("0.0 [0.0, 0.0]") and bc[4] == "- |"
    # IQM of 1..5 trims one value at each end: (2 + 3 + 4) / 3 = 3.0; every iql run beats
    # every bc run, so P(iql > bc) = 1 in every bootstrap resample.
    assert iql[2] == "5.0, 1.0, 4.0, 2.0, 3.0"
    assert iql[3].startswith("3.0 [")
    assert iql[4] == "1.00 [1.00, 1.00] |"


def test_llm_mixture_accuracy_by_hand() -> None:
    mix = _load("llm_e2e").mixture_accuracy
    counts = {
        "a": (np.array([2.0, 0.0, 0.0]), np.array([2.0, 0.0, 2.0])),
        "b": (np.array([0.0, 2.0, 2.0]), np.array([2.0, 4.0, 2.0])),
    }
    # window 4: each step alone holds >= 4 samples. Step 1 draws no "a": it keeps 2/2.
    # step 0: (2/2 + 0/2)/2 = 0.5; step 1: (1 + 2/4)/2 = 0.75; step 2: (0/2 + 2/2)/2 = 0.5
    np.testing.assert_allclose(mix(counts, 4.0), [0.5, 0.75, 0.5])
    # window 6: step 1 pools steps 0-1 (8 samples): (2/2 + 2/6)/2; step 2 pools steps 1-2
    # (8 samples; step 2 alone has 4): (0/2 + 4/6)/2
    np.testing.assert_allclose(mix(counts, 6.0), [0.5, 2 / 3, 1 / 3])
    # a source not drawn yet leaves the mixture undefined
    counts["c"] = (np.array([0.0, 1.0, 0.0]), np.array([0.0, 1.0, 0.0]))
    out = mix(counts, 4.0)
    assert np.isnan(out[0]) and np.isfinite(out[1:]).all()
