"""Small helpers shared by the CLI modules: argparse types and strict JSON."""

from __future__ import annotations

import argparse
import math
from typing import Any


def positive_int(text: str) -> int:
    """argparse type: a positive integer; accepts ``100_000`` and ``1e5``."""
    try:
        value = int(float(text.replace("_", "")))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def jsonable(obj: Any) -> Any:
    """Strict JSON: NaN and infinities become ``None``, tuples lists."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    return obj
