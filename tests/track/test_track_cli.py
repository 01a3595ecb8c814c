"""`rlworks runs ls | show | export | rm` through an argparse parser like the main CLI's."""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from rlworks.core.errors import UserError
from rlworks.track.store import RunStore

Cli = Callable[..., int]


def _fill(store: RunStore) -> tuple[str, str]:
    done = store.create_run("ppo", "CartPole-v1", 0, {"lr": 3e-4, "env": "CartPole-v1"},
                            "abc123", experiment="quick")
    store.log_metrics(done, [(s, "eval/return", float(s)) for s in range(0, 150_000, 50_000)]
                      + [(100_000, "train/loss", math.nan), (100_000, "train/loss", 0.5)])
    store.add_artefact(done, "checkpoint", store.run_dir(done) / "step_100000.json")
    store.set_status(done, "finished", {"eval_return_mean": 487.25})
    live = store.create_run("dqn", "Acrobot-v1", 1, {}, "def456")
    return done, live


def test_ls_table(store: RunStore, cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    done, live = _fill(store)
    assert cli("--store", str(store.path), "runs", "ls") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "EXPERIMENT", "ALGO", "ENV", "SEED", "STATUS", "STEPS",
                                "RETURN", "STARTED", "DURATION"]
    first = lines[1].split()
    assert first[:8] == [done, "quick", "ppo", "CartPole-v1", "0", "finished", "100k", "487.2"]
    assert lines[2].split()[:8] == [live, "-", "dqn", "Acrobot-v1", "1", "running", "-", "-"]
    assert lines[1].index("finished") == lines[0].index("STATUS")  # aligned columns


def test_ls_filters_and_json(store: RunStore, cli: Cli,
                             capsys: pytest.CaptureFixture[str]) -> None:
    done, live = _fill(store)
    cli("--store", str(store.path), "runs", "ls", "--algo", "dqn", "--json")
    (record,) = json.loads(capsys.readouterr().out)
    assert record["run_id"] == live and record["status"] == "running"
    cli("--store", str(store.path), "runs", "ls", "--status", "finished", "--env", "CartPole-v1")
    out = capsys.readouterr().out
    assert done in out and live not in out
    cli("--store", str(store.path), "runs", "ls", "--experiment", "quick", "--algo", "dqn")
    captured = capsys.readouterr()
    assert captured.out == "" and "no runs match" in captured.err
    with pytest.raises(UserError, match="unknown algo 'ppp'; did you mean 'ppo'"):
        cli("--store", str(store.path), "runs", "ls", "--algo", "ppp")
    with pytest.raises(UserError, match="unknown run status 'done'"):
        cli("--store", str(store.path), "runs", "ls", "--status", "done")


