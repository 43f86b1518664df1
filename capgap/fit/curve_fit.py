"""Fitting a curve family (capgap.laws.curve: ratio, linear, power, power-tokens) to runs, in one pass over all
runs by the one-stage model of ``capgap.fit.onestage``: the point fit, interval draws, per-student optima, one-sided
answers and the fit's checks of itself, the same for every family.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from capgap.core.errors import InputError
from capgap.fit.intervals import IntervalDraws, draw_intervals
from capgap.fit.lack_of_fit import lack_of_fit, location_misfit
from capgap.fit.onestage import OneStageFit, SearchSpace
from capgap.fit.one_sided import edge_bound
from capgap.laws.base import (BootstrapReport, CurveMethod, FitOptions, Goodness, LawDiagnostics, LawFile,
                              LawRegime, collapsed, quantile_interval)
from capgap.laws.curve import Centre, CurveLaw
from capgap.runs.groups import MIN_TEACHERS, RunGroups, group_runs
from capgap.runs.records import RunRecord, ids_hash
from capgap.sizes.units import format_size

WIDE_INTERVAL = 100.0  # an interval wider than this factor bounds nothing a user can act on
FAR_RATIO = 1e4  # an optimal teacher beyond 10^4x its student is not a finding but a broken fit
DEFAULT_METHOD = CurveMethod()  # what capgap ships
MIN_TEACHERS_FOR_FREE_ASYMMETRY = 6  # a free left/right ratio per group where every group has this many teachers
MIN_WINDOW_TEACHERS = 4  # a window around the optimum (CurveMethod.window) keeps at least the 4 nearest teachers
WINDOW_ROUNDS = 3
MIN_TEACHERS_FOR_SHAPE = 5  # a far shape needs teachers far from the optimum: this many in one group,
FAR_SPAN = np.log(10.0)  # ... spanning a factor of 10 or more
MODEL = ("metric = b_g + a_g^side·h(u), u = ln T − ln T*(S, D); per group g a baseline and left/right curvatures "
         ">= 0 (profiled out; one ratio shared where a student has few teachers); h ≈ u² near the optimum, its "
         "far shape (s, alpha) on each side fitted where a ladder spans a decade; Huber loss; intervals from the "
         "tempered profile likelihood, spanning a smoothly skewed model of the curves too where it puts an optimum "
         "elsewhere")


@dataclass(frozen=True)
class FittedCurves:
    """What a curve fit leaves beside its law file, for whoever reasons with the same model (``capgap plan``): the
    runs' groups, the search space the fit answered with, its point (after any move the interval sampler made) and
    the draws behind its intervals. On ``CurveLaw.fitted`` of a law fitted in this process (None when read from a
    file)."""

    groups: RunGroups  # every group of the runs
    fitted_groups: RunGroups  # the runs the point was fitted on (a window of ``groups`` where one is asked)
    centre: Centre
    space: SearchSpace
    point: OneStageFit
    draws: np.ndarray  # (n, P) search points; empty without intervals


def fit_curve_law(cls: type[CurveLaw], runs: Sequence[RunRecord], options: FitOptions) -> CurveLaw:
    """Fit the family ``cls`` to runs in one pass (see capgap.fit.onestage), with intervals and self-checks."""
    return fit_groups(cls, group_runs(runs, options.metric, options.direction, options.size_measure), options)


def search_space(cls: type[CurveLaw], groups: RunGroups, centre: Centre, n_shape: int = 0,
                 shared_asymmetry: bool = False, skew: bool = False, ratio: bool = True):
    """The one-stage model's search space for the family ``cls`` on these groups (onestage.SearchSpace)."""
    from capgap.fit.onestage import SearchSpace

    z_student = groups.log_student - centre.log_student
    z_tokens = np.nan_to_num(groups.log_tokens_per_param - centre.log_tokens_per_param)
    return SearchSpace(log_location=lambda theta: cls.log_location(theta, z_student, z_tokens) + centre.log_student,
                       bounds=cls.bounds(), grid=cls.grid(groups, centre), n_shape=n_shape, shift=cls.shift,
                       shared_asymmetry=shared_asymmetry, skew=skew, ratio=ratio)


def sees_far_shape(groups: RunGroups) -> bool:
    """Whether some group's ladder reaches far enough from its optimum to show how the curve goes on there."""
    return any(ladder_shows_far_shape(np.log(t)) for t in groups.teachers)


