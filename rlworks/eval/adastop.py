"""AdaStop: a multiple group-sequential permutation test for comparing RL algorithms.

Mathieu et al. (2023), "AdaStop: adaptive statistical testing for sound comparisons of Deep RL
agents" (arXiv:2306.10882); reference implementation: the ``adastop`` package.

The maths
---------
Algorithms ``a, b, ...`` are run in interims: at interim ``k = 0, ..., K-1`` every algorithm
still in an undecided comparison contributes ``n`` new scores. For a comparison ``c = (a, b)``
and block ``j`` write ``D_c,j(s) = mean(x[s]) - mean(x[~s])`` where ``x`` is the ``2n`` pooled
scores of ``a`` then ``b`` in block ``j`` and ``s`` picks ``n`` of them (``s = first n`` gives
the observed difference). The statistic after interim ``k`` is

    T_c = sum_{j<=k} D_c,j(identity) = (k+1) * (mean(a) - mean(b)).

Its null distribution is the distribution over *paths* ``sigma = (s_0, ..., s_k)`` of
``S_c(sigma) = sum_j D_c,j(s_j)``. While ``B > C**(k+1)`` with ``C = binom(2n, n)``, all paths
are enumerated, each with mass ``1 / C**(k+1)``; afterwards every surviving path is extended by
one random split per interim (path 0 by the identity), each path keeping the mass ``1 / N``
where ``N`` is the number of paths when sampling began (``B`` when it begins at ``k = 0``).
As in the reference, one enumerated index is the same split for every comparison, while
sampled splits are drawn independently per comparison.

Decisions at interim ``k`` (a step-down over the comparisons ``A`` still undecided):

1. ``M(sigma) = max_{c in A} |S_c(sigma)|`` over the surviving paths, sorted ``v_0 <= ...``.
2. Rejection boundary: spend the error level linearly, ``alpha * (k+1) / K`` in all.
   ``b_sup = v_i`` for the smallest ``i`` with ``spent + (#paths - 1 - i) / N <= alpha (k+1)/K``
   (``+inf`` if none). If ``max_c |T_c| > b_sup`` that comparison (the argmax) is decided
   ``"larger"``/``"smaller"`` by the sign of ``T_c``, removed from ``A``, and step 1 repeats.
3. Early acceptance (``beta > 0``): ``b_inf = v_i`` for the largest ``i`` with
   ``spent_beta + i / N < beta (k+1)/K``; if ``min_c |T_c| < b_inf`` the argmin is ``"equal"``.
4. Otherwise stop. The level of the last boundary is added to ``spent``; paths with
   ``M(sigma) > b_sup`` are dropped (the test is conditional on not having rejected before).

At the last interim every undecided comparison is ``"equal"``. The family-wise error (rejecting
some true null) is then at most ``alpha`` up to the permutation's discreteness and sampling.

Deviations from ``adastop==0.1.3`` (``package_compat=True`` restores the first two):

- The package takes the null of ``max_c S_c`` (signed) while comparing ``max_c |T_c|`` to it,
  which doubles the two-sided error (measured FWER about ``2 alpha``). We use ``|S_c|``.
- The package adds the power of the last index with ``<=`` where the boundary used ``<``.
- When ``B <= C`` the package's mass per path after interim 0 becomes 1 (it mis-computes the
  normalisation), so it can hardly reject after interim 0; we keep ``1 / B``. Not reproduced.
- Ties ``|T| == b_sup`` (up to 1e-9 relative) do not reject: the package decides them by
  floating-point rounding.
"""

from __future__ import annotations

import csv
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from rlworks.core.errors import UserError, did_you_mean
from rlworks.core.seeding import make_rng

Decision = Literal["larger", "smaller", "equal", "continue"]
_REL_TOL = 1e-9


class AdaStopError(UserError, ValueError):
    """Bad input to AdaStop; a ValueError and a UserError (the CLI prints it in one line)."""


