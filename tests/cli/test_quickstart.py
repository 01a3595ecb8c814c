"""`rlworks quickstart` end to end at a tiny budget: grid, table, IQM comparison, plots, rerun."""

from __future__ import annotations

import re

from rlworks.cli.main import main
from rlworks.track.store import RunStore


def test_quickstart_compares_ppo_and_dqn_and_a_rerun_trains_nothing(tmp_path, capsys,
                                                                    monkeypatch):
    monkeypatch.setenv("RLWORKS_QUIET", "1")
    args = ["--store", str(tmp_path), "quickstart", "--seeds", "0,1", "--total-steps", "600",
            "--workers", "1"]
    assert main(args) == 0
    out = capsys.readouterr()
    assert "4 runs: 0 finished already, 4 to run" in out.err
    assert re.search(r"^ppo\s+2\s", out.out, re.M) and re.search(r"^dqn\s+2\s", out.out, re.M)
    assert re.search(r"P\((ppo > dqn|dqn > ppo)\) = [01]\.\d{3} \[", out.out)
    for name in ("interval_estimates", "learning_curves"):
        assert (tmp_path / "quickstart" / f"{name}.png").stat().st_size > 10_000
        assert (tmp_path / "quickstart" / f"{name}.svg").exists()
    runs = RunStore(tmp_path).list_runs(experiment="quickstart")
    assert sorted((r.algo, r.seed, r.status) for r in runs) == [
        ("dqn", 0, "finished"), ("dqn", 1, "finished"),
        ("ppo", 0, "finished"), ("ppo", 1, "finished")]

    assert main(args) == 0  # the same command again: everything is reused
    assert "4 runs: 4 finished already, 0 to run" in capsys.readouterr().err
    assert len(RunStore(tmp_path).list_runs(experiment="quickstart")) == 4