def ladder_shows_far_shape(log_teachers, min_teachers: int = MIN_TEACHERS_FOR_SHAPE) -> bool:
    """Whether one ladder (distinct ln teacher sizes) spans FAR_SPAN with at least ``min_teachers`` rungs."""
    return len(log_teachers) >= min_teachers and float(np.max(log_teachers) - np.min(log_teachers)) >= FAR_SPAN


SYMMETRIC = (0, True, False, False)  # a curve_options entry: parabolas symmetric in ln T, one curvature per group


def curve_options(groups: RunGroups, asymmetry: str = "ratio",
                  method: CurveMethod = DEFAULT_METHOD) -> list[tuple[int, bool, bool, bool]]:
    """The curve models the runs could pay for, richest first: (far-shape parameters, shared asymmetry, skew,
    ratio), as ``search_space`` takes them.

    ``asymmetry`` "skew": one skew shared by all groups, no left/right ratio (no kink at the optimum, one
    curvature per group). "ratio" (the answering model) and "both" (ratio and skew, a bench knob): the far
    shape is fitted per side where some ladder spans a decade (it shows how the curves go on far
    from the optimum), else none. The left/right curvature ratio is free per group only where every group
    has MIN_TEACHERS_FOR_FREE_ASYMMETRY teachers: with fewer, a lone rung on one side would fit its own
    curvature exactly and say nothing about where the optimum is, so one ratio is shared by all groups. Last
    comes SYMMETRIC, taken only where nothing richer leaves a degree of freedom (one student, four teachers), or
    nothing richer can be fitted at all (one student, three teachers: an exact fit)."""
    most = method.far_shape_parameters
    shapes = [most, 2, 0] if sees_far_shape(groups) and most else [0]
    shapes = list(dict.fromkeys(n for n in shapes if n <= most))
    skew = asymmetry == "both"
    free = not method.shared_asymmetry and min(len(t) for t in groups.teachers) >= MIN_TEACHERS_FOR_FREE_ASYMMETRY
    if asymmetry == "skew":
        options = [(n, True, True, False) for n in shapes]
    else:
        options = [(n, not free, skew, True) for n in shapes]
        options += [(n, True, skew, True) for n in shapes] if free else []
    # The last resort before a refusal: symmetric parabolas (no ratio, no skew), one curvature per group.
    return options + [SYMMETRIC]


def affordable_space(cls: type[CurveLaw], groups: RunGroups, centre: Centre, asymmetry: str = "ratio",
                     method: CurveMethod = DEFAULT_METHOD):
    """The richest curve model (``curve_options``) that leaves a residual degree of freedom (else none left,
    else the fit is refused), and a sentence for each simplification the runs forced."""
    from capgap.fit.onestage import degrees_of_freedom

    options = curve_options(groups, asymmetry, method)
    spaces = [search_space(cls, groups, centre, *option) for option in options]
    dfs = [degrees_of_freedom(groups, space) for space in spaces]
    # The richest model that leaves a degree of freedom, else the richest exact fit: its point is the curve
    # through the runs, and its interval the measured teachers either side of the best (capgap.fit.optima).
    chosen = next((i for i, df in enumerate(dfs) if df >= 1), next((i for i, df in enumerate(dfs) if df >= 0), None))
    if chosen is None:
        simplest = spaces[-2]
        raise InputError(f"{groups.n_runs} runs in {len(groups.keys)} group(s) cannot determine the "
                         f"{groups.n_runs - dfs[-2]} parameters of even the simplest curves of the {cls.name} law "
                         f"({simplest.per_group} per group and "
                         f"{simplest.n_theta + simplest.n_curve} shared): measure more teachers per student")
    notes = []
    wanted, got = options[0], options[chosen]
    if got[0] < wanted[0]:
        notes.append(f"{groups.n_runs} runs cannot pay for the far shape a decade-wide ladder asks for "
                     f"({wanted[0]} parameters): the curves are fitted "
                     f"{'with one far shape for both sides' if got[0] == 2 else 'as parabolas'} instead, unchecked "
                     "far from the optimum; measure more teachers per student")
    if got == SYMMETRIC and wanted != SYMMETRIC:
        notes.append(f"{groups.n_runs} runs cannot pay for asymmetric curves: the fit assumes each student's curve "
                     "is symmetric about its optimum in ln T (a curve steeper on one side biases T* toward that "
                     "side); measure more teachers per student")
    elif got[1] and not wanted[1]:
        notes.append("the runs cannot pay for a left/right curvature ratio per student: one ratio is shared by "
                     "all students")
    return spaces[chosen], notes


