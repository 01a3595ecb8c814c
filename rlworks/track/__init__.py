"""Tracking: the run store (SQLite), metric loggers and sinks, provenance, checkpoints.

Importing this package is cheap (sqlite3 and json only): the CLI lists runs without loading
torch. ``checkpoint`` (numpy, safetensors) is imported on its own by those who need it.
"""

from rlworks.track.logger import RunLogger, Sink, TensorBoardSink, WandbSink
from rlworks.track.store import RunRecord, RunStore, default_store_path

__all__ = [
    "RunLogger",
    "RunRecord",
    "RunStore",
    "Sink",
    "TensorBoardSink",
    "WandbSink",
    "default_store_path",
]
