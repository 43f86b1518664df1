"""Fit a law of the optimal teacher from runs: validate, choose a family, fit it through the registry.

Every family registers itself (``capgap.laws.base.register_law``) and is fitted
through one function, ``fit_family(cls, runs, options)``: the curve families by
the one-stage model (``capgap.fit.curve_fit``), the dsl law by its own fit
(``capgap.fit.dsl_fit``), any other family by its ``fit`` classmethod; nothing
else here names a family. ``fit_law(runs, law="auto")`` compares the families that take part in
``auto`` by leave-one-student-size-out cross-validation: each student size in
turn is held out, every family is fitted on the rest and predicts where the
held-out students' optimal teachers are (through the common face,
``law.optimal_teacher``). With the optimum put there, each held-out group's
own baseline and curvatures are refitted, and the RMSE of its runs' metric is
the family's score: how well the predicted location explains curves the
family never saw. The simplest family within one standard error of the best
wins (Breiman's rule), and ``diagnostics.cv`` records every score.

``dsl`` takes part where every run carries ``teacher_loss`` and tokens (else
``cv.excluded`` says which runs lack what) and its own lack-of-fit check passes
(a dsl fit that does not follow the runs, with its constants at their bounds and
no finite optimum, can still win CV on curves that track each teacher's measured
loss: the shipped study did), on the same held-out criterion:
fitted without the held-out student size (one local search from its fit on
all runs, no intervals), it says where each held-out group's optimum is, the
group's baseline and its curvature on each side of that optimum are refitted
from the group's runs, and the RMSE of their metric is its score. What differs
is the curve through the optimum. A curve family's is the curve model's shape,
fitted with the family's locations; dsl predicts the metric itself, and its
curve is its own: each run's predicted loss from its teacher's measured loss,
less the law's best for that student, scaled on each side of the optimum.
That is fair where scoring dsl's optimum with a curve family's shape is not:
the curve model cannot follow the published law's curves (steep toward small
teachers, a long floor toward large ones), and on them it scores the true
optimum worse than a location 2x off (150M at 320 tokens/param: mean squared
error 3.5e-3 at the truth, 1.5e-4 at power's 7.6x against the true 15.4x), so
no location scored through it can credit a correct law. Both are scored with
the same three refitted parameters per held-out group, so neither gains by
flexibility there. Scored with the shape of ratio's fold fits instead, dsl's
held-out RMSE is kept in ``cv.curve_shape_scores`` for the record (unused).
A student for whom dsl finds no finite best teacher needs no special case: its
curve falls to the law's floor, and the scales are refitted to it. With 15
constants dsl is the most complex family, so under the one-standard-error
rule it wins only by more than one standard error.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from capgap.core.errors import InputError
from capgap.runs.kinds import mark_kinds, select_kind
from capgap.laws.base import CurveMethod, FitOptions, Law, ModelChoice, TeacherEstimate, law_class, registered_families
from capgap.runs.records import RunRecord, metric_direction, unknown_direction_warning

DEFAULT_METRIC = "eval_loss"


def fittable_families() -> tuple[str, ...]:
    """The registered families that can be fitted from runs (``fit_family``; a query-only law class cannot)."""
    return tuple(name for name in registered_families() if _fitter(law_class(name)) is not None)


def law_choices() -> tuple[str, ...]:
    return ("auto", *fittable_families())


def fit_law(runs: Sequence[RunRecord], law: str = "auto", metric: str | None = None,
            higher_is_better: bool | None = None, size_measure: str = "total", family: str | None = None,
            bootstrap: int = 1000, seed: int = 0, level: float = 0.9, student_init: str | None = None,
            student_kind: str | None = None, method: CurveMethod | None = None) -> Law:
    """Fit the law of the optimal teacher to runs.

    ``law``: auto or a registered family (ratio, linear, power, power-tokens, dsl).
    ``metric``: default eval_loss. ``higher_is_better``: the metric's direction
    where its name does not say (unknown names are taken as lower-is-better, with a warning).
    ``family``, ``student_init`` and ``student_kind`` (dense, moe) keep only runs of that family / init / kind.
    ``method``: the curve model's method choices (``CurveMethod``; the default is what capgap ships).
    No numpy or scipy warning escapes: what matters becomes a sentence in ``diagnostics.warnings``.
    """
    import scipy.optimize  # noqa: F401  scipy ships its own OpenBLAS: load it so the limit below reaches it
    from threadpoolctl import threadpool_limits

    options, runs = _prepare(runs, law, metric, higher_is_better, size_measure, family, bootstrap, seed, level,
                             student_init, student_kind)
    if method is not None:
        options = options.model_copy(update={"method": method})
    # Thousands of tiny solves: BLAS threads only fight over the cores (60x slower seen on 2 busy cores).
    with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        _quiet_scipy()
        if law == "auto" and _one_sided(runs, options):
            law = "ratio"  # runs that locate no optimum cannot tell families apart: a bound
        choice = compare_families(runs, options) if law == "auto" else None
        fitted = fit_family(law_class(choice.winner if choice else law), runs, options)
        if choice is None and fitted.file.diagnostics.teacher_loss_assumed:  # auto checked it among the families
            fitted = check_assumed_teacher_losses(fitted, _curve_references(runs, options))
        elif choice is None and options.bootstrap > 0 and not _own_curve(fitted.file.law):
            fitted = _checked_against_own_curve_laws(fitted, runs, options)
    extra = _run_warnings(runs)
    filters = [f"{name} {value}" for name, value in (("family", family), ("student_init", student_init),
                                                     ("student_kind", student_kind)) if value]
    file = fitted.file
    mark_kinds(file, runs)
    update: dict = {"warnings": [*file.diagnostics.warnings, *extra]}
    if choice is not None:
        update["cv"] = choice
    file.diagnostics = file.diagnostics.model_copy(update=update)
    if filters:  # a law fitted on a subset of the runs says which
        file.provenance += f"; only runs with {' and '.join(filters)}"
    return fitted


def fit_family(cls, runs: Sequence[RunRecord], options: FitOptions) -> Law:
    """Fit one registered family to runs: a curve family (capgap.laws.curve) by the one-stage model, the dsl law by
    its own fit, any other family by its own ``fit`` classmethod (a family registered from outside capgap)."""
    fitter = _fitter(cls)
    if fitter is None:
        raise InputError(f"the law family {getattr(cls, 'name', cls)!r} cannot be fitted from runs: it is neither a "
                         "curve family (capgap.laws.curve.CurveLaw) nor the dsl law, and has no fit(runs, options)")
    return fitter(runs, options)


def _fitter(cls):  # noqa: ANN202 (a callable (runs, options) -> Law, or None)
    from capgap.laws.curve import CurveLaw
    from capgap.laws.dsl import DSLLaw

    if isinstance(cls, type) and issubclass(cls, CurveLaw):
        from capgap.fit.curve_fit import fit_curve_law

        return lambda runs, options: fit_curve_law(cls, runs, options)
    if isinstance(cls, type) and issubclass(cls, DSLLaw):
        from capgap.fit import dsl_fit

        return dsl_fit.fit
    own = getattr(cls, "fit", None)
    return own if callable(own) else None


def _one_sided(runs: Sequence[RunRecord], options: FitOptions) -> bool:
    """Whether every student's best measured teacher sits at the same edge of its ladder (capgap.fit.one_sided)."""
    from capgap.runs.groups import group_runs
    from capgap.fit.one_sided import edge_bound

    try:
        groups = group_runs(runs, options.metric, options.direction, options.size_measure)
    except InputError:
        return False  # the family's own fit says what is wrong
    return edge_bound(groups) is not None


