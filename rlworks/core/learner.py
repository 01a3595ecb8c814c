"""The contract between an algorithm file and the run driver (``rlworks.exec.train``).

There is no ``BaseAlgorithm``. An algorithm file defines a config dataclass and a learner class
that satisfies this structural protocol; the driver owns everything around the maths: the run
store, the progress bar, checkpoints, resume and the final evaluation.

Rules a learner follows so that a killed run resumes bit-identically:

* All randomness comes from generators created in ``__init__`` from ``cfg.seed``
  (``rlworks.core.seeding``) and their states are part of ``state_dict()``.
* ``state_dict()`` returns a nested dict whose leaves are torch tensors, numpy arrays or
  JSON scalars/lists: network weights, optimiser states, generator states, the vector env's
  state (``envs.get_state()``), normaliser statistics, replay contents and step counters.
  ``load_state_dict(state_dict())`` on a fresh learner built from the same config restores
  the learner exactly, and must not alias the given state (torch's
  ``Optimizer.load_state_dict`` keeps the tensors it is given, so copy first).
* ``iterate()`` is one deterministic unit of work (PPO: one rollout and its update; off-policy
  agents: ``train_freq`` vector steps and their gradient steps). The driver checkpoints only
  between iterations.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Learner(Protocol):
    global_step: int
    """Environment steps consumed so far (summed over the vector's sub-envs)."""

    def iterate(self) -> dict[str, float]:
        """Do one unit of work and return scalar metrics to log at ``global_step``.

        Keys use fixed prefixes: ``rollout/episodic_return``, ``rollout/episodic_length``
        (means over episodes finished in this iteration; absent if none finished),
        ``train/...`` for loss terms, ``perf/...`` for timings.
        """
        ...

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Actions for a batch of *raw* observations (the learner applies its own
        observation normalisation, frozen); used by evaluation."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def close(self) -> None: ...
