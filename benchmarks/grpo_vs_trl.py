"""One GRPO step (generation + update) in rlworks vs TRL 1.16's GRPOTrainer, side by side.

Both sides train the SAME randomly initialised TinyLM checkpoint (written once to a temporary
directory) on the same ReasonGym prompts (``add:3``), on the CPU, with the same batch: P prompts x
G completions of at most L new tokens, temperature 1, one optimiser step per batch
(``num_iterations=1``, one minibatch, no gradient accumulation), ``beta=0`` (no reference model),
the GRPO paper's loss aggregation (TRL ``loss_type="grpo"``, rlworks ``seq_mean_token_mean``),
clip 0.2, AdamW (betas 0.9/0.99, no weight decay, constant lr), grad-norm clip 1.0, and the same
cheap reward function (completion length). Both stop a completion only at the eos token: rlworks'
default extra stop string ``</answer>`` is switched off on the learner's sampling config, and TRL
is told to run without gradient checkpointing and in fp32 (its defaults are on and bf16).

One step per side, timed from step end to step end (the first step is dropped as warm-up):

- rlworks ``GRPOLearner.iterate()``: sample P prompts; ``generate`` (KV cache preallocated for
  prompt + L positions, sampling log-probs kept); rewards; group advantages; one forward +
  backward over prompt + completion; clip; AdamW step.
- TRL ``trainer.train(max_steps=S)``: dataloader batch of P x G rows; ``model.generate`` (HF
  ``DynamicCache``); rewards; advantages; one forward + backward through TRL's fused LM head
  (chunked log-probs, plus per-token entropy for its metrics); clip; AdamW step; Trainer and
  callback bookkeeping. With one optimiser step per generation TRL skips its "old log-prob"
  forward, as rlworks does, so neither side runs an extra forward pass.

Work the two do not share: rlworks keeps each sampled token's log-prob during generation (one
log_softmax per step) where TRL keeps none; TRL computes per-token entropies in its loss forward
and runs the Trainer's loop machinery. Prompts: the same ``add:3`` pool on both sides (all prompts
have the same length); rlworks samples it with replacement, TRL through its shuffled sampler.

Throughput is completion tokens generated / step wall time, each side counting its own tokens
(eos included). A random-init TinyLM emits eos about once in 100 tokens, so many rows stop early
and the two sides' token counts differ by sampling noise, but a batch runs until its longest row
ends, which is almost always L: the compute per step is about equal, hence the s/step ratio too.
Every measurement is a fresh subprocess (peak RSS = ``ru_maxrss`` of that process, so the two
never share an allocator); runs alternate rlworks, TRL, rlworks, TRL ...; we report each side's
median and the median of the pairwise ratios rlworks / TRL.

    python benchmarks/grpo_vs_trl.py [--prompts 8] [--generations 8] [--max-new-tokens 128]
        [--rounds 5] [--steps 4] [--threads 2] [--hidden H --layers N --heads A]
        [--json] [--out FILE] [--doc]
"""

from __future__ import annotations

import os

# Nothing is ever downloaded: the model and tokenizer come from a local directory.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import git_rev, machine, write_section  # noqa: E402

TASKS = "add:3"
POOL_SIZE = 512
LR = 2e-4
RESULT_TAG = "GRPO_VS_TRL_RESULT "


def length_reward(prompts: list[str], completions: list[str], **columns: Any) -> list[float]:
    """The same cheap reward for both sides: completion length in characters / 100."""
    return [len(c) / 100.0 for c in completions]