@dataclass(frozen=True)
class ComparisonResult:
    """The state of one comparison ``a`` vs ``b`` ("larger": ``a`` scores higher than ``b``)."""

    a: str
    b: str
    decision: Decision
    interim: int | None
    """The interim (1-based) at which it was decided; ``None`` while ``"continue"``."""
    mean_a: float
    mean_b: float
    statistic: float
    """``(k+1) * (mean_a - mean_b)`` at the last interim that included this comparison."""
    boundary: float
    """The rejection boundary ``b_sup`` it was last compared with (``inf``: none possible)."""


class AdaStop:
    """A sequential AdaStop test, fed one interim of scores at a time.

    Parameters:
        n: scores per algorithm per interim.
        K: maximum number of interims.
        B: permutation budget; paths are enumerated while ``binom(2n, n)**(k+1) < B``.
        alpha: family-wise error level.
        beta: early-acceptance level (0 disables early "equal" decisions).
        comparisons: ``"all"`` pairs, ``"first"`` (the first algorithm against each other one),
            or explicit pairs of algorithm names or indices.
        algorithms: the algorithm names in order; default: the keys of the first scores given.
        rng: a ``np.random.Generator``, or an int seed (``make_rng(seed, "adastop")``).
        package_compat: reproduce ``adastop==0.1.3``'s signed null (FWER up to ``2 alpha``);
            for parity tests only.

    Use::

        test = AdaStop(n=5, K=4, rng=0)
        while not test.is_finished:
            test.partial_compare({name: run_n_seeds(name) for name in test.algorithms_to_run})
        print(format_decision_table(test))
    """

    def __init__(self, n: int, K: int, B: int = 10_000, alpha: float = 0.05, beta: float = 0.0,
                 comparisons: str | Sequence[tuple[int | str, int | str]] = "all",
                 algorithms: Sequence[str] | None = None,
                 rng: np.random.Generator | int | None = None,
                 package_compat: bool = False) -> None:
        if not isinstance(n, int | np.integer) or n < 1:
            raise AdaStopError(f"n must be an integer >= 1, got {n!r}")
        if not isinstance(K, int | np.integer) or K < 1:
            raise AdaStopError(f"K must be an integer >= 1, got {K!r}")
        if not isinstance(B, int | np.integer) or B < 2:
            raise AdaStopError(f"B must be an integer >= 2, got {B!r}")
        if not 0.0 < alpha < 1.0:
            raise AdaStopError(f"alpha must be in (0, 1), got {alpha!r}")
        if not 0.0 <= beta < 1.0:
            raise AdaStopError(f"beta must be in [0, 1), got {beta!r}")
        if isinstance(comparisons, str) and comparisons not in ("all", "first"):
            raise AdaStopError(f"comparisons must be 'all', 'first' or a list of pairs, "
                               f"got {comparisons!r}")
        self.n, self.K, self.B = int(n), int(K), int(B)
        self.alpha, self.beta = float(alpha), float(beta)
        self.package_compat = package_compat
        self.rng = rng if isinstance(rng, np.random.Generator) else make_rng(
            0 if rng is None else int(rng), "adastop")
        self._comparisons_spec = comparisons
        self.algorithms: list[str] = []
        self.pairs: list[tuple[int, int]] = []
        self.k = 0
        """Interims done so far."""
        self.boundaries: list[tuple[float, float]] = []
        """``(b_inf, b_sup)`` used at each interim (the last step of the step-down)."""
        self._scores: dict[str, list[np.ndarray]] = {}
        self._decision: list[Decision] = []
        self._decided_at: list[int | None] = []
        self._stat: list[float] = []
        self._bound: list[float] = []
        self._paths = np.zeros((0, 1))  # (comparisons still active, paths)
        self._mass = 1.0  # number of paths whose mass is 1 each; a path weighs 1 / _mass
        self._level_spent = 0.0
        self._power_spent = 0.0
        if algorithms is not None:
            self._setup(list(algorithms))

    # ---------------------------------------------------------------- set-up and inputs
    def _setup(self, names: list[str]) -> None:
        if len(names) < 2 or len(set(names)) != len(names):
            raise AdaStopError(f"algorithms must be >= 2 distinct names, got {names}")
        spec = self._comparisons_spec
        L = len(names)
        if spec == "all":
            pairs = [(i, j) for i in range(L) for j in range(i + 1, L)]
        elif spec == "first":
            pairs = [(0, j) for j in range(1, L)]
        else:
            assert not isinstance(spec, str)
            pairs = [(self._index(a, names), self._index(b, names)) for a, b in spec]
            bad = [p for p in pairs if p[0] == p[1]]
            if not pairs or bad or len(set(pairs)) != len(pairs):
                raise AdaStopError(f"comparisons must be distinct pairs of different "
                                   f"algorithms, got {list(spec)}")
        self.algorithms, self.pairs = names, pairs
        self._decision = ["continue"] * len(pairs)
        self._decided_at = [None] * len(pairs)
        self._stat = [0.0] * len(pairs)
        self._bound = [math.inf] * len(pairs)

    @staticmethod
    def _index(a: int | str, names: list[str]) -> int:
        if isinstance(a, str):
            if a not in names:
                raise AdaStopError(f"comparisons: unknown algorithm '{a}'"
                                   f"{did_you_mean(a, names)}; algorithms are {names}")
            return names.index(a)
        if not 0 <= int(a) < len(names):
            raise AdaStopError(f"comparisons: index {a} out of range for {len(names)} algorithms")
        return int(a)

    @property
    def active(self) -> list[int]:
        """Indices into ``pairs`` of the comparisons still undecided."""
        return [i for i, d in enumerate(self._decision) if d == "continue"]

    @property
    def algorithms_to_run(self) -> list[str]:
        """Names that need ``n`` new scores at the next interim (all of them before the first)."""
        if not self.pairs:
            return list(self.algorithms)
        used = {x for i in self.active for x in self.pairs[i]}
        return [a for i, a in enumerate(self.algorithms) if i in used]

    @property
    def is_finished(self) -> bool:
        return bool(self.pairs) and not self.active

    def _check_scores(self, scores: Mapping[str, ArrayLike]) -> dict[str, np.ndarray]:
        if self.is_finished:
            raise AdaStopError(f"the AdaStop test finished at interim {self.k}; "
                               "start a new AdaStop to compare again")
        if not self.algorithms:
            self._setup(list(scores))
        needed = self.algorithms_to_run
        for name in scores:
            if name not in self.algorithms:
                raise AdaStopError(f"scores: unknown algorithm '{name}'"
                                   f"{did_you_mean(name, self.algorithms)}; "
                                   f"algorithms are {self.algorithms}")
            if name not in needed:
                raise AdaStopError(f"scores: '{name}' is no longer compared (all its comparisons "
                                   f"are decided); give scores only for {needed}")
        missing = [a for a in needed if a not in scores]
        if missing:
            raise AdaStopError(f"scores: missing algorithms {missing}; interim {self.k + 1} "
                               f"needs {self.n} scores for each of {needed}")
        out = {}
        for name in needed:
            x = np.asarray(scores[name], dtype=float)
            if x.shape != (self.n,):
                raise AdaStopError(f"scores['{name}'] must have shape ({self.n},) (n new scores "
                                   f"for this interim), got shape {x.shape}")
            if not np.all(np.isfinite(x)):
                raise AdaStopError(f"scores['{name}'] contains NaN or inf: {x}")
            out[name] = x
        return out

    # ---------------------------------------------------------------- the test
    def partial_compare(self, scores: Mapping[str, ArrayLike]) -> list[ComparisonResult]:
        """Run interim ``k+1``: ``scores[name]`` is the ``n`` new scores of each name in
        ``algorithms_to_run``. Returns the decisions after this interim."""
        new = self._check_scores(scores)
        for name, x in new.items():
            self._scores.setdefault(name, []).append(x)
        active = self.active
        k = self.k
        self._extend_paths(active, new)
        stats = np.array([(k + 1) * (self.mean(self.algorithms[self.pairs[i][0]])
                                     - self.mean(self.algorithms[self.pairs[i][1]]))
                          for i in active])  # (A,)
        live = np.ones(len(active), dtype=bool)  # step-down over the active comparisons
        level_to_add = power_to_add = 0.0
        b_inf, b_sup = -math.inf, math.inf
        while live.any():
            b_inf, b_sup, level_to_add, power_to_add = self._boundaries(self._paths[live])
            idx = np.flatnonzero(live)
            t = np.abs(stats[idx])
            imax, imin = idx[np.argmax(t)], idx[np.argmin(t)]
            tol = _REL_TOL * max(1.0, abs(b_sup) if math.isfinite(b_sup) else 1.0)
            for j in idx:
                self._stat[active[j]], self._bound[active[j]] = float(stats[j]), b_sup
            if abs(stats[imax]) > b_sup + tol:
                self._decide(active[imax], "larger" if stats[imax] > 0 else "smaller")
                live[imax] = False
            elif abs(stats[imin]) < b_inf - _REL_TOL * max(1.0, abs(b_inf)):
                self._decide(active[imin], "equal")
                live[imin] = False
            else:
                break
        self.boundaries.append((float(b_inf), float(b_sup)))
        self._level_spent += level_to_add
        self._power_spent += power_to_add
        # Condition on "no rejection so far": drop the paths beyond the boundary.
        self._paths = self._paths[live]
        if live.any():
            tol = _REL_TOL * max(1.0, abs(b_sup) if math.isfinite(b_sup) else 1.0)
            self._paths = self._paths[:, np.abs(self._paths).max(axis=0) <= b_sup + tol]
        if k + 1 == self.K:
            for i in self.active:
                self._decide(i, "equal")
        self.k += 1
        return self.decisions

    def _decide(self, i: int, decision: Decision) -> None:
        self._decision[i] = decision
        self._decided_at[i] = self.k + 1

    def _extend_paths(self, active: list[int], new: dict[str, np.ndarray]) -> None:
        """Add block ``k``'s split differences to every path, ``(A, P) -> (A, P')``."""
        n, k = self.n, self.k
        C = math.comb(2 * n, n)
        pooled = np.stack([np.concatenate([new[self.algorithms[self.pairs[i][0]]],
                                           new[self.algorithms[self.pairs[i][1]]]])
                           for i in active])  # (A, 2n)
        if C ** (k + 1) < self.B:  # enumerate: C splits x all surviving paths
            masks = np.zeros((C, 2 * n), dtype=bool)
            for row, chosen in enumerate(itertools.combinations(range(2 * n), n)):
                masks[row, list(chosen)] = True
            diffs = _split_diffs(pooled[:, None, :], masks[None], n)  # (A, C)
            prev = self._paths if k > 0 else np.zeros((len(active), 1))
            self._paths = (diffs[:, :, None] + prev[:, None, :]).reshape(len(active), -1)
            self._mass = float(C ** (k + 1))
            return
        n_paths = self.B if k == 0 else self._paths.shape[1]
        if k == 0:
            self._mass = float(self.B)
        # else: sampling continues the surviving enumerated (or sampled) paths, mass unchanged.
        diffs = np.empty((len(active), n_paths))
        for a in range(len(active)):  # independent splits per comparison, path 0 = identity
            order = self.rng.permuted(np.tile(np.arange(2 * n), (n_paths, 1)), axis=1)
            order[0] = np.arange(2 * n)
            masks = np.zeros((n_paths, 2 * n), dtype=bool)
            np.put_along_axis(masks, order[:, :n], True, axis=1)
            diffs[a] = _split_diffs(pooled[a][None], masks, n)
        self._paths = diffs if k == 0 else self._paths + diffs

    def _boundaries(self, paths: np.ndarray) -> tuple[float, float, float, float]:
        """``(b_inf, b_sup, level_to_add, power_to_add)`` from the active paths ``(A, P)``."""
        k, N = self.k, self._mass
        m = paths.max(axis=0) if self.package_compat else np.abs(paths).max(axis=0)
        values = np.sort(m)  # (P,)
        P = len(values)
        upper = np.arange(P)[::-1] / N  # mass of the paths above each position
        ok = self._level_spent + upper <= self.alpha * (k + 1) / self.K
        if ok.any():
            i0 = int(np.argmax(ok))
            b_sup, level = float(values[i0]), float(upper[i0])
        else:
            b_sup, level = math.inf, 0.0
        lower = np.arange(P) / N  # mass of the paths below each position
        dlevel = self.beta * (k + 1) / self.K
        ok_inf = self._power_spent + lower < dlevel
        if ok_inf.any():
            i1 = int(np.flatnonzero(ok_inf)[-1])
            b_inf = float(values[i1])
            if self.package_compat:
                i1 = int(np.flatnonzero(self._power_spent + lower <= dlevel)[-1])
            power = float(lower[i1])
        else:
            b_inf, power = -math.inf, 0.0
        return b_inf, b_sup, level, power

    # ---------------------------------------------------------------- results
    def mean(self, name: str) -> float:
        """The mean of all scores of ``name`` so far."""
        return float(np.mean(np.concatenate(self._scores[name])))

    def scores(self, name: str) -> np.ndarray:
        """All scores of ``name`` so far, in interim order."""
        return np.concatenate(self._scores.get(name, [np.zeros(0)]))

    @property
    def decisions(self) -> list[ComparisonResult]:
        """One result per comparison, in the order of ``pairs``."""
        out = []
        for i, (a, b) in enumerate(self.pairs):
            na, nb = self.algorithms[a], self.algorithms[b]
            out.append(ComparisonResult(
                na, nb, self._decision[i], self._decided_at[i],
                self.mean(na) if na in self._scores else math.nan,
                self.mean(nb) if nb in self._scores else math.nan,
                self._stat[i], self._bound[i]))
        return out


