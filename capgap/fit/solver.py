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

from capgap.laws.base import quantile_interval  # noqa: F401 (its home: the laws read draws with it)

if TYPE_CHECKING:
    from scipy.optimize import OptimizeResult

HUBER_DELTA = 1e-3  # dsl: on log loss residuals, as Busbridge et al. fit their law
HUBER_K = 1.345  # the curve model: Huber delta in noise standard deviations (95% efficiency under normal noise)


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


def difference_offsets(n_params: int, step: float) -> np.ndarray:
    """The points a central-difference gradient and Hessian need, as offsets: +e_i, -e_i, then e_i + e_j (j < i)."""
    eye = np.eye(n_params) * step
    pairs = [eye[i] + eye[j] for i in range(n_params) for j in range(i)]
    return np.vstack([eye, -eye, *([np.array(pairs)] if pairs else [])])


def derivatives(values: np.ndarray, f0: np.ndarray, step: float, n_params: int) -> tuple[np.ndarray, np.ndarray]:
    """Gradient (B, P) and Hessian (B, P, P) from objective values (B, K) at ``difference_offsets`` and f0 (B,)."""
    plus, minus = values[:, :n_params], values[:, n_params:2 * n_params]
    grad = (plus - minus) / (2.0 * step)
    hess = np.zeros((values.shape[0], n_params, n_params))
    for i in range(n_params):
        hess[:, i, i] = (plus[:, i] - 2.0 * f0 + minus[:, i]) / step**2
    k = 2 * n_params
    for i in range(n_params):
        for j in range(i):
            hess[:, i, j] = hess[:, j, i] = (values[:, k] - plus[:, i] - plus[:, j] + f0) / step**2
            k += 1
    return grad, hess


def minimize_batch(objective: Callable[[np.ndarray, np.ndarray], np.ndarray], start: np.ndarray, n_rows: int,
                   low: np.ndarray, high: np.ndarray, iterations: int = 25,
                   step: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Minimise B small problems at once: ``objective(points (k, P), rows (k,)) -> (k,)`` values of rows ``rows``.

    Damped Newton (Levenberg-Marquardt on the diagonal) with a central-difference gradient
    and Hessian, steps clipped to the box [low, high], from ``start`` ((P,) or (B, P)). Rows
    that have converged drop out of the batch. Returns (solutions (B, P), converged (B,)).
    """
    phi = np.array(np.broadcast_to(start, (n_rows, start.shape[-1])), dtype=float)
    n_params = phi.shape[1]
    current = objective(phi, np.arange(n_rows))
    damping = np.full(n_rows, 1e-3)
    done = ~np.isfinite(current)
    converged = np.zeros(n_rows, dtype=bool)
    offsets = difference_offsets(n_params, step)
    for _ in range(iterations):
        rows = np.flatnonzero(~done)
        if rows.size == 0:
            break
        x, f0 = phi[rows], current[rows]
        # One call evaluates all of them for all active rows (the per-call overhead dominates small batches).
        values = objective((x[:, None, :] + offsets[None, :, :]).reshape(-1, n_params),
                           np.repeat(rows, offsets.shape[0])).reshape(rows.size, offsets.shape[0])
        grad, hess = derivatives(values, f0, step, n_params)
        diagonal = np.abs(np.einsum("bpp->bp", hess)) + 1e-12
        system = hess + (damping[rows, None, None] * diagonal[:, :, None]) * np.eye(n_params)
        system = np.where(np.isfinite(system), system, 0.0) + 1e-12 * np.eye(n_params)
        move = -np.linalg.solve(system, np.nan_to_num(grad)[..., None])[..., 0]
        trial = np.clip(x + np.where(np.isfinite(move), move, 0.0), low, high)
        value = objective(trial, rows)
        better = value < f0
        gain = np.where(better, f0 - value, 0.0)
        shift = np.abs(trial - x).max(axis=1)
        phi[rows] = np.where(better[:, None], trial, x)
        current[rows] = np.where(better, value, f0)
        damping[rows] = np.where(better, damping[rows] * 0.3, damping[rows] * 10.0)
        # Converged: a step that gains almost nothing or moves almost nowhere; stuck: no step helps.
        settled = better & ((gain < 1e-9 * (1.0 + np.abs(f0))) | (shift < 1e-5))
        converged[rows] |= settled | (~better & (np.abs(grad).max(axis=1) * step < 1e-9 * (1.0 + np.abs(f0))))
        done[rows] |= settled | converged[rows] | (damping[rows] > 1e6)
    return phi, converged & np.isfinite(current)


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


def replicate_error(keys: np.ndarray, values: np.ndarray) -> tuple[float, int]:
    """Pure error: the sum of squares of ``values`` (n,) about the mean of their replicates (runs sharing a row
    of ``keys``, (n, k)), and its degrees of freedom (runs minus distinct keys)."""
    _, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    means = np.bincount(inverse, weights=values) / counts
    return float(np.sum((values - means[inverse]) ** 2)), int(values.size - counts.size)
