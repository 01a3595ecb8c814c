"""Dataset transforms for offline RL: corruption, trajectory weighting, proxy action labels.

Three seed papers, each a transform of a :class:`~rlworks.data.dataset.Dataset` that any offline
algorithm can consume. Formulas and deviations are listed here; ``docs/offline/transforms.md``
has worked examples.

**Corruption** (Yang et al. 2023, "Towards Robust Offline RL under Diverse Data Corruption",
arXiv:2310.12955, the data-corruption setup and its appendix; checked against the corruption code
released with the paper). A fraction ``rate`` (the paper's c) of transitions is chosen, and in
those one field is replaced; ``scale`` is the paper's epsilon and ``std`` the per-dimension
standard deviation of that field over the whole clean dataset:

=================  ==========================================  ==================================
kind               random                                      adversarial
=================  ==========================================  ==================================
observations (s)   s + lam * std,  lam ~ U[-eps, eps]^d        argmin Q(s^, a), |s^ - s| <= eps*std
actions (a)        a + lam * std,  lam ~ U[-eps, eps]^d        argmin Q(s, a^), |a^ - a| <= eps*std
rewards (r)        r^ ~ U[-30 eps, 30 eps]  (replaced)         r^ = -eps * r
dynamics (s')      s' + lam * std, lam ~ U[-eps, eps]^d        argmin Q(s'^, pi(s'^)), same ball
=================  ==========================================  ==================================

The noise is **uniform**, not Gaussian. The adversarial attack is the paper's projected gradient
descent: z ~ U[-eps, eps]^d, 100 steps of z <- clip(z - 0.01 eps sign(grad_z Q), -eps, eps),
perturbation z * std (the released code takes each step with a freshly made Adam optimiser, whose
first step is lr * g / (|g| + 1e-8), i.e. this sign step). Differences from the paper: (1) we pick
exactly round(c N) transitions without replacement, where the released code corrupts each one
independently with probability c (same expected count); (2) the critic is the caller's ``q_fn``
(the paper pretrains an EDAC ensemble and uses its mean Q) and, for dynamics, the caller's
``policy_fn`` (the paper's pretrained EDAC actor); (3) in a multi-kind spec each kind draws its
own transitions (the released code can reuse one index set).

As in the paper, observation corruption changes ``observations[t]`` only, not
``next_observations[t - 1]``; dynamics corruption changes ``next_observations[t]`` only. Both break
``next_observations[i] == observations[i + 1]``, so such a result carries
``metadata["continuity"] = False`` and validates with ``check_continuity=False`` (and Minari,
which stores one observation row per step, refuses it: save it as npz or HDF5). Corrupted rows
are recorded in ``infos["corrupted_<kind>"]`` (bool, (N,)) and ``metadata["corruption"]``.

**Trajectory weighting** (Hong et al. 2023, "Harnessing Mixed Offline RL Datasets via Trajectory
Weighting", ICLR 2023, arXiv:2306.13085, Section 4; formulas as in the authors' code,
``JaxCQL/dataset_utils.py``, functions ``RW``/``AW``). Every transition of trajectory i gets

    p_i = exp(G^_i / alpha) / sum_j |tau_j| exp(G^_j / alpha),  G^ = (G - min G) / (max G - min G)

(return weighting, RW) or the same with G replaced by the advantage A_i = G_i - V(s0_i), V a
least-squares linear fit of returns on initial observations (advantage weighting, AW). So a
transition's probability is its trajectory's softmax term, *not* divided by the trajectory length:
trajectory i as a whole is drawn with probability |tau_i| p_i. When all G (or A) are equal the
weights are uniform (the paper's normalisation would divide by zero).

**Proxy labels** (Zheng et al. 2023, "Semi-Supervised Offline RL with Action-Free Trajectories",
ICML 2023, arXiv:2210.06518). An inverse-dynamics model (IDM) is fitted on labelled trajectories
and predicts the missing actions of action-free ones; then any offline algorithm trains on the
union. Like the authors' default (``num_past_transitions: 1``) the IDM sees s_{t-k..t} and
s_{t+1} with k = ``context`` = 1, zero-padded (in normalised units) before an episode's start, on
standardised inputs. Differences: the authors fit a tanh-squashed diagonal Gaussian by negative
log-likelihood (1024x1024, dropout 0.1, validation-based early stopping) and label with its mean;
we regress the mean directly by MSE (default 256x256, no dropout, fixed steps), which gives a
point prediction for actions that are not bounded to [-1, 1]; predictions are clipped to
``action_bounds`` (default: the labelled actions' per-dimension range). :func:`split_action_free`
makes the paper's split: ``labelled_fraction`` of the episodes, drawn from the ``from_lowest``
fraction with the lowest returns (headline setting 0.1 from the lowest 0.5).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from rlworks.core.errors import UserError, did_you_mean, unknown
from rlworks.core.seeding import make_rng, torch_generator
from rlworks.data.dataset import Dataset

if TYPE_CHECKING:
    import torch

KINDS = ("observations", "actions", "rewards", "dynamics")
MODES = ("random", "adversarial")
WEIGHTINGS = ("uniform", "return", "advantage")
RANDOM_REWARD_RANGE = 30.0  # the paper's random reward corruption draws from U[-30 eps, 30 eps]
_ALIASES = {"states": "observations", "next_observations": "dynamics"}
_FIELD = {"observations": "observations", "actions": "actions", "rewards": "rewards",
          "dynamics": "next_observations"}
_SPEC_FORM = ("expected KIND:RATE:SCALE[:MODE], KIND one of observations, actions, rewards, "
              "dynamics, RATE in [0, 1], SCALE >= 0, MODE random (default) or adversarial, "
              "several joined by ',' (e.g. 'dynamics:0.3:1.0,rewards:0.3:1.0:adversarial')")

QFn = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]
PolicyFn = Callable[["torch.Tensor"], "torch.Tensor"]


# ====================================================================== corruption
class CorruptionSpec(NamedTuple):
    kind: str
    rate: float
    scale: float
    mode: str = "random"


def parse_corruption_spec(spec: str) -> list[CorruptionSpec]:
    """``"dynamics:0.3:1.0,rewards:0.3:1.0:adversarial"`` -> specs; :class:`UserError` if bad."""
    parts = [p.strip() for p in str(spec).split(",")]
    if not any(parts):
        raise UserError(f"corruption spec '{spec}' is empty; {_SPEC_FORM}")
    out: list[CorruptionSpec] = []
    for part in parts:
        fields = [f.strip() for f in part.split(":")]
        if len(fields) not in (3, 4):
            raise UserError(f"corruption spec '{part}' has {len(fields)} field(s); {_SPEC_FORM}")
        kind = _ALIASES.get(fields[0].lower(), fields[0].lower())
        if kind not in KINDS:
            hint = did_you_mean(fields[0], KINDS)
            raise UserError(f"corruption spec '{part}': unknown kind '{fields[0]}'{hint}; "
                            f"{_SPEC_FORM}")
        where = f"corruption spec '{part}'"
        rate, scale = _number(fields[1], where, "RATE"), _number(fields[2], where, "SCALE")
        mode = fields[3].lower() if len(fields) == 4 else "random"
        if mode not in MODES:
            raise UserError(f"corruption spec '{part}': unknown mode '{fields[3]}'"
                            f"{did_you_mean(fields[3], MODES)}; {_SPEC_FORM}")
        _check_rate_scale(rate, scale, f"corruption spec '{part}'", f"; {_SPEC_FORM}")
        if any(s.kind == kind for s in out):
            raise UserError(f"corruption spec '{spec}' names {kind} twice; give each kind once")
        out.append(CorruptionSpec(kind, rate, scale, mode))
    return out


def corrupt_from_spec(ds: Dataset, spec: str, seed: int, q_fn: QFn | None = None,
                      policy_fn: PolicyFn | None = None) -> Dataset:
    """Apply every corruption of a CLI spec in turn (see :func:`parse_corruption_spec`)."""
    for s in parse_corruption_spec(spec):
        ds = corrupt(ds, s.kind, s.rate, s.scale, s.mode, seed, q_fn=q_fn, policy_fn=policy_fn)
    return ds


def corrupt(ds: Dataset, kind: str, rate: float, scale: float, mode: str = "random",
            seed: int = 0, q_fn: QFn | None = None, policy_fn: PolicyFn | None = None, *,
            attack_steps: int = 100, step_size: float = 0.01) -> Dataset:
    """Corrupt ``round(rate * N)`` transitions of one field, as the RIQL paper defines it.

    ``kind``: observations (alias states), actions, rewards or dynamics (next observations).
    ``mode="adversarial"`` needs ``q_fn(obs, act) -> Q`` (torch, differentiable; float32
    inputs shaped like the dataset's; every element of its output is summed, so an ensemble's
    (K, B) output works) for observations, actions and dynamics, and ``policy_fn(obs) -> act``
    for dynamics; adversarial rewards need neither. The same seed gives the same dataset.
    """
    kind = _ALIASES.get(kind, kind)
    if kind not in KINDS:
        raise unknown("corruption kind", kind, KINDS)
    if mode not in MODES:
        raise unknown("corruption mode", mode, MODES)
    _check_rate_scale(rate, scale, f"corrupt({kind!r})")
    name = _FIELD[kind]
    values = getattr(ds, name)
    if kind != "rewards" and values.dtype.kind != "f":
        raise UserError(f"cannot corrupt {kind}: dataset field '{name}' has dtype {values.dtype}; "
                        "noise needs float arrays, so cast it to float32 first")
    rng = make_rng(seed, "corrupt", kind, mode)
    n = len(ds)
    count = int(math.floor(rate * n + 0.5))
    idx = np.sort(rng.choice(n, size=count, replace=False))
    new = np.array(values, copy=True)
    if kind == "rewards":
        new[idx] = (rng.uniform(-RANDOM_REWARD_RANGE * scale, RANDOM_REWARD_RANGE * scale, count)
                    if mode == "random" else -scale * values[idx])
    elif count:
        std = values.astype(np.float64).std(axis=0)  # (*shape,) over the whole clean field
        if mode == "random":
            noise = rng.uniform(-scale, scale, size=values[idx].shape) * std
            new[idx] = values[idx] + noise
        else:
            new[idx] = _adversarial(ds, kind, idx, std, scale, rng, q_fn, policy_fn,
                                    attack_steps, step_size)
    mask = np.zeros(n, bool)
    mask[idx] = True
    key = f"corrupted_{kind}"
    infos = dict(ds.infos)
    infos[key] = mask | infos[key] if key in infos else mask
    entry: dict[str, Any] = {"kind": kind, "mode": mode, "rate": float(rate),
                             "scale": float(scale), "seed": int(seed), "num_corrupted": count}
    if mode == "adversarial" and kind != "rewards":
        entry.update(attack_steps=attack_steps, step_size=step_size)
    meta = dict(ds.metadata)
    meta["corruption"] = [*meta.get("corruption", []), entry]
    if kind in ("observations", "dynamics") and count:
        meta["continuity"] = False
    arrays = {f: getattr(ds, f) for f in ("observations", "actions", "rewards", "terminations",
                                          "truncations", "next_observations")}
    arrays[name] = new
    return Dataset(**arrays, infos=infos, metadata=meta).validate(check_continuity=False)


def _adversarial(ds: Dataset, kind: str, idx: np.ndarray, std: np.ndarray, scale: float,
                 rng: np.random.Generator, q_fn: QFn | None, policy_fn: PolicyFn | None,
                 steps: int, step_size: float) -> np.ndarray:
    """PGD inside the L_inf ball of ``scale * std`` that lowers Q (the paper's attack)."""
    if q_fn is None:
        raise UserError(f"adversarial corruption of {kind} needs a critic: pass "
                        "q_fn=lambda obs, act: Q (a torch callable), or use mode 'random'")
    if kind == "dynamics" and policy_fn is None:
        raise UserError("adversarial corruption of dynamics minimises Q(s', pi(s')) and needs "
                        "policy_fn=lambda obs: action (a torch callable) as well as q_fn")
    import torch

    with _torch_threads(1):
        obs = torch.as_tensor(ds.observations[idx], dtype=torch.float32)
        act = torch.as_tensor(ds.actions[idx], dtype=torch.float32)
        x0 = {"observations": obs, "actions": act,
              "dynamics": torch.as_tensor(ds.next_observations[idx], dtype=torch.float32)}[kind]
        std_t = torch.as_tensor(std, dtype=torch.float32)
        z = torch.as_tensor(rng.uniform(-scale, scale, size=x0.shape), dtype=torch.float32)
        lr = step_size * scale
        for _ in range(steps):
            z.requires_grad_(True)
            x = x0 + z * std_t
            if kind == "observations":
                q = q_fn(x, act)
            elif kind == "actions":
                q = q_fn(obs, x)
            else:
                q = q_fn(x, policy_fn(x))  # type: ignore[misc]
            (grad,) = torch.autograd.grad(q.sum(), z)
            z = (z.detach() - lr * torch.sign(grad)).clamp(-scale, scale)
        return (x0 + z * std_t).numpy()


# ====================================================================== trajectory weighting
def return_weights(ds: Dataset, temperature: float = 0.1) -> np.ndarray:
    """(N,) sampling probabilities, RW of Hong et al. 2023 (module docstring); sums to 1."""
    return _softmax_weights(ds, ds.episode_returns(), temperature)


def advantage_weights(ds: Dataset, temperature: float = 0.1) -> np.ndarray:
    """(N,) probabilities, AW: advantage G - V(s0), V a linear least-squares fit; sums to 1."""
    ep = ds.episodes()
    returns = ds.episode_returns()
    s0 = ds.observations[ep[:, 0]].reshape(len(ep), -1).astype(np.float64)
    x = np.concatenate([s0, np.ones((len(ep), 1))], axis=1)  # with an intercept
    coef, *_ = np.linalg.lstsq(x, returns, rcond=None)
    return _softmax_weights(ds, returns - x @ coef, temperature)


def uniform_weights(ds: Dataset) -> np.ndarray:
    """(N,) all 1 / N: the baseline arm."""
    return np.full(len(ds), 1.0 / max(len(ds), 1))


def weights_from_spec(ds: Dataset, spec: str) -> np.ndarray:
    """``"uniform"``, ``"return"``, ``"return:0.1"``, ``"advantage[:T]"`` -> (N,) probabilities."""
    name, temperature = parse_weights_spec(spec)
    if name == "uniform":
        return uniform_weights(ds)
    fn = return_weights if name == "return" else advantage_weights
    return fn(ds, temperature)


def parse_weights_spec(spec: str) -> tuple[str, float]:
    """``"return:0.1"`` -> ``("return", 0.1)``; the temperature defaults to 0.1 (the paper's)."""
    form = ("expected NAME[:TEMPERATURE], NAME one of uniform, return, advantage, TEMPERATURE > 0 "
            "(e.g. 'return' or 'return:0.1')")
    fields = [f.strip() for f in str(spec).split(":")]
    name = fields[0].lower()
    if name not in WEIGHTINGS:
        raise UserError(f"weighting spec '{spec}': unknown weighting '{fields[0]}'"
                        f"{did_you_mean(fields[0], WEIGHTINGS)}; {form}")
    if len(fields) > 2 or (name == "uniform" and len(fields) == 2):
        raise UserError(f"weighting spec '{spec}' has too many fields; {form}")
    where = f"weighting spec '{spec}'"
    temperature = _number(fields[1], where, "TEMPERATURE", form) if len(fields) == 2 else 0.1
    if not temperature > 0 or not math.isfinite(temperature):
        raise UserError(f"weighting spec '{spec}': TEMPERATURE is {temperature}; {form}")
    return name, temperature


def _softmax_weights(ds: Dataset, scores: np.ndarray, temperature: float) -> np.ndarray:
    if not temperature > 0 or not math.isfinite(temperature):
        raise UserError(f"weighting temperature is {temperature}; give a number > 0 (e.g. 0.1)")
    if len(ds) == 0:
        return np.zeros(0)
    span = scores.max() - scores.min()
    normed = (scores - scores.min()) / span if span > 0 else np.zeros_like(scores)  # (E,)
    ep = ds.episodes()
    logits = np.repeat(normed / temperature, ep[:, 1] - ep[:, 0])  # (N,)
    w = np.exp(logits - logits.max())
    return w / w.sum()


# ====================================================================== episodes: mix, concat
def mix_datasets(low: Dataset, high: Dataset, high_fraction: float = 0.05,
                 seed: int = 0) -> Dataset:
    """Every episode of ``low`` plus whole episodes drawn from ``high`` without replacement, so
    that ``round(high_fraction * E_low / (1 - high_fraction))`` of the result's episodes (about
    ``high_fraction``) come from ``high``; the episode order is shuffled with ``seed``.
    ``infos["from_high"]`` marks the transitions taken from ``high``."""
    if not 0 <= high_fraction < 1:
        raise UserError(f"mix_datasets: high_fraction is {high_fraction}; give a value in [0, 1)")
    e_low = low.num_episodes
    n_high = int(math.floor(high_fraction * e_low / (1 - high_fraction) + 0.5))
    if n_high > high.num_episodes:
        raise UserError(f"mix_datasets: high_fraction={high_fraction} with {e_low} low episodes "
                        f"needs {n_high} high episodes but the high dataset has "
                        f"{high.num_episodes}; generate more or lower high_fraction")
    rng = make_rng(seed, "mix_datasets")
    picked = np.sort(rng.choice(high.num_episodes, size=n_high, replace=False))
    parts = [_take_episodes(low, np.arange(e_low)), _take_episodes(high, picked)]
    for (arrays, infos), flag in zip(parts, (False, True), strict=True):
        infos["from_high"] = np.full(len(arrays["rewards"]), flag)
    arrays, infos = _concat(parts)
    joined = Dataset(**arrays, infos=infos, metadata={})  # local, to shuffle whole episodes
    arrays, infos = _take_episodes(joined, rng.permutation(e_low + n_high))
    meta = dict(low.metadata)
    meta.update(kind="mixed", mix={
        "high_fraction": high_fraction, "seed": seed, "low_episodes": e_low,
        "high_episodes": n_high, "low_hash": low.content_hash()[:16],
        "high_hash": high.content_hash()[:16], "high_kind": high.metadata.get("kind")})
    return Dataset(**arrays, infos=infos, metadata=meta).validate(check_continuity=False)


def concat_datasets(*datasets: Dataset) -> Dataset:
    """Episodes of each dataset one after another (e.g. labelled + proxy-labelled). Infos keep
    the keys every part has; metadata is the first part's plus a ``parts`` summary."""
    if not datasets:
        raise UserError("concat_datasets needs at least one dataset")
    arrays, infos = _concat([_take_episodes(d, np.arange(d.num_episodes)) for d in datasets])
    meta = dict(datasets[0].metadata)
    meta["parts"] = [{"kind": d.metadata.get("kind"), "actions": d.metadata.get("actions", "true"),
                      "episodes": d.num_episodes, "hash": d.content_hash()[:16]}
                     for d in datasets]
    return Dataset(**arrays, infos=infos, metadata=meta).validate(check_continuity=False)


_ROW_FIELDS = ("observations", "actions", "rewards", "terminations", "truncations",
               "next_observations")


def _take_episodes(ds: Any, episode_ids: np.ndarray
                   ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Rows of the chosen episodes (in the given order); an unflagged last step becomes a
    truncation so the episode keeps its end wherever it is placed. Works on ActionFree too."""
    ep = _episodes(ds)[np.asarray(episode_ids, dtype=np.int64)]
    rows = (np.concatenate([np.arange(s, e) for s, e in ep]) if len(ep)
            else np.zeros(0, np.int64)).astype(np.int64)
    arrays = {f: np.array(getattr(ds, f)[rows]) for f in _ROW_FIELDS if hasattr(ds, f)}
    ends = np.cumsum(ep[:, 1] - ep[:, 0]) - 1
    arrays["truncations"][ends] |= ~arrays["terminations"][ends]
    return arrays, {k: np.array(v[rows]) for k, v in ds.infos.items()}


def _concat(parts: Sequence[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]
            ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    shapes = {(a["observations"].shape[1:], a["actions"].shape[1:]) for a, _ in parts}
    if len(shapes) > 1:
        raise UserError(f"cannot join datasets whose (observation, action) shapes differ: "
                        f"{sorted(shapes)}")
    arrays = {f: np.concatenate([a[f] for a, _ in parts]) for f in _ROW_FIELDS}
    keys = set.intersection(*(set(i) for _, i in parts))
    return arrays, {k: np.concatenate([i[k] for _, i in parts]) for k in sorted(keys)}


def _episodes(ds: Any) -> np.ndarray:
    return Dataset.episodes(ds)  # only reads terminations, truncations and len()


# ====================================================================== action-free data
@dataclass(frozen=True)
class ActionFree:
    """Trajectories without actions (states, rewards, flags): the unlabelled part."""

    observations: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    next_observations: np.ndarray
    infos: Mapping[str, np.ndarray] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.rewards.shape[0])

    def episodes(self) -> np.ndarray:
        return _episodes(self)


def split_action_free(ds: Dataset, labelled_fraction: float, seed: int = 0,
                      from_lowest: float = 1.0) -> tuple[Dataset, ActionFree]:
    """Split by episode into a labelled Dataset and an :class:`ActionFree` rest.

    ``round(labelled_fraction * E)`` episodes are labelled, drawn without replacement from the
    ``round(from_lowest * E)`` episodes with the lowest returns (Zheng et al.'s headline setting:
    ``labelled_fraction=0.1, from_lowest=0.5``). Both parts keep dataset order and record their
    rows in the source as ``infos["source_index"]``.
    """
    e = ds.num_episodes
    if not 0 < labelled_fraction < 1 or not 0 < from_lowest <= 1:
        raise UserError(f"split_action_free: labelled_fraction={labelled_fraction} must be in "
                        f"(0, 1) and from_lowest={from_lowest} in (0, 1]")
    pool = np.argsort(ds.episode_returns(), kind="stable")[: int(math.floor(from_lowest * e + .5))]
    size = min(int(math.floor(labelled_fraction * e + 0.5)), len(pool))
    if size == 0 or size == e:
        raise UserError(f"split_action_free: {labelled_fraction=} of {e} episodes labels {size}; "
                        "both parts need at least one episode")
    labelled = np.sort(make_rng(seed, "split_action_free").choice(pool, size, replace=False))
    rest = np.setdiff1d(np.arange(e), labelled)
    split = {"labelled_fraction": labelled_fraction, "from_lowest": from_lowest, "seed": seed}
    out = []
    for ids, part in ((labelled, "labelled"), (rest, "action_free")):
        arrays, infos = _take_episodes(ds, ids)
        ep = ds.episodes()[ids]
        infos["source_index"] = np.concatenate([np.arange(s, t) for s, t in ep]).astype(np.int64)
        meta = {**ds.metadata, "split": {**split, "part": part, "episodes": len(ids)}}
        out.append((arrays, infos, meta))
    (la, li, lm), (ua, ui, um) = out
    del ua["actions"]
    um["actions"] = "removed"
    return (Dataset(**la, infos=li, metadata=lm).validate(check_continuity=False),
            ActionFree(**ua, infos=ui, metadata=um))


@dataclass
class InverseDynamics:
    """A fitted IDM: a_t = f(s_{t-k..t}, s_{t+1}) on standardised inputs and outputs."""

    net: Any  # torch.nn.Sequential
    context: int
    obs_mean: np.ndarray
    obs_std: np.ndarray
    act_mean: np.ndarray
    act_std: np.ndarray
    act_low: np.ndarray
    act_high: np.ndarray
    act_shape: tuple[int, ...]
    act_dtype: str
    settings: dict[str, Any]

    def predict(self, data: Dataset | ActionFree) -> np.ndarray:
        """(N, *act) predicted actions, clipped to ``[act_low, act_high]``."""
        import torch

        x = _idm_inputs(data, self.obs_mean, self.obs_std, self.context)
        with _torch_threads(1), torch.no_grad():
            self.net.eval()
            out = [self.net(torch.as_tensor(x[i:i + 65536])).numpy()
                   for i in range(0, len(x), 65536)]
        a = np.concatenate(out) if out else np.zeros((0, int(np.prod(self.act_shape))))
        a = np.clip(a * self.act_std + self.act_mean, self.act_low, self.act_high)
        return a.reshape(len(a), *self.act_shape).astype(self.act_dtype)


def fit_inverse_dynamics(labelled: Dataset, hidden: Sequence[int] = (256, 256),
                         steps: int = 2000, seed: int = 0, *, context: int = 1,
                         batch_size: int = 256, lr: float = 1e-3,
                         action_bounds: tuple[Any, Any] | None = None) -> InverseDynamics:
    """Fit an MLP IDM by MSE on ``labelled`` (torch, 1 thread, Adam; deterministic for a seed).

    ``action_bounds`` (low, high) clip predictions, e.g. the env's ``(-1, 1)``; by default the
    labelled actions' per-dimension range.
    """
    import torch

    from rlworks.nets.mlp import make_mlp

    if labelled.actions.dtype.kind != "f":
        raise UserError(f"fit_inverse_dynamics: actions have dtype {labelled.actions.dtype}; "
                        "the IDM regresses continuous (float) actions")
    if len(labelled) == 0 or steps < 1 or context < 0:
        raise UserError(f"fit_inverse_dynamics: need transitions, steps >= 1 and context >= 0 "
                        f"(got {len(labelled)} transitions, {steps=}, {context=})")
    obs = labelled.observations.reshape(len(labelled), -1).astype(np.float64)
    nxt = labelled.next_observations.reshape(len(labelled), -1).astype(np.float64)
    both = np.concatenate([obs, nxt])
    obs_mean, obs_std = both.mean(0), both.std(0) + 1e-6
    act = labelled.actions.reshape(len(labelled), -1).astype(np.float64)
    act_mean, act_std = act.mean(0), act.std(0) + 1e-6
    low, high = (act.min(0), act.max(0)) if action_bounds is None else action_bounds
    x = torch.as_tensor(_idm_inputs(labelled, obs_mean, obs_std, context))
    y = torch.as_tensor(((act - act_mean) / act_std).astype(np.float32))
    rng = make_rng(seed, "idm", "batches")
    with _torch_threads(1):
        net = make_mlp(x.shape[1], list(hidden), y.shape[1],
                       generator=torch_generator(seed, "idm", "init"))
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        for _ in range(steps):
            b = torch.as_tensor(rng.integers(0, len(x), size=batch_size))
            loss = ((net(x[b]) - y[b]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            train_mse = float(((net(x) - y) ** 2).mean())  # in standardised action units
    settings = {"hidden": list(hidden), "steps": steps, "seed": seed, "context": context,
                "batch_size": batch_size, "lr": lr, "labelled_transitions": len(labelled),
                "labelled_episodes": labelled.num_episodes, "train_mse_standardised": train_mse}
    return InverseDynamics(net, context, obs_mean, obs_std, act_mean, act_std,
                           np.broadcast_to(np.asarray(low, np.float64), act_mean.shape).copy(),
                           np.broadcast_to(np.asarray(high, np.float64), act_mean.shape).copy(),
                           labelled.actions.shape[1:], labelled.actions.dtype.str, settings)


def label_actions(unlabelled: Dataset | ActionFree | Mapping[str, Any],
                  model: InverseDynamics) -> Dataset:
    """A Dataset whose actions are ``model``'s predictions (a Dataset's own actions are
    replaced); ``metadata["actions"] = "proxy"`` and ``metadata["proxy_labels"]`` say so."""
    data = unlabelled
    if isinstance(data, Mapping):
        names = ("observations", "rewards", "terminations", "truncations", "next_observations")
        missing = [k for k in names if k not in data]
        if missing:
            raise UserError(f"label_actions: arrays {missing} are missing; give {list(names)}")
        data = ActionFree(**{k: np.asarray(data[k]) for k in names},
                          infos=dict(data.get("infos", {})),
                          metadata=dict(data.get("metadata", {})))
    meta = {**data.metadata, "actions": "proxy",
            "proxy_labels": {"model": "inverse_dynamics", **model.settings}}
    arrays = {f: getattr(data, f) for f in _ROW_FIELDS if f != "actions"}
    return Dataset(**arrays, actions=model.predict(data), infos=dict(data.infos),
                   metadata=meta).validate(check_continuity=False)


def _idm_inputs(data: Any, mean: np.ndarray, std: np.ndarray, context: int) -> np.ndarray:
    """(N, (context + 2) * D) float32: [s_{t-k}, ..., s_t, s_{t+1}] standardised, 0 before an
    episode's first step."""
    n = len(data)
    obs = (data.observations.reshape(n, -1) - mean) / std
    nxt = (data.next_observations.reshape(n, -1) - mean) / std
    ep = _episodes(data)
    start = np.repeat(ep[:, 0], ep[:, 1] - ep[:, 0]) if n else np.zeros(0, np.int64)
    t = np.arange(n)
    past = []
    for j in range(context, 0, -1):
        prev = np.where((t - j >= start)[:, None], obs[np.maximum(t - j, 0)], 0.0)
        past.append(prev)
    return np.concatenate([*past, obs, nxt], axis=1).astype(np.float32)


# ====================================================================== helpers
def _number(text: str, where: str, what: str, form: str = _SPEC_FORM) -> float:
    try:
        return float(text)
    except ValueError:
        raise UserError(f"{where}: {what} '{text}' is not a number; {form}") from None


def _check_rate_scale(rate: float, scale: float, where: str, hint: str = "") -> None:
    if not 0 <= rate <= 1:
        raise UserError(f"{where}: rate {rate} is outside [0, 1]{hint}")
    if not (scale >= 0 and math.isfinite(scale)):
        raise UserError(f"{where}: scale {scale} must be a finite number >= 0{hint}")


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Run torch at ``n`` threads, then give the caller back its own setting."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
