"""The run driver: one tracked training run of a registered algorithm.

Everything around the maths lives here, so algorithm files stay readable alone: creating the
run in the store, the progress bar, batched metric logging, checkpoints every N steps and at
the end, resume after a crash, the final evaluation and the run's summary.

Resume is exact: the learner's full state (weights, optimisers, generators, env state, replay)
is checkpointed between iterations; on ``--resume`` the latest checkpoint is loaded and every
metric logged after it is deleted, so the resumed run re-logs the same values. Metrics under
``perf/`` measure wall-clock time and naturally differ.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rlworks.core.config import config_from_dict, config_hash, config_to_dict
from rlworks.core.errors import UserError
from rlworks.core.registry import ALGORITHMS
from rlworks.core.seeding import derive_seed
from rlworks.track.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
)
from rlworks.track.logger import RunLogger, Sink
from rlworks.track.store import RunStore

CHECKPOINT_DIR = "checkpoints"
Callback = Callable[[int, dict[str, float]], None]


@contextmanager
def run_status_guard(store: RunStore, run_id: str, bar: Progress, logger: RunLogger,
                     on_interrupt: Callable[[], None] | None = None) -> Iterator[None]:
    """On Ctrl-C: close the progress bar and logger, run ``on_interrupt`` (a checkpoint) and
    mark the run "interrupted"; on any other exception mark it "failed". Re-raises."""
    try:
        yield
    except KeyboardInterrupt:
        bar.close()
        logger.close()
        if on_interrupt is not None:
            on_interrupt()
        store.set_status(run_id, "interrupted")
        raise
    except BaseException:
        bar.close()
        logger.close()
        store.set_status(run_id, "failed")
        raise


class StopRun(Exception):  # noqa: N818  (a signal, not an error)
    """Raise from a ``callback`` to end a run early (e.g. an HPO pruner): the run is
    checkpointed, marked "pruned" and its summary returned with ``"pruned": True``."""


def train(algo: str, cfg: Any, store: RunStore, *, experiment: str | None = None,
          progress: bool | None = None, sinks: tuple[Sink, ...] = (),
          keep_checkpoints: int = 2, callback: Callback | None = None,
          tags: tuple[str, ...] = ()) -> dict[str, Any]:
    """Train ``algo`` with ``cfg`` as a new run; return the run's summary (with ``run_id``).

    ``tags`` are stored with the run (e.g. ``("trial-3",)`` for a tuning trial).
    ``callback(global_step, metrics)`` is called after every iteration; it may raise
    :class:`StopRun` to end the run early.
    """
    import rlworks.algos.offline  # noqa: F401  (registers the offline learners)
    import rlworks.algos.online  # noqa: F401  (registers the online agents)

    ALGORITHMS.get(algo)
    if algo in rlworks.algos.offline.OFFLINE_ALGOS:
        # Find the dataset, take env_id from it and check that it fits, before the run exists.
        from rlworks.algos.offline.common import complete_config

        cfg = complete_config(cfg)
    run_id = store.create_run(algo=algo, env_id=cfg.env_id, seed=cfg.seed,
                              config=config_to_dict(cfg), config_hash=config_hash(cfg),
                              experiment=experiment, tags=tags)
    return _run(algo, cfg, store, run_id, progress, sinks, keep_checkpoints, resume=False,
                callback=callback)


def resume(run_id: str, store: RunStore, *, progress: bool | None = None,
           sinks: tuple[Sink, ...] = (), keep_checkpoints: int = 2,
           callback: Callback | None = None) -> dict[str, Any]:
    """Continue an unfinished run from its latest checkpoint (from scratch if it has none)."""
    import rlworks.algos.offline  # noqa: F401
    import rlworks.algos.online  # noqa: F401

    record = store.get_run(run_id)
    if record.status in ("finished", "pruned"):
        raise UserError(f"run '{record.run_id}' already {record.status}; start a new run "
                        "instead")
    spec = ALGORITHMS.get(record.algo)
    cfg: Any = config_from_dict(spec.config_class(), record.config, source=f"run {record.run_id}")
    return _run(record.algo, cfg, store, record.run_id, progress, sinks, keep_checkpoints,
                resume=True, callback=callback)


def _run(algo: str, cfg: Any, store: RunStore, run_id: str, progress: bool | None,
         sinks: tuple[Sink, ...], keep: int, resume: bool,
         callback: Callback | None = None) -> dict[str, Any]:
    import torch

    torch.set_num_threads(cfg.torch_threads)
    spec = ALGORITHMS.get(algo)
    ckpt_dir = store.run_dir(run_id) / CHECKPOINT_DIR
    learner = _start(spec, cfg, store, run_id, resume)

    logger = RunLogger(store, run_id, sinks=sinks)
    desc = f"{algo} {cfg.env_id} seed {cfg.seed}"
    bar = Progress(cfg.total_steps, learner.global_step, progress, desc)
    every = cfg.checkpoint_every
    next_ckpt = (learner.global_step // every + 1) * every if every else None
    eval_every = getattr(cfg, "eval_every", 0)
    next_eval = (learner.global_step // eval_every + 1) * eval_every if eval_every else None
    recent: deque[float] = deque(maxlen=20)
    t0, step0 = time.perf_counter(), learner.global_step
    best = None
    if getattr(cfg, "keep_best", False):
        best = _BestPolicy(store.run_dir(run_id) / BEST_DIR, {"run_id": run_id, "algo": algo})

    def checkpoint() -> None:
        save_checkpoint(ckpt_dir, learner.global_step, learner.state_dict(),
                        meta={"run_id": run_id, "algo": algo})
        prune_checkpoints(ckpt_dir, keep)

    try:
        with run_status_guard(store, run_id, bar, logger, on_interrupt=checkpoint):
            try:
                while learner.global_step < cfg.total_steps:
                    metrics = learner.iterate()
                    elapsed = time.perf_counter() - t0
                    metrics["perf/sps"] = (learner.global_step - step0) / max(elapsed, 1e-9)
                    logger.log(learner.global_step, metrics)
                    if "rollout/episodic_return" in metrics:
                        recent.append(metrics["rollout/episodic_return"])
                    ret = f"{sum(recent) / len(recent):.1f}" if recent else "-"
                    bar.update(learner.global_step,
                               f"{metrics['perf/sps']:,.0f} steps/s, recent return {ret}")
                    if next_eval is not None and next_eval <= learner.global_step < cfg.total_steps:
                        # Deterministic acting draws no random numbers, so this leaves the run (and
                        # its resume) exactly as it would be without evaluations.
                        step = learner.global_step
                        result = _evaluate(learner, cfg, step)
                        logger.log(step, result)
                        if best is not None:
                            best.offer(learner, step, result["eval/return"])
                        next_eval = (learner.global_step // eval_every + 1) * eval_every
                    if callback is not None:
                        callback(learner.global_step, metrics)
                    if next_ckpt is not None and learner.global_step >= next_ckpt:
                        logger.flush()  # metrics up to the checkpoint are durable before it exists
                        checkpoint()
                        next_ckpt = (learner.global_step // every + 1) * every
                logger.flush()
                checkpoint()
                train_time = time.perf_counter() - t0
                bar.close()

                from rlworks.eval.evaluate import evaluate

                returns = evaluate(learner, cfg.env_id, cfg.eval_episodes,
                                   seed=derive_seed(cfg.seed, "eval"), backend=cfg.backend)
                summary = {
                    "run_id": run_id, "algo": algo, "env_id": cfg.env_id, "seed": cfg.seed,
                    "global_step": learner.global_step, "train_time_s": round(train_time, 3),
                    "eval_return_mean": float(returns.mean()),
                    "eval_return_std": float(returns.std()),
                    "eval_episodes": len(returns), "resumed": resume,
                }
                final = {"eval/return": summary["eval_return_mean"],
                         "eval/return_std": summary["eval_return_std"]}
                if hasattr(cfg, "dataset"):  # offline learners
                    summary["dataset"] = cfg.dataset
                score = _normalised_score(learner, summary["eval_return_mean"])
                if score is not None:  # the dataset has reference scores
                    summary["eval_normalised_score"] = final["eval/normalised_score"] = score
                # A run killed after logging its final evaluation but before it was marked finished
                # resumes at its final checkpoint: that evaluation is already stored (same values).
                logged = store.metrics(run_id, ["eval/return"]).get("eval/return", ([], []))[0]
                if not (resume and logged and logged[-1] == learner.global_step):
                    logger.log(learner.global_step, final)
                if best is not None:
                    summary.update(best.finish(learner, cfg, store))
                logger.close()
                for path in sorted(ckpt_dir.glob("step_*.json"))[-1:]:
                    store.add_artefact(run_id, "checkpoint", path)
                store.set_status(run_id, "finished", summary=summary)
                return summary
            except StopRun as stop:
                bar.close()
                logger.close()
                checkpoint()
                summary = {"run_id": run_id, "algo": algo, "env_id": cfg.env_id, "seed": cfg.seed,
                           "global_step": learner.global_step, "pruned": True,
                           "pruned_reason": str(stop) or "stopped by callback"}
                store.set_status(run_id, "pruned", summary=summary)
                return summary
    finally:
        learner.close()


def _start(spec: Any, cfg: Any, store: RunStore, run_id: str, resume: bool) -> Any:
    """Build the learner; on resume load the latest checkpoint and drop metrics after it.
    A run that cannot even start is marked "failed" (or "interrupted"), not left "running"."""
    try:
        learner = spec.learner_class()(cfg)
        if resume:
            path = latest_checkpoint(store.run_dir(run_id) / CHECKPOINT_DIR)
            start_step = 0
            if path is not None:
                start_step, state, _meta = load_checkpoint(path)
                learner.load_state_dict(state)
            store.delete_metrics_after(run_id, start_step)
            store.set_status(run_id, "running")
    except KeyboardInterrupt:
        store.set_status(run_id, "interrupted")
        raise
    except BaseException:
        store.set_status(run_id, "failed")
        raise
    return learner


BEST_DIR = "best"


class _BestPolicy:
    """The policy of the best periodic evaluation so far, kept as a full checkpoint on disk
    (so a resumed run still has it); its selection score is in the checkpoint's meta."""

    def __init__(self, directory: Path, meta: dict[str, Any]) -> None:
        self.directory = directory
        self.meta = meta  # run id and algorithm, written beside each kept checkpoint
        path = latest_checkpoint(directory)
        self.score = -math.inf if path is None else load_checkpoint(path)[2]["eval_return"]

    def offer(self, learner: Any, step: int, score: float) -> None:
        if score > self.score:
            self.score = score
            save_checkpoint(self.directory, step, learner.state_dict(),
                            meta={**self.meta, "eval_return": score})
            prune_checkpoints(self.directory, 1)

    def finish(self, learner: Any, cfg: Any, store: RunStore) -> dict[str, Any]:
        """Offer the final policy too (scored on its own periodic-evaluation episodes), then
        load the best one into ``learner`` and evaluate it on the final evaluation's episodes."""
        from rlworks.eval.evaluate import evaluate

        step = learner.global_step
        self.offer(learner, step, _evaluate(learner, cfg, step)["eval/return"])
        path = latest_checkpoint(self.directory)
        assert path is not None  # offered at least once just above
        best_step, state, meta = load_checkpoint(path)
        learner.load_state_dict(state)
        returns = evaluate(learner, cfg.env_id, cfg.eval_episodes,
                           seed=derive_seed(cfg.seed, "eval"), backend=cfg.backend)
        store.add_artefact(self.meta["run_id"], "best_checkpoint", path)
        return {"best_step": best_step, "best_selection_return": meta["eval_return"],
                "best_eval_return_mean": float(returns.mean()),
                "best_eval_return_std": float(returns.std())}


