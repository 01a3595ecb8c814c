"""``rlworks llm eval``: greedy accuracy, pass@k and maj@k of several checkpoints on one
held-out problem set, with bootstrap CIs over problems and a pass@k-against-k plot."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def powers_of_two(k_max: int) -> list[int]:
    """1, 2, 4, ... up to ``k_max`` (``k_max`` itself included)."""
    ks = [1 << i for i in range(k_max.bit_length()) if (1 << i) <= k_max]
    return ks if ks[-1] == k_max else [*ks, k_max]


def pass_at_k_ci(
    correct: np.ndarray, k: int, rng: np.random.Generator, reps: int = 2000
) -> tuple[float, float, float]:
    """Mean pass@k over problems and its 95% percentile-bootstrap CI (problems resampled)."""
    from rlworks.eval.passk import pass_at_k

    c = correct.sum(axis=1)
    per_problem = pass_at_k(np.full_like(c, correct.shape[1]), c, k)  # (P,)
    idx = rng.integers(len(per_problem), size=(reps, len(per_problem)))
    boot = per_problem[idx].mean(axis=1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return float(per_problem.mean()), float(lo), float(hi)


def evaluate_models(
    models: Sequence[tuple[str, Path]],
    tasks: str,
    n_problems: int,
    k_max: int,
    temperature: float,
    max_new_tokens: int,
    seed: int,
    threads: int,
    plot: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Per model: greedy accuracy, pass@k (k = 1, 2, 4, ..., k_max) with CIs, maj@k, and
    per-source pass@1 and greedy accuracy."""
    import torch
    from tqdm import tqdm

    from rlworks.algos.llm.batch import PromptPool
    from rlworks.core.seeding import make_rng, torch_generator
    from rlworks.eval.llm import sample_correct
    from rlworks.llm.generate import SamplingConfig
    from rlworks.llm.model import load_policy

    torch.set_num_threads(threads)
    problems = PromptPool(tasks, n_problems, seed, split="test").problems
    ks = powers_of_two(k_max)
    results: dict[str, dict[str, Any]] = {}
    curves = {}
    for name, path in models:
        model, tok = load_policy(path)
        greedy = sample_correct(
            model, tok, problems, 1, SamplingConfig(temperature=0.0, max_new_tokens=max_new_tokens)
        )
        with tqdm(total=len(problems), desc=f"sampling {name}", leave=False, disable=None) as bar:
            table = sample_correct(
                model,
                tok,
                problems,
                k_max,
                SamplingConfig(temperature=temperature, max_new_tokens=max_new_tokens),
                torch_generator(seed, "llm-eval"),
                progress=bar.update,
            )
        rng = make_rng(seed, "llm-eval-ci")
        res: dict[str, Any] = {
            "model": str(path),
            "problems": len(problems),
            "samples_per_problem": k_max,
            "greedy_acc": float(greedy.correct.mean()),
        }
        stats = [pass_at_k_ci(table.correct, k, rng) for k in ks]
        for k, (mean, lo, hi) in zip(ks, stats, strict=True):
            res[f"pass@{k}"] = mean
            res[f"pass@{k}_ci"] = [lo, hi]
        for k in ks:
            res[f"maj@{k}"] = table.maj_at(k)
        for source, sub in table.by_source().items():
            res[f"{source}/pass@1"] = sub.pass_at(1)
        for source, sub in greedy.by_source().items():
            res[f"{source}/greedy_acc"] = float(sub.correct.mean())
        res["tokens_per_s"] = table.num_tokens / max(table.seconds, 1e-9)
        res["curve_k"] = ks
        res["curve_pass"] = [s[0] for s in stats]
        results[name] = res
        curves[name] = (
            ks,
            [s[0] for s in stats],
            np.array([[s[1] for s in stats], [s[2] for s in stats]]),
        )
    if plot:
        from rlworks.eval.statplots import plot_pass_at_k

        plot_pass_at_k(
            curves,
            plot,
            title=f"pass@k on {tasks} (test split, {len(problems)} problems, T={temperature})",
        )
    return results
