"""Curricula and data selection for GRPO-family post-training: which prompts to train on.

* :class:`DifficultyFilter` + :class:`FilteredBatcher`: balanced online difficulty filtering
  (Bae et al. 2025, "Online Difficulty Filtering for Reasoning Oriented Reinforcement Learning",
  arXiv:2504.03380): keep only prompts whose group of G samples has an intermediate accuracy,
  and sample more prompts until the batch is full.
* :class:`DumpSampler`: DUMP (Wang et al. 2025, "DUMP: Automated Distribution-Level Curriculum
  Learning for RL-based LLM Post-training", arXiv:2504.09710): a UCB bandit over data sources
  whose arms are scored by the mean absolute advantage of their recent samples.
* :func:`limr_scores` / :func:`limr_select`: LIM, learning impact measurement (Li et al. 2025,
  "LIMR: Less is More for RL Scaling", arXiv:2502.11886): keep the samples whose reward
  trajectory in a pilot run follows the model's average learning curve.

Every sampler takes its ``numpy.random.Generator`` from the caller (no global RNG) and has
``state_dict()`` / ``load_state_dict()`` of JSON-able values so a run can resume.
Deviations from the papers are listed in ``docs/llm/curricula.md``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

from rlworks.core.errors import UserError, unknown

__all__ = [
    "DifficultyFilter",
    "DumpSampler",
    "FilteredBatcher",
    "group_accuracy",
    "limr_scores",
    "limr_select",
]

T = TypeVar("T")


# ---------------------------------------------------------------- online difficulty filtering


def group_accuracy(correct: Any) -> np.ndarray:
    """Accuracy of each prompt's group: (P, G) of 0/1 (or bool; NaN = masked) -> (P,).

    A group whose samples are all NaN has accuracy NaN (the filter drops it).
    """
    c = np.asarray(correct, dtype=float)
    if c.ndim != 2:
        raise UserError(f"correct has shape {c.shape}; give (prompts, samples_per_prompt)")
    counted = (~np.isnan(c)).sum(axis=1)  # (P,)
    hits = np.nansum(c, axis=1)  # (P,)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counted > 0, hits / np.maximum(counted, 1), np.nan)


@dataclass
class DifficultyFilter:
    """Balanced online difficulty filter (Bae et al. 2025): keep ``low <= accuracy <= high``.

    Both bounds are inclusive, so with G = 4 samples the default band [0.25, 0.75] keeps groups
    with 1, 2 or 3 correct answers, i.e. exactly the groups whose GRPO advantages are not all
    zero; with G = 8 it keeps 2..6 correct.
    """

    low: float = 0.25
    """Smallest group accuracy kept (inclusive); lower means too hard for now."""
    high: float = 0.75
    """Largest group accuracy kept (inclusive); higher means already solved."""

    def __post_init__(self) -> None:
        if not (0.0 <= self.low <= self.high <= 1.0):
            raise UserError(
                f"difficulty band [{self.low}, {self.high}] is not inside [0, 1] with "
                "low <= high; e.g. DifficultyFilter(low=0.25, high=0.75)"
            )

    def keep(self, group_accuracies: Any) -> np.ndarray:
        """(P,) accuracies -> (P,) bool; NaN (no usable reward) is never kept."""
        acc = np.asarray(group_accuracies, dtype=float)
        if acc.ndim != 1:
            raise UserError(f"group_accuracies has shape {acc.shape}; give one per prompt, (P,)")
        return (acc >= self.low) & (acc <= self.high)

    def state_dict(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.low, self.high = float(state["low"]), float(state["high"])
        self.__post_init__()


class FilteredBatcher(Generic[T]):
    """Collects the prompt groups a :class:`DifficultyFilter` keeps until a batch is full.

    The trainer loop::

        while not batcher.ready:                       # (and a cap on rounds if you like)
            prompts = sample_prompts(batcher.next_sample_size(), rng)
            groups = generate(prompts, G)              # G completions each, scored
            batcher.add(groups, group_accuracy(correct))  # correct: (P, G)
        batch, metrics = batcher.pop()                 # batch_prompts groups

    ``groups`` may be anything (one record per prompt). Surplus kept groups beyond
    ``batch_prompts`` are dropped by :meth:`pop` (their samples would be one update stale);
    ``carry_over=True`` keeps them for the next batch instead.
    """

    def __init__(
        self,
        batch_prompts: int,
        difficulty_filter: DifficultyFilter | None = None,
        carry_over: bool = False,
    ) -> None:
        if isinstance(batch_prompts, bool) or not isinstance(batch_prompts, int | np.integer):
            raise UserError(f"batch_prompts={batch_prompts!r}; give a positive integer")
        if batch_prompts <= 0:
            raise UserError(f"batch_prompts={batch_prompts}; give a positive integer")
        self.batch_prompts = int(batch_prompts)
        self.difficulty_filter = difficulty_filter or DifficultyFilter()
        self.carry_over = carry_over
        self._kept: list[T] = []
        self._batch = {"sampled": 0, "kept": 0, "too_hard": 0, "too_easy": 0, "rounds": 0}
        self.total_sampled = 0
        """Prompts offered to :meth:`add` over the whole run."""
        self.total_kept = 0

    @property
    def need(self) -> int:
        """How many more kept groups the current batch needs."""
        return max(self.batch_prompts - len(self._kept), 0)

    @property
    def ready(self) -> bool:
        return self.need == 0

    @property
    def kept_frac(self) -> float:
        """Fraction of all prompts offered so far that were kept (1.0 before any)."""
        return self.total_kept / self.total_sampled if self.total_sampled else 1.0

    def next_sample_size(self, min_frac: float = 0.05) -> int:
        """Prompts to sample next: ``ceil(need / max(kept_frac, min_frac))``.

        Oversamples by the run's kept fraction so far, so one round usually fills the batch.
        """
        return math.ceil(self.need / max(self.kept_frac, min_frac)) if self.need else 0

    def add(self, groups: Sequence[T], group_accuracies: Any) -> np.ndarray:
        """Offer P groups with their (P,) accuracies; returns the (P,) keep mask."""
        acc = np.asarray(group_accuracies, dtype=float)
        if acc.shape != (len(groups),):
            raise UserError(
                f"{len(groups)} groups with accuracies of shape {acc.shape}; give one accuracy "
                "per group"
            )
        mask = self.difficulty_filter.keep(acc)
        self._kept.extend(g for g, k in zip(groups, mask, strict=True) if k)
        n_kept = int(mask.sum())
        self._batch["sampled"] += len(groups)
        self._batch["kept"] += n_kept
        self._batch["too_hard"] += int((acc < self.difficulty_filter.low).sum())
        self._batch["too_easy"] += int((acc > self.difficulty_filter.high).sum())
        self._batch["rounds"] += 1
        self.total_sampled += len(groups)
        self.total_kept += n_kept
        return mask

    def pop(self) -> tuple[list[T], dict[str, float]]:
        """The first ``batch_prompts`` kept groups (fewer if not ready) and this batch's metrics.

        Metrics: ``curriculum/kept_frac`` (kept / sampled for this batch), ``curriculum/sampled``,
        ``curriculum/too_hard_frac`` (accuracy below ``low``), ``curriculum/too_easy_frac``
        (above ``high``; NaN accuracies are in neither), ``curriculum/rounds``,
        ``curriculum/dropped`` (surplus groups thrown away).
        """
        batch, rest = self._kept[: self.batch_prompts], self._kept[self.batch_prompts :]
        self._kept = rest if self.carry_over else []
        b = self._batch
        sampled = max(b["sampled"], 1)
        metrics = {
            "curriculum/kept_frac": b["kept"] / sampled,
            "curriculum/sampled": float(b["sampled"]),
            "curriculum/too_hard_frac": b["too_hard"] / sampled,
            "curriculum/too_easy_frac": b["too_easy"] / sampled,
            "curriculum/rounds": float(b["rounds"]),
            "curriculum/dropped": 0.0 if self.carry_over else float(len(rest)),
        }
        self._batch = dict.fromkeys(b, 0)
        return batch, metrics

    def state_dict(self) -> dict[str, Any]:
        """Counters only: checkpoint right after :meth:`pop` (pending groups are not saved)."""
        return {
            "batch_prompts": self.batch_prompts,
            "filter": self.difficulty_filter.state_dict(),
            "carry_over": self.carry_over,
            "total_sampled": self.total_sampled,
            "total_kept": self.total_kept,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.batch_prompts = int(state["batch_prompts"])
        self.difficulty_filter.load_state_dict(state["filter"])
        self.carry_over = bool(state["carry_over"])
        self.total_sampled = int(state["total_sampled"])
        self.total_kept = int(state["total_kept"])
        self._kept = []
        self._batch = dict.fromkeys(self._batch, 0)


# ---------------------------------------------------------------- DUMP


class DumpSampler:
    """DUMP's distribution-level UCB curriculum over data sources (Wang et al. 2025).

    For source j with ``n_j`` samples seen so far (``N = sum_j n_j``):

    * learnability ``L_j`` = mean |advantage| over the last ``window`` samples of j;
    * ``UCB_j = L_j + c * sqrt(2 ln N / n_j)``; a source never seen has ``UCB_j = +inf``;
    * ``p = softmax(UCB / temperature)``; while some sources are unseen, p is uniform over them.

    Defaults follow the authors' release (window 300, temperature 0.1, bonus weight 1).
    ``sample(n, rng)`` draws n source ids; after scoring, ``update(source_ids, advantages)``
    feeds back one advantage per completion (absolute values are taken here).
    """

    def __init__(
        self,
        sources: Sequence[str],
        window: int = 300,
        c: float = 1.0,
        temperature: float = 0.1,
    ) -> None:
        sources = list(sources)
        if not sources or not all(isinstance(s, str) and s for s in sources):
            raise UserError(f"sources={sources!r}; give a non-empty list of source names")
        if len(set(sources)) != len(sources):
            dup = sorted({s for s in sources if sources.count(s) > 1})
            raise UserError(f"sources repeat {dup}; give each source once")
        if isinstance(window, bool) or not isinstance(window, int) or window <= 0:
            raise UserError(f"window={window!r}; give a positive number of samples (e.g. 300)")
        if not (math.isfinite(c) and c >= 0):
            raise UserError(f"c={c}; give a finite exploration weight >= 0 (e.g. 1.0)")
        if not (math.isfinite(temperature) and temperature > 0):
            raise UserError(f"temperature={temperature}; give a positive number (e.g. 0.1)")
        self.sources = sources
        self.window = window
        self.c = float(c)
        self.temperature = float(temperature)
        self._index = {s: j for j, s in enumerate(sources)}
        self._recent: list[deque[float]] = [deque(maxlen=window) for _ in sources]
        self.counts = np.zeros(len(sources), dtype=np.int64)  # (S,) n_j, all samples ever

    def learnability(self) -> np.ndarray:
        """(S,) mean |advantage| over each source's window; NaN for a source never seen."""
        return np.array([np.mean(r) if r else np.nan for r in self._recent])

    def ucb(self) -> np.ndarray:
        """(S,) UCB scores; +inf for sources never seen."""
        n_total = int(self.counts.sum())
        scores = np.full(len(self.sources), np.inf)
        seen = self.counts > 0
        if seen.any():
            bonus = self.c * np.sqrt(2.0 * math.log(n_total) / self.counts[seen])
            scores[seen] = self.learnability()[seen] + bonus
        return scores

    def probs(self) -> np.ndarray:
        """(S,) sampling probabilities, softmax(UCB / temperature)."""
        scores = self.ucb()
        unseen = np.isinf(scores)
        if unseen.any():
            return unseen / unseen.sum()
        z = (scores - scores.max()) / self.temperature
        e = np.exp(z)
        return e / e.sum()

    def sample(self, n: int, rng: np.random.Generator) -> list[str]:
        """n source ids drawn independently from :meth:`probs`."""
        picks = rng.choice(len(self.sources), size=int(n), p=self.probs())
        return [self.sources[j] for j in picks]

    def update(self, source_ids: Sequence[str], advantages: Any) -> None:
        """Record one advantage per completion: ``source_ids`` (M,), ``advantages`` (M,).

        NaN advantages (masked samples) are skipped; absolute values are taken.
        """
        adv = np.abs(np.asarray(advantages, dtype=float))
        if adv.shape != (len(source_ids),):
            raise UserError(
                f"{len(source_ids)} source ids with advantages of shape {adv.shape}; give one "
                "advantage per completion"
            )
        for s, a in zip(source_ids, adv, strict=True):
            j = self._index.get(s)
            if j is None:
                raise unknown("source", str(s), self.sources)
            if np.isnan(a):
                continue
            self._recent[j].append(float(a))
            self.counts[j] += 1

    def metrics(self) -> dict[str, float]:
        """Per source: ``curriculum/p/<s>``, ``curriculum/learnability/<s>``, ``curriculum/n/<s>``.

        ``p`` is the sampling probability, ``n`` the samples seen so far.
        """
        out: dict[str, float] = {}
        for s, p, lrn, n in zip(
            self.sources, self.probs(), self.learnability(), self.counts, strict=True
        ):
            out[f"curriculum/p/{s}"] = float(p)
            out[f"curriculum/learnability/{s}"] = float(lrn)
            out[f"curriculum/n/{s}"] = float(n)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "sources": list(self.sources),
            "window": self.window,
            "c": self.c,
            "temperature": self.temperature,
            "counts": [int(n) for n in self.counts],
            "recent": [list(r) for r in self._recent],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if list(state["sources"]) != self.sources:
            raise UserError(
                f"checkpoint sources {state['sources']} differ from this sampler's "
                f"{self.sources}; build the sampler with the checkpoint's sources"
            )
        self.window = int(state["window"])
        self.c = float(state["c"])
        self.temperature = float(state["temperature"])
        self.counts = np.array(state["counts"], dtype=np.int64)
        self._recent = [deque(map(float, r), maxlen=self.window) for r in state["recent"]]


