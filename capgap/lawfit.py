"""Fit a law of the optimal teacher from runs: validate, locate optima, pick and fit a family.

``fit_law(runs, law="auto")`` compares the families that can be fitted by
leave-one-student-size-out cross-validation: each student size in turn is held
out, every family is fitted on the rest and predicts the held-out optimal
teacher through the common face (``law.optimal_teacher``). The error is on
log T*; a censored held-out optimum only counts when the prediction falls on
the wrong side of its bound. The family with the lowest RMSE wins (the simpler
one on a tie), and ``file.diagnostics['cv']`` records every score.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Sequence

import numpy as np

from capgap.errors import InputError
from capgap.laws.base import FitOptions, Law, law_class
from capgap.records import RunRecord, metric_direction

CURVE_FAMILIES = ("ratio", "power", "linear")  # simplest first: the tie-break order
FAMILIES = (*CURVE_FAMILIES, "dsl")
LAW_CHOICES = ("auto", *FAMILIES)
DEFAULT_METRIC = "eval_loss"


def fit_law(runs: Sequence[RunRecord], law: str = "auto", metric: str | None = None,
            higher_is_better: bool | None = None, size_measure: str = "total", family: str | None = None,
            bootstrap: int = 1000, seed: int = 0, level: float = 0.9, student_init: str | None = None) -> Law:
    """Fit the law of the optimal teacher to runs.

    ``law``: auto, ratio, linear, power or dsl. ``metric``: default eval_loss.
    ``higher_is_better``: the metric's direction where its name does not say
    (unknown names are taken as lower-is-better, with a warning).
    ``family`` and ``student_init`` keep only runs of that family / init.
    """
    import scipy.optimize  # noqa: F401  scipy ships its own OpenBLAS: load it so the limit below reaches it
    from threadpoolctl import threadpool_limits

    # Thousands of tiny solves: BLAS threads only fight over the cores (60x slower seen on 2 busy cores).
    with threadpool_limits(limits=1, user_api="blas"):
        fitted = _fit_law(runs, law, metric, higher_is_better, size_measure, family, bootstrap, seed, level,
                          student_init)
    filters = [f"{name} {value}" for name, value in (("family", family), ("student_init", student_init)) if value]
    if filters:  # a law fitted on a subset of the runs says which
        fitted.file.provenance += f"; only runs with {' and '.join(filters)}"
    return fitted


def _fit_law(runs: Sequence[RunRecord], law: str, metric: str | None, higher_is_better: bool | None,
             size_measure: str, family: str | None, bootstrap: int, seed: int, level: float,
             student_init: str | None) -> Law:
    if law not in LAW_CHOICES:
        raise InputError(f"law {law!r} is unknown; accepted: {', '.join(LAW_CHOICES)}")
    if bootstrap < 0:
        raise InputError(f"bootstrap must be 0 or more resamples; got {bootstrap}")
    if size_measure not in ("total", "nonembed"):
        raise InputError(f"size measure {size_measure!r} is unknown; accepted: total, nonembed")
    if not 0.0 < level < 1.0:
        raise InputError(f"level must lie between 0 and 1 (0.9 for a 90% interval); got {level}")
    runs = _runs_of_family(runs, family)
    if student_init is not None:
        inits = sorted({r.student_init for r in runs})
        runs = [r for r in runs if r.student_init == student_init]
        if not runs:
            raise InputError(f"no runs with student_init {student_init!r}; the runs have: {', '.join(inits)}")
    metric = _choose_metric(runs, metric)
    runs = [r for r in runs if r.metric(metric) is not None]
    options = FitOptions(metric=metric, direction=_direction(metric, higher_is_better), size_measure=size_measure,
                         family=family, bootstrap=bootstrap, seed=seed, level=level)
    from capgap.laws.curve import fit_curve_to_optima, ladder_advice
    from capgap.optima import analyse_optima

    if law == "dsl":
        return _dsl_module().fit(runs, options)
    analysis = analyse_optima(runs, options)
    comparison = None
    if law == "auto":
        comparison = compare_families(runs, analysis, options)
        law = comparison["winner"]
        if law == "dsl":
            fitted = _dsl_module().fit(runs, options)
            fitted.file.diagnostics["cv"] = comparison
            return fitted
    fitted = fit_curve_to_optima(law_class(law), analysis, options)
    diagnostics = fitted.file.diagnostics
    diagnostics["optima"] = {"groups": len(analysis.groups),
                             "censored": sum(o.censored is not None for o in analysis.optima),
                             "extend_ladder": ladder_advice(analysis.optima),
                             "skipped_too_few_teachers": [f"{name} ({n} teacher sizes)" for name, n in analysis.skipped]}
    if comparison is not None:
        diagnostics["cv"] = comparison
    return fitted


def _runs_of_family(runs: Sequence[RunRecord], family: str | None) -> list[RunRecord]:
    if not runs:
        raise InputError("no runs given; a law needs runs of students distilled from at least 3 teacher sizes each")
    if family is None:
        return list(runs)
    kept = [r for r in runs if r.family == family]
    if not kept:
        raise InputError(f"no runs of family {family!r}; families present: {', '.join(sorted({r.family for r in runs}))}")
    return kept


def _choose_metric(runs: Sequence[RunRecord], metric: str | None) -> str:
    present = sorted({name for r in runs for name in r.metrics})
    if metric is None:
        if DEFAULT_METRIC in present:
            return DEFAULT_METRIC
        if len(present) == 1:
            return present[0]
        raise InputError(f"no {DEFAULT_METRIC} in the runs; choose a metric with --metric from: {', '.join(present)}")
    if metric not in present:
        raise InputError(f"metric {metric!r} is in none of the runs; metrics present: {', '.join(present)}")
    return metric


def _direction(metric: str, higher_is_better: bool | None) -> str:
    if higher_is_better is not None:
        return "higher" if higher_is_better else "lower"
    known = metric_direction(metric)
    if known is None:
        warnings.warn(f"direction of metric {metric!r} is unknown; taking lower as better "
                      "(say --higher-is-better if it is not)", stacklevel=3)
        return "lower"
    return known


def _dsl_module():
    return importlib.import_module("capgap.laws.dsl")  # lazily: its fits import scipy


def _dsl_applicable(runs: Sequence[RunRecord]) -> str | None:
    """Why dsl cannot take part in auto, or None when it can."""
    lacking = sum(r.teacher_loss is None or r.tokens is None for r in runs)
    return f"{lacking} of {len(runs)} runs lack teacher_loss or tokens" if lacking else None


def compare_families(runs: Sequence[RunRecord], analysis, options: FitOptions) -> dict:
    """Leave-one-student-size-out CV error on log T* of every family that can be fitted on each fold."""
    quiet = options.model_copy(update={"bootstrap": 0})
    sizes = sorted({g.student_params for g in analysis.groups})
    errors: dict[str, list[float]] = {}
    excluded: dict[str, str] = {}
    candidates = list(CURVE_FAMILIES)
    reason = _dsl_applicable(runs)
    if reason is None:
        candidates.append("dsl")
    else:
        excluded["dsl"] = reason
    if len(sizes) < 2:
        excluded.update({name: "cross-validation needs 2 or more student sizes" for name in candidates})
        candidates = []
    teachers_law = None
    if "dsl" in candidates:
        # The teachers' own supervised law L(N, D) is a fact about the teachers, not about any held-out
        # student: fit it once on all runs and let each fold refit only the distillation part (20x faster).
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                full = _dsl_module().fit(runs, quiet)
            teachers_law = {name: full.file.coefficients[name] for name in _dsl_module().SUPERVISED}
        except InputError as exc:
            candidates.remove("dsl")
            excluded["dsl"] = str(exc)
    for name in candidates:
        try:
            errors[name] = [error for size in sizes
                            for error in _held_out_errors(name, size, runs, analysis, quiet, teachers_law)]
        except InputError as exc:
            excluded[name] = str(exc)
    scores = {name: float(np.sqrt(np.mean(np.square(e)))) for name, e in errors.items() if e}
    excluded.update({name: "no held-out optimum to score" for name, e in errors.items() if not e})
    result = {"method": "leave-one-student-size-out", "metric": "RMSE of log optimal teacher",
              "rule": "the simplest family within one standard error of the best mean squared error",
              "folds": len(sizes), "scores": scores, "excluded": excluded}
    if not scores:
        # Nothing can be cross-validated: the one-parameter reading is the only defensible choice.
        result.update(winner="ratio", runner_up=None, margin=None,
                      note="no family could be cross-validated; ratio chosen as the simplest")
        return result
    winner = _one_standard_error_choice({name: np.square(errors[name]) for name in scores})
    others = sorted((name for name in scores if name != winner), key=scores.get)
    runner_up = others[0] if others else None
    result.update(winner=winner, runner_up=runner_up,
                  margin=scores[runner_up] - scores[winner] if runner_up else None)
    return result


def _one_standard_error_choice(squared_errors: dict[str, np.ndarray]) -> str:
    """Breiman's one-standard-error rule: with few folds a flexible family often wins CV by chance."""
    mse = {name: float(e.mean()) for name, e in squared_errors.items()}
    best = min(mse, key=mse.get)
    errors = squared_errors[best]
    tolerance = float(errors.std(ddof=1) / np.sqrt(errors.size)) if errors.size > 1 else 0.0
    return next(name for name in FAMILIES if name in mse and mse[name] <= mse[best] + tolerance)


