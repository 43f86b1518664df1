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

Intervals (``likelihood_draws``, what capgap ships): draws of the search point from the
likelihood with the group parameters profiled out, tempered by a Bartlett-type factor
(``likelihood_temper``), by importance sampling. The alternative kept for the calibration
study is a residual bootstrap (``bootstrap``): residuals inflated by sqrt(n / df) resampled
onto the fitted values, each resample refitted (damped Newton, all at once). With no degrees
of freedom left there is no interval either way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from capgap.fit.solver import HUBER_K, derivatives, difference_offsets, huber, minimize_batch
from capgap.runs.groups import RunGroups

LogLocation = Callable[[np.ndarray], np.ndarray]  # search point (B, P) -> ln T* per group (B, G)

SHAPE_LIMIT = 2.0  # w <= 2, s = w² <= 4: curves bend away from the parabola no closer than half a log unit
ASYMMETRY_BOUNDS = (np.log(0.1), np.log(10.0))  # ln(left/right curvature)
FREE_RATIO_LIMIT = float(np.exp(ASYMMETRY_BOUNDS[1]))  # a free per-group ratio keeps within the shared one's bounds
SKEW_BOUNDS = (-3.0, 3.0)  # the curves' skew kappa (``skewed_square``): 0 symmetric, < 0 steeper toward small teachers
ALPHA_BOUNDS = (-30.0, 4.0)  # from exp-like plateaus (alpha -> -inf) through the parabola (2) to quartic growth (4) ...
RIGHT_ALPHA_BOUNDS = (-30.0, 2.0)  # ... but right of the optimum (larger teachers) a curve may only flatten
_TINY = 1e-12
_IRLS_STEPS = 2
_REFINED_STARTS = 6  # grid starts refined by Newton in the point fit
LOCATION_COMB = np.arange(-3.0, 3.0001, 0.05)  # ln units: the dense profile of the location behind every point fit
_COMB_ROUNDS = 3
BOOTSTRAP_SHIFTS = (-0.3, 0.3)  # ln units: the extra starts of each bootstrap refit
BARTLETT_SIMULATIONS = 64  # simulated data sets behind the likelihood's temper factor
TEMPER_COMB = np.linspace(-0.8, 0.8, 17)  # ln units: starts of the simulations' free refits
PROPOSALS = 4000  # likelihood sampler: proposals per round
SAMPLER_ROUNDS = 3  # ... rounds at most of adapting the proposal to the weighted draws
PROPOSAL_DF = 4  # Student-t proposal: heavy tails reach a second basin
PROPOSAL_INFLATION = 1.5  # proposal spread over the likelihood's own
GOOD_EFFECTIVE_SHARE = 0.3  # an effective sample this large a share of the proposals ends the adaptation
UNIFORM_SHARE = 0.2  # of the proposals drawn uniformly over the search box
_CHUNK = 1000  # proposals evaluated per batch (memory: a few (chunk, n) arrays)


@dataclass(frozen=True)
class Profile:
    """The model at a batch of search points: objective (B,), fitted values (B, n), group coefficients (B, G, 3)."""

    objective: np.ndarray
    fitted: np.ndarray
    coefficients: np.ndarray


def skewed_square(u: np.ndarray, kappa: np.ndarray) -> np.ndarray:
    """The LINEX square 2·(exp(kappa·u) − 1 − kappa·u) / kappa²: u² near the optimum, and for kappa ≠ 0 smoothly
    skewed, growing exponentially on one side and linearly on the other (kappa < 0: steeper toward small
    teachers). Unlike a left/right curvature ratio it has no kink at the optimum, so the runs next to the optimum
    keep locating it, and one kappa shared by all groups costs one parameter, not one per group. ``kappa``: (B,).
    """
    k = kappa[:, None]
    small = np.abs(k) < 1e-3
    safe = np.where(small, 1.0, k)
    ku = safe * u
    exact = 2.0 * (np.expm1(ku) - ku) / (safe * safe)
    series = u * u * (1.0 + k * u / 3.0 + k * k * u * u / 12.0)
    return np.where(small, series, exact)