# ---------------------------------------------------------------- LIMR


def limr_scores(rewards: Any) -> np.ndarray:
    """LIM alignment scores (Li et al. 2025): (N, K) reward trajectories -> (N,).

    ``rewards[i, k]`` is sample i's mean reward (accuracy, in [0, 1]) in epoch k of a pilot run.
    With the average curve ``r_avg_k = mean_i rewards[i, k]``::

        s_i = 1 - sum_k (rewards[i, k] - r_avg_k)^2 / sum_k (1 - r_avg_k)^2

    1 means the sample learns exactly like the model on average; a sample always solved or
    never solved while the average climbs scores low. Degenerate case: if ``r_avg_k = 1`` for
    every k (every sample solved in every epoch, so every trajectory equals the average), the
    ratio is 0/0 and every score is defined as 1.0.
    """
    r = np.asarray(rewards, dtype=float)
    if r.ndim != 2 or r.shape[0] == 0 or r.shape[1] == 0:
        raise UserError(f"rewards has shape {r.shape}; give (samples, epochs) with both >= 1")
    if not np.isfinite(r).all() or r.min() < 0.0 or r.max() > 1.0:
        raise UserError(
            "rewards must be finite accuracies in [0, 1]; fill or drop samples with missing "
            "epochs and rescale other rewards before scoring"
        )
    avg = r.mean(axis=0)  # (K,)
    denom = float(((1.0 - avg) ** 2).sum())
    if denom == 0.0:
        return np.ones(r.shape[0])
    return 1.0 - ((r - avg) ** 2).sum(axis=1) / denom  # (N,)


def limr_select(
    rewards: Any, threshold: float | None = 0.6, top_frac: float | None = None
) -> np.ndarray:
    """Indices (ascending) of the samples LIM keeps.

    By default those with ``limr_scores >= threshold`` (the paper's 0.6; its released script
    defaults to 0.2). With ``top_frac`` instead, the ``ceil(top_frac * N)`` best-scoring samples
    (ties broken by lower index); pass ``threshold=None`` with it.
    """
    scores = limr_scores(rewards)
    if top_frac is not None:
        if threshold is not None:
            raise UserError("give either threshold or top_frac, not both (threshold=None)")
        if not (0.0 < top_frac <= 1.0):
            raise UserError(f"top_frac={top_frac}; give a fraction in (0, 1]")
        k = math.ceil(top_frac * len(scores))
        order = np.lexsort((np.arange(len(scores)), -scores))  # best first, then by index
        return np.sort(order[:k])
    if threshold is None:
        raise UserError("give threshold or top_frac")
    return np.flatnonzero(scores >= threshold)
