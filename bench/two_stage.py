"""The old two-stage estimator, kept only as the baseline of bench/fit_calibration.py.

Stage 1 locates each (family, init, student size, tokens) group's optimum with a local
quadratic in log teacher size (censored as a bound at the ladder's edge); stage 2 fits
T*(S) through those optima (Huber on measured optima, Tobit terms on bounds), and a
bootstrap over whole runs repeats both stages. This is what `capgap fit` did before the
one-stage model; bench/fit_calibration.py measures both side by side.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from capgap.core.errors import InputError
from capgap.fit.solver import huber, quantile_interval
from capgap.runs.groups import nominal_sizes
from capgap.laws.base import FitOptions, StudentOptimum
from capgap.runs.records import RunRecord
from capgap.sizes.units import format_size

_LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)
ROBUST_DELTA = 1.5

MIN_TEACHERS = 3  # a quadratic needs three distinct teacher sizes
WINDOW = 3  # the optimum's quadratic uses the best measured teacher and up to 3 neighbours each side
HUBER_K = 1.345  # Huber tuning constant, in robust standard deviations of the residuals
IRLS_STEPS = 4
MIN_VALID_RESAMPLES = 0.5  # an interval needs half the resamples to keep 3 teachers near the best one
SIZE_TOLERANCE = 0.02  # students within 2% in size are one student size
MIN_LOG_SIGMA = 0.02  # floor on an optimum's log-scale standard error (2%), so no group dominates
AT_MOST, POINT, AT_LEAST, INVALID = -1, 0, 1, 2  # status codes of one group's optimum


@dataclass
class OptimumGroup:
    """The runs of one (family, student init, student size, tokens) group, ready to fit."""

    family: str
    student_init: str
    student_params: int  # nominal size of the group's students
    tokens: int | None
    log_teacher: np.ndarray  # per run
    badness: np.ndarray  # per run: the metric, sign-flipped so that lower is better
    teachers: list[int]  # distinct teacher sizes, ascending
    teacher_index: np.ndarray  # per run: index into teachers
    run_ids: list[str]

    def locate(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Status and log optimal teacher for each row of run weights (B, n_runs).

        A row is one bootstrap resample given as counts (a row of ones is the
        data itself). Censored rows carry the bound (the smallest or largest
        teacher of the group); rows with fewer than 3 teachers present are INVALID.
        """
        x, y = self.log_teacher, self.badness
        n_teachers = len(self.teachers)
        onehot = np.eye(n_teachers)[self.teacher_index]  # (n, K)
        weight_per_teacher = weights @ onehot  # (B, K)
        present = weight_per_teacher > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            mean_per_teacher = (weights * y) @ onehot / weight_per_teacher
        best = np.argmin(np.where(present, mean_per_teacher, np.inf), axis=1)
        # Student quality is asymmetric in log(teacher): across a wide ladder one quadratic misplaces
        # the optimum by a factor of several, one through the best teacher's neighbourhood much less.
        near_best = np.abs(np.arange(n_teachers)[None, :] - best[:, None]) <= WINDOW  # (B, K)
        weights = weights * near_best[:, self.teacher_index]
        fitted = present & near_best
        valid = fitted.sum(axis=1) >= MIN_TEACHERS
        coef = _robust_quadratic(x - x.mean(), y, np.where(valid[:, None], weights, 1.0))
        curvature, slope = coef[:, 2], coef[:, 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            xstar = x.mean() - slope / (2.0 * curvature)
        # The edges are the ladder's, not a resample's: a resample that happens to miss the smallest
        # teacher does not make the next one an edge.
        first, last = 0, n_teachers - 1
        log_sizes = np.log(np.asarray(self.teachers, dtype=float))
        convex = curvature > 0
        at_least = (best == last) | convex & (xstar >= log_sizes[last])
        at_most = ~at_least & ((best == first) | convex & (xstar <= log_sizes[first]))
        # Inside the ladder the local quadratic is trusted only across the teachers it was fitted to;
        # a concave (noise-dominated) fit has no minimum, and the best measured teacher stands in.
        lowest = log_sizes[np.argmax(fitted, axis=1)]
        highest = log_sizes[n_teachers - 1 - np.argmax(fitted[:, ::-1], axis=1)]
        interior = np.where(convex, np.clip(xstar, lowest, highest), log_sizes[best])
        status = np.select([~valid, at_least, at_most], [INVALID, AT_LEAST, AT_MOST], POINT)
        location = np.select([at_least, at_most], [log_sizes[last], log_sizes[first]], interior)
        return status, np.where(valid, location, np.nan)

    def bootstrap(self, n_resamples: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Status and log optimum of the group in resamples (with replacement) of its runs: (B,) each."""
        n = self.log_teacher.size
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_resamples).astype(float)
        return self.locate(counts)


def _weighted_quadratic(u: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Least-squares quadratic in u for each row of weights: (B, 3) coefficients, all rows at once."""
    design = np.stack([np.ones_like(u), u, u**2], axis=1)  # (n, 3)
    normal = np.einsum("bn,ni,nj->bij", weights, design, design)
    rhs = np.einsum("bn,ni,n->bi", weights, design, y)
    # Rows with fewer than three distinct points are singular; a tiny ridge keeps the batch solvable
    # (those rows are marked INVALID by the caller).
    normal += 1e-12 * np.eye(3)
    return np.linalg.solve(normal, rhs[..., None])[..., 0]


def _robust_quadratic(u: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Huber-reweighted quadratic (IRLS); plain least squares when runs barely exceed parameters."""
    coef = _weighted_quadratic(u, y, weights)
    if u.size <= 4:
        return coef
    design = np.stack([np.ones_like(u), u, u**2], axis=1)
    for _ in range(IRLS_STEPS):
        residuals = np.where(weights > 0, y[None, :] - coef @ design.T, np.nan)  # (B, n); unused runs: NaN
        scale = 1.4826 * np.nanmedian(np.abs(residuals), axis=1, keepdims=True)
        scale = np.maximum(scale, 1e-9 + 1e-6 * np.abs(y).max())
        a = np.abs(residuals) / scale
        huber_weight = np.where(np.isnan(a) | (a <= HUBER_K), 1.0, HUBER_K / np.maximum(a, 1e-12))
        coef = _weighted_quadratic(u, y, weights * huber_weight)
    return coef


@dataclass
class OptimaAnalysis:
    """The groups, their optima, and what the law fits need (log-scale errors of the optima)."""

    groups: list[OptimumGroup]
    optima: list[StudentOptimum]
    status: np.ndarray  # (G,) status codes of the optima from all runs
    log_optimum: np.ndarray  # (G,) log teacher: the point, or the bound when censored
    log_sigma: np.ndarray  # (G,) standard error of log optimum, from its bootstrap interval
    skipped: list[tuple[str, int]] = field(default_factory=list)  # (group, teacher count) with too few teachers

    def run_ids(self, keep: np.ndarray | None = None) -> list[str]:
        """Ids of the runs behind the groups, which a law fitted to them comes from (``keep``: a mask of groups)."""
        return [i for j, g in enumerate(self.groups) if keep is None or keep[j] for i in g.run_ids]

    @property
    def log_student(self) -> np.ndarray:
        return np.log(np.array([g.student_params for g in self.groups], dtype=float))

    def resample(self, n_resamples: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Status and log optimum of every group in each bootstrap resample over whole runs: (B, G) each.

        Runs are resampled within their group, so every student size stays present.
        """
        status = np.empty((n_resamples, len(self.groups)), dtype=int)
        location = np.empty((n_resamples, len(self.groups)))
        for j, group in enumerate(self.groups):
            status[:, j], location[:, j] = group.bootstrap(n_resamples, rng)
        return status, location


def group_runs(runs: Sequence[RunRecord], options: FitOptions) -> tuple[list[OptimumGroup], list[tuple[str, int]]]:
    """Groups with >= 3 distinct teachers, and (description, teacher count) of those with fewer.

    A group is one (family, student init, nominal student size, tokens): runs that differ in how the
    student was made are different experiments, not repeats.
    """
    sign = 1.0 if options.direction == "lower" else -1.0
    usable = [r for r in runs if r.metric(options.metric) is not None
              and (options.family is None or r.family == options.family)]
    nominal = nominal_sizes([r.size("student", options.size_measure) for r in usable])
    buckets: dict[tuple, list[tuple[int, float, str]]] = defaultdict(list)
    for run in usable:
        student = nominal[run.size("student", options.size_measure)]
        key = (run.family, run.student_init, student, run.tokens or 0)
        buckets[key].append((run.size("teacher", options.size_measure), sign * run.metric(options.metric), run.run_id))
    groups, skipped = [], []
    for (family, init, student, tokens), members in sorted(buckets.items()):
        teachers = sorted({t for t, _, _ in members})
        if len(teachers) < MIN_TEACHERS:
            skipped.append((f"{family} {init} {format_size(student)}", len(teachers)))
            continue
        index = {t: i for i, t in enumerate(teachers)}
        groups.append(OptimumGroup(
            family=family, student_init=init, student_params=student, tokens=tokens or None,
            log_teacher=np.log(np.array([t for t, _, _ in members], dtype=float)),
            badness=np.array([v for _, v, _ in members]), teachers=teachers,
            teacher_index=np.array([index[t] for t, _, _ in members]), run_ids=[i for _, _, i in members],
        ))
    return groups, skipped


def analyse_optima(runs: Sequence[RunRecord], options: FitOptions) -> OptimaAnalysis:
    """Locate every group's optimal teacher with its bootstrap interval."""
    if options.size_measure == "nonembed":
        lacking = sum(r.student_params_nonembed is None or r.teacher_params_nonembed is None for r in runs)
        if lacking:
            raise InputError(f"{lacking} of {len(runs)} runs lack non-embedding sizes "
                             "(student_params_nonembed, teacher_params_nonembed); add them or use --size total")
    groups, skipped = group_runs(runs, options)
    if not groups:
        most = max((n for _, n in skipped), default=0)
        raise InputError(f"a student's optimal teacher needs runs with at least {MIN_TEACHERS} distinct teacher sizes "
                         f"for one (family, student init, student size, tokens); the most found was {most}")
    from scipy.special import ndtri  # imported here: loading a law must not pay for scipy

    rng = np.random.default_rng(options.seed)
    z = ndtri(0.5 + options.level / 2.0)
    optima, statuses, locations, sigmas = [], [], [], []
    for group in groups:
        status, location = group.locate(np.ones((1, group.log_teacher.size)))
        status, location = int(status[0]), float(location[0])
        low = high = None
        sigma = np.nan
        # A quadratic through as many runs as it has parameters has no spread to resample: no interval.
        if options.bootstrap > 0 and status == POINT and group.log_teacher.size > MIN_TEACHERS:
            draw_status, draws = group.bootstrap(options.bootstrap, rng)  # censored draws sit at their edge
            lo, hi = quantile_interval(draws, options.level)
            if np.isfinite(lo) and np.mean(draw_status != INVALID) >= MIN_VALID_RESAMPLES:
                low, high = float(np.exp(lo)), float(np.exp(hi))
                sigma = max((hi - lo) / (2.0 * z), MIN_LOG_SIGMA)
        censored = {AT_LEAST: "at_least", AT_MOST: "at_most"}.get(status)
        # A bound is a measured teacher size exactly, not its round trip through a logarithm.
        teacher = {AT_LEAST: group.teachers[-1], AT_MOST: group.teachers[0]}.get(status, np.exp(location))
        optima.append(StudentOptimum(
            family=group.family, student_init=group.student_init, student_params=group.student_params,
            tokens=group.tokens,
            teacher_params=float(teacher), low=low, high=high, censored=censored,
            n_runs=int(group.log_teacher.size), teachers=group.teachers,
        ))
        statuses.append(status)
        locations.append(location)
        sigmas.append(sigma)
    log_sigma = np.array(sigmas)
    known = np.isfinite(log_sigma)
    # Censored optima, and those without an interval, borrow the typical error of the others.
    log_sigma[~known] = np.median(log_sigma[known]) if known.any() else 0.1
    return OptimaAnalysis(groups=groups, optima=optima, status=np.array(statuses), log_optimum=np.array(locations),
                          log_sigma=log_sigma, skipped=skipped)



def _element_loss(z: np.ndarray, status: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Loss of each standardised residual z = (curve - optimum)/sigma, its derivative and curvature.

    Measured optima: Huber. 'At least' bounds: -log Phi(z), zero cost well above the bound;
    'at most' bounds: -log Phi(-z). INVALID entries cost nothing.
    """
    from scipy.special import log_ndtr  # imported here: loading a law must not pay for scipy

    point, above, below = status == POINT, status == AT_LEAST, status == AT_MOST
    signed = np.where(below, -z, z)
    mills = np.exp(-0.5 * signed**2 - _LOG_SQRT_2PI - log_ndtr(signed))  # phi/Phi, stable far into the tails
    tobit = -log_ndtr(signed)
    loss = np.where(point, huber(z, ROBUST_DELTA), np.where(above | below, tobit, 0.0))
    first = np.where(point, np.clip(z, -ROBUST_DELTA, ROBUST_DELTA),
                     np.where(above, -mills, np.where(below, mills, 0.0)))
    # For Huber the IRLS weight psi(z)/z stands in for the second derivative (zero in the tails),
    # so that a start far from the data still gets a curvature and a sensible Newton step.
    second = np.where(point, ROBUST_DELTA / np.maximum(np.abs(z), ROBUST_DELTA),
                      np.where(above | below, mills * (signed + mills), 0.0))
    return loss, first, second


def _fit_theta(cls: type[CurveLaw], u: np.ndarray, y: np.ndarray, sigma: np.ndarray, status: np.ndarray) -> np.ndarray:
    """The point fit: every start of the family's grid solved at once, the lowest objective kept."""
    starts = np.array(cls.starts)
    rows = starts.shape[0]
    fits = _fit_theta_batch(cls, u, np.tile(y, (rows, 1)), sigma, np.tile(status, (rows, 1)), starts, iterations=200)
    values = _element_loss((cls.log_curve(fits, u) - y) / sigma, status)[0].sum(axis=1)
    return fits[np.nanargmin(values)]


def _fit_theta_batch(cls: type[CurveLaw], u: np.ndarray, y: np.ndarray, sigma: np.ndarray, status: np.ndarray,
                     start: np.ndarray, iterations: int = 60) -> np.ndarray:
    """One fit per row of (y, status) (B, G) at once: damped Gauss-Newton from ``start`` (P,) or (B, P),
    within the bounds.

    The bootstrap refits thousands of tiny problems; solving them together in
    numpy is ~100x faster than one optimiser call each. The objective is the
    same as the point fit's, and each row starts at the point fit's solution.
    """
    n_rows, n_params = y.shape[0], start.shape[-1]
    theta = np.broadcast_to(start, (n_rows, n_params)).copy()
    low = np.array([b[0] if b[0] is not None else -np.inf for b in cls.bounds])
    high = np.array([b[1] if b[1] is not None else np.inf for b in cls.bounds])
    y = np.nan_to_num(y)  # INVALID entries carry NaN locations and no loss

    def total(t: np.ndarray) -> np.ndarray:
        return _element_loss((cls.log_curve(t, u) - y) / sigma, status)[0].sum(axis=1)

    current = total(theta)
    damping = np.full(n_rows, 1e-3)
    done = np.zeros(n_rows, dtype=bool)
    for _ in range(iterations):
        _, first, second = _element_loss((cls.log_curve(theta, u) - y) / sigma, status)
        jac = cls.jacobian(theta, u) / sigma[:, None]  # (B, G, P)
        grad = np.einsum("bg,bgp->bp", first, jac)
        hess = np.einsum("bg,bgp,bgq->bpq", second, jac, jac)
        # Levenberg-Marquardt damping on the diagonal, floored so rank-deficient rows stay solvable.
        diagonal = np.einsum("bpp->bp", hess)
        floor = 1e-9 * diagonal.max(axis=1, keepdims=True) + 1e-12
        hess += np.einsum("bp,pq->bpq", damping[:, None] * np.maximum(diagonal, floor) + floor, np.eye(n_params))
        # A row at a degenerate point (e.g. a linear curve floored below zero) takes no step this round.
        stuck = ~(np.isfinite(hess).all(axis=(1, 2)) & np.isfinite(grad).all(axis=1))
        hess[stuck], grad[stuck] = np.eye(n_params), 0.0
        step = -np.linalg.solve(hess, grad[..., None])[..., 0]
        trial = np.clip(theta + step, low, high)
        value = total(trial)
        better = value <= current
        theta = np.where(better[:, None], trial, theta)
        done |= better & (current - value < 1e-10 * (1.0 + np.abs(current)))
        current = np.where(better, value, current)
        damping = np.where(better, damping * 0.3, damping * 10.0)
        done |= damping > 1e8  # no step improves any more: at a minimum (or stuck at a bound)
        if done.all():
            break
    return theta




class RatioCurve:
    """ln(T*/scale) = theta0 + u."""

    parameters = ("r",)
    starts = [np.array([0.0]), np.array([1.0]), np.array([2.0])]
    bounds = [(np.log(1e-3), np.log(1e3))]

    @staticmethod
    def log_curve(theta, u):
        return theta[..., 0:1] + u

    @staticmethod
    def jacobian(theta, u):
        return np.broadcast_to(np.ones_like(u)[:, None], theta.shape[:-1] + (u.size, 1))


class PowerCurve:
    """ln(T*/scale) = theta0 + p·u."""

    parameters = ("k", "p")
    starts = [np.array([a, p]) for a in (0.0, 1.0, 2.0) for p in (0.5, 1.0, 1.5)]
    bounds = [(np.log(1e-3), np.log(1e3)), (0.05, 5.0)]

    @staticmethod
    def log_curve(theta, u):
        return theta[..., 0:1] + theta[..., 1:2] * u

    @staticmethod
    def jacobian(theta, u):
        return np.broadcast_to(np.stack([np.ones_like(u), u], axis=-1), theta.shape[:-1] + (u.size, 2))


CURVES = {"ratio": RatioCurve, "power": PowerCurve}


def two_stage_teacher(runs: Sequence[RunRecord], law: str, students: Sequence[float], bootstrap: int,
                      seed: int, level: float = 0.9) -> list[tuple[float, float | None, float | None]]:
    """(estimate, low, high) of T*(S) at each of ``students`` by the old two-stage fit."""
    cls = CURVES[law]
    options = FitOptions(bootstrap=bootstrap, seed=seed, level=level)
    analysis = analyse_optima(runs, options)
    log_student = analysis.log_student
    log_scale = float(log_student.mean())
    u, sigma = log_student - log_scale, analysis.log_sigma
    status, y = analysis.status, analysis.log_optimum - log_scale
    if len(np.unique(u[status == POINT])) < len(cls.parameters):
        raise InputError("too few measured optima")
    theta = _fit_theta(cls, u, y, sigma, status)
    query = np.log(np.asarray(students, dtype=float)) - log_scale
    estimate = np.exp(cls.log_curve(theta[None, :], query)[0] + log_scale)
    draws = np.empty((0, len(query)))
    if bootstrap > 0:
        rng = np.random.default_rng([seed, 1])
        boot_status, boot_location = analysis.resample(bootstrap, rng)
        usable = np.array([len(np.unique(u[row == POINT])) >= len(cls.parameters) for row in boot_status])
        if usable.any():
            fits = _fit_theta_batch(cls, u, boot_location[usable] - log_scale, sigma, boot_status[usable], theta)
            draws = np.exp(cls.log_curve(fits, query) + log_scale)
    out = []
    for j in range(len(query)):
        low, high = quantile_interval(draws[:, j], level) if draws.size else (np.nan, np.nan)
        out.append((float(estimate[j]), low if np.isfinite(low) else None, high if np.isfinite(high) else None))
    return out