def _evaluate(learner: Any, cfg: Any, step: int) -> dict[str, float]:
    from rlworks.eval.evaluate import evaluate

    returns = evaluate(learner, cfg.env_id, cfg.eval_episodes,
                       seed=derive_seed(cfg.seed, "eval", step), backend=cfg.backend)
    out = {"eval/return": float(returns.mean()), "eval/return_std": float(returns.std())}
    score = _normalised_score(learner, out["eval/return"])
    if score is not None:
        out["eval/normalised_score"] = score
    return out


def _normalised_score(learner: Any, mean_return: float) -> float | None:
    """D4RL's ``100 * (return - random) / (expert - random)`` when the learner knows its
    dataset's reference scores (offline learners), else None."""
    ref = getattr(learner, "reference_scores", None)
    if not ref:
        return None
    return 100.0 * (mean_return - ref["random"]) / (ref["expert"] - ref["random"])


def build_config(algo: str, overrides: dict[str, Any], config_file: str | None = None) -> Any:
    """Dataclass defaults < per-env tuned defaults (zoo) < config file < ``overrides``."""
    import rlworks.algos.offline  # noqa: F401
    import rlworks.algos.online  # noqa: F401
    from rlworks.algos.online.zoo import zoo_defaults
    from rlworks.core.config import load_config_file

    spec = ALGORITHMS.get(algo)
    cls = spec.config_class()
    file_values = load_config_file(config_file) if config_file else {}
    # The env decides which tuned defaults apply, so find it first.
    env_id = overrides.get("env_id") or file_values.get("env_id") or cls().env_id
    base: Any = config_from_dict(cls, {**dict(spec.overrides), **zoo_defaults(algo, env_id)},
                            source=f"zoo[{algo}, {env_id}]")
    if file_values:
        base = config_from_dict(cls, file_values, source=str(config_file), base=base)
    return config_from_dict(cls, overrides, source="command line", base=base)


class Progress:
    """tqdm on a terminal; a plain line every ~10% otherwise (logs, CI)."""

    def __init__(self, total: int, start: int, enabled: bool | None, desc: str) -> None:
        self.tty = sys.stderr.isatty() if enabled is None else enabled
        self.quiet = enabled is False or os.environ.get("RLWORKS_QUIET") == "1"
        self.total, self.desc, self.last = total, desc, start
        self.next_line = start + total // 10
        self.bar = None
        if self.tty and not self.quiet:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=start, desc=desc, unit="step",
                            dynamic_ncols=True, leave=False)

    def update(self, step: int, status: str) -> None:
        """Advance to ``step``; ``status`` is a short "rate, latest result" text."""
        if self.bar is not None:
            self.bar.update(step - self.last)
            self.bar.set_postfix_str(status, refresh=False)
        elif not self.quiet and step >= self.next_line:
            print(f"{self.desc}: step {step}/{self.total} ({100 * step // self.total}%), "
                  f"{status}", file=sys.stderr, flush=True)
            self.next_line = step + max(1, self.total // 10)
        self.last = step

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

