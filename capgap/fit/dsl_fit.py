"""Fitting the `dsl` law (capgap.laws.dsl) to runs that carry teacher_loss and tokens.

Fitting follows the paper: Huber loss on log loss, a grid of L-BFGS-B starts
with bounds, positive constants in log space. The supervised law is fitted
first (on the teachers), then the distillation law with it held fixed.
Constants the data cannot pin down are held at the published values, and the
law file says which.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from capgap.core.errors import InputError
from capgap.fit.solver import (HUBER_DELTA, bootstrap_indices, grid_starts, huber, minimize_multistart,
                               quantile_interval, replicate_error)
from capgap.laws.base import BootstrapReport, FitOptions, Goodness, LawDiagnostics, LawFile, SizeMeasure
from capgap.laws.dsl import (DISTILLATION, PUBLISHED, SUPERVISED, DSLLaw, TeacherTokens, extrapolation_text,
                             nonembed_lookup, rule_dict, run_sizes, student_loss, supervised_loss, tokens_text)
from capgap.runs.records import RunRecord, runs_hash
from capgap.sizes.units import TOKENS_PER_PARAM


# Fitted space: positive scales in log space (the log-sum-exp parameterisation), exponents as they are.
_SUP_BOUNDS = {"E": (-3.0, 2.5), "A": (0.0, 30.0), "B": (0.0, 30.0), "alpha": (0.02, 1.5),
               "beta": (0.02, 1.5), "gamma": (0.1, 2.0)}
_DIS_BOUNDS = {"A2": (0.0, 30.0), "B2": (0.0, 30.0), "alpha2": (0.02, 1.5), "beta2": (0.02, 1.5),
               "gamma2": (0.1, 2.0), "c0": (0.0, 10.0), "c1": (0.0, 12.0), "f1": (0.005, 1.0),
               "d1": (-1.0, 1.5)}
_LOG_SCALED = {"E", "A", "B", "A2", "B2", "c1", "d1"}
# Extra starting values per constant (fitted space), beside the published one.
_SUP_GRID = {"E": (math.log(1.0), math.log(2.0)), "alpha": (0.25, 0.5)}
_DIS_GRID = {"c0": (1.0, 4.0), "d1": (math.log(1.1), math.log(1.6)), "f1": (0.04, 0.2)}
BOOTSTRAP_FTOL = 1e-7  # relative objective change that ends a warm-started bootstrap refit


def _to_space(name: str, value: float) -> float:
    return math.log(value) if name in _LOG_SCALED else float(value)


def _from_space(name: str, value: float) -> float:
    return math.exp(value) if name in _LOG_SCALED else float(value)


# -- the law itself ----------------------------------------------------------
# -- fitting: log residuals and their Jacobians in the fitted space ----------
def _supervised_residuals(theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray,
                          log_obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log L(N, D) - log observed, and its Jacobian over (log E, log A, log B, alpha, beta, gamma)."""
    from scipy.special import expit

    e, a, b, alpha, beta, gamma = theta
    t1, t2 = a - alpha * log_n, b - beta * log_d
    m = np.logaddexp(t1, t2)
    p1 = expit(t1 - t2)
    log_pred = np.logaddexp(e, gamma * m)
    q1 = expit(e - gamma * m)
    q2 = 1.0 - q1
    jac = np.column_stack([q1, q2 * gamma * p1, q2 * gamma * (1 - p1), -q2 * gamma * p1 * log_n,
                           -q2 * gamma * (1 - p1) * log_d, q2 * m])
    return log_pred - log_obs, jac


