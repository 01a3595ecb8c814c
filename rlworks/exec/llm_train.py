"""Tracked language-model runs: pretraining TinyLM, SFT, and RL post-training (the GRPO family).

Like :mod:`rlworks.exec.train` for the online agents, everything around the maths is here: the
run in the store (config, seed, provenance), the progress line, metrics, periodic evaluation,
checkpoints and resume, and the final model saved with ``save_pretrained`` under the run's
directory (``<run dir>/model``, also registered as the run's ``model`` artefact), so
``AutoModelForCausalLM.from_pretrained`` loads it.

An RL run checkpoints its full state (weights, optimiser, generators, curriculum state) as
safetensors + JSON; ``resume`` continues from the latest checkpoint and re-logs the same
metrics. A pretraining run is short (minutes) and restarts from scratch when resumed.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from rlworks.core.config import config_from_dict, config_hash, config_to_dict
from rlworks.core.errors import UserError
from rlworks.exec.train import CHECKPOINT_DIR, Progress, run_status_guard
from rlworks.track.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
)
from rlworks.track.logger import RunLogger
from rlworks.track.store import RunStore

MODEL_DIR = "model"
TRAJECTORIES_FILE = "reward_trajectories.json"


def text_run(
    kind: str,
    cfg: Any,
    store: RunStore,
    out: str | None = None,
    progress: bool | None = None,
    experiment: str | None = None,
) -> dict[str, Any]:
    """``kind`` "pretrain" (TinyLM from scratch) or "sft" (fine-tune ``cfg.model``) as a
    tracked run; the model goes to ``<run dir>/model`` (and ``out``)."""
    from rlworks.algos.llm import sft
    from rlworks.llm.model import count_parameters, save_policy

    run_id = store.create_run(
        algo=kind,
        env_id=cfg.tasks,
        seed=cfg.seed,
        config=config_to_dict(cfg),
        config_hash=config_hash(cfg),
        experiment=experiment,
    )
    logger = RunLogger(store, run_id)
    bar = Progress(cfg.steps, 0, progress, f"{kind} {cfg.tasks} seed {cfg.seed}")
    status = {"text": "starting"}
    t0 = time.perf_counter()

    def on_metrics(step: int, metrics: dict[str, float]) -> None:
        logger.log(step, metrics)
        acc = metrics.get("eval/greedy_acc")
        status["text"] = (
            f"{metrics['perf/tokens_per_s']:,.0f} tok/s, loss "
            f"{metrics['train/loss']:.3f}" + (f", greedy acc {acc:.3f}" if acc is not None else "")
        )

    with run_status_guard(store, run_id, bar, logger):
        model, tokenizer, final = getattr(sft, kind)(
            cfg, on_metrics=on_metrics, on_step=lambda s: bar.update(s, status["text"])
        )
        bar.close()
        seconds = time.perf_counter() - t0
        meta = {"run_id": run_id, "kind": kind, "config": config_to_dict(cfg)}
        path = save_policy(model, tokenizer, store.run_dir(run_id) / MODEL_DIR, meta)
        store.add_artefact(run_id, "model", path)
        if out:
            _copy_model(path, Path(out))
        summary = {
            "run_id": run_id,
            "algo": kind,
            "seed": cfg.seed,
            "parameters": count_parameters(model),
            "train_time_s": round(seconds, 1),
            "model_dir": str(out or path),
            **final,
        }
        logger.close()
        store.set_status(run_id, "finished", summary=summary)
        return summary


def _copy_model(src: Path, dst: Path) -> None:
    """Copy a saved model directory to ``dst`` (replacing a previous copy there)."""
    tmp = dst.with_name(dst.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(src, tmp)
    if dst.exists():
        shutil.rmtree(dst)
    tmp.rename(dst)


def rl_run(
    preset: str,
    cfg: Any,
    store: RunStore,
    progress: bool | None = None,
    experiment: str | None = None,
    out: str | None = None,
    keep_checkpoints: int = 2,
) -> dict[str, Any]:
    """RL-train ``cfg.model`` with ``preset`` as a new tracked run; return its summary."""
    run_id = store.create_run(
        algo=f"llm-{preset}",
        env_id=cfg.tasks,
        seed=cfg.seed,
        config=config_to_dict(cfg),
        config_hash=config_hash(cfg),
        experiment=experiment,
    )
    return _rl(run_id, preset, cfg, store, progress, out, keep_checkpoints, resume=False)


def rl_resume(
    run_id: str, store: RunStore, progress: bool | None = None, keep_checkpoints: int = 2
) -> dict[str, Any]:
    """Continue an unfinished RL run from its latest checkpoint."""
    from rlworks.algos.llm.configs import RLConfig

    record = store.get_run(run_id)
    if not record.algo.startswith("llm-"):
        raise UserError(f"run '{record.run_id}' is a {record.algo} run, not an LLM RL run")
    if record.status in ("finished", "pruned"):
        raise UserError(f"run '{record.run_id}' already {record.status}; start a new run")
    cfg = config_from_dict(RLConfig, record.config, source=f"run {record.run_id}")
    return _rl(
        record.run_id, record.algo[4:], cfg, store, progress, None, keep_checkpoints, resume=True
    )


def _rl(
    run_id: str,
    preset: str,
    cfg: Any,
    store: RunStore,
    progress: bool | None,
    out: str | None,
    keep: int,
    resume: bool,
) -> dict[str, Any]:
    import torch

    from rlworks.algos.llm.batch import PromptPool, merged_model
    from rlworks.algos.llm.grpo import GRPOLearner
    from rlworks.llm.model import save_policy

    torch.set_num_threads(cfg.torch_threads)
    ckpt_dir = store.run_dir(run_id) / CHECKPOINT_DIR
    try:
        learner = GRPOLearner(cfg)
        if resume:
            path = latest_checkpoint(ckpt_dir)
            start = 0
            if path is not None:
                start, state, _ = load_checkpoint(path)
                learner.load_state_dict(state)
            store.delete_metrics_after(run_id, start)
            store.set_status(run_id, "running")
    except BaseException:
        store.set_status(run_id, "failed")
        raise
    eval_problems = PromptPool(
        cfg.eval_tasks or cfg.tasks, cfg.eval_problems, cfg.seed, split="test"
    ).problems
    logger = RunLogger(store, run_id)
    bar = Progress(
        cfg.steps, learner.global_step, progress, f"{preset} {cfg.tasks} seed {cfg.seed}"
    )
    t0 = time.perf_counter()

    def checkpoint() -> None:
        logger.flush()
        save_checkpoint(
            ckpt_dir,
            learner.global_step,
            learner.state_dict(),
            meta={"run_id": run_id, "algo": f"llm-{preset}"},
        )
        prune_checkpoints(ckpt_dir, keep)

    with run_status_guard(store, run_id, bar, logger, on_interrupt=checkpoint):
        if learner.global_step == 0:
            first = learner.evaluate(eval_problems)
            logger.log(0, first)
        while learner.global_step < cfg.steps and not (
            cfg.max_samples and learner.samples_seen >= cfg.max_samples
        ):
            metrics = learner.iterate()
            step = learner.global_step
            if cfg.eval_every and step % cfg.eval_every == 0 and step < cfg.steps:
                metrics.update(learner.evaluate(eval_problems))
            logger.log(step, metrics)
            bar.update(step, _status(metrics))
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                checkpoint()
        final = learner.evaluate(eval_problems)
        logger.log(learner.global_step, final)
        checkpoint()
        bar.close()
        meta = {"run_id": run_id, "kind": f"llm-{preset}", "config": config_to_dict(cfg)}
        path = save_policy(
            merged_model(learner.model), learner.tokenizer, store.run_dir(run_id) / MODEL_DIR, meta
        )
        store.add_artefact(run_id, "model", path)
        if out:
            _copy_model(path, Path(out))
        if learner.trajectories:  # sampler "epochs": the raw data of LIMR's selection
            tpath = store.run_dir(run_id) / TRAJECTORIES_FILE
            tpath.write_text(
                json.dumps({"epochs": learner.epoch, "trajectories": learner.trajectories})
            )
            store.add_artefact(run_id, "trajectories", tpath)
        start_metrics = store.metrics(run_id, ["eval/greedy_acc", "eval/pass@1"])
        summary: dict[str, Any] = {
            "run_id": run_id,
            "algo": f"llm-{preset}",
            "seed": cfg.seed,
            "steps": learner.global_step,
            "samples_seen": learner.samples_seen,
            "train_time_s": round(time.perf_counter() - t0, 1),
            "model_dir": str(out or path),
        }
        for key, (steps, values) in start_metrics.items():
            if steps and steps[0] == 0:
                summary[f"{key}_start"] = values[0]
        summary.update({k: v for k, v in final.items()})
        logger.close()
        store.set_status(run_id, "finished", summary=summary)
        return summary


def _status(m: dict[str, float]) -> str:
    parts = [f"{m.get('perf/tokens_per_s', 0):,.0f} tok/s"]
    if "reward/mean" in m:
        parts.append(f"reward {m['reward/mean']:.3f}")
    if m.get("train/kl"):
        parts.append(f"kl {m['train/kl']:.4f}")
    if "rollout/length_mean" in m:
        parts.append(f"len {m['rollout/length_mean']:.0f}")
    if "eval/greedy_acc" in m:
        parts.append(f"eval greedy {m['eval/greedy_acc']:.3f}")
    return ", ".join(parts)


def limr_selection(
    store: RunStore, run_id: str, threshold: float | None, top_frac: float | None
) -> dict[str, Any]:
    """LIMR (Li et al. 2025) on a pilot run's per-epoch rewards: the selected problem ids.

    Uses the epochs every problem completed (a final partial epoch is dropped) and the
    problems with a reward in each of them.
    """
    import numpy as np

    from rlworks.llm.curriculum import limr_scores, limr_select

    record = store.get_run(run_id)
    files = [p for kind, p in store.artefacts(record.run_id) if kind == "trajectories"]
    if not files:
        raise UserError(
            f"run '{record.run_id}' has no reward trajectories; run the pilot "
            "with --sampler epochs for at least 2 epochs of the pool"
        )
    data = json.loads(Path(files[-1]).read_text())
    traj: dict[str, list[float]] = data["trajectories"]
    k = min(len(v) for v in traj.values())
    ids = [i for i, v in traj.items() if np.all(np.isfinite(v[:k]))]
    if k < 2 or not ids:
        raise UserError(
            f"run '{record.run_id}' completed {k} epoch(s) of its pool; LIMR needs "
            "at least 2 (more steps, or a smaller --pool-size)"
        )
    rewards = np.array([traj[i][:k] for i in ids])
    keep = limr_select(rewards, threshold=threshold, top_frac=top_frac)
    scores = limr_scores(rewards)
    return {
        "run_id": record.run_id,
        "epochs": k,
        "pool": len(ids),
        "selected": len(keep),
        "ids": [ids[i] for i in keep],
        "scores": {ids[i]: float(scores[i]) for i in keep},
    }