def _quiet_scipy() -> None:
    from scipy.optimize import OptimizeWarning

    warnings.simplefilter("ignore", OptimizeWarning)


def _prepare(runs, law, metric, higher_is_better, size_measure, family, bootstrap, seed, level,
             student_init, student_kind=None) -> tuple[FitOptions, list[RunRecord]]:
    choices = law_choices()
    if law not in choices:
        raise InputError(f"law {law!r} is unknown; accepted: {', '.join(choices)}")
    if bootstrap < 0:
        raise InputError(f"the number of draws (--draws, bootstrap=) must be 0 or more; got {bootstrap}")
    if size_measure not in ("total", "nonembed"):
        raise InputError(f"size measure {size_measure!r} is unknown; accepted: total, nonembed")
    if not 0.0 < level < 1.0:
        raise InputError(f"level must lie between 0 and 1 (0.9 for a 90% interval); got {level}")
    runs = select_kind(select_runs(runs, family, student_init), student_kind)
    metric = _choose_metric(runs, metric)
    runs = [r for r in runs if r.metric(metric) is not None]
    options = FitOptions(metric=metric, direction=_direction(metric, higher_is_better), size_measure=size_measure,
                         family=family, bootstrap=bootstrap, seed=seed, level=level)
    return options, runs


def _run_warnings(runs: Sequence[RunRecord]) -> list[str]:
    """What the runs themselves say against the law: teachers whose quality does not rise with size."""
    from capgap.runs.ladder_quality import teacher_inversions

    return list(teacher_inversions(runs))


