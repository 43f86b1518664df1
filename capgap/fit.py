"""The fitting engine shared by every law family.

Huber loss on log residuals, multi-start L-BFGS-B with bounds (keep the best),
and bootstrap resampling over runs. scipy does the optimisation; this module
only adds the practice the scaling-law literature agrees on (Hoffmann et al.
2022; Busbridge et al. 2025): a small Huber delta and a grid of starts, because
these objectives have many poor local minima.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from scipy.optimize import OptimizeResult

HUBER_DELTA = 1e-3  # on log residuals: near-L2 for good points, L1 for outliers


def huber(residuals: np.ndarray, delta: float = HUBER_DELTA) -> np.ndarray:
    """Elementwise Huber loss."""
    a = np.abs(residuals)
    return np.where(a <= delta, 0.5 * residuals**2, delta * (a - 0.5 * delta))


def grid_starts(axes: Mapping[str, Sequence[float]]) -> list[np.ndarray]:
    """The Cartesian grid of starting points, one array per start (axes in order)."""
    return [np.array(point, dtype=float) for point in itertools.product(*axes.values())]


def minimize_multistart(objective: Callable[[np.ndarray], float], starts: Sequence[np.ndarray],
                        bounds: Sequence[tuple[float | None, float | None]] | None = None,
                        maxiter: int = 2000, jac: bool = False) -> OptimizeResult:
    """L-BFGS-B from every start; the result with the lowest objective wins.

    ``jac=True``: the objective returns (value, gradient), as scipy's minimize takes it.
    """
    from scipy.optimize import minimize  # only fitting needs scipy: `capgap recommend` starts without it

    best: OptimizeResult | None = None
    for start in starts:
        result = minimize(objective, start, method="L-BFGS-B", jac=jac, bounds=bounds, options={"maxiter": maxiter})
        if np.isfinite(result.fun) and (best is None or result.fun < best.fun):
            best = result
    if best is None:
        raise RuntimeError("every start of the optimiser failed (non-finite objective)")
    return best


def bootstrap_indices(n_items: int, n_resamples: int, rng: np.random.Generator,
                      groups: Sequence[object] | None = None) -> Iterator[np.ndarray]:
    """Index arrays of bootstrap resamples with replacement.

    With ``groups``, resampling is stratified: items are drawn with replacement
    within each group, so every group (e.g. a student size) stays present.
    """
    if groups is None:
        for _ in range(n_resamples):
            yield rng.integers(0, n_items, size=n_items)
        return
    labels = np.asarray([str(g) for g in groups])
    members = [np.flatnonzero(labels == label) for label in dict.fromkeys(labels)]
    for _ in range(n_resamples):
        yield np.concatenate([rng.choice(m, size=m.size, replace=True) for m in members])


def quantile_interval(samples: Sequence[float] | np.ndarray, level: float = 0.9) -> tuple[float, float]:
    """Equal-tailed percentile interval of bootstrap samples (NaNs dropped)."""
    values = np.asarray(samples, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return (float("nan"), float("nan"))
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return (float(low), float(high))