def compact_shape(shape: Sequence[float]) -> list[float]:
    """The far shape as a law file writes it: [s, alpha] where both sides share it, else left then right."""
    return list(shape[:2]) if tuple(shape[:2]) == tuple(shape[2:]) else list(shape)


def start_shape(start: dict[str, float], n_shape: int) -> list[float]:
    """The far-shape coordinates of a warm start from a law's diagnostics (``FitOptions.start``)."""
    left = [np.sqrt(start.get("shape_s", 0.0)), start.get("shape_alpha", 1.0)]
    right = [np.sqrt(start.get("shape_s_right", start.get("shape_s", 0.0))),
             start.get("shape_alpha_right", start.get("shape_alpha", 1.0))]
    return {0: [], 2: left, 4: left + right}[n_shape]


def fit_groups(cls: type[CurveLaw], groups: RunGroups, options: FitOptions) -> CurveLaw:
    """The one-stage fit of ``cls`` to grouped runs: point, interval draws, optima, diagnostics."""
    from capgap.fit.optima import censored_warning, far_rung_warning, ladder_advice, read_optima

    bound = edge_bound(groups)
    if bound is not None:
        return one_sided_law(groups, bound, options)
    reason = cls.cannot_fit(groups)
    if reason:
        raise InputError(reason)
    centre = Centre.of(groups)
    with np.errstate(all="ignore"):
        if options.start is not None:
            modes: tuple[str, ...] = ("skew" if "skew" in options.start else "ratio",)
        else:
            asymmetry = options.method.asymmetry
            modes = ("ratio", "skew") if asymmetry == "compare" else (asymmetry,)
        # The first model answers; the second (a smooth skew beside the kinked curvatures) checks that answer,
        # and is fitted only where there are intervals for it to check.
        primary = _fit_model(cls, groups, centre, options, modes[0])
        space, simplified, point, fitted_groups = primary.space, primary.simplified, primary.point, primary.groups
        n_search = space.n_theta + space.n_curve
        df = point.df
        if not (point.profile.coefficients[0][:, 1:] > 0).any():
            raise InputError("no group's metric changes with teacher size (every fitted curvature is zero): "
                             "the runs locate no optimal teacher")
        misfit = lack_of_fit(fitted_groups, point.profile.fitted[0], df) if df > 0 and not options.quick else None
        # The law's location against the students' own optima: a second way the model may not follow the runs.
        located = location_misfit(fitted_groups, point, cls.name) if df > 0 and not options.quick else None
        inflation = max(misfit.inflation if misfit else 1.0, located.inflation if located else 1.0)
        wanted = options.bootstrap > 0 and df > 0 and not options.quick
        drawn = None
        disagreement = None
        if wanted:
            drawn, point = draw_intervals(fitted_groups, point, options, inflation)
            alternative = _fit_model(cls, groups, centre, options, modes[1]) if len(modes) > 1 else None
            if alternative is not None and alternative.point.df > 0:
                disagreement = _asymmetry_disagreement(groups, primary, point, drawn.draws, alternative,
                                                       options.level)
                if disagreement is not None:
                    temper = drawn.report.temper
                    other, _ = draw_intervals(alternative.groups, alternative.point, options, inflation,
                                              fallback=False, temper=temper)
                    # Both asymmetry models fit, and they put the optimum apart: the intervals span both.
                    theta = alternative.space.split(other.draws)[0]
                    if theta.shape[0]:  # an equal mixture: as many of its draws as the answering model has
                        theta = theta[np.linspace(0, theta.shape[0] - 1, drawn.draws.shape[0]).round().astype(int)]
                    padded = np.hstack([theta, np.repeat(point.curve[None, :], theta.shape[0], axis=0)])
                    report = drawn.report.model_copy(update={
                        "method": drawn.report.method + f", mixed with {theta.shape[0]} draws of the skewed model",
                        "resamples": drawn.draws.shape[0] + theta.shape[0]})
                    drawn = IntervalDraws(np.vstack([drawn.draws, padded]), report, drawn.warnings)
    draws = drawn.draws if drawn is not None else np.empty((0, n_search))
    natural_point = {k: float(v[0]) for k, v in cls.natural(point.theta[None, :], centre).items()}
    natural_draws = cls.natural(space.split(draws)[0], centre) if draws.size else {}
    samples = [{name: float(natural_draws[name][i]) for name in cls.parameters} for i in range(draws.shape[0])]
    intervals: dict[str, list[float] | None] = {}
    for name in cls.parameters:
        low, high = quantile_interval(natural_draws.get(name, []), options.level)
        low, high = min(low, natural_point[name]), max(high, natural_point[name])
        intervals[name] = [low, high] if np.isfinite(low) and not collapsed(low, high) else None
    optima = read_optima(groups, space, point, draws, options.level)
    if all(_far_beyond_ladder(o) for o in optima):
        raise InputError(f"the teacher ladder brackets the optimum of no student (all {len(optima)} lie beyond "
                         f"their teachers: {'; '.join(ladder_advice(optima))}); a law read off curves that never "
                         "turn is extrapolation, not a fit")
    misfits = [w for w in (m.warning(inflation) for m in (misfit, located) if m is not None) if w]
    misfits += [disagreement] if disagreement else []
    misfits += [w for w in [far_rung_warning(optima)] if w]
    beyond = censored_warning(optima)
    warnings = [*misfits, *([beyond] if beyond else []), *simplified,
                *_self_check(cls, groups, point, drawn, intervals, optima, df, options)]
    students = [k.student_params for k in groups.keys]
    residual = fitted_groups.badness - point.profile.fitted[0]
    report = drawn.report if drawn is not None else BootstrapReport(method="none")
    file = LawFile(
        law=cls.name, coefficients=natural_point, intervals=intervals, samples=samples, optima=optima,
        size_measure=options.size_measure, metric=options.metric, direction=options.direction,
        n_runs=groups.n_runs, runs_hash=ids_hash(groups.run_ids), student_range=[min(students), max(students)],
        level=options.level, fitted=True,
        regime=fitted_regime(groups),
        provenance=(f"fitted by capgap in one pass over {groups.n_runs} runs in {len(groups.keys)} groups; "
                    f"{options.metric}, {options.direction} is better; {options.size_measure} sizes; "
                    f"intervals by {report.method}, {report.resamples} draws, seed {options.seed}"),
        diagnostics=LawDiagnostics(
            warnings=warnings, formula=cls.formula, model=MODEL, shape=compact_shape(point.shape),
            asymmetry=point.asymmetry, skew=point.skew, noise=point.noise, df=df,
            goodness=Goodness(rmse=float(np.sqrt(np.mean(residual**2))), n_runs=fitted_groups.n_runs,
                              n_groups=len(groups.keys), n_outside_window=groups.n_runs - fitted_groups.n_runs),
            bootstrap=report, skipped_groups=[f"{label} ({n} teacher sizes)" for label, n in groups.skipped],
            extend_ladder=ladder_advice(optima)),
    )
    law = cls(file)
    law.fitted = FittedCurves(groups=groups, fitted_groups=fitted_groups, centre=centre, space=space, point=point,
                              draws=draws)
    return law