def select_runs(runs: Sequence[RunRecord], family: str | None = None,
                student_init: str | None = None) -> list[RunRecord]:
    """The runs of one model ``family`` and one ``student_init`` (None: all); one-line errors when none is left."""
    if not runs:
        raise InputError("no runs given; a law needs runs of students distilled from at least 3 teacher sizes each")
    kept = list(runs)
    if family is not None:
        kept = [r for r in kept if r.family == family]
        if not kept:
            raise InputError(f"no runs of family {family!r}; families present: "
                             f"{', '.join(sorted({r.family for r in runs}))}")
    if student_init is not None:
        inits = sorted({str(r.student_init) for r in kept})
        kept = [r for r in kept if r.student_init == student_init]
        if not kept:
            raise InputError(f"no runs with student_init {student_init!r}; the runs have: {', '.join(inits)}")
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
        warnings.warn(unknown_direction_warning(metric), stacklevel=3)
        return "lower"
    return known


def compare_families(runs: Sequence[RunRecord], options: FitOptions) -> ModelChoice:
    """Leave-one-student-size-out CV of every family that takes part in auto (see the module docstring)."""
    from capgap.runs.groups import group_runs

    quiet = options.model_copy(update={"bootstrap": 0})
    groups = group_runs(runs, options.metric, options.direction, options.size_measure)
    sizes = sorted({k.student_params for k in groups.keys})
    excluded: dict[str, str] = {}
    starts: dict[str, FitOptions] = {}  # each family's folds start from its fit on all runs
    fulls: dict[str, Law] = {}
    for name in fittable_families():
        reason = getattr(law_class(name), "auto_exclusion", None)
        if callable(reason):
            reason = reason(runs, options)
        if reason:
            excluded[name] = reason
            continue
        try:
            fulls[name] = fit_family(law_class(name), runs, quiet)
        except InputError as exc:
            excluded[name] = str(exc)
    fulls = {name: check_assumed_teacher_losses(full, fulls) for name, full in fulls.items()}
    for name, full in fulls.items():
        if _own_curve(name) and full.file.diagnostics.no_interval:
            # A family that predicts the metric and, by its own check, does not follow these runs: its held-out
            # curve can still track each teacher's measured loss, so CV alone would credit a broken fit.
            why = re.search(r"\((.+?)\): ", full.file.diagnostics.no_interval)
            excluded[name] = ("its own lack-of-fit check fires, so its optimum is no evidence"
                              + (f" ({why.group(1)})" if why else ""))
            continue
        starts[name] = quiet.model_copy(update={"quick": True, "start": refit_start(full)})
    # Curve families first: a family that draws its own curve is also scored, for the record, with their shape.
    candidates = sorted(starts, key=_own_curve)
    if len(sizes) < 2:
        excluded.update({name: "cross-validation needs 2 or more student sizes" for name in candidates})
        candidates = []
    losses: dict[str, list[float]] = {}
    fold_curves: dict[str, dict[int, tuple]] = {}  # curve family -> held-out size -> its fold fit's curve
    shape_from: dict[str, str] = {}
    borrowed: dict[str, list[float]] = {}
    for name in candidates:
        own = _own_curve(name)
        lender = next((other for other in losses if not _own_curve(other)), None) if own else None
        try:
            squared, lent, curves = [], [], {}
            for size in sizes:
                law, test, members = _fold(name, size, runs, groups, starts[name])
                if own:
                    squared += _own_curve_losses(law, test, members)
                    if lender:
                        lent += _location_losses(law, test, members, options.size_measure, fold_curves[lender][size])
                else:
                    d = law.file.diagnostics
                    curves[size] = (d.shape, d.asymmetry, d.skew)
                    squared += _location_losses(law, test, members, options.size_measure, curves[size])
        except InputError as exc:
            excluded[name] = str(exc)
            continue
        losses[name], fold_curves[name] = squared, curves
        if lender:
            shape_from[name], borrowed[name] = lender, lent
    scores = {name: float(np.sqrt(np.mean(v))) for name, v in losses.items() if v}
    common = dict(method="leave-one-student-size-out", metric=f"RMSE of held-out {options.metric}",
                  rule="the simplest family within one standard error of the best mean squared error "
                       "(families ordered by their count of coefficients; dsl, with 15, is the most complex)",
                  folds=len(sizes), scores=scores, excluded=excluded, shape_from=shape_from,
                  curve_shape_scores={name: float(np.sqrt(np.mean(v))) for name, v in borrowed.items() if v})
    if not scores:
        # Nothing can be cross-validated: the one-parameter reading is the only defensible choice.
        return ModelChoice(**common, winner=fittable_families()[0],
                           note="no family could be cross-validated; the simplest family chosen")
    winner = _one_standard_error_choice({name: np.asarray(losses[name]) for name in scores})
    others = sorted((name for name in scores if name != winner), key=scores.get)
    runner_up = others[0] if others else None
    margin = scores[runner_up] - scores[winner] if runner_up else None
    return ModelChoice(**common, winner=winner, runner_up=runner_up, margin=margin,
                       summary=_choice_summary(winner, runner_up, scores))


