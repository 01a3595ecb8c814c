"""``rlworks data make | ls | show | export`` at a tiny budget on Pendulum-v1, and bad input:
one line, exit code 2, no cached dataset touched."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rlworks.cli.main import main
from rlworks.data.factory import list_datasets, resolve_dataset

TINY = ["--agent-steps", "300", "--learning-starts", "100", "--size", "400",
        "--snapshot-every", "100", "--snapshot-episodes", "2", "--reference-episodes", "4"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-cache")
    assert main(["data", "make", "pendulum-random", "--cache-dir", str(root), "--no-progress",
                 *TINY]) == 0
    return root


def cached(cache):
    (entry,) = [e for e in list_datasets(cache) if e["kind"] == "random" and e["seed"] == 0]
    return entry


def test_make_prints_the_summary_and_path(cache, capsys):
    entry = cached(cache)
    argv = ["data", "make", "pendulum-random", "--cache-dir", str(cache), "--no-progress", *TINY]
    before = (cache / entry["file"]).stat().st_mtime_ns
    assert main(argv) == 0  # cached: reused, not rebuilt
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == entry["path"] and (cache / entry["file"]).stat().st_mtime_ns == before
    assert entry["id"] in out[0] and "400 transitions" in out[0]
    assert entry["content_hash"][:12] in out[0]


def test_force_rebuilds_with_the_same_hash(cache, capsys):
    entry = cached(cache)
    argv = ["data", "make", "pendulum-random", "--cache-dir", str(cache), "--no-progress",
            "--force", "--json", *TINY]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out.splitlines()[0])
    assert doc["content_hash"] == entry["content_hash"] and doc["created"] >= entry["created"]


def test_ls(cache, capsys):
    assert main(["data", "ls", "--cache-dir", str(cache)]) == 0
    out = capsys.readouterr().out
    entry = cached(cache)
    assert entry["id"] in out and entry["content_hash"][:12] in out
    assert "hopper (Hopper-v5)" in out and "medium-replay" in out and "D4RL-style" in out
    assert main(["data", "ls", "--cache-dir", str(cache), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["id"] == entry["id"]


def test_ls_of_an_empty_cache(tmp_path, capsys):
    assert main(["data", "ls", "--cache-dir", str(tmp_path / "none")]) == 0
    assert "no datasets" in capsys.readouterr().out


def test_show(cache, capsys):
    entry = cached(cache)
    assert main(["data", "show", entry["id"], "--cache-dir", str(cache)]) == 0
    out = capsys.readouterr().out
    for needle in ("Pendulum-v1", "[400, 3] float32", "[400, 1] float32", "episodes",
                   "min ", "mean ", "max ", "random ", "expert ", entry["content_hash"],
                   "agent_steps=300", "medium snapshot at step"):
        assert needle in out, needle
    assert main(["data", "show", entry["path"], "--json"]) == 0  # a path works too
    doc = json.loads(capsys.readouterr().out)
    assert doc["transitions"] == 400 and doc["episodes"] == 2
    assert set(doc["reference_scores"]) == {"random", "expert"}
    assert doc["returns"]["min"] <= doc["returns"]["mean"] <= doc["returns"]["max"]


@pytest.mark.parametrize("fmt,name", [("hdf5", "x.hdf5"), ("npz", "x.npz"),
                                      ("minari", "x-v0")])
def test_export_round_trips(cache, tmp_path, capsys, fmt, name):
    entry = cached(cache)
    out = tmp_path / "exports" / name
    assert main(["data", "export", entry["id"], "--cache-dir", str(cache), "--format", fmt,
                 "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert resolve_dataset(str(out)).content_hash() == entry["content_hash"]
    assert [p.name for p in out.parent.iterdir()] == [name]  # no temporary left behind


def _bad(cache, tmp_path):
    entry = cached(cache)
    (tmp_path / "taken.npz").write_bytes(b"mine")
    (tmp_path / "file").write_text("a file, not a directory")
    c = ["--cache-dir", str(cache)]
    return {
        "unknown name": (["data", "show", "nonsense", *c], "unknown dataset 'nonsense'"),
        "unknown env": (["data", "make", "hoper-medium", *c], "did you mean 'hopper'"),
        "unknown kind": (["data", "make", "pendulum-rnadom", *c], "did you mean 'random'"),
        "unbuilt": (["data", "show", "hopper-expert", *c], "rlworks data make hopper-expert"),
        "cached id typo": (["data", "show", entry["id"].replace("random", "randon"), *c],
                           f"did you mean '{entry['id']}'"),
        "missing file": (["data", "show", str(tmp_path / "no.hdf5")], "does not exist"),
        "bad budget": (["data", "make", "pendulum-random", "--force", *c, *TINY,
                        "--learning-starts", "5000"], "learning_starts"),
        "zero size": (["data", "make", "pendulum-random", "--force", *c, "--size", "0"],
                      "--size"),
        "negative seed": (["data", "make", "pendulum-random", *c, "--seed", "-1"], "--seed"),
        "existing --out": (["data", "export", entry["id"], *c, "--out",
                            str(tmp_path / "taken.npz")], "already exists"),
        "unwritable --out": (["data", "export", entry["id"], *c, "--out",
                              str(tmp_path / "file" / "x.npz")], "not a directory"),
        "format mismatch": (["data", "export", entry["id"], *c, "--format", "hdf5", "--out",
                             str(tmp_path / "y.npz")], "--format hdf5"),
        "unwritable cache": (["data", "make", "pendulum-random", "--cache-dir",
                              str(tmp_path / "file" / "cache")], "not writable"),
        "corrupt cached file": (["data", "show", "corrupt.hdf5"], "corrupt.hdf5"),
    }


BAD_CASES = ["unknown name", "unknown env", "unknown kind", "unbuilt", "cached id typo",
             "missing file", "bad budget", "zero size", "negative seed", "existing --out",
             "unwritable --out", "format mismatch", "unwritable cache", "corrupt cached file"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_is_one_line_exit_2_and_keeps_the_cache(case, cache, tmp_path, capsys,
                                                          monkeypatch):
    entry = cached(cache)
    cases = _bad(cache, tmp_path)
    assert sorted(cases) == sorted(BAD_CASES)
    argv, needle = cases[case]
    (tmp_path / "corrupt.hdf5").write_bytes(b"\x89HDF\r\n\x1a\n cut short")
    monkeypatch.chdir(tmp_path)
    files = {p.name: p.read_bytes() for p in cache.iterdir() if p.is_file()}
    taken = (tmp_path / "taken.npz").read_bytes()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: ") and needle in err, err
    assert {p.name: p.read_bytes() for p in cache.iterdir() if p.is_file()} == files
    assert (tmp_path / "taken.npz").read_bytes() == taken
    assert resolve_dataset(entry["id"], cache_dir=cache).content_hash() == entry["content_hash"]


def test_help_and_bad_input_do_not_import_torch(tmp_path):
    d = repr(str(tmp_path))
    code = ("import sys\n"
            "from rlworks.cli.main import main\n"
            f"assert main(['data', 'make', 'hoper-medium', '--cache-dir', {d}]) == 2\n"
            f"assert main(['data', 'show', 'hopper-medium', '--cache-dir', {d}]) == 2\n"
            f"assert main(['data', 'ls', '--cache-dir', {d}]) == 0\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    out = subprocess.run([sys.executable, "-m", "rlworks.cli.main", "data", "make", "--help"],
                         check=True, capture_output=True, text=True).stdout
    assert "--agent-steps" in out and "hopper" in out and "medium-replay" in out
