"""How fast the CLI answers --help and bad input (target: under 0.5 s each).

    python benchmarks/cli_latency.py [--reps 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section  # noqa: E402

RLWORKS = str(Path(sys.executable).with_name("rlworks"))
CASES = {
    "rlworks --help": ["--help"],
    "rlworks train ppo --help": ["train", "ppo", "--help"],
    "rlworks train sac --help": ["train", "sac", "--help"],
    "unknown algorithm": ["train", "ppq"],
    "unknown native-looking env": ["train", "ppo", "--env", "CartPol-v1"],
    "negative budget": ["train", "ppo", "--total-steps", "-5"],
    "unknown flag": ["train", "ppo", "--gama", "0.9"],
    "unknown run id": ["--store", "/tmp/rlworks-latency-store", "runs", "show", "nope"],
    "runs ls (empty store)": ["--store", "/tmp/rlworks-latency-store", "runs", "ls"],
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    rows = ["| command | median (s) | max (s) | exit code |", "|---|---|---|---|"]
    for name, argv in CASES.items():
        times, code = [], None
        for _ in range(args.reps):
            t = time.perf_counter()
            proc = subprocess.run([RLWORKS, *argv], capture_output=True, text=True)
            times.append(time.perf_counter() - t)
            code = proc.returncode
        rows.append(f"| `{name}` | {statistics.median(times):.3f} | {max(times):.3f} | {code} |")
        print(rows[-1], flush=True)
    write_section("cli_latency", "CLI latency (target < 0.5 s)",
                  "\n".join(rows) + f"\n\nWall-clock of a fresh process, {args.reps} runs each.")


if __name__ == "__main__":
    main()
