"""RunStore: records, provenance, look-ups, metrics, statuses, artefacts, bad paths."""

from __future__ import annotations

import math
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rlworks.core.errors import UserError
from rlworks.track import provenance
from rlworks.track.store import RunStore, default_store_path


def _run(store: RunStore, **kw: object) -> str:
    args: dict[str, object] = {"algo": "ppo", "env_id": "CartPole-v1", "seed": 0,
                               "config": {"lr": 3e-4}, "config_hash": "abc123"}
    return store.create_run(**{**args, **kw})  # type: ignore[arg-type]


def test_create_run_records_provenance(store: RunStore) -> None:
    run_id = _run(store, experiment="exp", tags=["a", "b"], config={"lr": 1e-3, "n": (1, 2)})
    assert len(run_id) == 8 and int(run_id, 16) >= 0
    r = store.get_run(run_id)
    assert (r.algo, r.env_id, r.seed, r.experiment, r.tags) == ("ppo", "CartPole-v1", 0,
                                                                "exp", ("a", "b"))
    assert r.config == {"lr": 1e-3, "n": [1, 2]} and r.config_hash == "abc123"
    assert r.status == "running" and r.ended_at is None and r.summary == {}
    assert r.pid == os.getpid() and r.host == provenance.host_name()
    assert abs(r.started_at - time.time()) < 60
    for pkg in ("python", "numpy", "torch", "gymnasium", "rlworks"):
        assert r.versions[pkg], pkg
    assert r.last_step is None


def test_git_revision_and_dirty_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()

    def git(*args: str) -> str:
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
                              cwd=repo, check=True, capture_output=True, text=True).stdout
    git("init", "-q")
    (repo / "f.txt").write_text("1")
    git("add", "f.txt")
    git("commit", "-q", "-m", "x")
    sha = git("rev-parse", "HEAD").strip()
    assert provenance.git_revision(str(repo)) == sha
    (repo / "f.txt").write_text("2")
    provenance.git_revision.cache_clear()
    assert provenance.git_revision(str(repo)) == f"{sha}-dirty"
    provenance.git_revision.cache_clear()
    assert provenance.git_revision(str(tmp_path)) is None  # not a repository

    monkeypatch.chdir(repo)
    store = RunStore(tmp_path / "store")
    assert store.get_run(_run(store)).git_rev == f"{sha}-dirty"
    provenance.git_revision.cache_clear()