def check_assumed_teacher_losses(law: Law, references: dict[str, Law]) -> Law:
    """A law fitted on assumed teacher losses (``diagnostics.teacher_loss_assumed``), checked against the curve
    family among ``references`` that fits the same runs best (``dsl_fit.assumed_loss_misfit``); any other law as
    it is."""
    if not law.file.diagnostics.teacher_loss_assumed:
        return law
    from capgap.fit.dsl_fit import assumed_loss_misfit

    fits = {name: other.file.diagnostics.goodness.rmse for name, other in references.items()
            if not _own_curve(name) and other.file.diagnostics.goodness is not None}
    fits = {name: rmse for name, rmse in fits.items() if rmse is not None and rmse > 0}
    if not fits:
        return law
    best = min(fits, key=fits.get)
    return assumed_loss_misfit(law, fits[best], best)


# Resamples of the other law's interval in the check below: enough for its 5% and 95% quantiles, a fraction of a
# full bootstrap's time (dsl: about 0.7 s for 64 runs).
CHECK_RESAMPLES = 200


def _checked_against_own_curve_laws(law: Law, runs: Sequence[RunRecord], options: FitOptions) -> Law:
    """A curve family asked for by name, checked against each family that predicts the metric itself (dsl) where
    the runs allow one and it passes its own checks. The curve model's interval spans the uncertainty of its
    location under its own curve shape only; on the published law's curves that shape misreads the optimum
    (docs/fit.md). Where the two read a fitted student's optimum apart (either law's estimate outside the other's
    interval; for a student whose answer is a bound, dsl's estimate past it), the first warning says so. Where the
    curve model's interval (or bound) misses dsl's estimate, it is widened to hold dsl's interval too: which shape
    is right is what the runs do not settle, and the interval must carry that; where it already holds dsl's
    estimate, it stands (widening it to dsl's interval as well covered the published law's curves from 4x at 20
    tokens/param in 0.99-1.00 of data sets, docs/fit.md). Auto weighs both on held-out runs, so only a family asked
    for by name is checked."""
    from capgap.runs.groups import group_runs

    if law.file.bound is not None:
        return law
    quiet = options.model_copy(update={"bootstrap": 0})
    groups = group_runs(runs, options.metric, options.direction, options.size_measure)
    members = _group_members(groups, runs)
    for name in fittable_families():
        cls = law_class(name)
        reason = getattr(cls, "auto_exclusion", None)
        if not _own_curve(name) or (callable(reason) and reason(runs, options)):
            continue
        try:
            other = check_assumed_teacher_losses(fit_family(cls, runs, quiet), {law.file.law: law})
            if other.file.diagnostics.no_interval:
                continue  # its own checks do not pass: no evidence against the curve family
            # The same point fit (its check against assumed teacher losses passed above), now with an interval.
            other = fit_family(cls, runs, options.model_copy(update={"bootstrap": min(options.bootstrap,
                                                                                      CHECK_RESAMPLES)}))
            if other.file.diagnostics.no_interval:
                continue
            assumed = other.file.diagnostics.teacher_loss_assumed
        except InputError:
            continue
        apart = []
        for key, group in zip(groups.keys, members):
            ours = law.optimal_teacher(key.student_params, key.tokens)
            if ours.low is None and ours.high is None:
                continue
            try:
                theirs = _answer_in_measure(other, key, group, options.size_measure)
            except InputError:
                continue
            if theirs.censored is not None or not np.isfinite(theirs.estimate):
                continue
            low, high = theirs.low or theirs.estimate, theirs.high or theirs.estimate
            if ours.censored == "at_most":  # a bound: apart where dsl's estimate lies past it; its bound widens
                if theirs.estimate > ours.high:
                    apart.append(_Apart(key, ours, theirs, None, high))
            elif ours.censored == "at_least":
                if theirs.estimate < ours.low:
                    apart.append(_Apart(key, ours, theirs, low, None))
            elif ours.low is not None and ours.high is not None:
                outside = not ours.low <= theirs.estimate <= ours.high
                if outside or not low <= ours.estimate <= high:  # widened only where ours misses theirs
                    apart.append(_Apart(key, ours, theirs, *((low, high) if outside else (None, None))))
        if apart:
            return _widened_to_other_law(law, name, assumed, apart)
    return law


