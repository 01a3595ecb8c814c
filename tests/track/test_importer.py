"""Importing CSV/JSON runs: round trip, no duplicates on re-import, one-line errors, nothing
written on bad input."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest

from rlworks.cli.runs import write_export
from rlworks.core.errors import UserError
from rlworks.track.importer import import_runs
from rlworks.track.store import RunStore

CSV = """step,metric,value,run,algorithm,env,seed
1000,charts/episodic_return,10.5,wandb-a1,ppo,CartPole-v1,0
2000,charts/episodic_return,55.0,wandb-a1,ppo,CartPole-v1,0
2000,eval/return,60.0,wandb-a1,ppo,CartPole-v1,0
1000,charts/episodic_return,-300,wandb-b7,dqn,Acrobot-v1,1
3000,charts/episodic_return,nan,wandb-b7,dqn,Acrobot-v1,1
2000,charts/episodic_return,-200,wandb-b7,dqn,Acrobot-v1,1
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def snapshot(store: RunStore) -> tuple[list[str], int]:
    return sorted(r.run_id for r in store.list_runs()), store.count_metrics()


def test_csv_round_trip(store: RunStore, tmp_path: Path) -> None:
    path = write(tmp_path, "wandb.csv", CSV)
    result = import_runs(store, path, experiment="baselines")
    assert len(result.created) == 2 and result.skipped == [] and result.values == 6
    ppo, dqn = (store.get_run(i) for i in result.created)
    assert (ppo.algo, ppo.env_id, ppo.seed, ppo.experiment) == ("ppo", "CartPole-v1", 0,
                                                                 "baselines")
    assert ppo.status == "finished" and ppo.config == {} and ppo.config_hash == "imported"
    assert ppo.tags == ("imported", "wandb.csv")
    assert store.metrics(ppo.run_id)["charts/episodic_return"] == ([1000, 2000], [10.5, 55.0])
    assert ppo.summary["final/charts/episodic_return"] == 55.0
    assert ppo.summary["eval_return_mean"] == 60.0  # from eval/return, as training does
    assert ppo.summary["import_run"] == "wandb-a1" and ppo.last_step == 2000
    steps, values = store.metrics(dqn.run_id)["charts/episodic_return"]
    assert steps == [1000, 2000, 3000] and values[:2] == [-300.0, -200.0]
    assert math.isnan(values[2])
    assert dqn.summary["final/charts/episodic_return"] == -200.0  # last *finite* value
    assert "eval_return_mean" not in dqn.summary


def test_reimport_adds_nothing(store: RunStore, tmp_path: Path) -> None:
    path = write(tmp_path, "wandb.csv", CSV)
    import_runs(store, path, experiment="baselines")
    before = snapshot(store)
    again = import_runs(store, path, experiment="baselines")
    assert again.created == [] and again.skipped == ["wandb-a1", "wandb-b7"]
    assert snapshot(store) == before
    # a new run in the file is added, the old ones are not duplicated
    more = write(tmp_path, "more.csv", CSV + "500,charts/episodic_return,9,wandb-c3,ppo,"
                                             "CartPole-v1,1\n")
    third = import_runs(store, more, experiment="baselines")
    assert len(third.created) == 1 and len(third.skipped) == 2
    assert len(store.list_runs()) == 3
    # another experiment is another set of runs
    assert len(import_runs(store, path, experiment="other").created) == 2


def test_json_layouts_and_aliases(store: RunStore, tmp_path: Path) -> None:
    rows = [{"global_step": 10, "key": "loss", "value": 1.5, "algo": "sac",
             "env_id": "Pendulum-v1", "seed": 3}]
    a = import_runs(store, write(tmp_path, "a.json", json.dumps(rows)))
    b = import_runs(store, write(tmp_path, "b.json", json.dumps({"rows": rows})),
                    experiment="x")
    for run_id in (*a.created, *b.created):
        run = store.get_run(run_id)
        assert (run.algo, run.env_id, run.seed) == ("sac", "Pendulum-v1", 3)
        assert run.summary["import_run"] == "sac/Pendulum-v1/3"  # no run column
        assert store.metrics(run_id) == {"loss": ([10], [1.5])}


def test_rlworks_export_imports_into_another_store(store: RunStore, tmp_path: Path) -> None:
    src = RunStore(tmp_path / "src")
    run_id = src.create_run("ppo", "CartPole-v1", 4, {}, "h")
    src.log_metrics(run_id, [(1, "eval/return", 3.0), (2, "eval/return", 4.0)])
    record, metrics = src.get_run(run_id), src.metrics(run_id)
    for fmt in ("csv", "json"):
        buf = io.StringIO()
        write_export(record, metrics, fmt, buf)
        result = import_runs(store, write(tmp_path, f"export.{fmt}", buf.getvalue()),
                             experiment=fmt)
        (new,) = result.created
        assert store.metrics(new) == metrics
        assert store.get_run(new).summary["import_run"] == run_id
        assert store.get_run(new).summary["eval_return_mean"] == 4.0
    src.close()


BAD = {
    "missing column": ("x.csv", "step,metric,value,algorithm,env\n1,a,1,ppo,E\n",
                       "missing column 'seed'"),
    "alias hint": ("x.csv", "step,metric,value,env,seed\n1,a,1,E,0\n",
                   "missing column 'algorithm' (or algo)"),
    "non-numeric value": ("x.csv", CSV + "4000,charts/episodic_return,abc,r,ppo,E,0\n",
                          "line 8: value 'abc' is not a number"),
    "empty value": ("x.csv", CSV.replace("55.0", ""), "line 3: value is empty"),
    "fractional step": ("x.csv", CSV.replace("2000,eval", "2000.5,eval"),
                        "line 4: step '2000.5' is not an integer"),
    "empty file": ("x.csv", "", "no rows"),
    "header only": ("x.csv", "step,metric,value,algorithm,env,seed\n", "no rows"),
    "extra cells": ("x.csv", CSV + "1,a,1,r,ppo,E,0,surplus\n", "line 8: 8 cells"),
    "unknown extension": ("x.txt", CSV, "unknown file type '.txt'"),
    "bad json": ("x.json", "[{", "not valid JSON"),
    "json not rows": ("x.json", '{"a": 1}', "expected a list of row objects"),
    "json row not object": ("x.json", '[{"step": 1}, 5]', "row 2: expected an object"),
    "json missing value": ("x.json", json.dumps([{"step": 1, "metric": "m", "algorithm": "a",
                                                  "env": "e", "seed": 0}]),
                           "missing column 'value'"),
    "json null value": ("x.json", json.dumps([{"step": 1, "metric": "m", "algorithm": "a",
                                               "env": "e", "seed": 0, "value": None}]),
                        "row 1: value is empty"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_and_writes_nothing(case: str, store: RunStore,
                                                  tmp_path: Path) -> None:
    name, text, needle = BAD[case]
    import_runs(store, write(tmp_path, "good.csv", CSV))  # already stored: must survive
    before = snapshot(store)
    path = write(tmp_path, name, text)
    with pytest.raises(UserError) as err:
        import_runs(store, path, experiment="new")
    message = str(err.value)
    assert needle in message and str(path) in message and "\n" not in message, message
    assert snapshot(store) == before


def test_missing_file(store: RunStore, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such file"):
        import_runs(store, tmp_path / "nope.csv")
