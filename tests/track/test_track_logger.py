"""RunLogger batching, flushing, non-finite values and sinks."""

from __future__ import annotations

import math
import sys
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rlworks.core.errors import UserError
from rlworks.track.logger import RunLogger, TensorBoardSink, WandbSink
from rlworks.track.store import RunStore


class Recorder:
    def __init__(self) -> None:
        self.writes: list[tuple[int, dict[str, float]]] = []
        self.closed = 0

    def write(self, step: int, metrics: Mapping[str, float]) -> None:
        self.writes.append((step, dict(metrics)))

    def close(self) -> None:
        self.closed += 1


def _count_transactions(store: RunStore, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = store.log_metrics

    def counting(run_id: str, rows: Any) -> int:
        n = real(run_id, rows)
        calls.append(n)
        return n

    monkeypatch.setattr(store, "log_metrics", counting)
    return calls


def test_nothing_written_before_flush(store: RunStore) -> None:
    run_id = store.create_run("ppo", "CartPole-v1", 0, {}, "h")
    logger = RunLogger(store, run_id, flush_every_s=3600, max_buffer=10_000)
    for step in range(100):
        logger.log(step, {"train/loss": 1.0 / (step + 1), "perf/sps": 10})
    assert store.count_metrics(run_id) == 0 and logger.pending == 200
    logger.flush()
    assert store.count_metrics(run_id) == 200 and logger.pending == 0
    assert store.metrics(run_id, ["perf/sps"])["perf/sps"] == (list(range(100)), [10.0] * 100)


def test_batches_by_size(store: RunStore, monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = store.create_run("ppo", "CartPole-v1", 0, {}, "h")
    calls = _count_transactions(store, monkeypatch)
    with RunLogger(store, run_id, flush_every_s=3600, max_buffer=60) as logger:
        for step in range(100):
            logger.log(step, {"a": 1.0, "b": 2.0, "c": 3.0})  # 300 values
        assert calls == [60] * 5
    assert calls == [60] * 5  # close had nothing left to write
    assert store.count_metrics(run_id) == 300


def test_batches_by_time(store: RunStore, monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = store.create_run("ppo", "CartPole-v1", 0, {}, "h")
    calls = _count_transactions(store, monkeypatch)
    clock = [0.0]
    monkeypatch.setattr("rlworks.track.logger.time.monotonic", lambda: clock[0])
    logger = RunLogger(store, run_id, flush_every_s=2.0)
    for step in range(10):
        clock[0] = step * 0.5
        logger.log(step, {"a": float(step)})
    assert calls == [5, 4]  # flushed at t=2.0 and t=4.0
    logger.close()
    assert calls == [5, 4, 1]


def test_values_non_finite_and_bad(store: RunStore) -> None:
    run_id = store.create_run("ppo", "CartPole-v1", 0, {}, "h")
    with RunLogger(store, run_id) as logger:
        logger.log(np.int64(3), {"a": np.float32(0.5), "b": math.nan, "c": -math.inf,
                                 "d": np.array(2.0)})
        with pytest.raises(UserError, match="metric 'e' at step 4 must be a number"):
            logger.log(4, {"e": "high"})
    m = store.metrics(run_id)
    assert m["a"] == ([3], [0.5]) and math.isnan(m["b"][1][0]) and m["c"] == ([3], [-math.inf])
    assert m["d"] == ([3], [2.0])


def test_close_is_idempotent_and_final(store: RunStore) -> None:
    run_id = store.create_run("ppo", "CartPole-v1", 0, {}, "h")
    sink = Recorder()
    logger = RunLogger(store, run_id, sinks=[sink])
    logger.log(0, {"a": 1})
    assert sink.writes == [(0, {"a": 1.0})]
    logger.close()
    logger.close()
    assert sink.closed == 1 and store.count_metrics(run_id) == 1
    with pytest.raises(RuntimeError, match="closed"):
        logger.log(1, {"a": 1})


def test_context_manager_flushes_on_error(store: RunStore) -> None:
    run_id = store.create_run("ppo", "CartPole-v1", 0, {}, "h")
    with pytest.raises(KeyError), RunLogger(store, run_id, flush_every_s=3600) as logger:
        logger.log(0, {"a": 1})
        raise KeyError("boom")
    assert store.count_metrics(run_id) == 1


def test_tensorboard_sink_writes_events(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    sink = TensorBoardSink(str(tmp_path / "tb"))
    sink.write(1, {"train/loss": 0.5})
    sink.write(2, {"train/loss": 0.25, "eval/return": 10.0})
    sink.close()
    sink.close()
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    loss = [(e.step, float(tensor_util.make_ndarray(e.tensor_proto)))
            for e in acc.Tensors("train/loss")]
    assert loss == [(1, 0.5), (2, 0.25)]


def test_tensorboard_missing_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for mod in ("tensorboard", "tensorboard.summary", "torch", "torch.utils.tensorboard"):
        monkeypatch.setitem(sys.modules, mod, None)
    with pytest.raises(UserError, match=r"rlworks\[track\]"):
        TensorBoardSink("unused")


def test_wandb_sink(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(UserError, match="pip install wandb"):
        WandbSink("proj", "run", {})

    events: list[tuple[str, Any]] = []

    class FakeRun:
        def log(self, data: dict[str, float], step: int) -> None:
            events.append(("log", (step, data)))

        def finish(self) -> None:
            events.append(("finish", None))

    def init(**kw: Any) -> FakeRun:
        events.append(("init", kw))
        return FakeRun()

    fake = types.ModuleType("wandb")
    fake.init = init  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "wandb", fake)
    sink = WandbSink("proj", "ppo-0", {"lr": 1e-3})
    sink.write(3, {"a": 1.0})
    sink.close()
    sink.close()
    assert events == [("init", {"project": "proj", "name": "ppo-0", "config": {"lr": 1e-3}}),
                      ("log", (3, {"a": 1.0})), ("finish", None)]
