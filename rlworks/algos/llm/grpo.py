"""RL post-training of a causal LM with verifiable rewards: the GRPO family in one loop.

GRPO (Shao et al. 2024, DeepSeekMath, arXiv:2402.03300): sample G completions per prompt,
score them, normalise each reward within its prompt group, and take clipped policy-gradient
steps on the token log-probabilities. The variants change one part each and are presets
(``rlworks.algos.llm.presets``): Dr. GRPO (Liu et al. 2025: no std scaling, constant-sum
aggregation), RLOO (Ahmadian et al. 2024: leave-one-out baseline), ReMax (Li et al. 2023:
greedy-decoding baseline), REINFORCE with a running baseline, DAPO's clip-higher / dynamic
sampling / token-mean loss (Yu et al. 2025), Expert Iteration (rejection-sampling SFT), balanced
online difficulty filtering (Bae et al. 2025) and the DUMP source sampler (Wang et al. 2025).

Deviations from the papers, all options: the KL penalty defaults to off (``beta=0``, as TRL's
default and DAPO/Dr. GRPO argue); the std uses Bessel's correction (``torch.std``, as TRL and
verl); old log-probabilities are the sampling-time ones (logits / temperature), not a second
forward pass.

The maths lives in ``returns/group.py`` (advantages) and ``losses/llm.py`` (the loss); this
file is the loop: prompts -> rollouts -> rewards -> advantages -> updates.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np
import torch

from rlworks.algos.llm.batch import (
    PromptPool,
    add_lora,
    build_rewards,
    generated_accuracy,
    mean_metrics,
    merge_groups,
    read_ids,
    take_group,
)
from rlworks.algos.llm.configs import RLConfig
from rlworks.core.errors import UserError
from rlworks.core.seeding import make_rng, torch_generator


class GRPOLearner:
    """One RL run's state: policy, optimiser, reference model, samplers and generators."""

    def __init__(self, cfg: RLConfig, rewards: Any = None) -> None:
        """``rewards``: a :class:`~rlworks.llm.rewards.RewardSet` (or anything accepted by its
        constructor, e.g. ``{"mine": (fn, 1.0)}``) replacing ``cfg.rewards``; a reward function
        is a plain ``fn(prompts, completions, **columns) -> list[float | None]``."""
        from rlworks.algos.llm.sft import resolve_device
        from rlworks.llm.curriculum import DifficultyFilter, DumpSampler, FilteredBatcher
        from rlworks.llm.generate import SamplingConfig
        from rlworks.llm.model import load_policy
        from rlworks.losses.llm import KL_ESTIMATORS, LOSS_AGGREGATIONS, SURROGATES
        from rlworks.returns.group import ADVANTAGES, RunningBaseline

        if not cfg.model:
            raise UserError("no model given; pass --model DIR (e.g. from `rlworks llm pretrain`)")
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.model, self.tokenizer = load_policy(cfg.model, device=self.device)
        self.ref_model = None
        if cfg.beta > 0:
            self.ref_model = copy.deepcopy(self.model).eval().requires_grad_(False)
        if cfg.lora_rank > 0:
            self.model = add_lora(self.model, cfg.lora_rank, cfg.lora_alpha)
        self.model.train()
        self.optimizer = torch.optim.AdamW(
            [p for p in self.model.parameters() if p.requires_grad],
            lr=cfg.lr,
            betas=(0.9, 0.99),
            weight_decay=cfg.weight_decay,
        )
        self.pool = PromptPool(cfg.tasks, cfg.pool_size, cfg.seed)
        if cfg.pool_file:
            self.pool.restrict(read_ids(cfg.pool_file), cfg.pool_file)
        self.epoch_order: list[int] = []  # sampler "epochs": pool indices still to visit
        self.epoch = 0
        self.trajectories: dict[str, list[float]] = {}  # problem id -> mean reward per epoch
        from rlworks.llm.rewards import RewardSet

        self.rewards = (
            build_rewards(cfg.rewards, cfg.max_new_tokens)
            if rewards is None
            else rewards
            if isinstance(rewards, RewardSet)
            else RewardSet(rewards)
        )
        self.sampling = SamplingConfig(
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            top_k=cfg.top_k,
            max_new_tokens=cfg.max_new_tokens,
        )
        self.loss_temperature = cfg.temperature if cfg.scale_logits else 1.0
        self.rng = make_rng(cfg.seed, "llm-rl")
        self.gen = torch_generator(cfg.seed, "llm-rl-sampling")
        # The registry turns names into functions once, here; the loop never branches on them.
        self.kl_estimator = KL_ESTIMATORS.get(cfg.kl_estimator)
        agg: Any = LOSS_AGGREGATIONS.get(cfg.aggregation)
        self.aggregate = agg
        if cfg.aggregation == "constant_sum":
            self.aggregate = lambda x, m: agg(x, m, cfg.max_new_tokens)
        self.surrogate = SURROGATES.get(cfg.surrogate)
        self.baseline = (
            RunningBaseline(cfg.baseline_momentum) if cfg.advantage == "reinforce" else None
        )
        self._estimator = self._pick_estimator(ADVANTAGES)
        self.critic: Any = None
        self.critic_optimizer: Any = None
        if cfg.advantage == "gae":
            from rlworks.llm.model import build_value_model

            self.critic = build_value_model(self.model)
            self.critic_optimizer = torch.optim.AdamW(
                self.critic.parameters(), lr=cfg.critic_lr, betas=(0.9, 0.99), weight_decay=0.0
            )
        self.dump = (
            DumpSampler(
                self.pool.sources,
                window=cfg.dump_window,
                c=cfg.dump_c,
                temperature=cfg.dump_temperature,
            )
            if cfg.sampler == "dump"
            else None
        )
        band = cfg.band or ((1e-9, 1 - 1e-9) if cfg.dynamic_sampling else None)
        self.batcher: FilteredBatcher | None = (
            FilteredBatcher(cfg.prompts_per_step, DifficultyFilter(*band)) if band else None
        )
        self.global_step = 0  # RL steps done
        self.samples_seen = 0  # completions generated, filtered-out ones included

    def _pick_estimator(self, registry: Any) -> Any:
        """``(rewards (P, G), batch) -> advantages (P, G)`` for ``cfg.advantage``."""
        cfg = self.cfg
        if cfg.advantage == "remax":
            fn = registry.get("remax")
            return lambda r, b: fn(r, self._greedy_rewards(b["problems"]))
        if cfg.advantage == "reinforce":
            baseline = self.baseline
            assert baseline is not None
            return lambda r, b: baseline(r)
        if cfg.advantage == "rejection":  # Expert Iteration: imitate the correct samples
            return lambda r, b: torch.nan_to_num((r >= cfg.accept_threshold).float() * (r == r))
        if cfg.advantage == "gae":
            return self._gae_advantages
        if cfg.advantage == "grpo":
            from rlworks.returns.group import group_relative

            return lambda r, b: group_relative(
                r, scale=cfg.scale_rewards, std_ddof=cfg.std_ddof, eps=cfg.adv_eps
            )
        fn = registry.get(cfg.advantage)
        return lambda r, b: fn(r)

    # ------------------------------------------------------------------ rollouts

    def _sample_prompts(self, n: int) -> list[Any]:
        if self.cfg.sampler == "epochs":
            picked = []
            for _ in range(n):
                if not self.epoch_order:
                    self.epoch += 1
                    self.epoch_order = self.rng.permutation(len(self.pool.problems)).tolist()
                picked.append(self.pool.problems[self.epoch_order.pop()])
            return picked
        if self.dump is None:
            return self.pool.sample(n, self.rng)
        return self.pool.sample(n, self.rng, self.dump.sample(n, self.rng))

    def _rollout(self, problems: list[Any]) -> dict[str, Any]:
        """Generate G completions per problem and score them: one group record per problem."""
        from rlworks.llm.generate import generate

        g = self.cfg.num_generations
        roll = generate(
            self.model, self.tokenizer, [p.prompt for p in problems], g, self.sampling, self.gen
        )
        self.samples_seen += len(roll.completions)
        rep = [p for p in problems for _ in range(g)]
        scored = self.rewards(
            [p.prompt for p in rep],
            roll.completions,
            problems=rep,
            completion_lengths=roll.lengths.tolist(),
        )
        correct = scored.components.get("correct")
        return {
            "problems": problems,
            "roll": roll,
            "scored": scored,
            "rewards": torch.tensor(scored.total, dtype=torch.float32).view(len(problems), g),
            "correct": (
                correct.reshape(len(problems), g)
                if correct is not None
                else np.full((len(problems), g), np.nan)
            ),
        }

    def _collect(self) -> tuple[list[dict[str, Any]], dict[str, float]]:
        """The prompt groups of one step and the reward metrics of everything sampled; with
        filtering, keep sampling (at most ``max_rounds`` rounds) until the batch is full."""
        from rlworks.llm.curriculum import group_accuracy

        p = self.cfg.prompts_per_step
        if self.batcher is None:
            part = self._rollout(self._sample_prompts(p))
            metrics = {**part["scored"].metrics, **generated_accuracy([part])}
            return [take_group(part, i) for i in range(p)], metrics
        seen: list[dict[str, float]] = []
        parts: list[dict[str, Any]] = []
        for _ in range(self.cfg.max_rounds):
            if self.batcher.ready:
                break
            n = min(self.batcher.next_sample_size(), 4 * p)
            part = self._rollout(self._sample_prompts(n))
            seen.append(part["scored"].metrics)
            parts.append(part)
            # Accuracy from the correctness reward; without one, the mean reward (in [0, 1]).
            scores = (
                part["correct"] if np.isfinite(part["correct"]).any() else part["rewards"].numpy()
            )
            acc = group_accuracy(scores) if self.cfg.band else _spread(part["rewards"].numpy())
            self.batcher.add([take_group(part, i) for i in range(n)], acc)
        groups, metrics = self.batcher.pop()
        return groups, {**mean_metrics(seen), **generated_accuracy(parts), **metrics}

    # ------------------------------------------------------------------ one step

    def iterate(self) -> dict[str, float]:
        cfg = self.cfg
        t0 = time.perf_counter()
        lr_scale = min(1.0, (self.global_step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
        for group in self.optimizer.param_groups:
            group["lr"] = cfg.lr * lr_scale
        groups, metrics = self._collect()
        t_gen = time.perf_counter() - t0
        self.global_step += 1
        if not groups:  # nothing passed the filter in max_rounds rounds: no update this step
            return {**metrics, "train/skipped": 1.0, "perf/samples_seen": float(self.samples_seen)}
        batch = merge_groups(groups, self.tokenizer.pad_token_id)
        rewards = batch["rewards"]  # (P, G), NaN where a reward function failed
        if cfg.sampler == "epochs":
            self._record_trajectories(batch)
        mask = batch["completion_mask"].float()  # (N, Lc)
        valid = ~torch.isnan(rewards.flatten())
        if cfg.mask_truncated:
            valid &= ~batch["truncated"]
        mask = mask * valid[:, None].float()
        if self.loss_temperature != cfg.temperature:
            # The losses see pi at temperature 1, so the old log-probs must too: recompute them
            # instead of taking the sampling-time ones (logits / temperature).
            batch["logprobs"] = self._old_logprobs(batch)
        ref_logp = self._ref_logprobs(batch) if self.ref_model is not None else None
        if ref_logp is not None and cfg.kl_in_reward:
            from rlworks.losses.llm import kl_penalised_rewards

            penalised = kl_penalised_rewards(
                rewards.flatten(), batch["logprobs"], ref_logp, mask, cfg.beta, self.kl_estimator
            )
            rewards = penalised.view_as(rewards)  # NaN stays NaN
        n_rows = mask.shape[0]
        # (P, G) for the group estimators, (N, Lc) per token for gae -> (N, 1) or (N, Lc)
        adv = self._estimator(rewards, batch).reshape(n_rows, -1)  # chosen once in __init__
        if self.dump is not None:
            g = cfg.num_generations
            sources = [pr.source for pr in batch["problems"] for _ in range(g)]
            self.dump.update(sources, _row_mean(adv, mask).numpy())
        t1 = time.perf_counter()
        update = self._update(batch, adv, mask, ref_logp)
        t_train = time.perf_counter() - t1
        roll_tokens = int(batch["completion_mask"].sum())
        lengths = batch["completion_mask"].sum(1).float()
        correct = batch["correct"]
        metrics.update(update)
        metrics.update(
            {
                "rollout/length_mean": float(lengths.mean()),
                "rollout/truncated_frac": float(batch["truncated"].float().mean()),
                "train/advantage_abs_mean": float(_row_mean(adv.abs(), mask).mean()),
                "train/lr": cfg.lr * lr_scale,
                "perf/gen_s": t_gen,
                "perf/train_s": t_train,
                "perf/tokens_per_s": roll_tokens / max(t_gen + t_train, 1e-9),
                "perf/samples_seen": float(self.samples_seen),
            }
        )
        if np.isfinite(correct).any():  # only with a correctness reward
            metrics["rollout/accuracy"] = float(np.nanmean(correct))
        if self.dump is not None:
            metrics.update(self.dump.metrics())
        return metrics

    def _record_trajectories(self, batch: dict[str, Any]) -> None:
        """LIMR's raw data: each problem's accuracy (or mean reward) in each epoch."""
        scores = (
            batch["correct"] if np.isfinite(batch["correct"]).any() else (batch["rewards"].numpy())
        )
        for problem, row in zip(batch["problems"], scores, strict=True):
            traj = self.trajectories.setdefault(problem.id, [])
            traj.extend([float("nan")] * (self.epoch - 1 - len(traj)))  # missed epochs
            value = float(np.nanmean(row)) if np.isfinite(row).any() else float("nan")
            if len(traj) == self.epoch:  # seen twice in one epoch (a filtered refill)
                traj[-1] = value
            else:
                traj.append(value)

    @torch.no_grad()
    def _gae_advantages(self, rewards: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        """PPO: the outcome reward at each completion's last token, token-level GAE against the
        value model, whitened over the batch's tokens. Also stores the returns and the
        rollout-time values the critic update needs. (P, G) -> (N, Lc)"""
        from rlworks.returns.group import token_gae

        mask = batch["completion_mask"].float()
        values = self.critic.values(
            batch["prompt_ids"],
            batch["prompt_mask"],
            batch["completion_ids"],
            batch["completion_mask"],
        )
        last = (mask.sum(1) - 1).clamp(min=0).long()  # (N,) index of the last real token
        token_rewards = torch.zeros_like(mask)
        token_rewards[torch.arange(mask.shape[0]), last] = torch.nan_to_num(rewards.flatten())
        adv, returns = token_gae(token_rewards, values, mask, self.cfg.gamma, self.cfg.gae_lambda)
        live = mask.bool()
        mean, std = adv[live].mean(), adv[live].std()
        batch["old_values"], batch["returns"] = values, returns
        return torch.where(live, (adv - mean) / (std + 1e-8), 0.0)

    def _critic_step(self, batch: dict[str, Any], idx: torch.Tensor, mask: torch.Tensor) -> float:
        """One clipped value-loss step on minibatch ``idx`` (token mean over ``mask``)."""
        from rlworks.losses.value import value_loss

        values = self.critic.values(
            batch["prompt_ids"][idx],
            batch["prompt_mask"][idx],
            batch["completion_ids"][idx],
            batch["completion_mask"][idx],
        )
        live = mask.bool()
        loss = value_loss(
            values[live],
            batch["returns"][idx][live],
            batch["old_values"][idx][live],
            self.cfg.value_clip or None,
        )
        self.critic_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.critic.parameters(), self.cfg.grad_clip)
        self.critic_optimizer.step()
        return float(loss.detach())

    def _greedy_rewards(self, problems: list[Any]) -> torch.Tensor:
        """ReMax's baseline: the reward of each prompt's greedy completion. (P,)"""
        from rlworks.llm.generate import SamplingConfig, generate

        greedy = SamplingConfig(temperature=0.0, max_new_tokens=self.cfg.max_new_tokens)
        roll = generate(self.model, self.tokenizer, [p.prompt for p in problems], 1, greedy)
        scored = self.rewards(
            [p.prompt for p in problems],
            roll.completions,
            problems=problems,
            completion_lengths=roll.lengths.tolist(),
        )
        return torch.nan_to_num(torch.tensor(scored.total, dtype=torch.float32), nan=0.0)

    @torch.no_grad()
    def _old_logprobs(self, batch: dict[str, Any]) -> torch.Tensor:
        from rlworks.llm.generate import sequence_logprobs

        return sequence_logprobs(
            self.model,
            batch["prompt_ids"],
            batch["prompt_mask"],
            batch["completion_ids"],
            batch["completion_mask"],
            self.loss_temperature,
        )

    @torch.no_grad()
    def _ref_logprobs(self, batch: dict[str, Any]) -> torch.Tensor:
        from rlworks.llm.generate import sequence_logprobs

        return sequence_logprobs(
            self.ref_model,
            batch["prompt_ids"],
            batch["prompt_mask"],
            batch["completion_ids"],
            batch["completion_mask"],
            self.loss_temperature,
        )

    def _update(
        self,
        batch: dict[str, Any],
        adv: torch.Tensor,
        mask: torch.Tensor,
        ref_logp: torch.Tensor | None,
    ) -> dict[str, float]:
        """``num_iterations`` passes of ``minibatches`` clipped policy-gradient steps."""
        from rlworks.llm.generate import sequence_logprobs
        from rlworks.losses.llm import policy_loss

        cfg = self.cfg
        n = adv.shape[0]
        size = n // cfg.minibatches
        beta = 0.0 if cfg.kl_in_reward else cfg.beta
        sums: dict[str, float] = {}
        count = 0
        for _ in range(cfg.num_iterations):
            order = torch.from_numpy(self.rng.permutation(n))
            for start in range(0, n, size):
                idx = order[start : start + size]
                mb_mask = mask[idx]
                logp = sequence_logprobs(
                    self.model,
                    batch["prompt_ids"][idx],
                    batch["prompt_mask"][idx],
                    batch["completion_ids"][idx],
                    batch["completion_mask"][idx],
                    self.loss_temperature,
                )
                terms = policy_loss(
                    logp,
                    batch["logprobs"][idx],
                    None if ref_logp is None else ref_logp[idx],
                    adv[idx],
                    mb_mask,
                    clip_eps_low=cfg.clip_eps_low,
                    clip_eps_high=cfg.clip_eps_high,
                    beta=beta,
                    kl_estimator=self.kl_estimator,
                    aggregate=self.aggregate,
                    surrogate=self.surrogate,
                )
                self.optimizer.zero_grad(set_to_none=True)
                terms.loss.backward()
                grad_norm = (
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
                    if cfg.grad_clip > 0
                    else torch.tensor(0.0)
                )
                self.optimizer.step()
                if self.critic is not None and bool(mb_mask.any()):
                    value_loss = self._critic_step(batch, idx, mb_mask)
                    sums["train/value_loss"] = sums.get("train/value_loss", 0.0) + value_loss
                for key, value in (
                    ("train/loss", terms.loss),
                    ("train/policy_loss", terms.pg_loss),
                    ("train/kl", terms.kl),
                    ("train/clip_frac_low", terms.clip_frac_low),
                    ("train/clip_frac_high", terms.clip_frac_high),
                    ("train/ratio_mean", terms.ratio_mean),
                    ("train/approx_kl", terms.approx_kl_old),
                    ("train/grad_norm", grad_norm),
                ):
                    sums[key] = sums.get(key, 0.0) + float(value.detach())
                count += 1
        return {k: v / count for k, v in sums.items()}

    # ------------------------------------------------------------------ evaluation

    def evaluate(self, problems: list[Any]) -> dict[str, float]:
        """Greedy accuracy and sampled pass@1 (``eval_samples`` per problem) on ``problems``."""
        from rlworks.eval.llm import sample_correct
        from rlworks.llm.generate import SamplingConfig

        gen = torch_generator(self.cfg.seed, "llm-eval")  # same draws at every evaluation
        greedy = sample_correct(
            self.model,
            self.tokenizer,
            problems,
            1,
            SamplingConfig(temperature=0.0, max_new_tokens=self.cfg.max_new_tokens),
        )
        sampled = sample_correct(
            self.model, self.tokenizer, problems, self.cfg.eval_samples, self.sampling, gen
        )
        return {
            "eval/greedy_acc": float(greedy.correct.mean()),
            "eval/pass@1": sampled.pass_at(1),
            f"eval/pass@{self.cfg.eval_samples}": sampled.pass_at(self.cfg.eval_samples),
            "eval/length_mean": float(sampled.lengths.mean()),
        }

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "rng": self.rng.bit_generator.state,
            "gen": self.gen.get_state(),
            "baseline": self.baseline.state_dict() if self.baseline else None,
            "critic": (
                {k: v.detach().clone() for k, v in self.critic.state_dict().items()}
                if self.critic is not None
                else None
            ),
            "critic_optimizer": (
                self.critic_optimizer.state_dict() if self.critic_optimizer is not None else None
            ),
            "dump": self.dump.state_dict() if self.dump else None,
            "batcher": self.batcher.state_dict() if self.batcher else None,
            "global_step": self.global_step,
            "samples_seen": self.samples_seen,
            "epoch": self.epoch,
            "epoch_order": list(self.epoch_order),
            "trajectories": {k: list(v) for k, v in self.trajectories.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        state = copy.deepcopy(state)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.bit_generator.state = state["rng"]
        self.gen.set_state(state["gen"])
        if self.baseline is not None:
            self.baseline.load_state_dict(state["baseline"])
        if self.critic is not None:
            self.critic.load_state_dict(state["critic"])
            self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        if self.dump is not None:
            self.dump.load_state_dict(state["dump"])
        if self.batcher is not None:
            self.batcher.load_state_dict(state["batcher"])
        self.global_step = int(state["global_step"])
        self.samples_seen = int(state["samples_seen"])
        self.epoch = int(state["epoch"])
        self.epoch_order = [int(i) for i in state["epoch_order"]]
        self.trajectories = {k: [float(x) for x in v] for k, v in state["trajectories"].items()}

    def close(self) -> None:
        pass


def _row_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-row mean of ``x`` (N, 1) or (N, T) over the row's tokens. -> (N,)"""
    if x.shape[1] == 1:
        return x[:, 0]
    return (x * mask).sum(1) / mask.sum(1).clamp(min=1)


def _spread(rewards: np.ndarray) -> np.ndarray:
    """DAPO's dynamic sampling as a band filter: 0.5 where a group's rewards differ (kept by a
    band strictly inside (0, 1)), 0 where they are all equal (dropped). (P, G) -> (P,)"""
    finite = np.where(np.isnan(rewards), np.nanmean(rewards), rewards)
    return np.where(np.ptp(finite, axis=1) > 0, 0.5, 0.0)