class _Apart(NamedTuple):
    """A fitted student whose optimum the curve family and the other law read apart, and what its answer is
    widened to hold (None on a side not widened: the curve model's answer already holds the other's estimate)."""

    key: object  # the group's key (capgap.runs.groups)
    ours: TeacherEstimate
    theirs: TeacherEstimate
    hold_low: float | None
    hold_high: float | None


def _widened_to_other_law(law: Law, name: str, assumed: bool, apart: list[_Apart]) -> Law:
    """``law`` with the optima of the students in ``apart`` (key, its answer, the other law's, and the interval
    to hold: the other law's, or None, None where the curve model's interval already holds its estimate; for a
    censored answer, a bound that dsl's estimate lies past, only the bound's own side) widened to hold it, and the
    sentence that says so first."""
    from capgap.sizes.units import format_size

    reach = {(a.key.family, a.key.student_init, a.key.student_params, a.key.tokens): (a.hold_low, a.hold_high)
             for a in apart}
    optima = []
    for o in law.file.optima:
        low, high = reach.get((o.family, o.student_init, o.student_params, o.tokens), (None, None))
        # A bound is widened on its own side only (a censored optimum has one); a two-sided interval on both.
        model_low = low if low is not None and o.low is not None and low < o.low else None
        model_high = high if high is not None and o.high is not None and high > o.high else None
        if model_low is None and model_high is None:
            optima.append(o)
            continue
        optima.append(o.model_copy(update={"model_low": model_low, "model_high": model_high,
                                           "low": model_low or o.low, "high": model_high or o.high}))
    named = max(apart, key=lambda a: abs(np.log(a.ours.estimate / a.theirs.estimate)))
    key, ours, theirs = named.key, named.ours, named.theirs
    law.file.optima = optima
    own = f" [{format_size(theirs.low)}, {format_size(theirs.high)}]" if theirs.low and theirs.high else ""
    widened = sum(a.hold_low is not None or a.hold_high is not None for a in apart)
    if widened:
        what = f"where it missed {name}'s estimate ({widened} student(s)) it is widened to hold {name}'s interval"
        if named.hold_low is not None or named.hold_high is not None:  # the student named was widened: its answer now
            what += f" (this one: {_answer_text(law.optimal_teacher(key.student_params, key.tokens))})"
    else:
        what = f"it holds {name}'s estimate, but {name}'s interval leaves the curve model's estimate out"
    sentence = (f"lack of fit: the {law.file.law} curve model and the {name} law"
                f"{' (on assumed teacher losses)' if assumed else ''}, which follows these runs by its own checks, "
                f"read the optimum apart for {len(apart)} of {len(law.file.optima)} student(s): T* of the "
                f"{format_size(key.student_params)} student is {_answer_text(ours)} with {law.file.law}, "
                f"{format_size(theirs.estimate)}{own} with {name}; the curve model's interval spans the location "
                f"under its own shape only: {what}; compare --law {name}, or --law auto, which weighs both on "
                "held-out runs")
    law.file.diagnostics = law.file.diagnostics.model_copy(
        update={"warnings": [sentence, *law.file.diagnostics.warnings]})
    return law


