"""What the ratio, linear and power laws share: a curve T*(S) fitted to per-student optima.

The fit works in log space on the optima of capgap.optima: measured optima
contribute a Huber loss of their standardised residual (the standard error
comes from the optimum's bootstrap interval), censored optima a Tobit term,
-log Phi, that only penalises a curve on the wrong side of the bound. The
coefficients' and T*(S)'s intervals come from a bootstrap over whole runs that
repeats the whole pipeline: resample runs, relocate every optimum (censoring
included), refit the curve.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import ClassVar

import numpy as np

from capgap.errors import InputError
from capgap.fit import huber, quantile_interval
from capgap.laws.base import FitOptions, LawFile, StudentOptimum, TeacherEstimate
from capgap.optima import AT_LEAST, AT_MOST, POINT, OptimaAnalysis, analyse_optima
from capgap.records import RunRecord
from capgap.sizes import format_size

_LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)
ROBUST_DELTA = 1.5  # Huber delta on residuals in standard errors: one bad optimum cannot drag the curve


class CurveLaw:
    """Base of laws T* = curve(S; coefficients). Subclasses define the curve and its parameterisation.

    Internally the fit uses sizes centred on ``scale`` (the geometric mean
    student size), u = ln(S / scale), and returns ln(T* / scale).
    """

    name: ClassVar[str]
    formula: ClassVar[str]
    parameters: ClassVar[tuple[str, ...]]

    def __init__(self, file: LawFile) -> None:
        missing = [p for p in self.parameters if p not in file.coefficients]
        if missing:
            raise InputError(f"law file for {self.name} lacks coefficient(s) {', '.join(missing)}; "
                             f"expected {', '.join(self.parameters)}")
        self.file = file
        draws = [s for s in file.samples if all(p in s for p in self.parameters)]
        self._samples = {p: np.array([s[p] for s in draws], dtype=float) for p in self.parameters}

    # -- the curve, defined by each family ---------------------------------
    @staticmethod
    def teacher(coefficients: dict[str, np.ndarray | float], student: np.ndarray | float) -> np.ndarray:
        """T*(S) in natural units from natural coefficients (vectorised over both)."""
        raise NotImplementedError

    @staticmethod
    def log_curve(theta: np.ndarray, u: np.ndarray) -> np.ndarray:
        """ln(T*/scale) at u = ln(S/scale); theta (..., P) -> (..., G)."""
        raise NotImplementedError

    @staticmethod
    def jacobian(theta: np.ndarray, u: np.ndarray) -> np.ndarray:
        """d log_curve / d theta; theta (..., P) -> (..., G, P)."""
        raise NotImplementedError

    @staticmethod
    def natural(theta: np.ndarray, log_scale: float) -> dict[str, np.ndarray]:
        """Internal parameters (..., P) -> the coefficients the law file reports."""
        raise NotImplementedError

    starts: ClassVar[list[np.ndarray]]
    bounds: ClassVar[list[tuple[float | None, float | None]]]

    # -- the common face ----------------------------------------------------
    def optimal_teacher(self, student_params: float, tokens: float | None = None) -> TeacherEstimate:
        estimate = float(self.teacher(self.file.coefficients, float(student_params)))
        if not np.isfinite(estimate) or estimate <= 0:
            raise InputError(f"the {self.name} law ({self.formula}) gives no positive teacher for a "
                             f"{format_size(student_params)} student; it was fitted on students "
                             f"{self._range_text()}")
        low = high = None
        if any(v.size for v in self._samples.values()):
            draws = self.teacher(self._samples, float(student_params))
            low, high = quantile_interval(np.where(draws > 0, draws, np.nan), self.file.level)
            if not np.isfinite(low):
                low = high = None
        return TeacherEstimate(estimate=estimate, low=low, high=high, level=self.file.level)

    def predict_metric(self, student_params: float, teacher_params: float, tokens: float | None = None) -> float | None:
        return None  # these laws locate the optimum; they do not model the metric itself

    def _range_text(self) -> str:
        if not self.file.student_range:
            return "(no range recorded)"
        low, high = self.file.student_range
        return f"{format_size(low)}-{format_size(high)}"


def fit_curve(cls: type[CurveLaw], runs: Sequence[RunRecord], options: FitOptions) -> CurveLaw:
    """Fit a curve family to runs: optima, curve, bootstrap over whole runs."""
    return fit_curve_to_optima(cls, analyse_optima(runs, options), options)


def runs_hash(runs: Sequence[RunRecord]) -> str:
    """Content hash of a set of runs: SHA-256 of their sorted run ids (16 hex digits)."""
    return ids_hash(r.run_id for r in runs)


def ids_hash(run_ids: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(sorted(run_ids)).encode()).hexdigest()[:16]


def check_enough_optima(cls: type[CurveLaw], analysis: OptimaAnalysis, keep: np.ndarray | None = None) -> None:
    """InputError unless the measured (uncensored) optima cover enough student sizes for this family."""
    keep = np.ones(len(analysis.groups), dtype=bool) if keep is None else keep
    points = (analysis.status == POINT) & keep
    sizes = len({analysis.groups[j].student_params for j in np.flatnonzero(points)})
    needed = len(cls.parameters)
    if sizes >= needed:
        return
    if not points.any():
        raise InputError(unbracketed_message(analysis))
    raise InputError(f"the {cls.name} law needs measured (uncensored) optima at {needed} or more student sizes; "
                     f"found {sizes} (of {len(analysis.groups)} optima, {int((analysis.status != POINT).sum())} censored)")


def ladder_advice(optima: Sequence[StudentOptimum]) -> list[str]:
    """Which way to extend the teacher ladders of censored optima, one line per direction."""
    above = [o for o in optima if o.censored == "at_least"]
    below = [o for o in optima if o.censored == "at_most"]
    advice = []
    if above:
        largest = max(max(o.teachers) for o in above)
        advice.append(f"{len(above)} best at the largest teacher: add teachers above {format_size(largest)}")
    if below:
        smallest = min(min(o.teachers) for o in below)
        advice.append(f"{len(below)} best at the smallest teacher: add teachers below {format_size(smallest)}")
    return advice


def unbracketed_message(analysis: OptimaAnalysis) -> str:
    """What to tell a user whose teacher ladders bracket no optimum, and which way to extend them."""
    return ("the teacher ladder does not bracket the optimum for any student (all "
            f"{len(analysis.optima)} optima censored; {'; '.join(ladder_advice(analysis.optima))}); "
            "no law or interval can be fitted")


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


def fit_curve_to_optima(cls: type[CurveLaw], analysis: OptimaAnalysis, options: FitOptions,
                        keep: np.ndarray | None = None) -> CurveLaw:
    """Fit the curve to the optima (``keep``: a mask of groups to use, for cross-validation)."""
    keep = np.ones(len(analysis.groups), dtype=bool) if keep is None else keep
    check_enough_optima(cls, analysis, keep)
    log_student = analysis.log_student[keep]
    log_scale = float(log_student.mean())
    u, sigma = log_student - log_scale, analysis.log_sigma[keep]
    status, y = analysis.status[keep], analysis.log_optimum[keep] - log_scale
    theta = _fit_theta(cls, u, y, sigma, status)

    samples: list[dict[str, float]] = []
    failed = 0
    if options.bootstrap > 0:
        rng = np.random.default_rng([options.seed, 1])
        boot_status, boot_location = analysis.resample(options.bootstrap, rng)
        boot_status, boot_location = boot_status[:, keep], boot_location[:, keep] - log_scale
        # A resample needs measured optima at as many student sizes as the curve has parameters.
        sizes_measured = np.array([len(np.unique(u[row == POINT])) for row in boot_status])
        usable = sizes_measured >= len(cls.parameters)
        failed = int((~usable).sum())
        if usable.any():
            draws = _fit_theta_batch(cls, u, boot_location[usable], sigma, boot_status[usable], theta)
            natural = cls.natural(draws, log_scale)
            samples = [{name: float(natural[name][i]) for name in cls.parameters} for i in range(draws.shape[0])]

    coefficients = {name: float(value) for name, value in cls.natural(theta, log_scale).items()}
    intervals = {}
    for name in cls.parameters:
        low, high = quantile_interval([s[name] for s in samples], options.level)
        if np.isfinite(low):
            intervals[name] = [low, high]
    optima = [o for o, k in zip(analysis.optima, keep) if k]
    run_ids = analysis.run_ids(keep)
    students = [o.student_params for o in optima]
    file = LawFile(
        law=cls.name, coefficients=coefficients, intervals=intervals, samples=samples, optima=optima,
        size_measure=options.size_measure, metric=options.metric, direction=options.direction,
        n_runs=len(run_ids), runs_hash=ids_hash(run_ids), student_range=[min(students), max(students)],
        level=options.level, fitted=True,
        provenance=(f"fitted by capgap from {len(run_ids)} runs ({len(optima)} per-student optima); "
                    f"{options.metric}, {options.direction} is better; {options.size_measure} sizes; "
                    f"{options.bootstrap} bootstrap resamples over whole runs, seed {options.seed}"),
        diagnostics={"formula": cls.formula, "goodness": _goodness(cls, theta, u, y, status),
                     "bootstrap": {"resamples": options.bootstrap, "failed": failed}},
    )
    return cls(file)


def _goodness(cls: type[CurveLaw], theta: np.ndarray, u: np.ndarray, y: np.ndarray, status: np.ndarray) -> dict:
    """In-sample fit on log T*: RMSE over measured optima, and how many censored bounds the curve respects."""
    f = cls.log_curve(theta, u)
    point = status == POINT
    residual = f[point] - y[point]
    respected = int(np.sum((f >= y - 1e-9)[status == AT_LEAST]) + np.sum((f <= y + 1e-9)[status == AT_MOST]))
    return {"rmse_log": float(np.sqrt(np.mean(residual**2))), "max_abs_log": float(np.max(np.abs(residual))),
            "n_points": int(point.sum()), "n_censored": int((~point).sum()), "censored_respected": respected}
