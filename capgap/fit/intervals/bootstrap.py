"""Residual-bootstrap intervals of the one-stage model: residuals inflated by sqrt(n / df) resampled onto the fitted
values, each resample refitted (damped Newton, all at once)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from capgap.fit.solver import minimize_batch
from capgap.runs.groups import RunGroups
from capgap.fit.intervals.draws import IntervalDraws
from capgap.laws.base import BootstrapReport
from capgap.fit.onestage import OneStageFit

BOOTSTRAP_SHIFTS = (-0.3, 0.3)  # ln units: the extra starts of each bootstrap refit


@dataclass(frozen=True)
class Bootstrap:
    """Refits of the model on residual-bootstrap resamples: draws (B, P + n_shape), and the count that failed."""

    draws: np.ndarray
    failed: int  # non-finite refits: left out, and reported
    unconverged: int  # refits that stopped before converging: kept, and reported


def bootstrap(groups: RunGroups, point: OneStageFit, n_resamples: int, rng: np.random.Generator,
              inflation: float = 1.0) -> Bootstrap:
    """Residual bootstrap of the whole model (see the module docstring); residuals scaled by sqrt(``inflation``)
    more where the model does not follow the runs."""
    n = groups.n_runs
    fitted = point.profile.fitted[0]
    residual = groups.badness - fitted
    residual = (residual - residual.mean()) * np.sqrt(n / point.df * inflation)
    y = fitted[None, :] + residual[rng.integers(0, n, size=(n_resamples, n))]
    space = point.space

    def objective(phi: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return space.evaluate(groups, phi, y[rows], point.delta).objective

    box = space.box()
    draws, converged = minimize_batch(objective, point.phi, n_resamples, *box)
    best = objective(draws, np.arange(n_resamples))
    # A resample's optimum may lie in another basin than the fit's (a run switching sides of the
    # optimum gets its own curvature): refit from starts shifted by a rung either way, keep the best.
    for shift in BOOTSTRAP_SHIFTS:
        start = np.r_[space.shift(point.theta[None, :], shift)[0], point.curve]
        other, other_converged = minimize_batch(objective, start, n_resamples, *box)
        value = objective(other, np.arange(n_resamples))
        better = value < best
        draws[better], converged[better], best[better] = other[better], other_converged[better], value[better]
    finite = np.isfinite(draws).all(axis=1)
    return Bootstrap(draws=draws[finite], failed=int((~finite).sum()),
                     unconverged=int((finite & ~converged).sum()))


def bootstrap_intervals(groups: RunGroups, point: OneStageFit, n: int, rng: np.random.Generator, inflation: float,
                        fallback: bool = True, temper: float | None = None,
                        why: str = "") -> tuple[IntervalDraws, OneStageFit]:
    """The residual-bootstrap method (an IntervalMethod): ``n`` refits; ``why`` is added to the report's method."""
    boot = bootstrap(groups, point, n, rng, inflation)
    notes = [f"{boot.failed} of {n} bootstrap resamples failed to refit and are left out of the intervals"
             ] if boot.failed else []
    if boot.unconverged > 0.05 * n:
        notes.append(f"{boot.unconverged} of {n} bootstrap refits stopped before converging")
    report = BootstrapReport(method="residual bootstrap, residuals inflated by sqrt(n/df)" + why, resamples=n,
                             failed=boot.failed, unconverged=boot.unconverged)
    return IntervalDraws(boot.draws, report, notes), point