def shape_curve(u: np.ndarray, w: np.ndarray, alpha: np.ndarray, u2: np.ndarray | None = None) -> np.ndarray:
    """h(u): u² near the optimum; far from it, how the curve goes on is set by alpha and s = w².

    Barron's general robust loss (CVPR 2019) as a curve, scaled to h ≈ u² at 0:
    h = (2b / (s·alpha))·((1 + s·u²/b)^(alpha/2) − 1), b = |alpha − 2|. alpha = 1 grows
    linearly far away, alpha = 0 logarithmically, alpha = −2 levels off at 4/s, alpha → −inf
    like 1 − exp; alpha = 2 is the parabola and alpha > 2 grows faster than it (u⁴ at alpha = 4: the
    published distillation law's curves steepen so toward small teachers); s = 0 is the parabola
    whatever alpha. ``w``, ``alpha``: (B,). ``u2``: the square to shape, u² unless given (``skewed_square``).
    """
    u2 = u * u if u2 is None else u2
    s = (w * w)[:, None]
    a = alpha[:, None]
    b = np.maximum(np.abs(a - 2.0), 1e-6)  # alpha = 2: the parabola, reached continuously
    flat = s < 1e-12
    safe_s = np.where(flat, 1.0, s)
    t = np.log1p(safe_s * u2 / b)
    small_a = np.abs(a) < 1e-8
    safe_a = np.where(small_a, 1.0, a)
    curved = np.where(small_a, b / safe_s * t, 2.0 * b / (safe_s * safe_a) * np.expm1(0.5 * a * t))
    return np.where(flat, u2, curved)


