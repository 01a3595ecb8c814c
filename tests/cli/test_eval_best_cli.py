"""`rlworks eval RUN_ID --best`: the policy kept by --keep-best, scored as the run scored it;
a run without one is a one-line error with the fix."""

from __future__ import annotations

import json

from rlworks.cli.main import main

TINY = ["--env", "CartPole-v1", "--seed", "5", "--total-steps", "2048", "--eval-episodes", "2",
        "--backend", "native", "--learning-starts", "256", "--train-freq", "4",
        "--gradient-steps", "1", "--no-progress", "--json"]


def _last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_eval_best_scores_the_kept_policy_as_the_run_did(tmp_path, capsys):
    store = ["--store", str(tmp_path)]
    assert main([*store, "train", "dqn", *TINY, "--eval-every", "512", "--keep-best", "true"]) == 0
    summary = _last_json(capsys)
    assert main([*store, "eval", summary["run_id"], "--best", "--episodes", "2", "--json"]) == 0
    best = _last_json(capsys)
    assert best["checkpoint_step"] == summary["best_step"]
    assert best["eval_return_mean"] == summary["best_eval_return_mean"]
    assert main([*store, "eval", summary["run_id"], "--episodes", "2", "--json"]) == 0
    final = _last_json(capsys)
    assert final["checkpoint_step"] == summary["global_step"]
    assert final["eval_return_mean"] == summary["eval_return_mean"]


def test_eval_best_without_a_kept_policy_names_the_fix(tmp_path, capsys):
    store = ["--store", str(tmp_path)]
    assert main([*store, "train", "dqn", *TINY]) == 0
    run_id = _last_json(capsys)["run_id"]
    assert main([*store, "eval", run_id, "--best"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--keep-best true" in err[0]