def test_ls_without_store_creates_nothing(tmp_path: Path, cli: Cli,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere"
    assert cli("--store", str(missing), "runs", "ls") == 0
    assert "no runs yet" in capsys.readouterr().err
    assert not missing.exists()
    with pytest.raises(UserError, match="no run store at .*--store DIR"):
        cli("--store", str(missing), "runs", "show", "abc")


def test_show(store: RunStore, cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    done, _ = _fill(store)
    assert cli("--store", str(store.path), "runs", "show", done[:5]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"run {done}: ppo on CartPole-v1, seed 0  [finished]")
    for text in ("config (hash abc123)", "lr", "0.0003", "eval_return_mean = 487.25",
                 "eval/return", "100000", "train/loss", "checkpoint", "step_100000.json",
                 "numpy", "experiment  quick"):
        assert text in out, text
    cli("--store", str(store.path), "runs", "show", done, "--json")
    doc = json.loads(capsys.readouterr().out)
    assert doc["last_metrics"]["eval/return"] == {"step": 100_000, "value": 100_000.0}
    assert doc["config"] == {"lr": 3e-4, "env": "CartPole-v1"}
    assert doc["artefacts"][0]["kind"] == "checkpoint"
    with pytest.raises(UserError, match="unknown run id 'ffffffff'"):
        cli("--store", str(store.path), "runs", "show", "ffffffff")


def test_export_csv_and_json(store: RunStore, cli: Cli, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    done, _ = _fill(store)
    logged = sorted([("eval/return", s, float(s)) for s in range(0, 150_000, 50_000)]
                    + [("train/loss", 100_000, math.nan), ("train/loss", 100_000, 0.5)],
                    key=lambda r: (r[0], r[1]))

    cli("--store", str(store.path), "runs", "export", done, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert {(r["run_id"], r["algo"], r["env_id"], r["seed"]) for r in rows} == {
        (done, "ppo", "CartPole-v1", "0")}
    got = [(r["key"], int(r["step"]), float(r["value"])) for r in rows]
    assert len(got) == len(logged)
    for (k, s, v), (k2, s2, v2) in zip(got, logged, strict=True):
        assert (k, s) == (k2, s2) and (v == v2 or (math.isnan(v) and math.isnan(v2)))

    out = tmp_path / "run.json"
    assert cli("--store", str(store.path), "runs", "export", done[:6], "-o", str(out)) == 0
    assert "5 metric values" in capsys.readouterr().err
    doc = json.loads(out.read_text())  # strict JSON: NaN became null
    assert doc["run"]["run_id"] == done and doc["run"]["summary"]["eval_return_mean"] == 487.25
    assert [(m["key"], m["step"], m["value"]) for m in doc["metrics"]] == [
        (k, s, None if math.isnan(v) else v) for k, s, v in logged]

    with pytest.raises(UserError, match="cannot write"):
        cli("--store", str(store.path), "runs", "export", done, "-o", str(tmp_path / "no/x.csv"))


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_rm(store: RunStore, cli: Cli, monkeypatch: pytest.MonkeyPatch,
            capsys: pytest.CaptureFixture[str]) -> None:
    done, live = _fill(store)
    other = store.create_run("ppo", "CartPole-v1", 2, {}, "h")
    store.set_status(other, "failed")
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    with pytest.raises(UserError, match="without confirmation.*--yes"):
        cli("--store", str(store.path), "runs", "rm", done)
    with pytest.raises(UserError, match="still running"):
        cli("--store", str(store.path), "runs", "rm", live, "--yes")
    with pytest.raises(UserError, match="unknown run id"):  # nothing deleted on a bad id
        cli("--store", str(store.path), "runs", "rm", done, "0000zzzz", "--yes")
    assert len(store.list_runs()) == 3

    monkeypatch.setattr(sys, "stdin", _Tty("n\n"))
    assert cli("--store", str(store.path), "runs", "rm", other) == 1
    monkeypatch.setattr(sys, "stdin", _Tty("y\n"))
    assert cli("--store", str(store.path), "runs", "rm", other) == 0

    run_dir = store.run_dir(done)
    assert cli("--store", str(store.path), "runs", "rm", done, "-y") == 0
    assert not run_dir.exists() and store.count_metrics(done) == 0
    assert [r.run_id for r in store.list_runs()] == [live]
    assert "deleted" in capsys.readouterr().err


def test_runs_without_command_prints_help(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("runs") == 2
    assert "ls" in capsys.readouterr().err


def test_cli_starts_fast_without_torch(store: RunStore) -> None:
    _fill(store)
    code = ("import sys, time; t = time.perf_counter(); import argparse, rlworks.cli.runs as r; "
            "p = argparse.ArgumentParser(); p.add_argument('--store'); "
            "r.register(p.add_subparsers()); a = p.parse_args(sys.argv[1:]); a.func(a); "
            "bad = [m for m in ('torch', 'gymnasium', 'numpy') if m in sys.modules]; "
            "assert not bad, bad; print(time.perf_counter() - t, file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", code, "--store", str(store.path), "runs", "ls"],
                         check=True, capture_output=True, text=True)
    assert "ppo" in out.stdout
    assert float(out.stderr.strip()) < 0.5