def fitted_regime(groups: RunGroups) -> LawRegime:
    """The student sizes, tokens per parameter and inits a law was fitted on."""
    students = [k.student_params for k in groups.keys]
    tpp = [k.tokens / k.student_params for k in groups.keys if k.tokens]
    return LawRegime(student_params=[min(students), max(students)],
                     tokens_per_param=[min(tpp), max(tpp)] if tpp else None,
                     student_init=sorted({k.student_init for k in groups.keys}))


def one_sided_law(groups: RunGroups, bound, options: FitOptions) -> CurveLaw:
    """The law a one-sided answer writes (capgap.fit.one_sided): a bound on T*/S, whatever family was asked for, since
    runs that locate no optimum cannot tell families apart; the warning saying so comes first."""
    from capgap.laws.base import law_class
    from capgap.fit.one_sided import bound_optima, bound_warning, ratio_bound

    from capgap.fit.optima import ladder_advice

    ratio = ratio_bound(groups, bound)
    students = [k.student_params for k in groups.keys]
    file_optima = bound_optima(groups, bound)
    file = LawFile(
        law="ratio", coefficients={"r": ratio}, intervals={"r": None}, bound=bound.side,
        optima=file_optima, size_measure=options.size_measure, metric=options.metric,
        direction=options.direction, n_runs=groups.n_runs, runs_hash=ids_hash(groups.run_ids),
        student_range=[min(students), max(students)], level=options.level,
        regime=fitted_regime(groups),
        provenance=(f"a one-sided bound from {groups.n_runs} runs in {len(groups.keys)} groups, each best at the "
                    f"same edge of its ladder; {options.metric}, {options.direction} is better; "
                    f"{options.size_measure} sizes"),
        diagnostics=LawDiagnostics(
            warnings=[bound_warning(groups, ratio=ratio, bound=bound)], formula="T* <= r·S" if bound.side == "at_most"
            else "T* >= r·S", model="no curve fitted: the runs bound the optimum from one side", noise=bound.noise,
            goodness=Goodness(n_runs=groups.n_runs, n_groups=len(groups.keys)),
            skipped_groups=[f"{label} ({n} teacher sizes)" for label, n in groups.skipped],
            extend_ladder=ladder_advice(file_optima)))
    return law_class("ratio")(file)