def _held_out_errors(name: str, size: int, runs: Sequence[RunRecord], analysis, options: FitOptions,
                     teachers_law: dict[str, float] | None = None) -> list[float]:
    """Errors on log T* of family ``name`` fitted without student size ``size``, predicting its optima.

    ``teachers_law``: the dsl family's supervised constants, held fixed across folds.
    """
    from capgap.laws.curve import fit_curve_to_optima
    from capgap.sizes import format_size

    held = np.array([g.student_params == size for g in analysis.groups])
    try:
        if name == "dsl":
            held_ids = set(analysis.run_ids(held))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                law = _dsl_module().fit([r for r in runs if r.run_id not in held_ids], options, supervised=teachers_law)
        else:
            law = fit_curve_to_optima(law_class(name), analysis, options, keep=~held)
    except InputError as exc:
        raise InputError(f"cannot be fitted with students of {format_size(size)} held out ({exc})") from None
    by_id = {r.run_id: r for r in runs}
    errors = []
    for group, optimum in zip(analysis.groups, analysis.optima):
        if group.student_params != size:
            continue
        student, teacher = _in_measure(optimum, [by_id[i] for i in group.run_ids], options.size_measure,
                                       law.file.size_measure)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a far-off prediction may overflow on its way
                predicted = law.optimal_teacher(student, optimum.tokens).estimate
        except InputError:
            raise InputError(f"predicts no positive teacher for held-out students of {format_size(size)}") from None
        error = float(np.log(predicted) - np.log(teacher))
        if optimum.censored == "at_least":
            error = min(error, 0.0)  # a bound is only missed from below
        elif optimum.censored == "at_most":
            error = max(error, 0.0)
        errors.append(error)
    return errors


def _in_measure(optimum, runs: Sequence[RunRecord], measure: str, wanted: str) -> tuple[float, float]:
    """A group's student size and optimal teacher in another size measure (the dsl law may use its own)."""
    if wanted == measure:
        return float(optimum.student_params), optimum.teacher_params
    student = float(np.median([r.size("student", wanted) for r in runs]))
    pairs = sorted({(r.size("teacher", measure), r.size("teacher", wanted)) for r in runs})
    # Between measured teachers, interpolate the size conversion in log-log.
    teacher = np.exp(np.interp(np.log(optimum.teacher_params), np.log([p[0] for p in pairs]), np.log([p[1] for p in pairs])))
    return student, float(teacher)