def _distillation_residuals(theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_lt: np.ndarray,
                            log_lsup: np.ndarray, log_obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log L_S - log observed, and its Jacobian over the fitted space of DISTILLATION."""
    from scipy.special import expit

    a2, b2, alpha2, beta2, gamma2, c0, log_c1, f1, log_d1 = theta
    t1, t2 = a2 - alpha2 * log_n, b2 - beta2 * log_d
    m = np.logaddexp(t1, t2)
    p1 = expit(t1 - t2)
    z = (log_lt - log_lsup - log_d1) / f1
    softplus, sigma = np.logaddexp(0.0, z), expit(z)
    c1 = math.exp(log_c1)
    gap = -c1 * f1 * softplus
    excess = np.exp(-c0 * log_lt + gap + gamma2 * m)  # L_S - L_T
    lt = np.exp(log_lt)
    pred = lt + excess
    share = excess / pred  # d log L_S / d (log of the excess term)
    jac = share[:, None] * np.column_stack([
        gamma2 * p1, gamma2 * (1 - p1), -gamma2 * p1 * log_n, -gamma2 * (1 - p1) * log_d, m,
        -log_lt, gap, -c1 * (softplus - z * sigma), c1 * sigma])
    return np.log(pred) - log_obs, jac


def _fit_huber(residuals, names: Sequence[str], start: Mapping[str, float], free: Sequence[str],
               bounds: Mapping[str, tuple[float, float]], grid: Mapping[str, Sequence[float]] | None,
               delta: float) -> tuple[dict[str, float], float]:
    """Minimise the Huber loss of ``residuals(theta)`` over the ``free`` names (fitted space).

    ``start`` gives every name's value (the fixed ones stay there); ``grid`` adds
    starting values per free name. Without a grid (a bootstrap refit warm-started
    at the fit) one L-BFGS-B run with a looser tolerance. Returns the best full
    point and its mean Huber loss.
    """
    template = np.array([start[n] for n in names], dtype=float)
    index = [names.index(n) for n in free]

    def objective(x: np.ndarray) -> tuple[float, np.ndarray]:
        theta = template.copy()
        theta[index] = x
        r, jac = residuals(theta)
        # Scaled by 1/delta^2 so that L-BFGS-B's absolute gradient tolerance is not met too early.
        value = float(np.sum(huber(r, delta))) / delta**2
        grad = (np.clip(r, -delta, delta) / delta**2) @ jac[:, index]
        if not np.isfinite(value):
            return math.inf, np.zeros(len(index))
        return value, grad

    box = [bounds[n] for n in free]
    if grid is None:
        from scipy.optimize import minimize

        result = minimize(objective, template[index], method="L-BFGS-B", jac=True, bounds=box,
                          options={"ftol": BOOTSTRAP_FTOL})
    else:
        axes = {n: sorted({start[n], *grid.get(n, ())}) for n in free}
        result = minimize_multistart(objective, grid_starts(axes), bounds=box, jac=True)
    theta = template.copy()
    theta[index] = result.x
    n_points = len(residuals(theta)[0])
    return dict(zip(names, theta)), float(result.fun) * delta**2 / n_points


# -- fitting from runs -------------------------------------------------------------
@dataclass(frozen=True)
class _Runs:
    """The columns the fit needs, one entry per run (sizes in ``measure``)."""

    student: np.ndarray
    tokens: np.ndarray
    teacher: np.ndarray
    teacher_tokens: np.ndarray
    teacher_loss: np.ndarray
    observed: np.ndarray
    measure: SizeMeasure
    notes: tuple[str, ...]
    assumed: bool = False  # teacher_loss not measured: taken from the supervised law (``assumed_teacher_loss``)

    def take(self, index: np.ndarray) -> "_Runs":
        return _Runs(self.student[index], self.tokens[index], self.teacher[index], self.teacher_tokens[index],
                     self.teacher_loss[index], self.observed[index], self.measure, self.notes, self.assumed)

    def teacher_points(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Distinct (teacher size, teacher tokens) with their mean log loss."""
        keys = np.column_stack([self.teacher, self.teacher_tokens])
        unique, inverse = np.unique(keys, axis=0, return_inverse=True)
        log_loss = np.bincount(inverse.ravel(), weights=np.log(self.teacher_loss)) / np.bincount(inverse.ravel())
        return unique[:, 0], unique[:, 1], log_loss

    def student_groups(self) -> list[str]:
        return [f"{n:.0f}/{d:.0f}" for n, d in zip(self.student, self.tokens)]


def _teacher_token_counts(runs: Sequence[RunRecord], assumed: float | None) -> tuple[np.ndarray, str | None]:
    """Teacher training tokens from ``teacher_tokens`` (or an older store's ``extra['teacher_tokens']``), or one
    common assumed count."""
    present = [g for g in (r.teacher_token_count() for r in runs) if g is not None]
    if present and len(present) < len(runs):
        raise InputError(f"{len(runs) - len(present)} of {len(runs)} runs lack teacher_tokens; "
                         "give the teachers' training tokens for every run or for none")
    if present:
        return np.array(present, dtype=float), None
    common = assumed if assumed is not None else TOKENS_PER_PARAM * max(r.teacher_params for r in runs)
    how = "given" if assumed is not None else "assumed: 20 tokens per parameter of the largest teacher"
    return np.full(len(runs), float(common)), f"no run gives teacher_tokens: every teacher taken as trained on {common:.3g} tokens ({how})"


def _collect(runs: Sequence[RunRecord], options: FitOptions, teacher_tokens: float | None,
             supervised: Mapping[str, float]) -> _Runs:
    """The fit's columns. Where no run carries ``teacher_loss``, each teacher's loss is the ``supervised`` law's at
    its size and training tokens (``assumed`` set; see ``assumed_teacher_loss``)."""
    if options.direction != "lower":
        raise InputError(f"the dsl law models cross-entropy (lower is better); metric {options.metric!r} is "
                         "higher-is-better: fit a loss metric such as eval_loss, or use --law ratio|linear|power")
    if options.family is not None:
        runs = [r for r in runs if r.family == options.family]
        if not runs:
            raise InputError(f"no runs of family {options.family!r}")
    with_metric = [r for r in runs if r.metric(options.metric) is not None]
    if not with_metric:
        names = sorted({m for r in runs for m in r.metrics})
        raise InputError(f"no run has metric {options.metric!r}; metrics found: {', '.join(names) or 'none'}")
    assumed = all(r.teacher_loss is None for r in with_metric)  # none measured: all taken from the supervised law
    lacking = [r for r in with_metric if r.tokens is None or (r.teacher_loss is None and not assumed)]
    if lacking:
        raise InputError(f"{len(lacking)} of {len(with_metric)} runs lack teacher_loss or tokens; the dsl law needs "
                         "tokens for every run, and teacher_loss (the teacher's held-out loss in nats/token) for "
                         "every run or for none (then it is assumed from the supervised law)")
    runs = with_metric
    notes: list[str] = []
    lookup = nonembed_lookup()
    students, teachers = run_sizes(runs, "student", lookup), run_sizes(runs, "teacher", lookup)
    measure: SizeMeasure = "nonembed"
    if None in students or None in teachers:
        missing = sum(s is None or t is None for s, t in zip(students, teachers))
        if options.size_measure == "nonembed":
            raise InputError(f"{missing} of {len(runs)} runs lack non-embedding sizes (student_params_nonembed, "
                             "teacher_params_nonembed); give them, or fit on --size total")
        measure = "total"
        students, teachers = [r.student_params for r in runs], [r.teacher_params for r in runs]
        message = (f"{missing} of {len(runs)} runs lack non-embedding sizes: the dsl law is fitted on total sizes "
                   "(Busbridge et al. use non-embedding sizes; the fitted constants absorb the difference)")
        warnings.warn(message, stacklevel=3)
        notes.append(message)
    teacher_token_counts, tokens_note = _teacher_token_counts(runs, teacher_tokens)
    if tokens_note:
        notes.append(tokens_note)
    teacher = np.array(teachers, dtype=float)
    teacher_loss = (assumed_teacher_loss(supervised, teacher, teacher_token_counts) if assumed
                    else np.array([r.teacher_loss for r in runs], dtype=float))
    return _Runs(student=np.array(students, dtype=float), tokens=np.array([r.tokens for r in runs], dtype=float),
                 teacher=teacher, teacher_tokens=teacher_token_counts, teacher_loss=teacher_loss,
                 observed=np.array([r.metric(options.metric) for r in runs], dtype=float),
                 measure=measure, notes=tuple(notes), assumed=assumed)


def assumed_teacher_loss(supervised: Mapping[str, float], teacher: np.ndarray, teacher_tokens: np.ndarray) -> np.ndarray:
    """Teacher losses where no run measured them: the supervised law L(N_T, D_T) at each teacher's size and tokens.

    Why a law of teacher loss and not a curve in ln T: the distilled student's loss depends on its teacher through
    the teacher's loss (Busbridge et al., Eq. 8), and the curve families cannot follow the curve in ln T that this
    makes (steep toward small teachers, a long floor toward large ones; docs/fit.md). With the published
    supervised constants this holds for teachers trained as Busbridge et al.'s were (their data, tokenizer and
    recipe), and nothing in the runs can check it: the fit says so first, and auto weighs it on held-out runs
    like any family, which rejects it where the assumed losses do not match the students' curves."""
    return np.asarray(supervised_loss(supervised, teacher, teacher_tokens), dtype=float)


def _default_free(data: _Runs) -> tuple[list[str], list[str]]:
    """Which constants the data can pin down: (supervised, distillation); the rest stay published.

    Always fitted: the supervised law's E, A, alpha (from the teachers) and the
    distillation law's A2, c0, d1. The token terms need several tokens-per-
    parameter ratios (else D and N move together), the transition shape
    (c1, f1) and the gammas need many runs.
    """
    n_t, d_t, _ = data.teacher_points()
    n_teachers = len(n_t)
    teacher_token_counts = len(np.unique(np.round(np.log(d_t / n_t), 1)))  # distinct tokens per parameter
    groups = len(set(data.student_groups()))
    ratios = len(np.unique(np.round(np.log(data.tokens / data.student), 1)))
    supervised = ["E", "A", "alpha"]
    if teacher_token_counts >= 2 and n_teachers >= 6:
        supervised += ["B", "beta"]
    if teacher_token_counts >= 3 and n_teachers >= 12:
        supervised += ["gamma"]
    distillation = ["A2", "c0", "d1"]
    if groups >= 6 and ratios >= 2:
        distillation += ["B2", "alpha2", "beta2"]
    if len(data.observed) >= 40:
        distillation += ["c1", "f1"]
    if groups >= 12 and ratios >= 3:
        distillation += ["gamma2"]
    return supervised, [n for n in DISTILLATION if n in distillation]


def _in_space(names: Sequence[str], coef: Mapping[str, float]) -> dict[str, float]:
    return {n: _to_space(n, coef[n]) for n in names}


def _fit_once(data: _Runs, teachers: tuple[np.ndarray, np.ndarray, np.ndarray], start: Mapping[str, float],
              free_sup: Sequence[str], free_dis: Sequence[str], delta: float,
              multistart: bool) -> tuple[dict[str, float], dict[str, float]]:
    """One fit of both stages from ``start`` (natural coefficients); returns the coefficients and mean losses.

    ``teachers``: (size, tokens, log loss) of the teachers the supervised law is fitted on.
    """
    coef = dict(start)
    losses = {}
    if free_sup:
        n_t, d_t, log_lt = teachers
        log_n, log_d = np.log(n_t), np.log(d_t)
        theta, losses["supervised"] = _fit_huber(
            lambda th: _supervised_residuals(th, log_n, log_d, log_lt), SUPERVISED, _in_space(SUPERVISED, coef),
            free_sup, _SUP_BOUNDS, _SUP_GRID if multistart else None, delta)
        coef.update({n: _from_space(n, theta[n]) for n in free_sup})  # fixed ones stay exact
    log_n, log_d = np.log(data.student), np.log(data.tokens)
    log_lsup = np.log(supervised_loss(coef, data.student, data.tokens))
    log_lt, log_obs = np.log(data.teacher_loss), np.log(data.observed)
    theta, losses["distillation"] = _fit_huber(
        lambda th: _distillation_residuals(th, log_n, log_d, log_lt, log_lsup, log_obs), DISTILLATION,
        _in_space(DISTILLATION, coef), free_dis, _DIS_BOUNDS, _DIS_GRID if multistart else None, delta)
    coef.update({n: _from_space(n, theta[n]) for n in free_dis})
    return coef, losses


def _rule_for(data: _Runs) -> TeacherTokens:
    """How to give a recommended teacher its training tokens: as the measured teachers were."""
    n_t, d_t, _ = data.teacher_points()
    per_param = d_t / n_t
    if np.unique(d_t).size > 1 and np.ptp(np.log(per_param)) < 0.1:
        return TeacherTokens(per_param=float(np.median(per_param)))
    return TeacherTokens(common=float(np.median(d_t)))


def fit(runs: Sequence[RunRecord], options: FitOptions, *, supervised: Mapping[str, float] | None = None,
        teacher_tokens: float | None = None, free: Collection[str] | None = None,
        delta: float = HUBER_DELTA) -> DSLLaw:
    """Fit the distillation scaling law to runs that carry teacher_loss and tokens.

    ``supervised``: the supervised law's constants (E, A, B, alpha, beta, gamma)
    if known; otherwise they are fitted on the teachers' (size, tokens, loss).
    ``teacher_tokens``: the teachers' common training tokens where runs do not
    give ``extra['teacher_tokens']``. ``free``: the constants to fit (the rest
    stay at the published values); by default chosen by ``_default_free``.
    """
    start = dict(PUBLISHED)
    if supervised is not None:
        unknown = set(SUPERVISED) - set(supervised)
        if unknown:
            raise InputError(f"supervised law lacks {', '.join(sorted(unknown))}; give all of {', '.join(SUPERVISED)}")
        start.update({n: float(supervised[n]) for n in SUPERVISED})
    data = _collect(runs, options, teacher_tokens, start)
    auto_sup, auto_dis = _default_free(data)
    if free is not None:
        unknown = set(free) - set(SUPERVISED) - set(DISTILLATION)
        if unknown:
            raise InputError(f"unknown constant(s) {', '.join(sorted(unknown))}; accepted: {', '.join((*SUPERVISED, *DISTILLATION))}")
        auto_sup, auto_dis = [n for n in SUPERVISED if n in free], [n for n in DISTILLATION if n in free]
    # Assumed teacher losses are the supervised law's own values: fitting that law on them would only return it.
    free_sup = [] if supervised is not None or data.assumed else auto_sup
    n_teachers = len(data.teacher_points()[0])
    if free_sup and n_teachers < len(free_sup):
        raise InputError(f"fitting the teachers' supervised law needs teacher losses of at least {len(free_sup)} "
                         f"distinct teachers; found {n_teachers} (or give the supervised law's constants)")
    free_dis = auto_dis
    needed = len(free_dis) + 2
    if len(data.observed) < needed:
        raise InputError(f"the dsl law needs at least {needed} runs with teacher_loss and tokens to fit "
                         f"{', '.join(free_dis)}; found {len(data.observed)}")

    quick = options.quick and options.start is not None and all(n in options.start for n in (*free_sup, *free_dis))
    if quick:  # model choice's refit of nearly the same runs: one local search from that fit (fitted ones only)
        start.update({n: float(options.start[n]) for n in (*free_sup, *free_dis)})  # type: ignore[index]
    coef, losses = _fit_once(data, data.teacher_points(), start, free_sup, free_dis, delta, multistart=not quick)
    samples, failed = _bootstrap(data, coef, free_sup, free_dis, delta, options)
    fitted = [*free_sup, *free_dis]
    intervals = {}
    for name in fitted:
        low, high = quantile_interval([s[name] for s in samples], options.level)
        if math.isfinite(low):
            intervals[name] = [low, high]
    rule = _rule_for(data)
    residual = np.log(student_loss(coef, data.student, data.tokens, data.teacher_loss)) - np.log(data.observed)
    fixed = [n for n in (*SUPERVISED, *DISTILLATION) if n not in fitted]
    supervised_note = ("given by the user" if supervised is not None
                       else "published" if data.assumed else f"fitted on {n_teachers} teachers")
    if data.assumed:
        supervised_note += ("; no run measured teacher_loss: each teacher's loss is that law's at its size and "
                            "training tokens (assumed, not measured)")
    file = LawFile(
        law="dsl", coefficients=coef, intervals=intervals, samples=samples, size_measure=data.measure,
        metric=options.metric, direction="lower", n_runs=len(data.observed), runs_hash=runs_hash(runs),
        student_range=[float(data.student.min()), float(data.student.max())], level=options.level, fitted=True,
        provenance=(f"distillation scaling law of Busbridge et al. (arXiv 2502.08606, Eq. 1 and 8) fitted by capgap "
                    f"on {len(data.observed)} runs ({options.metric}, {data.measure} sizes); supervised law "
                    f"{supervised_note}; held at the published values: {', '.join(fixed) or 'none'}; "
                    f"Huber delta {delta:g} on log loss; {len(samples)} bootstrap resamples over runs, seed {options.seed}; "
                    + tokens_text(rule) + "".join(f"; {note}" for note in data.notes)),
        teacher_tokens=rule_dict(rule),
        diagnostics=LawDiagnostics(
            formula="L_S = L_T + L_T^-c0 (1 + (L_T/(L(N_S,D_S) d1))^(1/f1))^(-c1 f1) (A2/N_S^alpha2 + B2/D_S^beta2)^gamma2",
            free=fitted, fixed_at_published=fixed, huber_delta=delta, teacher_loss_assumed=data.assumed,
            goodness=Goodness(rmse_log=float(np.sqrt(np.mean(residual**2))),
                              rmse=float(np.sqrt(np.mean((np.expm1(residual) * data.observed) ** 2))),
                              max_abs_log=float(np.max(np.abs(residual))), mean_huber=losses),
            teacher_range=[float(data.teacher.min()), float(data.teacher.max())],
            teacher_loss_range=None if quick else [float(data.teacher_loss.min()), float(data.teacher_loss.max())],
            bootstrap=BootstrapReport(method="resampling runs within student groups and teachers", resamples=options.bootstrap,
                                      failed=failed),
            notes=list(data.notes)),
    )
    if quick:
        return DSLLaw(file)
    held_out = _held_out_rmse(data, coef, free_sup, free_dis, delta)
    update: dict = {"goodness": file.diagnostics.goodness.model_copy(update={"held_out_rmse_log": held_out})}  # type: ignore[union-attr]
    pure = _pure_error(data)
    update["goodness"] = update["goodness"].model_copy(update={"pure_error_log": pure})
    lack = _lack_of_fit(held_out, float(np.sqrt(np.mean(residual**2))), pure, options.metric)
    if lack:
        update["no_interval"] = lack
    file.diagnostics = file.diagnostics.model_copy(update=update)
    law = DSLLaw(file)
    first = [*([assumed_warning(supervised is not None)] if data.assumed else []),
             *_extrapolation_warnings(law, data), *([lack] if lack else [])]
    file.diagnostics = file.diagnostics.model_copy(update={"warnings": [
        *first, *file.diagnostics.warnings, *_self_check(law, data, coef, fitted, failed, options)]})
    return DSLLaw(file)


def assumed_warning(given: bool) -> str:
    """The first warning of a dsl fit whose teacher losses are assumed, not measured."""
    source = ("the supervised law given" if given else
              "Busbridge et al.'s published supervised law (their data, tokenizer and training recipe)")
    return (f"teacher losses assumed, not measured: no run carries teacher_loss, so each teacher's loss is taken from "
            f"{source} at its size and training tokens; the optimum holds only for teachers trained that way, and "
            "nothing in these runs checks it: add each teacher's held-out loss (teacher_loss) to the runs and refit")


# An in-sample RMSE with assumed teacher losses above this multiple of a curve family's on the same runs: the
# assumed losses do not match these students. Set by simulation (docs/fit.md, "Teacher losses assumed"): with the
# supervised law right the ratio was 0.6-1.6, with one of its constants changed 2.1-33.
ASSUMED_LOSS_RATIO = 2.0


def assumed_loss_misfit(law: DSLLaw, curve_rmse: float, curve_family: str) -> DSLLaw:
    """``law`` (fitted on assumed teacher losses) checked against a curve family's in-sample RMSE on the same runs
    (metric units). A curve family follows each student's curve within its noise wherever the curve is smooth; a
    law of teacher loss built on the wrong teacher losses cannot, so its RMSE well above the curve family's says
    the assumption fails. Then the optimum is given without an interval and the warning comes first (auto then
    leaves dsl out, as for any dsl fit whose own check fires)."""
    d = law.file.diagnostics
    rmse = d.goodness.rmse if d.goodness else None
    if not d.teacher_loss_assumed or rmse is None or not curve_rmse > 0 or rmse <= ASSUMED_LOSS_RATIO * curve_rmse:
        return law
    lack = (f"lack of fit: the dsl law with assumed teacher losses does not follow these runs (RMSE of "
            f"{law.file.metric} {rmse:.3g} in sample against {curve_rmse:.3g} for the {curve_family} curve family, "
            f"{rmse / curve_rmse:.1f}x; above {ASSUMED_LOSS_RATIO:g}x the assumed losses do not match these "
            "teachers): its optimal teachers are given without an interval; add teacher_loss to the runs, or use "
            "--law auto")
    law.file.diagnostics = d.model_copy(update={"no_interval": d.no_interval or lack,
                                                "warnings": [lack, *d.warnings]})
    return DSLLaw(law.file)


# Held-out RMSE of log loss over in-sample RMSE, and in-sample RMSE over the spread of repeated seeds, beyond
# which the law is said not to follow the runs. Set by simulation on runs that follow the law
# (bench/dsl_held_out_threshold.py): see docs/laws.md for the false-alarm rates.
HELD_OUT_RATIO = 1.5
PURE_ERROR_RATIO = 2.0


def _pure_error(data: _Runs) -> float | None:
    """The standard deviation of log loss between repeated runs of one (student, tokens, teacher); None: no repeats."""
    total, df = replicate_error(np.column_stack([data.student, data.tokens, data.teacher]), np.log(data.observed))
    return float(np.sqrt(total / df)) if df > 0 else None


def _held_out_rmse(data: _Runs, coef: Mapping[str, float], free_sup: Sequence[str], free_dis: Sequence[str],
                   delta: float) -> float | None:
    """Leave-one-student-size-out RMSE of the log metric: each student size in turn is left out, the law refitted
    on the rest (the same free constants, one local search from the fit) and the left-out runs predicted from their
    teachers' measured losses. None with fewer than 3 student sizes (a fit on one size says nothing of others)."""
    sizes = np.unique(data.student)
    if sizes.size < 3:
        return None
    squared = []
    for size in sizes:
        train, test = data.take(np.flatnonzero(data.student != size)), data.take(np.flatnonzero(data.student == size))
        teachers = train.teacher_points()
        if free_sup and teachers[0].size < len(free_sup):
            return None
        refit, _ = _fit_once(train, teachers, coef, free_sup, free_dis, delta, multistart=False)
        predicted = student_loss(refit, test.student, test.tokens, test.teacher_loss)
        squared.append((np.log(predicted) - np.log(test.observed)) ** 2)
    return float(np.sqrt(np.mean(np.concatenate(squared))))


def _lack_of_fit(held_out: float | None, in_sample: float, pure: float | None, metric: str) -> str | None:
    """The lack-of-fit warning where held-out error is markedly above in-sample error, or in-sample error far
    above the spread of repeated seeds (None: no sign of either)."""
    advice = "its optimal teachers are given without an interval; compare a curve family (--law auto)"
    if pure is not None and pure > 0 and in_sample > PURE_ERROR_RATIO * pure:
        return (f"lack of fit: the dsl law does not follow these runs (RMSE of log {metric} {in_sample:.3g} in "
                f"sample against {pure:.3g} between repeated seeds, {in_sample / pure:.1f}x; above "
                f"{PURE_ERROR_RATIO:g}x the misfit is systematic): {advice}")
    if held_out is None or not held_out > HELD_OUT_RATIO * in_sample:
        return None
    return (f"lack of fit: the dsl law predicts left-out student sizes far worse than the runs it was fitted on "
            f"(leave-one-student-size-out RMSE of log {metric} {held_out:.3g} against {in_sample:.3g} in sample, "
            f"{held_out / in_sample:.1f}x; above {HELD_OUT_RATIO:g}x the law does not follow these runs across "
            f"sizes): {advice}, or measure more student sizes")


def _extrapolation_warnings(law: DSLLaw, data: _Runs) -> list[str]:
    """One warning per side for the student groups fitted on whose optimum lies outside the measured teacher
    losses; and one for interval ends dropped beyond the measured teachers."""
    from capgap.sizes.units import format_size

    groups = sorted(set(zip(data.student.tolist(), data.tokens.tolist())))
    out: list[str] = []
    for side in ("at_least", "at_most"):
        beyond = [g for g in groups if law._outside(*g) == side]
        if beyond:
            out.append(extrapolation_text(beyond, law, side))  # type: ignore[arg-type]
    span = law.file.diagnostics.teacher_range or [0.0, math.inf]
    cut = []
    for student, tokens in groups:
        raw, kept = law.law_optimum(student, tokens), law.optimal_teacher(student, tokens)
        if (kept.censored is None and raw.censored is None and not law.file.diagnostics.no_interval
                and (raw.low, raw.high) != (kept.low, kept.high)):
            cut.append(format_size(student))
    if cut:
        out.append(f"the {law.file.level:.0%} interval of the optimal teacher of the {', '.join(cut)} "
                   f"student{'s' if len(cut) > 1 else ''} reaches beyond the teachers measured "
                   f"({format_size(span[0])}-{format_size(span[1])}): that end is dropped (the interval is one-sided)")
    return out


FAR_RATIO = 1e4  # an optimal teacher beyond 10^4x its student is a broken fit, not a finding


def _self_check(law: DSLLaw, data: _Runs, coef: Mapping[str, float], fitted: Sequence[str], failed: int,
                options: FitOptions) -> list[str]:
    """The fit's checks of itself: constants at their bounds, intervals that did not spread, absurd answers."""
    warnings_: list[str] = []
    bounds = {**_SUP_BOUNDS, **_DIS_BOUNDS}
    at_bound = [n for n in fitted if min(abs(_to_space(n, coef[n]) - b) for b in bounds[n]) < 1e-4 * (1 + abs(bounds[n][1]))]
    if at_bound:
        warnings_.append(f"{', '.join(at_bound)} at the bound of the search range: the runs do not pin "
                         f"{'it' if len(at_bound) == 1 else 'them'} down, and the optimum built on "
                         f"{'it' if len(at_bound) == 1 else 'them'} is not evidence")
    empty = [n for n in fitted if law.file.intervals.get(n) is None]
    if empty and options.bootstrap > 0:
        warnings_.append(f"no interval for {', '.join(empty)}: the bootstrap resamples did not spread")
    if failed:
        warnings_.append(f"{failed} of {options.bootstrap} bootstrap resamples could not be refitted and are left out")
    ratios, beyond = [], 0
    for student, tokens in sorted(set(zip(data.student, data.tokens))):
        estimate = law.law_optimum(student, tokens)
        if estimate.censored:
            beyond += 1
        else:
            ratios.append(estimate.estimate / student)
    if beyond:
        warnings_.append(f"for {beyond} of the student groups fitted on, the law finds no finite best teacher "
                         "(larger is always better): it reports a bound, not an optimum")
    if ratios and min(ratios) < 1.0:
        warnings_.append(f"the optimal teacher comes out smaller than its student ({min(ratios):.2g}x) for students "
                         "fitted on: outside what the law means")
    if ratios and max(ratios) > FAR_RATIO:
        warnings_.append(f"the optimal teacher comes out {max(ratios):.3g}x its student: beyond any measured teacher, "
                         "the fit is extrapolating")
    return warnings_


def _bootstrap(data: _Runs, coef: Mapping[str, float], free_sup: Sequence[str], free_dis: Sequence[str],
               delta: float, options: FitOptions) -> tuple[list[dict[str, float]], int]:
    """Refit on resamples, warm-started at the fit.

    Runs are resampled within each student group; the teachers (one measured
    loss each, shared by all their runs) are resampled on their own, so the
    supervised law's uncertainty reaches the optimal teacher's interval.
    """
    samples: list[dict[str, float]] = []
    failed = 0
    rng = np.random.default_rng([options.seed, 3])
    teachers = data.teacher_points()
    for index in bootstrap_indices(len(data.observed), options.bootstrap, rng, groups=data.student_groups()):
        drawn = rng.integers(0, len(teachers[0]), size=len(teachers[0]))
        if free_sup and np.unique(drawn).size < len(free_sup):
            failed += 1  # too few distinct teachers drawn to refit the supervised law
            continue
        draw, _ = _fit_once(data.take(index), tuple(t[drawn] for t in teachers), coef, free_sup, free_dis,
                            delta, multistart=False)
        samples.append(draw)
    return samples, failed
