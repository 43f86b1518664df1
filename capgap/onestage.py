"""The one-stage model of capacity-gap curves, fitted to all runs at once.

A run of group g (family, student init, student size S, tokens D) with a
teacher of size T measures (lower is better, after a sign flip)

    y = b_g + a_g^left · h(u) · [u < 0] + a_g^right · h(u) · [u >= 0] + noise,
    u = ln T − ln T*(S, D; theta),        h(u) = u² / (1 + s·u²),

where T*(S, D; theta) is the law family's location of the optimum (ratio,
power, ...), b_g a baseline per group and a_g >= 0 curvatures that may differ
left and right of the optimum. h is quadratic near the optimum and, for s > 0,
flattens to a plateau 1/s far from it, so that teachers far away cannot drag
the optimum (the calibration study in bench/fit_calibration.py compares s
fitted against s = 0). For fixed (theta, s) the model is linear in
(b_g, a_g^left, a_g^right): those are profiled out exactly (a non-negative
least-squares problem per group with four active sets, in closed form), so
the search is over theta and s alone.

Residuals get a Huber loss with delta = HUBER_K robust noise scales. The
noise scale comes from a least-squares pass, corrected for the degrees of
freedom the model spends (three per group and one per search dimension).

Intervals: a residual bootstrap. Residuals of the fit, inflated by
sqrt(n / df), are resampled with replacement onto the fitted values, and
every resample is refitted from the point estimate (damped Newton with
finite differences, all resamples at once). Every group keeps its design, so
every group stays identifiable in every resample. With no degrees of freedom
left there is no interval.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from capgap.fit import HUBER_K, huber, minimize_batch
from capgap.groups import RunGroups

LogLocation = Callable[[np.ndarray], np.ndarray]  # search point (B, P) -> ln T* per group (B, G)

SHAPE_LIMIT = 2.0  # w <= 2, s = w² <= 4: curves bend away from the parabola no closer than half a log unit
ALPHA_BOUNDS = (-8.0, 1.9)  # from nearly exp-like plateaus to nearly parabolic growth
_TINY = 1e-12
SHAPE_FORM = "exp"
_IRLS_STEPS = 3
_REFINED_STARTS = 4  # grid starts refined by Newton in the point fit


@dataclass(frozen=True)
class Profile:
    """The model at a batch of search points: objective (B,), fitted values (B, n), group coefficients (B, G, 3)."""

    objective: np.ndarray
    fitted: np.ndarray
    coefficients: np.ndarray


def shape_curve(u: np.ndarray, w: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """h(u): u² near the optimum; far from it, how the curve goes on is set by alpha and s = w².

    Barron's general robust loss (CVPR 2019) as a curve, scaled to h ≈ u² at 0:
    h = (2b / (s·alpha))·((1 + s·u²/b)^(alpha/2) − 1), b = |alpha − 2|. alpha = 1 grows
    linearly far away, alpha = 0 logarithmically, alpha = −2 levels off at 4/s, alpha → −inf
    like 1 − exp; s = 0 is the parabola whatever alpha. ``w``, ``alpha``: (B,).
    """
    u2 = u * u
    s = (w * w)[:, None]
    a = alpha[:, None]
    b = np.abs(a - 2.0)
    flat = s < 1e-12
    safe_s = np.where(flat, 1.0, s)
    t = np.log1p(safe_s * u2 / b)
    small_a = np.abs(a) < 1e-8
    safe_a = np.where(small_a, 1.0, a)
    curved = np.where(small_a, b / safe_s * t, 2.0 * b / (safe_s * safe_a) * np.expm1(0.5 * a * t))
    return np.where(flat, u2, curved)


def _nonnegative_fit(groups: RunGroups, left: np.ndarray, right: np.ndarray, y: np.ndarray,
                     weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per group, weighted least squares of y on [1, left, right] with both slopes >= 0.

    ``left`` and ``right`` never overlap (a run is on one side of the optimum), so the
    normal equations decouple: b first, then each slope. The four active sets are solved
    in closed form and the best feasible one kept, which is the constrained optimum.
    Returns (fitted (B, n), coefficients (B, G, 3)).
    """
    wy, wl, wr = weight * y, weight * left, weight * right
    sums = groups.group_sum(np.stack([weight, wy, wl, wl * left, wl * y, wr, wr * right, wr * y, wy * y]))
    w_sum, y_sum, l1, l2, ly, r1, r2, ry, yy = sums
    ok_l, ok_r = l2 > _TINY, r2 > _TINY
    l2s, r2s = np.where(ok_l, l2, 1.0), np.where(ok_r, r2, 1.0)
    best_rss = np.full(w_sum.shape, np.inf)
    best = np.zeros(w_sum.shape + (3,))
    for use_l, use_r in ((False, False), (True, False), (False, True), (True, True)):
        tl = ok_l & use_l
        tr = ok_r & use_r
        den = w_sum - np.where(tl, l1 * l1 / l2s, 0.0) - np.where(tr, r1 * r1 / r2s, 0.0)
        num = y_sum - np.where(tl, l1 * ly / l2s, 0.0) - np.where(tr, r1 * ry / r2s, 0.0)
        valid = den > 1e-9 * w_sum
        b = num / np.where(valid, den, 1.0)
        a_l = np.where(tl, (ly - b * l1) / l2s, 0.0)
        a_r = np.where(tr, (ry - b * r1) / r2s, 0.0)
        rss = yy - b * y_sum - a_l * ly - a_r * ry
        feasible = valid & (a_l >= 0.0) & (a_r >= 0.0) & (rss < best_rss - 1e-15 * np.abs(yy))
        best_rss = np.where(feasible, rss, best_rss)
        best = np.where(feasible[..., None], np.stack([b, a_l, a_r], axis=-1), best)
    per_run = groups.per_run(best)
    fitted = per_run[..., 0] + per_run[..., 1] * left + per_run[..., 2] * right
    return fitted, best