def rss_mib() -> float:
    """Current resident set size of this process (MiB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# ---------------------------------------------------------------------------- children


def child_rlworks(args: argparse.Namespace) -> dict[str, Any]:
    import dataclasses

    import torch

    torch.set_num_threads(args.threads)
    from rlworks.algos.llm.configs import RLConfig
    from rlworks.algos.llm.grpo import GRPOLearner

    cfg = RLConfig(
        model=args.ckpt,
        tasks=TASKS,
        pool_size=POOL_SIZE,
        prompts_per_step=args.prompts,
        num_generations=args.generations,
        max_new_tokens=args.max_new_tokens,
        temperature=1.0,
        advantage="grpo",
        scale_rewards="group",
        aggregation="seq_mean_token_mean",
        beta=0.0,
        num_iterations=1,
        minibatches=1,
        lr=LR,
        grad_clip=1.0,
        seed=args.seed,
        torch_threads=args.threads,
        device="cpu",
    )
    learner = GRPOLearner(cfg, rewards={"len": (length_reward, 1.0)})
    # Stop at eos only, as TRL does (rlworks also stops at '</answer>' by default).
    learner.sampling = dataclasses.replace(learner.sampling, stop_strings=())
    rss_setup = rss_mib()
    n = args.prompts * args.generations
    step_s, gen_s, tokens, truncated = [], [], [], []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        m = learner.iterate()
        step_s.append(time.perf_counter() - t0)
        gen_s.append(m["perf/gen_s"])
        tokens.append(m["rollout/length_mean"] * n)
        truncated.append(m["rollout/truncated_frac"])
    return {
        "step_s": step_s,
        "gen_s": gen_s,
        "tokens": tokens,
        "truncated": truncated,
        "rss_setup_mib": rss_setup,
        "threads": torch.get_num_threads(),
    }


def child_trl(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    torch.set_num_threads(args.threads)
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from rlworks.algos.llm.batch import PromptPool

    tokenizer = AutoTokenizer.from_pretrained(args.ckpt, local_files_only=True)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(args.ckpt, local_files_only=True, dtype="auto")
    pool = PromptPool(TASKS, POOL_SIZE, args.seed)
    dataset = Dataset.from_list([{"prompt": p.prompt} for p in pool.problems])
    n = args.prompts * args.generations
    out_dir = tempfile.mkdtemp(prefix="grpo_vs_trl_")
    config = GRPOConfig(
        output_dir=out_dir,
        per_device_train_batch_size=n,  # one optimiser step consumes exactly P x G completions
        gradient_accumulation_steps=1,
        steps_per_generation=1,
        num_generations=args.generations,
        max_completion_length=args.max_new_tokens,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        beta=0.0,
        num_iterations=1,
        epsilon=0.2,
        loss_type="grpo",
        scale_rewards="group",
        mask_truncated_completions=False,
        learning_rate=LR,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        adam_beta1=0.9,
        adam_beta2=0.99,
        optim="adamw_torch",  # torch.optim.AdamW, as rlworks (TRL would pick the fused one)
        max_grad_norm=1.0,
        max_steps=args.steps,
        use_vllm=False,
        use_cpu=True,
        bf16=False,
        fp16=False,
        gradient_checkpointing=False,
        report_to="none",
        logging_strategy="no",
        save_strategy="no",
        eval_strategy="no",
        log_completions=False,
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=args.seed,
    )
    marks: dict[str, Any] = {"begin": [], "end": [], "gen": [], "lengths": [], "truncated": []}

    class StepTimer(TrainerCallback):
        def on_train_begin(self, *a: Any, **k: Any) -> None:
            marks["rss_setup"] = rss_mib()

        def on_step_begin(self, *a: Any, **k: Any) -> None:
            marks["begin"].append(time.perf_counter())

        def on_step_end(self, *a: Any, **k: Any) -> None:
            marks["end"].append(time.perf_counter())
            marks["threads"] = torch.get_num_threads()

    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[length_reward],
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[StepTimer()],
    )
    generate_and_score = trainer._generate_and_score_completions

    def timed_generate(*a: Any, **k: Any) -> Any:  # generation + rewards + advantages
        t0 = time.perf_counter()
        result = generate_and_score(*a, **k)
        marks["gen"].append(time.perf_counter() - t0)
        # Read now: train() ends with a log() that averages and clears these lists.
        metrics = trainer._metrics["train"]
        marks["lengths"].append(metrics["completions/mean_length"][-1])
        marks["truncated"].append(metrics["completions/clipped_ratio"][-1])
        return result

    trainer._generate_and_score_completions = timed_generate
    trainer.train()
    ends = marks["end"]
    step_s = [ends[0] - marks["begin"][0]] + [b - a for a, b in zip(ends, ends[1:], strict=False)]
    return {
        "step_s": step_s,
        "gen_s": marks["gen"],
        "tokens": [x * n for x in marks["lengths"]],
        "truncated": marks["truncated"],
        "rss_setup_mib": marks["rss_setup"],
        "threads": marks["threads"],
    }


def run_child(args: argparse.Namespace) -> None:
    result = (child_rlworks if args.child == "rlworks" else child_trl)(args)
    if len(result["step_s"]) != args.steps or len(result["tokens"]) != args.steps:
        raise RuntimeError(f"{args.child}: expected {args.steps} steps, got {result}")
    result["peak_rss_mib"] = peak_rss_mib()
    print(RESULT_TAG + json.dumps(result), flush=True)


# ---------------------------------------------------------------------------- parent


def make_checkpoint(args: argparse.Namespace, path: Path) -> dict[str, Any]:
    from rlworks.llm.model import TinyLMConfig, build_tinylm, count_parameters, save_policy

    shape = {
        k: v
        for k, v in (
            ("hidden_size", args.hidden),
            ("num_layers", args.layers),
            ("num_heads", args.heads),
            ("num_kv_heads", args.heads),
        )
        if v is not None
    }
    cfg = TinyLMConfig(**shape)
    if 16 + args.max_new_tokens > cfg.max_positions:
        raise SystemExit(f"--max-new-tokens {args.max_new_tokens} exceeds TinyLM's positions")
    model, tokenizer = build_tinylm(cfg, args.seed)
    save_policy(model, tokenizer, path)
    return {
        "hidden_size": cfg.hidden_size,
        "num_layers": cfg.num_layers,
        "num_heads": cfg.num_heads,
        "parameters": count_parameters(model),
    }


def measure(side: str, args: argparse.Namespace, ckpt: Path) -> dict[str, Any]:
    """One fresh subprocess running ``args.steps`` steps of ``side``; the first is dropped."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", side, "--ckpt", str(ckpt)]
    for flag in ("prompts", "generations", "max_new_tokens", "steps", "threads", "seed"):
        cmd += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [x for x in proc.stdout.splitlines() if x.startswith(RESULT_TAG)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{side} child failed:\n{proc.stdout[-1500:]}\n{proc.stderr[-3000:]}")
    r = json.loads(lines[-1][len(RESULT_TAG) :])
    kept = slice(1, None)  # drop the warm-up step
    time_s, tokens = sum(r["step_s"][kept]), sum(r["tokens"][kept])
    r["tokens_per_s"] = tokens / time_s
    r["step_median_s"] = statistics.median(r["step_s"][kept])
    r["gen_median_s"] = statistics.median(r["gen_s"][kept])
    r["tokens_per_step"] = tokens / len(r["step_s"][kept])
    r["mean_length"] = r["tokens_per_step"] / (args.prompts * args.generations)
    return r


def summarise(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    def med(side: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[side])

    summary: dict[str, Any] = {}
    for side in runs:
        summary[side] = {
            key: med(side, key)
            for key in (
                "tokens_per_s",
                "step_median_s",
                "gen_median_s",
                "tokens_per_step",
                "mean_length",
                "peak_rss_mib",
                "rss_setup_mib",
            )
        }
        summary[side]["tokens_per_s_all"] = [round(r["tokens_per_s"], 1) for r in runs[side]]
        summary[side]["peak_rss_all"] = [round(r["peak_rss_mib"], 1) for r in runs[side]]
    pairs = list(zip(runs["rlworks"], runs["trl"], strict=True))
    summary["ratio_tokens_per_s"] = statistics.median(
        a["tokens_per_s"] / b["tokens_per_s"] for a, b in pairs
    )
    summary["ratio_step_s"] = statistics.median(
        a["step_median_s"] / b["step_median_s"] for a, b in pairs
    )
    summary["ratio_peak_rss"] = statistics.median(
        a["peak_rss_mib"] / b["peak_rss_mib"] for a, b in pairs
    )
    return summary


def markdown(args: argparse.Namespace, model: dict[str, Any], s: dict[str, Any]) -> str:
    import torch
    import transformers
    import trl

    rows = [
        "| | rlworks | TRL GRPOTrainer | rlworks / TRL (median of pairs) |",
        "|---|---:|---:|---:|",
        f"| completion tokens/s | {s['rlworks']['tokens_per_s']:.0f} | "
        f"{s['trl']['tokens_per_s']:.0f} | **{s['ratio_tokens_per_s']:.2f}** |",
        f"| s per step (median) | {s['rlworks']['step_median_s']:.2f} | "
        f"{s['trl']['step_median_s']:.2f} | {s['ratio_step_s']:.2f} |",
        f"| of which generation + rewards (s) | {s['rlworks']['gen_median_s']:.2f} | "
        f"{s['trl']['gen_median_s']:.2f} | |",
        f"| completion tokens per step | {s['rlworks']['tokens_per_step']:.0f} | "
        f"{s['trl']['tokens_per_step']:.0f} | |",
        f"| peak RSS (MiB) | {s['rlworks']['peak_rss_mib']:.0f} | "
        f"{s['trl']['peak_rss_mib']:.0f} | {s['ratio_peak_rss']:.2f} |",
        f"| RSS before the first step (MiB) | {s['rlworks']['rss_setup_mib']:.0f} | "
        f"{s['trl']['rss_setup_mib']:.0f} | |",
    ]
    return (
        f"One GRPO step (generation + update) on the same random-init TinyLM "
        f"({model['parameters'] / 1e6:.2f}M parameters, hidden {model['hidden_size']}, "
        f"{model['num_layers']} layers), CPU, torch threads: {args.threads}; "
        f"{args.prompts} prompts x {args.generations} completions, "
        f"at most {args.max_new_tokens} new tokens, `{TASKS}` prompts, eos-only stopping, "
        "beta 0, one optimiser step per batch. "
        f"{args.rounds} alternating rounds (rlworks, TRL, ...), each a fresh process of "
        f"{args.steps} steps with the first dropped; medians over rounds. "
        f"torch {torch.__version__}, transformers {transformers.__version__}, "
        f"trl {trl.__version__}.\n\n" + "\n".join(rows) + "\n\n"
        f"Raw tokens/s: rlworks {s['rlworks']['tokens_per_s_all']}, "
        f"TRL {s['trl']['tokens_per_s_all']}. Peak RSS (MiB): rlworks "
        f"{s['rlworks']['peak_rss_all']}, TRL {s['trl']['peak_rss_all']}. Peak RSS is the "
        "whole process (Python, torch, transformers, and for TRL also datasets/accelerate)."
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=8, help="prompts per step (P)")
    ap.add_argument("--generations", type=int, default=8, help="completions per prompt (G)")
    ap.add_argument("--max-new-tokens", type=int, default=128, help="longest completion (L)")
    ap.add_argument("--rounds", type=int, default=5, help="rlworks/TRL pairs of runs")
    ap.add_argument("--steps", type=int, default=4, help="steps per run (the first is dropped)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads of both sides")
    ap.add_argument("--hidden", type=int, help="TinyLM hidden size (default TinyLMConfig's)")
    ap.add_argument("--layers", type=int, help="TinyLM layers")
    ap.add_argument("--heads", type=int, help="TinyLM attention heads (must divide --hidden)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--out", help="append a markdown result block to this file")
    ap.add_argument("--doc", action="store_true", help="write the section in docs/benchmarks.md")
    ap.add_argument("--child", choices=["rlworks", "trl"], help=argparse.SUPPRESS)
    ap.add_argument("--ckpt", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        run_child(args)
        return
    if args.steps < 2:
        ap.error("--steps must be >= 2 (the first step is dropped as warm-up)")
    if args.generations < 2:
        ap.error("--generations must be >= 2 (GRPO compares completions of one prompt)")
    started = time.perf_counter()
    load = os.getloadavg()[0]
    if load > 0.5:
        print(
            f"warning: load average {load:.2f}; other processes compete for the cores, so each "
            f"op of {args.threads} torch thread(s) can wait for a time slice (timings unreliable)",
            flush=True,
        )
    with tempfile.TemporaryDirectory(prefix="grpo_vs_trl_ckpt_") as tmp:
        ckpt = Path(tmp) / "tinylm"
        model = make_checkpoint(args, ckpt)
        runs: dict[str, list[dict[str, Any]]] = {"rlworks": [], "trl": []}
        for rnd in range(args.rounds):
            for side in ("rlworks", "trl"):
                r = measure(side, args, ckpt)
                runs[side].append(r)
                print(
                    f"round {rnd + 1}/{args.rounds} {side:7s}: {r['tokens_per_s']:7.0f} tok/s, "
                    f"{r['step_median_s']:.2f} s/step (gen {r['gen_median_s']:.2f} s), "
                    f"{r['tokens_per_step']:.0f} tok/step, peak RSS {r['peak_rss_mib']:.0f} MiB, "
                    f"threads {r['threads']}",
                    flush=True,
                )
    summary = summarise(runs)
    body = markdown(args, model, summary)
    print()
    print(body)
    print(f"\nTook {time.perf_counter() - started:.0f} s.")
    if args.json:
        settings = {k: v for k, v in vars(args).items() if k not in ("child", "ckpt")}
        print(json.dumps({"settings": settings, "model": model, **summary, "runs": runs}))
    if args.out:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        block = (
            f"\n## GRPO step: rlworks vs TRL GRPOTrainer\n\n*{stamp}; {machine()}; "
            f"rlworks {git_rev()}.*\n\n{body}\n"
        )
        with open(args.out, "a") as f:
            f.write(block)
    if args.doc:
        write_section("grpo_vs_trl", "GRPO step: rlworks vs TRL GRPOTrainer", body)


if __name__ == "__main__":
    main()