@dataclass(frozen=True)
class ModelFit:
    """One curve model's point fit: its search space, the simplifications the runs forced, the runs it used."""

    asymmetry: str
    space: object
    simplified: list[str]
    point: object
    groups: RunGroups


def _fit_model(cls: type[CurveLaw], groups: RunGroups, centre: Centre, options: FitOptions,
               asymmetry: str) -> ModelFit:
    """The point fit of one asymmetry model ("ratio": kinked left/right curvatures; "skew": one smooth skew)."""
    from capgap.fit.point_fit import fit_point

    space, simplified = affordable_space(cls, groups, centre, asymmetry, options.method)
    if options.start is not None:
        start = np.r_[cls.internal(options.start, centre),
                      [np.log(options.start.get("asymmetry", 1.0))][:int(space.shared_asymmetry and space.ratio)],
                      [options.start.get("skew", 0.0)][:int(space.skew)],
                      start_shape(options.start, space.n_shape)]
        return ModelFit(asymmetry, space, simplified, fit_point(groups, space, start=start, robust=not options.quick),
                        groups)
    point, fitted_groups = _fit_in_window(cls, groups, centre, space, options.method.window)
    return ModelFit(asymmetry, space, simplified, point, fitted_groups)


def _asymmetry_disagreement(groups: RunGroups, primary: ModelFit, point, draws: np.ndarray, alternative: ModelFit,
                            level: float) -> str | None:
    """Where the other asymmetry model puts some group's optimum outside the answering model's interval, the
    sentence that says so (a lack of fit: the runs do not tell the curves' asymmetry apart, and T* depends on it);
    else None."""
    if not draws.size:
        return None
    tail = (1.0 - level) / 2.0
    here = primary.space.log_location(point.theta[None, :])[0]
    there = alternative.space.log_location(alternative.point.theta[None, :])[0]
    ours = np.quantile(primary.space.log_location(primary.space.split(draws)[0]), [tail, 1 - tail], axis=0)
    apart = (there < ours[0]) | (there > ours[1])
    if not apart.any():
        return None
    j = int(np.argmax(np.abs(there - here) * apart))
    names = {"ratio": "kinked left/right curvatures", "skew": "a smooth skew"}
    return (f"lack of fit: the curve model does not follow the runs well enough to fix the optimum: with "
            f"{names[primary.asymmetry]} T* of the {format_size(groups.keys[j].student_params)} "
            f"student is {format_size(np.exp(here[j]))}, with {names[alternative.asymmetry]} "
            f"{format_size(np.exp(there[j]))}; the intervals span both models; measure teachers between them")


def _fit_in_window(cls: type[CurveLaw], groups: RunGroups, centre: Centre, space, width: float | None):
    """The point fit on the runs near each group's optimum (see ``onestage.window``), iterated until stable.

    Returns (point fit, the groups of the runs it used).
    """
    from capgap.fit.onestage import window
    from capgap.fit.point_fit import fit_point

    point = fit_point(groups, space)
    used = np.ones(groups.n_runs, dtype=bool)
    fitted_groups = groups
    for _ in range(WINDOW_ROUNDS if width is not None else 0):
        keep = window(groups, space.log_location(point.theta[None, :])[0], width, MIN_WINDOW_TEACHERS)
        if np.array_equal(keep, used):
            break
        used = keep
        fitted_groups = groups.take_runs(keep)
        point = fit_point(fitted_groups, search_space(cls, fitted_groups, centre, space.n_shape, space.shared_asymmetry,
                                                          space.skew, space.ratio))
    return point, fitted_groups


