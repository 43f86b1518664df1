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

This module is the model (its curves, its profile, its search space and the fit's result); the point
fit is ``capgap.fit.point_fit``. Intervals (``capgap.fit.intervals``): draws of the search point from
the likelihood with the group parameters profiled out, tempered by a Bartlett-type factor, by
importance sampling (what capgap ships), or a residual bootstrap kept for the calibration study:
residuals inflated by sqrt(n / df) resampled onto the fitted values, each resample refitted (damped
Newton, all at once). With no degrees of freedom left there is no interval either way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from capgap.fit.solver import huber
from capgap.runs.groups import RunGroups

LogLocation = Callable[[np.ndarray], np.ndarray]  # search point (B, P) -> ln T* per group (B, G)

SHAPE_LIMIT = 2.0  # w <= 2, s = w² <= 4: curves bend away from the parabola no closer than half a log unit
ASYMMETRY_BOUNDS = (np.log(0.1), np.log(10.0))  # ln(left/right curvature)
FREE_RATIO_LIMIT = float(np.exp(ASYMMETRY_BOUNDS[1]))  # a free per-group ratio keeps within the shared one's bounds
SKEW_BOUNDS = (-3.0, 3.0)  # the curves' skew kappa (``skewed_square``): 0 symmetric, < 0 steeper toward small teachers
ALPHA_BOUNDS = (-30.0, 4.0)  # from exp-like plateaus (alpha -> -inf) through the parabola (2) to quartic growth (4) ...
RIGHT_ALPHA_BOUNDS = (-30.0, 2.0)  # ... but right of the optimum (larger teachers) a curve may only flatten
TINY = 1e-12
_IRLS_STEPS = 2  # reweighting steps of the Huber loss in each profile


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


def nonnegative_fit(groups: RunGroups, left: np.ndarray, right: np.ndarray, y: np.ndarray,
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
    ok_l, ok_r = l2 > TINY, r2 > TINY
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
        ok = use & (c2 > TINY)
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
        fitted, coefficients = nonnegative_fit(groups, left, right, y, weight)
        residual = y - fitted
        if not np.isfinite(delta) or step == _IRLS_STEPS:
            break
        weight = np.minimum(1.0, delta / np.maximum(np.abs(residual), TINY))  # IRLS weights of the Huber loss
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
        # (w, alpha) of the far shape. w = 0 is a stationary point of every alpha (s = w²), so a fit started
        # only there never leaves the parabola: small, middling and large bends are started too, each
        # flattening (alpha < 2) and, left of the optimum, steepening (alpha > 2, the published law's rise).
        side = [(0.0, 1.0), (0.3, -2.0), (0.3, 3.5), (0.5, 1.0), (0.5, -2.0), (0.7, 3.5), (1.2, 1.0), (1.2, -2.0),
                (2.0, 1.0)]
        shapes = [[]] if not self.n_shape else ([list(p) for p in side] if self.n_shape == 2 else
                                                [[*a, *b] for a in side for b in side if b[1] <= 2.0])
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
    fit = profile(groups, log_location[None, :], law_curve(shape, asymmetry, skew), groups.badness, delta)
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
    curve = law_curve(shape, asymmetry, skew)
    coefficients = profile(groups, log_location[None, :], curve, groups.badness, delta).coefficients[0]  # (G, 3)
    left, right = curve_columns(np.asarray(log_teachers, dtype=float)[None, :] - log_location[:, None], np.repeat(
        curve, log_location.size, axis=0))
    return coefficients[:, :1] + coefficients[:, 1:2] * left + coefficients[:, 2:3] * right


def law_curve(shape: Sequence[float] | None, asymmetry: float | None, skew: float | None = None) -> np.ndarray:
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