def _nonnegative_fit(groups: RunGroups, left: np.ndarray, right: np.ndarray, y: np.ndarray,
                     weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per group, weighted least squares of y on [1, left, right] with both slopes >= 0 and, where the group has
    runs on both sides of the optimum, their ratio within FREE_RATIO_LIMIT either way.

    Without the ratio limit, an optimum put just beside a lone rung fits that rung exactly with a curvature of its
    own (a huge one, times a tiny h(u)), and the location is pinned next to it: on the published law's curves at
    320 tokens/param the 1B student's optimum was read at the edge rung 4x, its best measured teacher being 8x.
    The bound is the shared ratio's own (ASYMMETRY_BOUNDS).

    ``left`` and ``right`` never overlap (a run is on one side of the optimum), so the
    normal equations decouple: b first, then each slope. The candidate faces (both slopes free, one side's only
    where the other has no runs, the ratio at either limit, none) are solved in closed form and the best feasible
    one kept, which is the constrained optimum (a convex problem).
    Returns (fitted (B, n), coefficients (B, G, 3)).
    """
    limit = FREE_RATIO_LIMIT
    wy, wl, wr = weight * y, weight * left, weight * right
    sums = groups.group_sum(np.stack([weight, wy, wl, wl * left, wl * y, wr, wr * right, wr * y, wy * y]))
    w_sum, y_sum, l1, l2, ly, r1, r2, ry, yy = sums
    ok_l, ok_r = l2 > _TINY, r2 > _TINY
    both = ok_l & ok_r
    best_rss = np.full(w_sum.shape, np.inf)
    best = np.zeros(w_sum.shape + (3,))

    def keep(b: np.ndarray, a_l: np.ndarray, a_r: np.ndarray, rss: np.ndarray, feasible: np.ndarray) -> None:
        nonlocal best_rss, best
        better = feasible & (rss < best_rss - 1e-15 * np.abs(yy))
        best_rss = np.where(better, rss, best_rss)
        best = np.where(better[..., None], np.stack([b, a_l, a_r], axis=-1), best)

    def one_column(c1: np.ndarray, c2: np.ndarray, cy: np.ndarray, use: np.ndarray):
        """b and the slope of a single column (its sums c1, c2, cy); slope 0 where ``use`` is False."""
        ok = use & (c2 > _TINY)
        c2s = np.where(ok, c2, 1.0)
        den = w_sum - np.where(ok, c1 * c1 / c2s, 0.0)
        valid = den > 1e-9 * w_sum
        b = (y_sum - np.where(ok, c1 * cy / c2s, 0.0)) / np.where(valid, den, 1.0)
        slope = np.where(ok, (cy - b * c1) / c2s, 0.0)
        return b, slope, yy - b * y_sum - slope * cy, valid & (slope >= 0.0)

    l2s, r2s = np.where(ok_l, l2, 1.0), np.where(ok_r, r2, 1.0)
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
        # With runs on both sides, one side's curvature alone breaks the ratio limit (0 against a positive one).
        within = ~both | ((a_l <= limit * a_r) & (a_r <= limit * a_l)) | ((a_l == 0.0) & (a_r == 0.0))
        keep(b, a_l, a_r, rss, valid & (a_l >= 0.0) & (a_r >= 0.0) & within)
    # The ratio at its limits: one column, limit * left + right (or left + limit * right), one slope.
    for on_left, on_right in ((limit, 1.0), (1.0, limit)):
        b, slope, rss, feasible = one_column(on_left * l1 + on_right * r1, on_left**2 * l2 + on_right**2 * r2,
                                             on_left * ly + on_right * ry, both)
        keep(b, on_left * slope, on_right * slope, rss, feasible & both)
    per_run = groups.per_run(best)
    fitted = per_run[..., 0] + per_run[..., 1] * left + per_run[..., 2] * right
    return fitted, best


def curve_columns(u: np.ndarray, curve: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The columns the left and right curvatures multiply at offsets ``u`` (B, n) from the optimum."""
    is_left = u < 0.0
    u2 = skewed_square(u, curve[:, 5]) if curve.shape[1] > 5 and np.any(curve[:, 5] != 0.0) else None
    h = np.where(is_left, shape_curve(u, curve[:, 0], curve[:, 1], u2), shape_curve(u, curve[:, 3], curve[:, 4], u2))
    shared = np.isfinite(curve[:, 2])[:, None]
    log_ratio = np.where(shared, curve[:, 2:3], 0.0)
    # One curvature per group with a shared left/right ratio, or a free curvature per side and group.
    # The shared ratio kinks at the optimum, as a free ratio does: a smooth turn-on (tried over 0.25 ln
    # units) biased the location on kinked curves and made the intervals lopsided (shared ladder: coverage
    # 0.71 against 0.89 kinked, 100 data sets, 2026-12-03).
    ratio = np.exp(log_ratio * is_left)
    return np.where(shared, h * ratio, h * is_left), np.where(shared, 0.0, h * ~is_left)


def profile(groups: RunGroups, log_location: np.ndarray, curve: np.ndarray, y: np.ndarray, delta: float) -> Profile:
    """The profiled model at B search points: ``log_location`` (B, G), the curves' shape ``curve`` (B, 6)
    (w and alpha of ``shape_curve`` left of the optimum, ln of the left/right curvature ratio, NaN: a free
    ratio per group, then w and alpha right of it, then the skew kappa of ``skewed_square``) and data ``y``
    (n,) or (B, n). ``delta``: the Huber
    constant in metric units (inf: least squares).
    """
    u = groups.log_teacher[None, :] - groups.per_run(log_location)
    left, right = curve_columns(u, curve)
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
    """What a law family contributes (the location of the optimum and its box), and what the curves get:
    a shared left/right curvature ratio (``shared_asymmetry``) or a free one per group, and their far shape:
    one per side of the optimum (``n_shape`` 4: w and alpha of ``shape_curve`` left, then right), one for
    both sides (2), or parabolas (0).

    With ``skew``, the curves are also skewed (``skewed_square``) by one kappa shared by all groups: smooth
    asymmetry, with no kink at the optimum.

    A search point is theta, then ln(ratio) when shared, then kappa with ``skew``, then the far shape's
    coordinates."""

    log_location: LogLocation  # theta (B, P) -> ln T* per group (B, G)
    bounds: list[tuple[float, float]]  # per theta coordinate
    grid: np.ndarray  # (K, P) starting points for theta
    n_shape: int = 0
    shift: Callable[[np.ndarray, float], np.ndarray] = lambda theta, by: theta + np.eye(theta.shape[1])[0] * by
    shared_asymmetry: bool = True
    skew: bool = False
    ratio: bool = True  # False: no left/right curvature ratio (one curvature per group; asymmetry by skew alone)

    @property
    def n_theta(self) -> int:
        return self.grid.shape[1]

    @property
    def n_curve(self) -> int:
        """Search coordinates after theta."""
        return int(self.shared_asymmetry and self.ratio) + int(self.skew) + self.n_shape

    @property
    def per_group(self) -> int:
        """Linear parameters per group: a baseline and one curvature, or two with a free ratio."""
        return 2 if self.shared_asymmetry or not self.ratio else 3

    def split(self, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Search points (B, P + n_curve) -> theta (B, P) and curve shapes (B, 6): w, alpha left of the optimum,
        ln ratio or NaN, w, alpha right of it, skew kappa."""
        theta, rest = phi[:, :self.n_theta], phi[:, self.n_theta:]
        curve = np.zeros((phi.shape[0], 6))
        curve[:, 2] = np.nan
        if not self.ratio:
            curve[:, 2] = 0.0
        elif self.shared_asymmetry:
            curve[:, 2], rest = rest[:, 0], rest[:, 1:]
        if self.skew:
            curve[:, 5], rest = rest[:, 0], rest[:, 1:]
        if self.n_shape:
            curve[:, :2] = rest[:, :2]
            curve[:, 3:5] = rest[:, -2:]  # one shape for both sides when n_shape is 2
        return theta, curve

    def box(self) -> tuple[np.ndarray, np.ndarray]:
        shapes = {0: [], 2: [(0.0, SHAPE_LIMIT), ALPHA_BOUNDS],
                  4: [(0.0, SHAPE_LIMIT), ALPHA_BOUNDS, (0.0, SHAPE_LIMIT), RIGHT_ALPHA_BOUNDS]}[self.n_shape]
        asymmetry = [ASYMMETRY_BOUNDS] * int(self.shared_asymmetry and self.ratio) + [SKEW_BOUNDS] * int(self.skew)
        bounds = [*self.bounds, *asymmetry, *shapes]
        return np.array([b[0] for b in bounds]), np.array([b[1] for b in bounds])

    def starts(self) -> np.ndarray:
        side = [(0.0, 1.0), (0.5, 1.0), (1.2, 1.0), (0.5, -2.0), (1.2, -2.0), (0.7, 3.5)]
        shapes = [[]] if not self.n_shape else ([list(p) for p in side] if self.n_shape == 2 else
                                                [[*a, *b] for a in side for b in side[:5]])
        ratios = [[0.0], [0.7]] if self.shared_asymmetry and self.ratio else [[]]
        skews = [[0.0], [-1.0], [1.0]] if self.skew else [[]]
        curves = [[*r, *k, *h] for r in ratios for k in skews for h in shapes]
        return np.array([[*theta, *curve] for theta in self.grid for curve in curves])

    def evaluate(self, groups: RunGroups, phi: np.ndarray, y: np.ndarray, delta: float) -> Profile:
        theta, curve = self.split(np.atleast_2d(phi))
        return profile(groups, self.log_location(theta), curve, y, delta)


@dataclass(frozen=True)
class OneStageFit:
    """The point fit: the search point (theta, curve shape), the Huber constant, the residual degrees of freedom."""

    phi: np.ndarray  # (P + n_curve,)
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
    def curve(self) -> np.ndarray:
        return self.phi[self.space.n_theta:]

    @property
    def shape(self) -> tuple[float, float, float, float]:
        """(s, alpha) of the curves' far shape left of the optimum, then right of it; s = 0 is a parabola."""
        _, curve = self.space.split(self.phi[None, :])
        return float(curve[0, 0] ** 2), float(curve[0, 1]), float(curve[0, 3] ** 2), float(curve[0, 4])

    @property
    def asymmetry(self) -> float | None:
        """Left/right curvature ratio shared by the groups (None: free per group; 1 for skewed curves)."""
        _, curve = self.space.split(self.phi[None, :])
        return float(np.exp(curve[0, 2])) if np.isfinite(curve[0, 2]) else None

    @property
    def skew(self) -> float | None:
        """The curves' shared skew kappa (``skewed_square``), or None where the model has no skew."""
        return float(self.space.split(self.phi[None, :])[1][0, 5]) if self.space.skew else None


def degrees_of_freedom(groups: RunGroups, space: SearchSpace) -> int:
    """Runs minus the parameters the model spends: per group a baseline and one curvature (two with a free
    ratio; no more than its distinct teachers), and the search coordinates."""
    return count_degrees_of_freedom(groups.n_runs, [len(t) for t in groups.teachers],
                                    space.n_theta + space.n_curve, space.per_group == 2)


def count_degrees_of_freedom(n_runs: int, teachers_per_group: Sequence[int], n_search: int,
                             shared_asymmetry: bool = False) -> int:
    """``degrees_of_freedom`` from counts alone (for designs not yet measured, as the planner scores them)."""
    per_group = 2 if shared_asymmetry else 3
    return n_runs - sum(min(per_group, n) for n in teachers_per_group) - n_search


def fit_point(groups: RunGroups, space: SearchSpace, start: np.ndarray | None = None,
              robust: bool = True) -> OneStageFit:
    """The point fit: least squares first (for the noise scale), then Huber (``robust``), from the grid's best
    starts, or only from ``start`` (a warm start: a refit of nearly the same data)."""
    df = degrees_of_freedom(groups, space)
    low, high = space.box()

    def solve(delta: float, seeds: np.ndarray) -> np.ndarray:
        # The whole grid is one batch; the best few starts, each also moved along a dense comb of locations
        # (with few teachers the objective has a basin between every two rungs), are refined together.
        def objective(phi: np.ndarray, rows: np.ndarray) -> np.ndarray:
            return space.evaluate(groups, phi, groups.badness, delta).objective

        def best_of(points: np.ndarray, k: int) -> np.ndarray:
            values = objective(points, np.arange(points.shape[0]))
            return points[np.argsort(np.where(np.isfinite(values), values, np.inf))[:k]]

        best = best_of(seeds, _REFINED_STARTS)
        best = best_of(np.vstack([best, *(location_comb(space, b, LOCATION_COMB[::4] / 4) for b in best[:3])]),
                       _REFINED_STARTS)
        solutions, _ = minimize_batch(objective, best, best.shape[0], low, high, iterations=60)
        solution = solutions[np.nanargmin(objective(solutions, np.arange(best.shape[0])))]
        # The global check: no location on the dense comb about the solution (its curve shape kept) may fit
        # better; where one does, refine from it.
        for _ in range(_COMB_ROUNDS):
            comb = location_comb(space, solution, LOCATION_COMB)
            values = objective(comb, np.arange(comb.shape[0]))
            current = objective(solution[None, :], np.arange(1))[0]
            if not np.nanmin(values) < current - 1e-12 * (1.0 + abs(current)):
                break
            start = comb[np.nanargmin(values)]
            refined, _ = minimize_batch(objective, start, 1, low, high, iterations=60)
            better = objective(refined, np.arange(1))[0] < np.nanmin(values)
            solution = refined[0] if better else start
        return solution

    starts = np.clip(space.starts() if start is None else start[None, :], low, high)
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


def _hessian(objective: Callable[[np.ndarray], np.ndarray], phi: np.ndarray, step: float = 1e-3) -> np.ndarray:
    """Central-difference Hessian of a batched objective at one point, all evaluations in one batch."""
    values = objective(np.vstack([phi, phi + difference_offsets(phi.size, step)]))
    return derivatives(values[None, 1:], values[:1], step, phi.size)[1][0]

def likelihood_temper(groups: RunGroups, point: OneStageFit, rng: np.random.Generator,
                      n_sims: int = BARTLETT_SIMULATIONS) -> float:
    """How much the likelihood ratio of theta overstates the evidence here: E[W] / dim(theta), at least 1.

    Data sets are simulated from the fit (its fitted values plus Gaussian noise of its residual
    scale). In each, the model is refitted freely (from a fine comb of locations either side of
    the fit, the best refined) and with theta held at the fit's value (the simulation's truth),
    and W = 2·(F_held − F_free) / sigma². Where the likelihood of the location has several
    basins, W runs above what chi² says; dividing the log likelihood by this Bartlett-type
    factor widens the intervals to match. On the calibration designs it is mostly 1.
    """
    space = point.space
    n = groups.n_runs
    fitted = point.profile.fitted[0]
    y = fitted[None, :] + point.noise * rng.standard_normal((n_sims, n))
    low, high = space.box()

    def free(phi: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return space.evaluate(groups, phi, y[rows], point.delta).objective

    # Starts along the location, a fine comb either side of the fit: the other basins lie there.
    grid = np.array([np.r_[space.shift(point.theta[None, :], by)[0], point.curve] for by in TEMPER_COMB])
    values = np.empty((n_sims, grid.shape[0]))
    per_chunk = max(1, _CHUNK // n_sims)
    for start in range(0, grid.shape[0], per_chunk):
        block = grid[start:start + per_chunk]
        points = np.repeat(block[None, :, :], n_sims, axis=0).reshape(-1, grid.shape[1])
        rows = np.repeat(np.arange(n_sims), block.shape[0])
        values[:, start:start + block.shape[0]] = free(points, rows).reshape(n_sims, block.shape[0])
    best = grid[np.argmin(np.where(np.isfinite(values), values, np.inf), axis=1)]
    solved = np.empty_like(best)
    f_free = np.full(n_sims, np.inf)
    for start in (best, np.broadcast_to(point.phi, best.shape)):  # the grid's best and the fit itself
        candidate, _ = minimize_batch(free, start, n_sims, low, high)
        value = free(candidate, np.arange(n_sims))
        better = value < f_free
        solved[better], f_free[better] = candidate[better], value[better]
    rest = space.n_theta
    if space.n_curve:
        def held(curve: np.ndarray, rows: np.ndarray) -> np.ndarray:
            phi = np.hstack([np.broadcast_to(point.theta, (curve.shape[0], rest)), curve])
            return space.evaluate(groups, phi, y[rows], point.delta).objective

        curves, _ = minimize_batch(held, point.curve, n_sims, low[rest:], high[rest:])
        f_held = held(curves, np.arange(n_sims))
    else:
        f_held = free(np.broadcast_to(point.phi, (n_sims, point.phi.size)), np.arange(n_sims))
    fits = space.evaluate(groups, solved, y, point.delta).fitted
    sigma2 = np.sum((y - fits) ** 2, axis=1) / point.df
    w = 2.0 * np.maximum(f_held - f_free, 0.0) / sigma2
    w = w[np.isfinite(w)]
    return float(max(1.0, np.mean(w) / rest)) if w.size else 1.0


@dataclass(frozen=True)
class LikelihoodDraws:
    """Draws (B, P + n_curve) of the search point from its likelihood, and how well the sampler did."""

    draws: np.ndarray
    temper: float  # the Bartlett-type factor the log likelihood was divided by
    failed: int  # proposals whose objective was not finite (weight zero), said in the report
    effective: float  # effective sample size of the final importance weights
    better: np.ndarray | None = None  # a search point that fits better than the point fit (no draws then)


def likelihood_draws(groups: RunGroups, point: OneStageFit, n_draws: int, rng: np.random.Generator,
                     proposals: int = PROPOSALS, rounds: int = SAMPLER_ROUNDS, inflation: float = 1.0,
                     temper: float | None = None) -> LikelihoodDraws:
    """Draws of (theta, shape) weighted by the likelihood exp(−(F − F_min) / sigma²).

    F is the Huber objective (≈ half the residual sum of squares) with the group baselines and
    curvatures profiled out, sigma² the residual variance over the degrees of freedom left;
    theta and the far shape get flat priors inside their box (the shape is integrated over). Sampling is importance
    sampling from a Student-t proposal around the fit, adapted to the weighted draws for a few
    rounds; the draws are a resample of the last round by weight. Their percentiles are
    likelihood intervals that stay honest when the likelihood is skewed or has a second basin,
    at the cost of a few thousand objective evaluations (no refit per resample). The log likelihood
    is divided by ``likelihood_temper``'s Bartlett-type factor first, and by ``inflation`` where the model
    does not follow the runs (capgap.fit.lack_of_fit).
    """
    space = point.space
    low, high = space.box()

    def objective(phi: np.ndarray) -> np.ndarray:
        return space.evaluate(groups, phi, groups.badness, point.delta).objective

    temper = likelihood_temper(groups, point, rng) if temper is None else temper  # a retry reuses its factor
    sigma2 = point.noise**2 * temper * inflation
    base = float(point.profile.objective[0])
    mean = point.phi.copy()
    hess = _hessian(objective, mean)
    values, vectors = np.linalg.eigh((hess + hess.T) / 2.0)
    width = high - low
    # A direction the likelihood barely constrains (the far shape's alpha when s is near 0) gets the box's
    # own extent along it, not an infinite variance, nor the widest box of any coordinate: that would put
    # nearly every proposal outside the box and leave the sampler a handful of effective draws.
    extent = np.abs(vectors).T @ width
    # A negative eigenvalue (a point on a bound of the box, where the objective still falls outward) is a curvature
    # of that size all the same: flooring it by the box extent alone sent most proposals far off along it.
    scale = np.sqrt(sigma2 / np.maximum(np.abs(values), sigma2 / np.maximum(extent**2, 1e-12)))
    cov = (vectors * scale**2) @ vectors.T * PROPOSAL_INFLATION**2
    failed = 0
    from scipy.special import gammaln

    d = mean.size
    log_uniform = -float(np.sum(np.log(width)))
    for _ in range(rounds):
        chol = np.linalg.cholesky(cov + 1e-12 * np.eye(d))
        # Defensive mixture: mostly a Student-t around the current guess, partly uniform over the box, so
        # that directions the likelihood leaves flat (the far shape of a parabola) never get huge weights.
        from_box = rng.random(proposals) < UNIFORM_SHARE
        z = rng.standard_normal((proposals, d))
        chi = rng.chisquare(PROPOSAL_DF, size=(proposals, 1)) / PROPOSAL_DF
        phi = np.where(from_box[:, None], low + rng.random((proposals, d)) * width, mean + (z / np.sqrt(chi)) @ chol.T)
        inside = np.all((phi >= low) & (phi <= high), axis=1)
        f = np.full(proposals, np.inf)
        for start in range(0, proposals, _CHUNK):
            rows = np.flatnonzero(inside[start:start + _CHUNK]) + start
            if rows.size:
                f[rows] = objective(phi[rows])
        solved = np.isfinite(f)
        failed = int((inside & ~solved).sum())
        # Better by a twentieth of a log-likelihood unit or more: that moves the weights, not just rounding.
        if solved.any() and f[solved].min() < base - 0.05 * sigma2:
            # The sampler found a better fit than the point fit: say so, the caller refits from there.
            best = np.flatnonzero(solved)[np.argmin(f[solved])]
            return LikelihoodDraws(draws=np.empty((0, d)), temper=temper, failed=failed,
                                   effective=0.0, better=phi[best])
        mahalanobis = np.sum(np.linalg.solve(chol, (phi - mean).T) ** 2, axis=0)
        log_t = (gammaln((PROPOSAL_DF + d) / 2) - gammaln(PROPOSAL_DF / 2) - 0.5 * d * np.log(PROPOSAL_DF * np.pi)
                 - np.sum(np.log(np.diag(chol))) - 0.5 * (PROPOSAL_DF + d) * np.log1p(mahalanobis / PROPOSAL_DF))
        log_q = np.logaddexp(np.log1p(-UNIFORM_SHARE) + log_t, np.log(UNIFORM_SHARE) + log_uniform)
        log_w = np.where(solved, -(f - base) / sigma2 - log_q, -np.inf)
        weights = np.exp(log_w - np.max(log_w))
        weights /= weights.sum()
        effective = 1.0 / np.sum(weights**2)
        if effective >= GOOD_EFFECTIVE_SHARE * proposals:
            break  # the proposal already matches the likelihood well: no need to adapt it
        if effective < 10 * d:
            # A handful of effective points cannot estimate a covariance: widen the proposal instead.
            cov = cov * 4.0
            continue
        centred = phi - weights @ phi
        mean = weights @ phi
        cov = (centred * weights[:, None]).T @ centred * PROPOSAL_INFLATION**2 + 1e-10 * np.diag(width**2 + 1e-12)
    effective = float(1.0 / np.sum(weights**2))
    # Systematic resampling: n_draws equally spaced points through the cumulative weights.
    positions = (rng.random() + np.arange(n_draws)) / n_draws
    picked = np.minimum(np.searchsorted(np.cumsum(weights), positions), proposals - 1)
    return LikelihoodDraws(draws=phi[picked], temper=temper, failed=failed, effective=effective)


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


def held_out_loss(groups: RunGroups, log_location: np.ndarray, shape: Sequence[float], asymmetry: float | None,
                  delta: float, skew: float | None = None) -> np.ndarray:
    """Per group, the loss of the runs when the optimum is put where a law fitted without them says.

    ``log_location`` (G,): the predicted ln T* of each group. The group's own baseline and
    curvatures are refitted (they say nothing about where the optimum is); the loss measures
    how well the predicted location explains the group's curve. Least squares when delta is inf.
    """
    fit = profile(groups, log_location[None, :], _law_curve(shape, asymmetry, skew), groups.badness, delta)
    residual = groups.badness - fit.fitted[0]
    loss = 0.5 * residual**2 if not np.isfinite(delta) else huber(residual, delta)
    return groups.group_sum(loss)


def group_curves(groups: RunGroups, log_location: np.ndarray, shape: Sequence[float] | None,
                 asymmetry: float | None, delta: float, log_teachers: np.ndarray,
                 skew: float | None = None) -> np.ndarray:
    """Each group's fitted curve (badness, lower is better) along ``log_teachers`` (K,): (G, K).

    The optimum of each group sits at ``log_location`` (G,), the curves have a law file's far ``shape``
    ``asymmetry`` and ``skew``; the groups' baselines and curvatures are profiled from their runs (Huber ``delta``).
    """
    curve = _law_curve(shape, asymmetry, skew)
    coefficients = profile(groups, log_location[None, :], curve, groups.badness, delta).coefficients[0]  # (G, 3)
    left, right = curve_columns(np.asarray(log_teachers, dtype=float)[None, :] - log_location[:, None], np.repeat(
        curve, log_location.size, axis=0))
    return coefficients[:, :1] + coefficients[:, 1:2] * left + coefficients[:, 2:3] * right


def _law_curve(shape: Sequence[float] | None, asymmetry: float | None, skew: float | None = None) -> np.ndarray:
    """A law file's far shape, asymmetry and skew as the (1, 6) curve row ``profile`` takes."""
    log_ratio = np.log(asymmetry) if asymmetry else np.nan
    left, right = far_shapes(shape)
    return np.array([[np.sqrt(left[0]), left[1], log_ratio, np.sqrt(right[0]), right[1], skew or 0.0]])


def far_shapes(shape: Sequence[float] | None) -> tuple[tuple[float, float], tuple[float, float]]:
    """A law file's far shape, [s, alpha] (one for both sides, as older files wrote it) or [s, alpha] left then
    right, as ((s, alpha) left, (s, alpha) right); None: parabolas."""
    values = [float(v) for v in (shape or [0.0, 0.0])]
    left = (values[0], values[1])
    return left, (values[2], values[3]) if len(values) >= 4 else left


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
