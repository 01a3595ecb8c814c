"""`rlworks compare` and `rlworks import` through the main entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rlworks.cli.main import main
from rlworks.track.store import RunStore

CSV_HEADER = "step,metric,value,run,algorithm,env,seed\n"


def fake_csv(path: Path) -> Path:
    """2 algorithms x 1 env x 3 seeds, with a final eval/return per run."""
    lines = [CSV_HEADER]
    for algo, level in (("ppo", 400.0), ("dqn", 200.0)):
        for seed in range(3):
            for step in range(1, 11):
                value = level * step / 10 + seed
                lines.append(f"{step * 1000},rollout/episodic_return,{value},{algo}-{seed},"
                             f"{algo},CartPole-v1,{seed}\n")
            lines.append(f"10000,eval/return,{level + 10 * seed},{algo}-{seed},{algo},"
                         f"CartPole-v1,{seed}\n")
    path.write_text("".join(lines))
    return path


def snapshot(store_dir: Path) -> tuple[list[tuple], int]:
    s = RunStore(store_dir)
    runs = sorted((r.run_id, r.status, json.dumps(r.summary, sort_keys=True))
                  for r in s.list_runs())
    n = s.count_metrics()
    s.close()
    return runs, n


@pytest.fixture
def filled(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    store = tmp_path / "store"
    csv_path = fake_csv(tmp_path / "runs.csv")
    assert main(["--store", str(store), "import", str(csv_path), "--experiment", "demo"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("imported 6 runs (66 values) into experiment 'demo'"), out
    return store


def test_import_then_compare(filled: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "report"
    assert main(["--store", str(filled), "compare", "--experiment", "demo", "--out",
                 str(out_dir), "--reps", "200", "--no-plots"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "normalisation: reference" in lines[0]
    header = lines[1].split()
    assert header[:3] == ["algorithm", "runs", "mean"] and "IQM" in header
    # ppo's eval returns 400, 410, 420 on CartPole (random 21.4, target 500): mean 410
    ppo = next(line for line in lines if line.startswith("ppo"))
    assert ppo.split()[1] == "3"
    assert ppo.split()[2] == f"{(410 - 21.4) / (500 - 21.4):.3f}"
    assert "P(dqn > ppo) = 0.000" in out
    assert lines[-1] == f"report: {out_dir / 'report.md'}"
    assert (out_dir / "report.md").is_file() and (out_dir / "report.json").is_file()


def test_reimport_via_cli_adds_nothing(filled: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(filled)
    assert main(["--store", str(filled), "import", str(tmp_path / "runs.csv"),
                 "--experiment", "demo"]) == 0
    assert "imported 0 runs (0 values) into experiment 'demo'; 6 already imported" in (
        capsys.readouterr().out)
    assert snapshot(filled) == before


BAD = {
    "unknown experiment": (["compare", "--experiment", "dmeo"], "did you mean 'demo'"),
    "unknown algo": (["compare", "--algos", "ppo,dqm"], "did you mean 'dqn'"),
    "unknown metric": (["compare", "--metric", "rollout/episodic_retrn"],
                       "did you mean 'rollout/episodic_return'"),
    "bad score": (["compare", "--score", "best"], "invalid choice: 'best'"),
    "bad reps": (["compare", "--reps", "0"], "must be positive"),
    "import missing column": (["import", "{bad_csv}"], "missing column 'seed'"),
    "import bad value": (["import", "{bad_value}"], "line 2: value 'x' is not a number"),
    "import unknown type": (["import", "{txt}"], "unknown file type '.txt'"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_one_line_exit_2_store_unchanged(case: str, filled: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    files = {"bad_csv": tmp_path / "bad.csv", "bad_value": tmp_path / "bad_value.csv",
             "txt": tmp_path / "runs.txt"}
    files["bad_csv"].write_text("step,metric,value,algorithm,env\n1,m,1,ppo,E\n")
    files["bad_value"].write_text(CSV_HEADER + "1,m,x,r,ppo,E,0\n")
    files["txt"].write_text(CSV_HEADER)
    argv, needle = BAD[case]
    argv = [a.format(**files) for a in argv]
    before = snapshot(filled)
    assert main(["--store", str(filled), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: ") and needle in err, err
    assert snapshot(filled) == before


def test_compare_without_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--store", str(tmp_path / "none"), "compare"]) == 2
    assert "no run store at" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()  # comparing never creates a store


def test_compare_and_import_do_not_import_torch(filled: Path, tmp_path: Path) -> None:
    code = (
        "import sys, argparse\n"
        "from rlworks.cli import compare\n"
        "p = argparse.ArgumentParser(); p.add_argument('--store')\n"
        "compare.register(p.add_subparsers())\n"
        f"a = p.parse_args(['--store', {str(filled)!r}, 'compare', '--reps', '50', "
        f"'--out', {str(tmp_path / 'r')!r}, '--no-plots'])\n"
        "a.func(a)\n"
        f"a = p.parse_args(['--store', {str(filled)!r}, 'import', "
        f"{str(tmp_path / 'runs.csv')!r}])\n"
        "a.func(a)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
