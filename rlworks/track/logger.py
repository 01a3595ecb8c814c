"""Metric logging: buffered writes to the run store, fanned out to optional sinks.

:class:`RunLogger` is what a training loop holds. ``log(step, metrics)`` converts the values
to floats at once (so no tensor is kept alive) and buffers them; the buffer goes to the store
in one transaction when it holds ``max_buffer`` values or ``flush_every_s`` has passed since
the last write, and on ``flush()``/``close()``. A crash therefore loses at most the last few
seconds of metrics, and the checkpoint-resume path (``RunStore.delete_metrics_after``) drops
whatever was written past the checkpoint anyway.

Sinks get every ``log`` call as it happens; they do their own buffering. TensorBoard and
Weights & Biases are imported only when a sink for them is built.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, Protocol, SupportsInt

from rlworks.core.errors import UserError
from rlworks.track.store import RunStore


class Sink(Protocol):
    """Somewhere else metrics go (TensorBoard, W&B, ...)."""

    def write(self, step: int, metrics: Mapping[str, float]) -> None: ...

    def close(self) -> None: ...


class RunLogger:
    """Buffered metric logger for one run; a context manager that flushes on exit.

    ``max_buffer`` counts metric values (rows), not ``log`` calls.
    """

    def __init__(self, store: RunStore, run_id: str, flush_every_s: float = 2.0,
                 max_buffer: int = 1000, sinks: Iterable[Sink] = ()) -> None:
        self.store = store
        self.run_id = run_id
        self.flush_every_s = flush_every_s
        self.max_buffer = max_buffer
        self.sinks = list(sinks)
        self._buffer: list[tuple[int, str, float]] = []
        self._last_flush = time.monotonic()
        self._closed = False

    def log(self, step: SupportsInt, metrics: Mapping[str, Any]) -> None:
        """Record ``metrics`` (numbers, numpy or 0-d torch scalars) at ``step``."""
        if self._closed:
            raise RuntimeError(f"logger of run {self.run_id} is closed")
        step_ = int(step)
        values: dict[str, float] = {}
        for key, value in metrics.items():
            try:
                values[key] = float(value)
            except (TypeError, ValueError):
                raise UserError(f"metric '{key}' at step {step_} must be a number, got "
                                f"{type(value).__name__} {value!r:.60}") from None
        self._buffer.extend((step_, key, v) for key, v in values.items())
        for sink in self.sinks:
            sink.write(step_, values)
        if (len(self._buffer) >= self.max_buffer
                or time.monotonic() - self._last_flush >= self.flush_every_s):
            self.flush()

    def flush(self) -> None:
        """Write buffered values to the store in one transaction (also a heartbeat)."""
        if self._buffer:
            self.store.log_metrics(self.run_id, self._buffer)
            self._buffer = []
        self._last_flush = time.monotonic()

    @property
    def pending(self) -> int:
        """Values buffered and not yet in the store."""
        return len(self._buffer)

    def close(self) -> None:
        """Flush and close the sinks; calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        try:
            self.flush()
        finally:
            for sink in self.sinks:
                sink.close()

    def __enter__(self) -> RunLogger:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class TensorBoardSink:
    """Scalars to a TensorBoard event directory (needs the ``track`` extra: tensorboard)."""

    def __init__(self, logdir: str) -> None:
        try:
            # tensorboard's own writer needs only numpy; torch's is the fallback for old
            # tensorboard releases (and needs tensorboard installed as well).
            from tensorboard.summary import Writer
        except ImportError:
            Writer = None  # noqa: N806
        if Writer is not None:
            self._writer: Any = Writer(str(logdir))
        else:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise UserError("TensorBoardSink needs tensorboard; install the track extra: "
                                "pip install 'rlworks[track]'") from None
            self._writer = SummaryWriter(str(logdir))
        self.logdir = str(logdir)
        self._closed = False

    def write(self, step: int, metrics: Mapping[str, float]) -> None:
        for key, value in metrics.items():
            self._writer.add_scalar(key, value, step)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._writer.close()


class WandbSink:
    """Metrics to a Weights & Biases run (``pip install wandb``; offline mode works too)."""

    def __init__(self, project: str, run_name: str, config: Mapping[str, Any] | None = None,
                 **init_kwargs: Any) -> None:
        try:
            import wandb
        except ImportError:
            raise UserError("WandbSink needs wandb: pip install wandb") from None
        self._run = wandb.init(project=project, name=run_name, config=dict(config or {}),
                               **init_kwargs)
        self._closed = False

    def write(self, step: int, metrics: Mapping[str, float]) -> None:
        self._run.log(dict(metrics), step=step)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._run.finish()