def _answer_text(answer: TeacherEstimate) -> str:
    """An answer as the sentence gives it: the bound of a censored one, else the estimate and its interval."""
    from capgap.sizes.units import format_size

    if answer.censored == "at_most":
        return f"at most {format_size(answer.high)}"
    if answer.censored == "at_least":
        return f"at least {format_size(answer.low)}"
    return f"{format_size(answer.estimate)} [{format_size(answer.low)}, {format_size(answer.high)}]"


def _curve_references(runs: Sequence[RunRecord], options: FitOptions) -> dict[str, Law]:
    """Every curve family that fits these runs, without intervals: the yardstick of assumed teacher losses."""
    quiet = options.model_copy(update={"bootstrap": 0})
    out: dict[str, Law] = {}
    for name in fittable_families():
        if _own_curve(name):
            continue
        try:
            out[name] = fit_family(law_class(name), runs, quiet)
        except InputError:
            continue
    return out


def refit_start(law: Law) -> dict[str, float]:
    """``FitOptions.start`` for a quick refit of nearly the same runs (a CV fold) from ``law``: its coefficients
    and, for a curve family, its curve shape (far shape, asymmetry, skew)."""
    if _own_curve(law.file.law):
        return dict(law.file.coefficients)
    from capgap.fit.onestage import far_shapes

    d = law.file.diagnostics
    (s_left, a_left), (s_right, a_right) = far_shapes(d.shape)
    return {**law.file.coefficients, "shape_s": s_left, "shape_alpha": a_left, "shape_s_right": s_right,
            "shape_alpha_right": a_right, "asymmetry": d.asymmetry or 1.0,
            **({"skew": d.skew} if d.skew is not None else {})}


def _own_curve(name: str) -> bool:
    """A family that predicts the metric itself (dsl) and so draws each held-out group's curve itself."""
    return callable(getattr(law_class(name), "held_out_curve", None))


def _choice_summary(winner: str, runner_up: str | None, scores: dict[str, float]) -> str:
    """Which family won the held-out comparison, and by how much (in the metric's units and as a share)."""
    if runner_up is None:
        return f"{winner} chosen: the only family cross-validated (held-out RMSE {scores[winner]:.3g})"
    if scores[winner] <= scores[runner_up]:
        share = 1.0 - scores[winner] / scores[runner_up] if scores[runner_up] > 0 else 0.0
        clearly = " by more than one standard error, as the most complex family must" if _own_curve(winner) else ""
        return (f"{winner} won{clearly}: held-out RMSE {scores[winner]:.3g} against {scores[runner_up]:.3g} for "
                f"{runner_up}, {scores[runner_up] - scores[winner]:.3g} ({share:.0%}) lower")
    best = min(scores, key=scores.get)
    return (f"{winner} chosen: simpler, and within one standard error of {best} (held-out RMSE "
            f"{scores[winner]:.3g} against {scores[best]:.3g}, {scores[winner] - scores[best]:.3g} worse)")


def _one_standard_error_choice(squared_errors: dict[str, np.ndarray]) -> str:
    """Breiman's one-standard-error rule: with few folds a flexible family often wins CV by chance."""
    mse = {name: float(e.mean()) for name, e in squared_errors.items()}
    best = min(mse, key=mse.get)
    errors = squared_errors[best]
    tolerance = float(errors.std(ddof=1) / np.sqrt(errors.size)) if errors.size > 1 else 0.0
    return next(name for name in registered_families() if name in mse and mse[name] <= mse[best] + tolerance)