def test_store_import_loads_no_numerical_package(tmp_path: Path) -> None:
    code = (
        "import sys; from rlworks.track.store import RunStore; import rlworks.cli.runs; "
        f"s = RunStore({str(tmp_path / 's')!r}); s.create_run('a', 'e', 0, {{}}, 'h'); "
        "bad = [m for m in ('torch', 'gymnasium', 'numpy', 'matplotlib') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_default_store_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("RLWORKS_STORE", raising=False)
    assert default_store_path() == Path("rlworks-runs")
    monkeypatch.setenv("RLWORKS_STORE", str(tmp_path / "elsewhere"))
    assert RunStore().path == tmp_path / "elsewhere"
    assert (tmp_path / "elsewhere" / "runs.sqlite").is_file()


def test_lookup_by_prefix_unknown_and_ambiguous(store: RunStore) -> None:
    ids = [_run(store, seed=i) for i in range(17)]  # 17 ids, 16 first digits: two share one
    assert store.get_run(ids[3]).seed == 3
    unique = next(i for i in ids if sum(j.startswith(i[:4]) for j in ids) == 1)
    assert store.get_run(unique[:4]).run_id == unique
    shared = next(i[0] for i in ids if sum(j.startswith(i[0]) for j in ids) > 1)
    with pytest.raises(UserError, match=f"prefix '{shared}' is ambiguous"):
        store.get_run(shared)
    with pytest.raises(UserError) as err:
        store.get_run(ids[0][:7] + ("0" if ids[0][7] != "0" else "1"))
    msg = str(err.value)
    assert msg.startswith("unknown run id") and "'rlworks runs ls' lists them" in msg
    assert f"did you mean '{ids[0]}'?" in msg
    with pytest.raises(UserError, match="unknown run id 'zzzz'; 'rlworks runs ls'"):
        store.get_run("zzzz")


def test_unknown_run_in_empty_store_names_the_store(store: RunStore) -> None:
    with pytest.raises(UserError, match="holds no runs"):
        store.get_run("abc")
    with pytest.raises(UserError, match="unknown run id"):
        store.log_metrics("abc", [(0, "k", 1.0)])
    with pytest.raises(UserError, match="unknown run id"):
        store.set_status("abc", "finished")


@pytest.mark.parametrize("kind", ["proc", "file", "readonly"])
def test_unwritable_store_path(tmp_path: Path, kind: str,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    if kind == "proc":
        path = Path("/proc/x")
    elif kind == "file":
        path = tmp_path / "a_file"
        path.write_text("not a directory")
    else:
        path = tmp_path / "ro"
        path.mkdir()
        path.chmod(0o555)
        if os.geteuid() == 0:  # root writes anyway: make os.access report what a user sees
            real_access = os.access
            monkeypatch.setattr(os, "access", lambda p, mode, **kw: (
                False if Path(p) == path and mode & os.W_OK else real_access(p, mode, **kw)))
    with pytest.raises(UserError) as err:
        RunStore(path)
    msg = str(err.value)
    assert str(path) in msg and "--store DIR" in msg and "RLWORKS_STORE" in msg


def test_metrics_roundtrip_and_non_finite(store: RunStore) -> None:
    run_id = _run(store)
    assert store.log_metrics(run_id, [(0, "a", 1.0), (0, "b", 2), (1, "a", math.nan),
                                      (2, "a", math.inf), (2, "b", -math.inf)]) == 5
    assert store.log_metrics(run_id, []) == 0
    m = store.metrics(run_id)
    assert m["a"][0] == [0, 1, 2] and m["a"][1][0] == 1.0 and math.isnan(m["a"][1][1])
    assert m["a"][1][2] == math.inf and m["b"] == ([0, 2], [2.0, -math.inf])
    assert list(store.metrics(run_id, keys=["b"])) == ["b"]
    assert store.metrics(run_id, keys=[]) == {}
    assert store.last_metrics(run_id) == {"a": (2, math.inf), "b": (2, -math.inf)}
    assert store.get_run(run_id).last_step == 2
    # the same key twice at one step (two episodes ending together) keeps both, in order
    store.log_metrics(run_id, [(5, "ret", 1.0), (5, "ret", 2.0), (3, "ret", 9.0)])
    assert store.metrics(run_id, ["ret"])["ret"] == ([3, 5, 5], [9.0, 1.0, 2.0])
    assert store.last_metrics(run_id)["ret"] == (5, 2.0)  # last logged at the largest step


def test_delete_metrics_after(store: RunStore) -> None:
    run_id, other = _run(store), _run(store, seed=1)
    store.log_metrics(run_id, [(s, k, float(s)) for s in range(10) for k in ("a", "b")])
    store.log_metrics(other, [(s, "a", 0.0) for s in range(10)])
    assert store.delete_metrics_after(run_id, 4) == 10
    m = store.metrics(run_id)
    assert m["a"][0] == [0, 1, 2, 3, 4] and m["b"][1] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert store.get_run(run_id).last_step == 4
    assert store.count_metrics(other) == 10  # other runs untouched
    store.delete_metrics_after(run_id, -1)
    assert store.get_run(run_id).last_step is None


def test_status_summary_and_resume(store: RunStore) -> None:
    run_id = _run(store)
    store.set_status(run_id, "running", {"a": 1})
    store.set_status(run_id, "interrupted", {"b": 2})
    r = store.get_run(run_id)
    assert r.status == "interrupted" and r.ended_at is not None and r.summary == {"a": 1, "b": 2}
    store.set_status(run_id, "running")  # resume
    assert store.get_run(run_id).ended_at is None
    store.set_status(run_id, "finished", {"a": 3, "eval_return_mean": 500.0})
    r = store.get_run(run_id)
    assert r.summary == {"a": 3, "b": 2, "eval_return_mean": 500.0} and r.status == "finished"
    assert r.duration_s is not None and r.duration_s >= 0
    with pytest.raises(UserError, match="unknown run status 'done'"):
        store.set_status(run_id, "done")
    with pytest.raises(UserError, match="did you mean 'finished'"):
        store.list_runs(status="finishd")


def test_displayed_status_unfinished(store: RunStore) -> None:
    run_id = _run(store)
    assert store.get_run(run_id).status == "running"  # this process is alive

    def edit(sql: str, *params: object) -> None:
        with sqlite3.connect(store.db_path) as conn:
            conn.execute(sql, params)

    edit("UPDATE runs SET heartbeat_at = ? WHERE run_id = ?", time.time() - 3600, run_id)
    assert store.get_run(run_id).status == "running"  # silent, but its process lives here
    store.heartbeat(run_id)
    edit("UPDATE runs SET pid_start = pid_start + 1 WHERE run_id = ?", run_id)
    assert store.get_run(run_id).status == "unfinished"  # the pid was recycled
    edit("UPDATE runs SET host = 'elsewhere' WHERE run_id = ?", run_id)
    assert store.get_run(run_id).status == "running"  # can't see its pid: trust the heartbeat
    edit("UPDATE runs SET heartbeat_at = ? WHERE run_id = ?", time.time() - 3600, run_id)
    assert store.get_run(run_id).status == "unfinished"
    store.heartbeat(run_id)
    assert store.get_run(run_id).status == "running"
    store.set_status(run_id, "failed")
    assert store.get_run(run_id).status == "failed"


def test_list_runs_filters(store: RunStore) -> None:
    a = _run(store, algo="ppo", experiment="x")
    b = _run(store, algo="dqn", env_id="Acrobot-v1")
    c = _run(store, algo="ppo", env_id="Acrobot-v1")
    store.set_status(c, "finished")
    assert [r.run_id for r in store.list_runs()] == [a, b, c]
    assert [r.run_id for r in store.list_runs(algo="ppo")] == [a, c]
    assert [r.run_id for r in store.list_runs(env_id="Acrobot-v1", algo="ppo")] == [c]
    assert [r.run_id for r in store.list_runs(experiment="x")] == [a]
    assert [r.run_id for r in store.list_runs(status="finished")] == [c]
    assert store.list_runs(algo="sac") == []


def test_artefacts_and_delete_run(store: RunStore, tmp_path: Path) -> None:
    run_id, keep = _run(store), _run(store, seed=1)
    d = store.run_dir(run_id)
    assert d == store.path / "artefacts" / run_id and d.is_dir()
    (d / "ckpt").write_text("x")
    store.add_artefact(run_id, "checkpoint", d / "ckpt")
    store.add_artefact(run_id, "plot", "plots/curve.png")
    store.add_artefact(run_id, "external", tmp_path / "other.bin")
    assert store.artefacts(run_id) == [("checkpoint", d / "ckpt"),
                                       ("plot", d / "plots/curve.png"),
                                       ("external", tmp_path / "other.bin")]
    with sqlite3.connect(store.db_path) as conn:  # inside run_dir: stored relative
        assert conn.execute("SELECT path FROM artefacts LIMIT 1").fetchone()[0] == "ckpt"
    store.log_metrics(run_id, [(0, "a", 1.0)])
    store.log_metrics(keep, [(0, "a", 1.0)])
    store.delete_run(run_id)
    assert not d.exists() and store.count_metrics() == 1
    assert [r.run_id for r in store.list_runs()] == [keep]
    with pytest.raises(UserError):
        store.add_artefact(run_id, "plot", "x.png")


def test_schema_is_idempotent_and_versioned(store: RunStore) -> None:
    run_id = _run(store)
    again = RunStore(store.path)
    assert again.get_run(run_id).run_id == run_id
    with sqlite3.connect(store.db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == 1
        conn.execute("UPDATE schema_version SET version = 99")
    store.close()
    again.close()
    with pytest.raises(UserError, match="schema version 99"):
        RunStore(store.path)


def test_postgres_url_is_future_work() -> None:
    with pytest.raises(UserError, match="PostgreSQL"):
        RunStore("postgresql://db/runs")
