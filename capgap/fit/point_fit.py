"""The point fit of the one-stage model (capgap.fit.onestage): a dense profile of the location, then Newton from
the best starts; a refinement from a given start; the objective with every group's optimum free."""

from __future__ import annotations


import numpy as np

from capgap.fit.solver import HUBER_K, minimize_batch
from capgap.runs.groups import RunGroups
from capgap.fit.onestage import OneStageFit, SearchSpace, degrees_of_freedom

_REFINED_STARTS = 16  # grid starts refined by Newton in the point fit (6 missed basins on published-law curves)
LOCATION_COMB = np.arange(-3.0, 3.0001, 0.05)  # ln units: the dense profile of the location behind every point fit
_COMB_ROUNDS = 3
_POLISH_ITERATIONS = 400  # Newton steps the chosen solution may take to converge: few-teacher valleys need them


def fit_point(groups: RunGroups, space: SearchSpace, start: np.ndarray | None = None,
              robust: bool = True) -> OneStageFit:
    """The point fit: least squares first (for the noise scale), then Huber (``robust``), from the grid's best
    starts; ``start`` (a fit of nearly the same data, as in a cross-validation fold) joins them rather than
    replacing them, since a warm start alone can hold a fold in its parent's basin."""
    df = degrees_of_freedom(groups, space)
    low, high = space.box()

    def solve(delta: float, seeds: np.ndarray) -> np.ndarray:
        # The whole grid is one batch; the best few starts, each also moved along a dense comb of locations
        # (with few teachers the objective has a basin between every two rungs), are refined together.
        def objective(phi: np.ndarray, rows: np.ndarray) -> np.ndarray:
            return space.evaluate(groups, phi, groups.badness, delta).objective

        def polish(phi: np.ndarray) -> np.ndarray:
            # Sixty steps suit the batch of starts; the one kept goes on to convergence (one row is cheap).
            return minimize_batch(objective, phi, 1, low, high, iterations=_POLISH_ITERATIONS)[0][0]

        def best_of(points: np.ndarray, k: int) -> np.ndarray:
            values = objective(points, np.arange(points.shape[0]))
            return points[np.argsort(np.where(np.isfinite(values), values, np.inf))[:k]]

        best = best_of(seeds, _REFINED_STARTS)
        best = best_of(np.vstack([best, *(location_comb(space, b, LOCATION_COMB[::4] / 4) for b in best[:3])]),
                       _REFINED_STARTS)
        solutions, _ = minimize_batch(objective, best, best.shape[0], low, high, iterations=60)
        solution = polish(solutions[np.nanargmin(objective(solutions, np.arange(best.shape[0])))])
        # The global check: no location on the dense comb about the solution (its curve shape kept) may fit
        # better; where one does, refine from it.
        for _ in range(_COMB_ROUNDS):
            comb = location_comb(space, solution, LOCATION_COMB)
            values = objective(comb, np.arange(comb.shape[0]))
            current = objective(solution[None, :], np.arange(1))[0]
            if not np.nanmin(values) < current - 1e-12 * (1.0 + abs(current)):
                break
            start = comb[np.nanargmin(values)]
            refined = polish(start)
            better = objective(refined[None, :], np.arange(1))[0] < np.nanmin(values)
            solution = refined if better else start
        return solution

    grid = space.starts()
    starts = np.clip(grid if start is None else np.vstack([start[None, :], grid]), low, high)
    least_squares = solve(np.inf, starts)
    rss = float(np.sum((groups.badness - space.evaluate(groups, least_squares, groups.badness, np.inf).fitted[0]) ** 2))
    noise = float(np.sqrt(rss / df)) if df > 0 else 0.0
    delta = HUBER_K * noise if noise > 0 and robust else np.inf
    phi = solve(delta, np.vstack([least_squares, starts])) if np.isfinite(delta) else least_squares
    at_bounds = [i for i, (lo, hi) in enumerate(space.bounds)
                 if min(abs(phi[i] - lo), abs(phi[i] - hi)) <= 1e-6 * max(1.0, abs(lo), abs(hi))]
    return OneStageFit(phi=phi, space=space, delta=float(delta), noise=noise, df=df,
                       profile=space.evaluate(groups, phi, groups.badness, delta), at_bounds=at_bounds)


def location_comb(space: SearchSpace, phi: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Search points (K, P + n_curve): ``phi`` with every location moved by each of ``offsets`` (ln units), its
    curve shape kept, clipped to the box."""
    theta = phi[None, :space.n_theta]
    moved = np.vstack([space.shift(theta, float(by)) for by in offsets])
    return np.clip(np.hstack([moved, np.repeat(phi[None, space.n_theta:], offsets.size, axis=0)]), *space.box())


def refine(groups: RunGroups, point: OneStageFit, start: np.ndarray) -> OneStageFit:
    """The point fit moved to a better search point found elsewhere (same Huber constant and noise scale)."""
    space = point.space

    def objective(phi: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return space.evaluate(groups, phi, groups.badness, point.delta).objective

    solved, _ = minimize_batch(objective, np.vstack([start, point.phi]), 2, *space.box(), iterations=60)
    phi = solved[np.nanargmin(objective(solved, np.arange(2)))]
    return OneStageFit(phi=phi, space=space, delta=point.delta, noise=point.noise, df=point.df,
                       profile=space.evaluate(groups, phi, groups.badness, point.delta), at_bounds=point.at_bounds)


def free_location_objective(groups: RunGroups, point: OneStageFit) -> float:
    """The model's objective with every group's optimum free (its own ln T*, the law dropped), the curve shape
    refitted too, at the point fit's Huber constant: how much better the runs fit without the law's T*(S, D).

    Refined from the law's own point (a local refit: it may miss a better basin, which only makes the test that
    uses it slower to fire); never above the law's objective, since the law's point is one of the free model's."""
    space = point.space
    location = space.log_location(point.theta[None, :])[0]
    n_groups = location.size
    free = SearchSpace(log_location=lambda theta: theta, bounds=[], grid=np.empty((1, n_groups)),
                       n_shape=space.n_shape, shared_asymmetry=space.shared_asymmetry, skew=space.skew,
                       ratio=space.ratio)
    box_low, box_high = space.box()
    low = np.r_[np.array([np.log(np.min(t)) for t in groups.teachers]) - 3.0, box_low[space.n_theta:]]
    high = np.r_[np.array([np.log(np.max(t)) for t in groups.teachers]) + 3.0, box_high[space.n_theta:]]
    starts = np.clip(np.r_[location, point.curve][None, :], low, high)

    def objective(phi: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return free.evaluate(groups, phi, groups.badness, point.delta).objective

    solved, _ = minimize_batch(objective, starts, 1, low, high, iterations=40)
    return float(min(np.nanmin(objective(solved, np.arange(1))), point.profile.objective[0]))