def _split_diffs(pooled: np.ndarray, masks: np.ndarray, n: int) -> np.ndarray:
    """``mean(x[s]) - mean(x[~s])`` for pooled scores ``(..., 2n)`` and masks ``(..., 2n)``."""
    inside = np.where(masks, pooled, 0.0).sum(axis=-1) / n
    outside = np.where(masks, 0.0, pooled).sum(axis=-1) / n
    return inside - outside


def read_adastop_csv(path: str | Path) -> dict[str, np.ndarray]:
    """Read one interim in the ``adastop`` CLI's layout: a header row, then one row per run;
    the first column is a row index, every other column is an algorithm's scores."""
    path = Path(path)
    if not path.is_file():
        raise AdaStopError(f"scores file '{path}' does not exist")
    with path.open(newline="") as f:
        rows = [r for r in csv.reader(f) if r]
    if len(rows) < 2 or len(rows[0]) < 2:
        raise AdaStopError(f"'{path}': expected a header 'index,algo1,algo2,...' and one row "
                           "per run")
    names = [h.strip() for h in rows[0][1:]]
    cols: dict[str, list[float]] = {name: [] for name in names}
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(rows[0]):
            raise AdaStopError(f"'{path}' line {line}: {len(row)} fields, header has "
                               f"{len(rows[0])}")
        for name, cell in zip(names, row[1:], strict=True):
            try:
                cols[name].append(float(cell))
            except ValueError:
                raise AdaStopError(f"'{path}' line {line}, column '{name}': "
                                   f"not a number: {cell!r}") from None
    return {name: np.array(v) for name, v in cols.items()}


def format_decision_table(test: AdaStop) -> str:
    """A Markdown table of the decisions (one row per comparison)."""
    lines = ["| comparison | mean 1 | mean 2 | diff | decision | interim |",
             "|---|---:|---:|---:|---|---:|"]
    for r in test.decisions:
        at = "-" if r.interim is None else f"{r.interim}/{test.K}"
        lines.append(f"| {r.a} vs {r.b} | {r.mean_a:.4g} | {r.mean_b:.4g} | "
                     f"{r.mean_a - r.mean_b:+.4g} | {r.decision} | {at} |")
    return "\n".join(lines)