def profile(groups: RunGroups, log_location: np.ndarray, w: np.ndarray, y: np.ndarray, delta: float) -> Profile:
    """The profiled model at B search points: ``log_location`` (B, G), curve shapes ``w`` (B, 2) (w, alpha of
    ``shape_curve``) and data ``y`` (n,) or (B, n). ``delta``: the Huber constant in metric units (inf: least squares).
    """
    u = groups.log_teacher[None, :] - groups.per_run(log_location)
    is_left = u < 0.0
    h = shape_curve(u, w[:, 0], w[:, 1])
    left = h * is_left
    right = h - left
    y = np.broadcast_to(y, u.shape)
    weight = np.ones_like(u)
    for step in range(_IRLS_STEPS + 1):
        fitted, coefficients = _nonnegative_fit(groups, left, right, y, weight)
        residual = y - fitted
        if not np.isfinite(delta) or step == _IRLS_STEPS:
            break
        weight = np.minimum(1.0, delta / np.maximum(np.abs(residual), _TINY))  # IRLS weights of the Huber loss
    loss = 0.5 * residual**2 if not np.isfinite(delta) else huber(residual, delta)
    return Profile(objective=loss.sum(axis=1), fitted=fitted, coefficients=coefficients)


@dataclass(frozen=True)
class SearchSpace:
    """What a law family contributes (the location of the optimum and its box) and whether the curves get
    their far shape fitted (``n_shape`` 2: w and alpha of ``shape_curve``) or are parabolas (0)."""

    log_location: LogLocation  # theta (B, P) -> ln T* per group (B, G)
    bounds: list[tuple[float, float]]  # per theta coordinate
    grid: np.ndarray  # (K, P) starting points for theta
    n_shape: int = 0

    @property
    def n_theta(self) -> int:
        return self.grid.shape[1]

    def split(self, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Search points (B, P + n_shape) -> theta (B, P) and curve shapes (B, 2) (w, alpha)."""
        theta, shape = phi[:, :self.n_theta], phi[:, self.n_theta:]
        if self.n_shape == 0:
            return theta, np.zeros((phi.shape[0], 2))
        return theta, shape

    def box(self) -> tuple[np.ndarray, np.ndarray]:
        bounds = [*self.bounds, *([(0.0, SHAPE_LIMIT), ALPHA_BOUNDS] if self.n_shape else [])]
        return np.array([b[0] for b in bounds]), np.array([b[1] for b in bounds])

    def starts(self) -> np.ndarray:
        shapes = grid_box([(0.0, 0.7), (1.0, -2.0)]) if self.n_shape else np.zeros((1, 0))
        return np.array([[*theta, *shape] for theta in self.grid for shape in shapes])

    def evaluate(self, groups: RunGroups, phi: np.ndarray, y: np.ndarray, delta: float) -> Profile:
        theta, shape = self.split(np.atleast_2d(phi))
        return profile(groups, self.log_location(theta), shape, y, delta)


@dataclass(frozen=True)
class OneStageFit:
    """The point fit: the search point (theta, shapes), the Huber constant, the residual degrees of freedom."""

    phi: np.ndarray  # (P + n_shape,)
    space: SearchSpace
    delta: float
    noise: float  # the residual noise scale (metric units)
    df: int  # residual degrees of freedom
    profile: Profile  # at the point fit (batch of one)
    at_bounds: list[int]  # indices of theta coordinates at a bound

    @property
    def theta(self) -> np.ndarray:
        return self.phi[:self.space.n_theta]

    @property
    def shape(self) -> tuple[float, float]:
        """(s, alpha) of the curves' far shape; s = 0 is a parabola."""
        _, w = self.space.split(self.phi[None, :])
        return float(w[0, 0] ** 2), float(w[0, 1])


def degrees_of_freedom(groups: RunGroups, n_search: int) -> int:
    """Runs minus the parameters the model spends: up to three per group (as many as distinct teachers), the search."""
    linear = sum(min(3, len(t)) for t in groups.teachers)
    return groups.n_runs - linear - n_search


def fit_point(groups: RunGroups, space: SearchSpace) -> OneStageFit:
    """The point fit: least squares first (for the noise scale), then Huber, from the grid's best starts."""
    df = degrees_of_freedom(groups, space.n_theta + space.n_shape)
    low, high = space.box()

    def solve(delta: float, seeds: np.ndarray) -> np.ndarray:
        # The whole grid is one batch; the best few starts are refined together, the best result kept.
        def objective(phi: np.ndarray, rows: np.ndarray) -> np.ndarray:
            return space.evaluate(groups, phi, groups.badness, delta).objective

        values = objective(seeds, np.arange(seeds.shape[0]))
        best = seeds[np.argsort(np.where(np.isfinite(values), values, np.inf))[:_REFINED_STARTS]]
        solutions, _ = minimize_batch(objective, best, best.shape[0], low, high, iterations=60)
        return solutions[np.nanargmin(objective(solutions, np.arange(best.shape[0])))]

    starts = space.starts()
    least_squares = solve(np.inf, starts)
    rss = float(np.sum((groups.badness - space.evaluate(groups, least_squares, groups.badness, np.inf).fitted[0]) ** 2))
    noise = float(np.sqrt(rss / df)) if df > 0 else 0.0
    delta = HUBER_K * noise if noise > 0 else np.inf
    phi = solve(delta, np.vstack([least_squares, starts])) if np.isfinite(delta) else least_squares
    at_bounds = [i for i, (lo, hi) in enumerate(space.bounds)
                 if min(abs(phi[i] - lo), abs(phi[i] - hi)) <= 1e-6 * max(1.0, abs(lo), abs(hi))]
    return OneStageFit(phi=phi, space=space, delta=float(delta), noise=noise, df=df,
                       profile=space.evaluate(groups, phi, groups.badness, delta), at_bounds=at_bounds)


@dataclass(frozen=True)
class Bootstrap:
    """Refits of the model on residual-bootstrap resamples: draws (B, P + n_shape), and the count that failed."""

    draws: np.ndarray
    requested: int
    failed: int  # non-finite refits: left out, and reported
    unconverged: int  # refits that stopped before converging: kept, and reported


def bootstrap(groups: RunGroups, point: OneStageFit, n_resamples: int, rng: np.random.Generator) -> Bootstrap:
    """Residual bootstrap of the whole model (see the module docstring)."""
    n = groups.n_runs
    fitted = point.profile.fitted[0]
    residual = groups.badness - fitted
    residual = (residual - residual.mean()) * np.sqrt(n / point.df)
    y = fitted[None, :] + residual[rng.integers(0, n, size=(n_resamples, n))]
    space = point.space

    def objective(phi: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return space.evaluate(groups, phi, y[rows], point.delta).objective

    draws, converged = minimize_batch(objective, point.phi, n_resamples, *space.box())
    finite = np.isfinite(draws).all(axis=1)
    return Bootstrap(draws=draws[finite], requested=n_resamples, failed=int((~finite).sum()),
                     unconverged=int((finite & ~converged).sum()))


def location_draws(space: SearchSpace, draws: np.ndarray) -> np.ndarray:
    """ln T* per group for each bootstrap draw: (B, G)."""
    return space.log_location(space.split(draws)[0])


def window(groups: RunGroups, log_location: np.ndarray, half_width: float, min_teachers: int) -> np.ndarray:
    """The runs within ``half_width`` (ln units) of their group's optimum, and at least the ``min_teachers``
    teachers nearest to it: (n,) mask.

    Far from its optimum a real curve stops being a parabola (it flattens, or turns);
    the location is then read from the runs that see the bottom of the curve.
    """
    distance = np.abs(groups.log_teacher - log_location[groups.group])
    keep = distance <= half_width
    for j in range(len(groups.keys)):
        members = np.flatnonzero(groups.group == j)
        teachers = np.unique(groups.log_teacher[members])
        nearest = teachers[np.argsort(np.abs(teachers - log_location[j]))[:min_teachers]]
        keep[members] |= np.isin(groups.log_teacher[members], nearest)
    return keep


def held_out_loss(groups: RunGroups, log_location: np.ndarray, shape: tuple[float, float], delta: float) -> np.ndarray:
    """Per group, the loss of the runs when the optimum is put where a law fitted without them says.

    ``log_location`` (G,): the predicted ln T* of each group. The group's own baseline and
    curvatures are refitted (they say nothing about where the optimum is); the loss measures
    how well the predicted location explains the group's curve. Least squares when delta is inf.
    """
    fit = profile(groups, log_location[None, :], np.array([[np.sqrt(shape[0]), shape[1]]]), groups.badness, delta)
    residual = groups.badness - fit.fitted[0]
    loss = 0.5 * residual**2 if not np.isfinite(delta) else huber(residual, delta)
    return groups.group_sum(loss)


def grid_box(axes: Sequence[Sequence[float]]) -> np.ndarray:
    """The Cartesian grid of starting points: (K, P)."""
    mesh = np.meshgrid(*[np.asarray(a, dtype=float) for a in axes], indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)