def _far_beyond_ladder(optimum) -> bool:
    """An optimum beyond its group's ladder by more than the ladder's mean spacing (at the edge is not beyond)."""
    if not optimum.censored:
        return False
    log_teachers = np.log(optimum.teachers)
    spacing = float(np.mean(np.diff(log_teachers)))
    edge = log_teachers[-1] if optimum.censored == "at_least" else log_teachers[0]
    return abs(np.log(optimum.teacher_params) - edge) > spacing


def _self_check(cls: type[CurveLaw], groups: RunGroups, point, boot, intervals: dict, optima, df: int,
                options: FitOptions) -> list[str]:
    """The fit's checks of itself, each a sentence for the law file, `fit` and `recommend`."""
    from capgap.fit.optima import ranking_bracket

    warnings: list[str] = []
    if df == 0 and optima and all(o.low is not None and o.high is not None for o in optima):
        warnings.append(f"{groups.n_runs} runs leave no degrees of freedom beyond the model's parameters: the "
                        "point estimate is an exact fit, and its interval only the measured teachers either side of "
                        "the best ones, where a curve with one minimum has it (no noise can be measured, so a tie "
                        "within noise would move them); measure more teachers per student, or repeat seeds")
    elif df == 0:
        warnings.append(f"{groups.n_runs} runs leave no degrees of freedom beyond the model's parameters: "
                        "there is no interval, and the point estimate is an exact fit")
    elif options.bootstrap > 0 and any(v is None for v in intervals.values()):
        empty = [name for name, v in intervals.items() if v is None]
        warnings.append(f"no interval for {', '.join(empty)}: the bootstrap resamples did not spread")
    sizes = len({k.student_params for k in groups.keys})
    if sizes <= len(cls.parameters) and not cls.uses_tokens:
        warnings.append(f"{sizes} student size(s) for {len(cls.parameters)} law parameter(s): the law passes "
                        "through the data with nothing left to test its form")
    names = ["coefficient " + cls.parameters[i] if i < len(cls.parameters) else "a parameter" for i in point.at_bounds]
    if point.at_bounds:
        warnings.append(f"{', '.join(names)} at the bound of its search range: the runs do not pin it down")
    if boot is not None:
        warnings.extend(boot.warnings)
    spans = [o.high / o.low for o in optima if o.low and o.high]
    if spans and max(spans) > WIDE_INTERVAL:
        bracket = ranking_bracket(groups, optima, WIDE_INTERVAL)
        warnings.append(f"the 90% interval of the optimal teacher spans a factor of {max(spans):.3g}: with {df} "
                        "residual degrees of freedom the runs barely bound it"
                        + (f"; {bracket}" if bracket else ""))
    ratios = [o.teacher_params / o.student_params for o in optima]
    if min(ratios) < 1.0:
        warnings.append(f"the optimal teacher comes out smaller than its student ({min(ratios):.2g}x) for some "
                        "students fitted on: a teacher smaller than the student is outside what the law means")
    lows = [o.low / o.student_params for o in optima if o.low]
    if lows and min(lows) < 1.0 and min(ratios) >= 1.0:
        warnings.append(f"the 90% interval of the optimal teacher reaches teachers smaller than their student "
                        f"({min(lows):.2g}x): the runs do not rule out that no larger teacher helps")
    if max(ratios) > FAR_RATIO:
        warnings.append(f"the optimal teacher comes out {max(ratios):.3g}x its student: far beyond any measured "
                        "teacher, the fit is extrapolating a curve that does not turn")
    if not sees_far_shape(groups):
        wide = [t for t in groups.teachers if ladder_shows_far_shape(np.log(t), min_teachers=MIN_TEACHERS)]
        if wide:
            warnings.append(f"{len(wide)} ladder(s) span a decade or more with fewer than {MIN_TEACHERS_FOR_SHAPE} "
                            "teachers: the fit takes their curves for parabolas over the whole span, unchecked (a "
                            "curve that flattens far from its optimum would bias T* and its interval); add a rung "
                            "between the far ones")
    inits = sorted({k.student_init for k in groups.keys})
    if len(inits) > 1:
        warnings.append(f"the runs mix student inits ({', '.join(inits)}) under one law; pruned and scratch students "
                        "need not share an optimal teacher (fit --init to separate them)")
    return warnings
