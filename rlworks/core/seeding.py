"""One generator per run, derived from the run's seed and passed down.

Library code never touches ``np.random``'s global state or ``torch.manual_seed``; it takes a
``numpy.random.Generator`` (or a ``torch.Generator`` made here) from its caller.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch


def make_rng(seed: int, *stream: int | str) -> np.random.Generator:
    """A numpy generator for ``seed`` and a named sub-stream (e.g. ``make_rng(0, "env")``).

    Different streams of one seed are statistically independent (``SeedSequence`` spawning),
    so adding a new consumer of randomness never shifts the numbers an old one draws.
    """
    words = [_word(s) for s in stream]
    return np.random.default_rng(np.random.SeedSequence([int(seed), *words]))


def derive_seed(seed: int, *stream: int | str) -> int:
    """A 31-bit integer seed for libraries that only take ints (gymnasium, torch)."""
    words = [_word(s) for s in stream]
    return int(np.random.SeedSequence([int(seed), *words]).generate_state(1)[0] & 0x7FFFFFFF)


def torch_generator(seed: int, *stream: int | str) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded from ``seed`` and ``stream``."""
    import torch

    g = torch.Generator()
    g.manual_seed(derive_seed(seed, "torch", *stream))
    return g


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """The JSON-serialisable state of a numpy generator (for checkpoints)."""
    return dict(rng.bit_generator.state)


def set_rng_state(rng: np.random.Generator, state: dict[str, Any]) -> None:
    rng.bit_generator.state = state


def _word(s: int | str) -> int:
    if isinstance(s, int):
        return s
    # A stable (process-independent) hash of the stream name; Python's hash() is salted.
    return int.from_bytes(hashlib.blake2b(s.encode(), digest_size=4).digest(), "little")
