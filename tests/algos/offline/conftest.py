"""Small datasets built here (no dataset factory needed): Pendulum-v1 transitions from a
noisy scripted controller, and a one-step task on Pendulum's spaces whose best action is
known."""

from __future__ import annotations

import numpy as np
import pytest

from rlworks.data.dataset import Dataset
from rlworks.data.formats import save_dataset

REFERENCE = {"random": -1200.0, "expert": -150.0}


def pendulum_transitions(episodes: int, seed: int, noise: float = 1.0,
                         steps: int = 200) -> Dataset:
    """Pendulum-v1's dynamics (gymnasium 1.x), a damping controller plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    g, dt = 10.0, 0.05
    obs, acts, rews, nxt, trunc = [], [], [], [], []
    for _ in range(episodes):
        th, thdot = rng.uniform(-np.pi, np.pi), rng.uniform(-1.0, 1.0)
        for t in range(steps):
            o = np.array([np.cos(th), np.sin(th), thdot], np.float32)
            u = float(np.clip(-0.5 * thdot + noise * rng.normal(), -2.0, 2.0))
            cost = ((th + np.pi) % (2 * np.pi) - np.pi) ** 2 + 0.1 * thdot**2 + 0.001 * u**2
            thdot = float(np.clip(thdot + (3 * g / 2 * np.sin(th) + 3.0 * u) * dt, -8.0, 8.0))
            th = th + thdot * dt
            obs.append(o)
            acts.append([u])
            rews.append(-cost)
            nxt.append(np.array([np.cos(th), np.sin(th), thdot], np.float32))
            trunc.append(t == steps - 1)
    return Dataset.from_arrays(
        np.array(obs), np.array(acts, np.float32), np.array(rews, np.float32),
        np.zeros(len(rews), bool), np.array(trunc), np.array(nxt),
        metadata={"env_id": "Pendulum-v1", "reference_scores": REFERENCE})


def bandit_transitions(n: int, seed: int) -> Dataset:
    """One-step episodes on Pendulum's spaces: reward -(u/2 - obs[0])^2, terminated at once.
    The behaviour plays the best action u = 2 obs[0] a quarter of the time and a uniform
    random action otherwise, so BC's mean action is poor and the best action is known."""
    rng = np.random.default_rng(seed)
    obs = rng.uniform(-1.0, 1.0, (n, 3)).astype(np.float32)
    good = rng.random(n) < 0.25
    u = np.where(good, 2.0 * obs[:, 0], rng.uniform(-2.0, 2.0, n)).astype(np.float32)
    rewards = -((u / 2.0 - obs[:, 0]) ** 2).astype(np.float32)
    return Dataset.from_arrays(obs, u[:, None], rewards, np.ones(n, bool), None, obs.copy(),
                               metadata={"env_id": "Pendulum-v1"}, check_continuity=False)


@pytest.fixture(scope="session")
def pendulum_path(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("data") / "pendulum-noisy.npz"
    save_dataset(pendulum_transitions(episodes=10, seed=0), path)
    return str(path)


@pytest.fixture(scope="session")
def bandit_path(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("data") / "bandit.npz"
    save_dataset(bandit_transitions(4000, seed=0), path)
    return str(path)
