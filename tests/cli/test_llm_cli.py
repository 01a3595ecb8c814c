"""`rlworks llm`: pretrain -> train -> eval end to end at a tiny size, checkpoints that load
with plain transformers, the same command twice gives the same metrics, and bad input is one
line with exit code 2."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("transformers")

from rlworks.cli.main import main  # noqa: E402
from rlworks.track.store import RunStore  # noqa: E402

TINY_MODEL = ["--hidden-size", "32", "--num-layers", "1", "--num-heads", "2",
              "--intermediate-size", "64"]
TINY_RL = ["--steps", "2", "--prompts-per-step", "2", "--num-generations", "2",
           "--max-new-tokens", "8", "--eval-problems", "2", "--eval-samples", "2",
           "--pool-size", "10", "--tasks", "add:1", "--torch-threads", "1", "--minibatches", "1"]


def _json_line(capsys) -> dict:
    out = capsys.readouterr().out.strip().splitlines()
    return json.loads(out[-1])


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    root = tmp_path_factory.mktemp("llm")
    code = main(["--store", str(root / "store"), "llm", "pretrain", "--steps", "3",
                 "--batch-size", "4", "--eval-problems", "2", "--eval-tasks", "add:1",
                 "--tasks", "add:1-2", "--torch-threads", "1", "--no-progress",
                 "--out", str(root / "base"), *TINY_MODEL])
    assert code == 0
    return root


def _load_plain(path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path)
    assert tok.convert_tokens_to_ids("<answer>") != tok.unk_token_id
    assert len(tok.encode("<answer>", add_special_tokens=False)) == 1
    return model, tok


def test_pretrain_checkpoint_loads_with_plain_transformers(pretrained):
    _load_plain(pretrained / "base")
    store = RunStore(pretrained / "store")
    (run,) = store.list_runs(algo="pretrain")
    assert run.status == "finished"
    assert any(kind == "model" for kind, _ in store.artefacts(run.run_id))


def test_train_twice_gives_identical_metrics_and_a_loadable_model(pretrained, capsys):
    summaries = []
    for i in range(2):
        code = main(["--store", str(pretrained / "store"), "llm", "train", "grpo",
                     "--model", str(pretrained / "base"), "--out", str(pretrained / f"rl{i}"),
                     "--json", "--no-progress", *TINY_RL])
        assert code == 0
        summaries.append(_json_line(capsys))
    _load_plain(pretrained / "rl0")
    store = RunStore(pretrained / "store")
    a, b = (store.metrics(s["run_id"]) for s in summaries)
    a = {k: v for k, v in a.items() if not k.startswith("perf/")}
    b = {k: v for k, v in b.items() if not k.startswith("perf/")}
    assert a == b and a


def test_eval_two_models_writes_a_pass_at_k_plot(pretrained, capsys, tmp_path):
    main(["--store", str(pretrained / "store"), "llm", "train", "rloo", "--model",
          str(pretrained / "base"), "--out", str(pretrained / "rloo"), "--no-progress", *TINY_RL])
    capsys.readouterr()
    code = main(["llm", "eval", f"base={pretrained / 'base'}", str(pretrained / "rloo"), "--tasks",
                 "add:1", "--problems", "3", "--k", "4", "--max-new-tokens", "8",
                 "--plot", str(tmp_path / "passk.png"), "--json", "--torch-threads", "1"])
    assert code == 0
    res = _json_line(capsys)
    assert set(res) == {"base", str(pretrained / "rloo")}
    for r in res.values():
        assert 0.0 <= r["pass@1"] <= r["pass@2"] <= r["pass@4"] <= 1.0
    assert (tmp_path / "passk.png").stat().st_size > 10_000


@pytest.mark.parametrize("argv, message", [
    (["llm", "train", "grpo", "--model", "/nonexistent/dir"], "does not exist"),
    (["llm", "train", "grpo"], "--model is required"),
    (["llm", "train", "grpoo", "--model", "x"], "did you mean 'grpo'"),
    (["llm", "eval", "/nonexistent/dir"], "no run"),
    (["llm", "train", "grpo", "--model", "x", "--num-generations", "1"], "num_generations"),
    (["llm", "pretrain", "--tasks", "addd:1"], "unknown task family 'addd'"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, tmp_path, capsys):
    code = main(["--store", str(tmp_path / "store"), *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err and len(err.splitlines()) == 1, err


def test_limr_pilot_selection_and_training_on_the_subset(pretrained, capsys, tmp_path):
    store = str(pretrained / "store")
    pilot = [*TINY_RL, "--steps", "6", "--pool-size", "4", "--sampler", "epochs"]
    assert main(["--store", store, "llm", "train", "grpo", "--model", str(pretrained / "base"),
                 "--json", "--no-progress", *pilot]) == 0
    run_id = _json_line(capsys)["run_id"]
    ids = tmp_path / "limr.json"
    assert main(["--store", store, "llm", "limr", run_id, "--top-frac", "0.5",
                 "--out", str(ids)]) == 0
    assert "LIMR kept 2 of 4 problems (3 epochs)" in capsys.readouterr().out
    assert main(["--store", store, "llm", "train", "grpo", "--model", str(pretrained / "base"),
                 "--no-progress", *TINY_RL, "--pool-size", "4", "--pool-file", str(ids)]) == 0


def test_sft_on_a_jsonl_file_and_its_bad_rows(pretrained, capsys, tmp_path):
    done = "<think>1+2+0=3\ncarry 0</think><answer>3</answer>"
    rows = [{"prompt": "1+2=?\n", "completion": done}]
    data = tmp_path / "sft.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    code = main(["--store", str(pretrained / "store"), "llm", "sft", "--model",
                 str(pretrained / "base"), "--data", str(data), "--steps", "2", "--batch-size",
                 "2", "--eval-problems", "2", "--eval-tasks", "add:1", "--torch-threads", "1",
                 "--no-progress", "--out", str(tmp_path / "sft"), "--json"])
    assert code == 0
    assert _json_line(capsys)["algo"] == "sft"
    _load_plain(tmp_path / "sft")
    data.write_text('{"prompt": "x"}\n')
    code = main(["--store", str(pretrained / "store"), "llm", "sft", "--model",
                 str(pretrained / "base"), "--data", str(data), "--steps", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "sft.jsonl:1 is not a JSON object with 'prompt' and 'completion'" in err


def test_max_samples_stops_a_filtered_run_at_its_sample_budget(pretrained, capsys):
    # 2 prompts x 2 samples = 4 completions per unfiltered step: a budget of 10 stops after
    # the third step (4, 8, 12 >= 10), long before --steps 50.
    assert TINY_RL[:2] == ["--steps", "2"]
    args = ["--steps", "50", *TINY_RL[2:]]
    code = main(["--store", str(pretrained / "store"), "llm", "train", "grpo", "--model",
                 str(pretrained / "base"), "--max-samples", "10", "--json", "--no-progress",
                 *args])
    assert code == 0
    summary = _json_line(capsys)
    assert summary["steps"] == 3 and summary["samples_seen"] == 12
    gen = RunStore(pretrained / "store").metrics(summary["run_id"], ["rollout/gen_n/add/d1"])
    assert gen["rollout/gen_n/add/d1"][1] == [4.0, 4.0, 4.0]
