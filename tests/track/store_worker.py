"""Subprocess helper for the concurrency tests (not a test module).

    python store_worker.py write STORE GO_FILE RUNS BATCHES ROWS
        prints "ready", waits for GO_FILE, then creates RUNS runs and logs BATCHES
        transactions of ROWS rows into each, interleaved, and prints the run ids.
    python store_worker.py loop STORE ROWS
        creates one run, prints its id, then logs batches of ROWS rows until killed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from rlworks.track.store import RunStore


def main(argv: list[str]) -> None:
    mode, path = argv[0], argv[1]
    store = RunStore(path)
    if mode == "write":
        go, n_runs, n_batches, n_rows = Path(argv[2]), int(argv[3]), int(argv[4]), int(argv[5])
        print("ready", flush=True)
        while not go.exists():
            time.sleep(0.005)
        ids = [store.create_run("ppo", "CartPole-v1", seed, {"seed": seed}, "h",
                                experiment="conc") for seed in range(n_runs)]
        for b in range(n_batches):
            for run_id in ids:
                store.log_metrics(run_id, [(b, f"k{i}", float(i)) for i in range(n_rows)])
        for run_id in ids:
            store.set_status(run_id, "finished")
        print(" ".join(ids), flush=True)
    elif mode == "loop":
        n_rows = int(argv[2])
        run_id = store.create_run("dqn", "CartPole-v1", 0, {}, "h")
        print(run_id, flush=True)
        step = 0
        while True:
            store.log_metrics(run_id, [(step, f"k{i}", float(i)) for i in range(n_rows)])
            step += 1
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main(sys.argv[1:])