def _fold(name: str, size: int, runs: Sequence[RunRecord], groups, options: FitOptions):
    """The family fitted without student size ``size``; the held-out groups, and each one's runs."""
    from capgap.sizes.units import format_size

    held = np.array([k.student_params == size for k in groups.keys])
    held_ids = {i for i, g in zip(groups.run_ids, groups.group) if held[g]}
    try:
        law = fit_family(law_class(name), [r for r in runs if r.run_id not in held_ids], options)
    except InputError as exc:
        raise InputError(f"cannot be fitted with students of {format_size(size)} held out ({exc})") from None
    test = groups.subset(held)
    return law, test, _group_members(test, runs)


def _group_members(groups, runs: Sequence[RunRecord]) -> list[list[RunRecord]]:
    """The runs of each of ``groups``' groups, in the groups' order."""
    by_id = {r.run_id: r for r in runs}
    return [[by_id[i] for i, g in zip(groups.run_ids, groups.group) if g == j] for j in range(len(groups.keys))]


def _location_losses(law: Law, test, members: Sequence[Sequence[RunRecord]], measure: str,
                     curve: tuple) -> list[float]:
    """Squared residual of each held-out run, its group's optimum put where ``law`` says and the group's baseline
    and curvatures refitted around it with the curve model's ``curve`` (shape, asymmetry, skew)."""
    from capgap.fit.onestage import held_out_loss
    from capgap.sizes.units import format_size

    location = []
    for key, runs in zip(test.keys, members):
        try:
            teacher = _optimum_in_measure(law, key, runs, measure)
        except InputError:
            teacher = float("nan")
        if not (np.isfinite(teacher) and teacher > 0):
            raise InputError(f"predicts no positive teacher for held-out students of {format_size(key.student_params)}")
        location.append(np.log(teacher))
    shape, asymmetry, skew = curve
    per_group = held_out_loss(test, np.array(location), shape, asymmetry, np.inf, skew)
    counts = np.bincount(test.group, minlength=len(test.keys))
    return list(np.repeat(2.0 * per_group / counts, counts))  # each run's share of its group's squared error


def _own_curve_losses(law: Law, test, members: Sequence[Sequence[RunRecord]]) -> list[float]:
    """Squared residual of each held-out run about the law's own curve, with the three parameters the curve
    model refits per group refitted here too: a baseline, and a scale on each side of the law's optimum."""
    from scipy.optimize import lsq_linear

    squared: list[float] = []
    for j, runs in enumerate(members):
        rise, weak = law.held_out_curve(runs)  # type: ignore[attr-defined]  # in the order of the group's runs
        y = test.badness[test.group == j]
        design = np.column_stack([np.ones_like(rise), np.where(weak, rise, 0.0), np.where(weak, 0.0, rise)])
        fit = lsq_linear(design, y, bounds=([-np.inf, 0.0, 0.0], [np.inf, np.inf, np.inf]))
        squared += list((y - design @ fit.x) ** 2)
    return squared


def _optimum_in_measure(law: Law, key, runs: Sequence[RunRecord], measure: str, bounds: bool = True) -> float:
    """The law's optimal teacher for a group, in the group's size measure (a law may use another).

    A censored answer is placed at its bound (dsl: the saturation size where no finite teacher is best), or is
    nan with ``bounds=False``."""
    answer = _answer_in_measure(law, key, runs, measure)
    if answer.censored is not None and not bounds:
        return float("nan")
    return answer.estimate


def _answer_in_measure(law: Law, key, runs: Sequence[RunRecord], measure: str):
    """The law's answer (a TeacherEstimate) for a group, its sizes in the group's size measure."""
    wanted = law.file.size_measure
    student = key.student_params if wanted == measure else float(np.median([r.size("student", wanted) for r in runs]))
    answer = law.optimal_teacher(student, key.tokens)
    if wanted == measure:
        return answer
    pairs = sorted({(r.size("teacher", wanted), r.size("teacher", measure)) for r in runs})
    x, y = np.log([p[0] for p in pairs]), np.log([p[1] for p in pairs])

    def converted(teacher: float | None) -> float | None:
        # Between measured teachers, interpolate the size conversion in log-log; beyond them, keep the nearest ratio.
        if teacher is None or not teacher > 0:
            return teacher
        return float(np.exp(np.log(teacher) + np.interp(np.log(teacher), x, y - x)))

    return answer.model_copy(update={f: converted(getattr(answer, f)) for f in ("estimate", "low", "high")})
