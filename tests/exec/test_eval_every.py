"""Periodic evaluation logs eval/return on schedule and leaves training itself untouched."""

from __future__ import annotations

import numpy as np
import pytest

from rlworks.exec.train import CHECKPOINT_DIR, build_config, train
from rlworks.track.checkpoint import latest_checkpoint, load_checkpoint
from rlworks.track.store import RunStore


def _config(algo: str, extra: dict) -> dict:
    base = {"env_id": "CartPole-v1", "seed": 5, "total_steps": 2048, "eval_episodes": 2,
            "backend": "native"}
    if algo == "ppo":
        base |= {"num_envs": 4, "num_steps": 64}
    else:
        base |= {"learning_starts": 256, "train_freq": 4, "gradient_steps": 1}
    return base | extra


def _run(store: RunStore, algo: str, extra: dict) -> tuple[dict, dict]:
    summary = train(algo, build_config(algo, _config(algo, extra)), store, progress=False)
    state = load_checkpoint(latest_checkpoint(store.run_dir(summary["run_id"]) / CHECKPOINT_DIR))
    return summary, state[1]


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_eval_every_logs_on_schedule_and_changes_nothing_else(tmp_path, algo):
    store = RunStore(tmp_path)
    plain, plain_state = _run(store, algo, {})
    evald, evald_state = _run(store, algo, {"eval_every": 512})
    steps, values = store.metrics(evald["run_id"], ["eval/return"])["eval/return"]
    # one per 512-step boundary crossed before the end (3), plus the final evaluation
    assert len(steps) == 2048 // 512
    assert steps[-1] == evald["global_step"] and steps[0] >= 512
    assert all(np.isfinite(values))
    assert "eval/return" in store.metrics(plain["run_id"])
    assert len(store.metrics(plain["run_id"], ["eval/return"])["eval/return"][0]) == 1
    assert evald["eval_return_mean"] == plain["eval_return_mean"]
    key = next(k for k in ("agent", "q_net") if k in plain_state)
    for name, tensor in plain_state[key].items():
        np.testing.assert_array_equal(np.asarray(tensor), np.asarray(evald_state[key][name]))


def test_a_run_that_cannot_start_is_marked_failed(tmp_path):
    store = RunStore(tmp_path)
    cfg = build_config("dqn", {"env_id": "Pendulum-v1", "total_steps": 100})  # continuous env
    with pytest.raises(Exception):  # noqa: B017  (whatever DQN raises on a Box action space)
        train("dqn", cfg, store, progress=False)
    (run,) = store.list_runs()
    assert run.status == "failed"


def test_resume_of_a_run_killed_after_its_final_eval_logs_it_once(tmp_path):
    store = RunStore(tmp_path)
    summary, _ = _run(store, "ppo", {})
    run_id = summary["run_id"]
    store.set_status(run_id, "interrupted")  # as if killed before being marked finished
    from rlworks.exec.train import resume

    again = resume(run_id, store, progress=False)
    steps, values = store.metrics(run_id, ["eval/return"])["eval/return"]
    assert steps == [summary["global_step"]] and values == [summary["eval_return_mean"]]
    assert again["eval_return_mean"] == summary["eval_return_mean"]


def _evaluate_checkpoint(path, cfg, seed: int) -> np.ndarray:
    from rlworks.algos.online.dqn import DQN
    from rlworks.eval.evaluate import evaluate

    learner = DQN(cfg)
    learner.load_state_dict(load_checkpoint(path)[1])
    try:
        return evaluate(learner, cfg.env_id, cfg.eval_episodes, seed=seed, backend="native")
    finally:
        learner.close()


def test_keep_best_selects_the_best_periodic_policy_and_scores_it_on_fresh_episodes(tmp_path):
    from rlworks.core.seeding import derive_seed
    from rlworks.exec.train import BEST_DIR

    store = RunStore(tmp_path)
    plain, plain_state = _run(store, "dqn", {"eval_every": 512})
    best, best_state = _run(store, "dqn", {"eval_every": 512, "keep_best": True})
    # Keeping the best changes nothing in training or in the final policy's evaluation.
    assert best["eval_return_mean"] == plain["eval_return_mean"]
    for name, tensor in plain_state["q_net"].items():
        np.testing.assert_array_equal(np.asarray(tensor), np.asarray(best_state["q_net"][name]))
    cfg = build_config("dqn", {"env_id": "CartPole-v1", "seed": 5, "total_steps": 2048,
                               "eval_episodes": 2, "backend": "native", "learning_starts": 256,
                               "train_freq": 4, "gradient_steps": 1})
    # Candidates: the logged periodic evaluations and the final policy on its own periodic
    # episodes (recomputed here from the final checkpoint).
    steps, values = store.metrics(best["run_id"], ["eval/return"])["eval/return"]
    final_ckpt = latest_checkpoint(store.run_dir(best["run_id"]) / CHECKPOINT_DIR)
    last = _evaluate_checkpoint(final_ckpt, cfg, derive_seed(5, "eval", 2048)).mean()
    candidates = dict(zip(steps[:-1], values[:-1], strict=True)) | {2048: last}
    top = max(candidates.values())
    assert best["best_selection_return"] == top
    assert best["best_step"] == min(s for s, v in candidates.items() if v == top)
    # The kept checkpoint is that policy, and its reported score is on the final episodes.
    kept = latest_checkpoint(store.run_dir(best["run_id"]) / BEST_DIR)
    assert load_checkpoint(kept)[0] == best["best_step"]
    again = _evaluate_checkpoint(kept, cfg, derive_seed(5, "eval"))
    assert best["best_eval_return_mean"] == float(again.mean())
    assert "best_checkpoint" in {k for k, _ in store.artefacts(best["run_id"])}


def test_keep_best_without_eval_every_names_the_fix():
    from rlworks.core.errors import UserError

    with pytest.raises(UserError, match="eval_every"):
        build_config("dqn", {"env_id": "CartPole-v1", "keep_best": True})


def test_keep_best_survives_an_interrupt_and_resume(tmp_path):
    from rlworks.exec.train import resume

    store = RunStore(tmp_path)
    keep = {"eval_every": 512, "keep_best": True}
    plain, _ = _run(store, "dqn", keep)

    def stop(step, _metrics):
        if step >= 1536:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train("dqn", build_config("dqn", _config("dqn", keep)), store, progress=False,
              callback=stop)
    (cut,) = [r for r in store.list_runs() if r.status == "interrupted"]
    again = resume(cut.run_id, store, progress=False)
    for key in ("eval_return_mean", "best_step", "best_selection_return",
                "best_eval_return_mean"):
        assert again[key] == plain[key], key
