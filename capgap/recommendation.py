"""Turn laws, a ladder and a budget into a teacher recommendation.

One call, ``recommend(student, ...)``, answers what `capgap recommend`
prints. Without a law it consults both published laws side by side (Zhang
et al. for students pruned from their teacher, Busbridge et al. for students
from scratch); ``init`` picks the headline, whose answer fills the top-level
fields, and ``by_law`` holds one answer per law. Each answer converts the
student to its law's size measure, checks the law's regime, snaps the
teacher to a ladder and, where the law predicts quality, gives the near-miss
band and each model's penalty. The headline's strategies are priced under
the chosen teacher-cost scenario; with the teacher's pretraining counted and
a budget, a law that predicts loss solves compute-optimal distillation.

This module imports pydantic and the standard library (the law families it
loads bring numpy), never scipy, pandas or torch, so the command starts fast.
"""

from __future__ import annotations

import math
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from capgap.assistants import SIZE_TOLERANCE, measured_assistant
from capgap.compute_optimal import ComputeOptimal, compute_optimal
from capgap.costs import DEFAULT_TEACHER_COST, TEACHER_COSTS, TeacherCost, cost_rule, counts_inference, counts_pretraining
from capgap.errors import InputError
from capgap.ladder_snap import NearestModel, interval_of, ladder_warnings, nearest_models, preferred_reason, resolve_ladder
from capgap.ladders import LadderModel
from capgap.lawfiles import PUBLISHED, SHIPPED_LAWS, ShippedLaw, StudentInit, published_for, resolve_law
from capgap.laws.base import Censoring, Law, LawFile, SizeMeasure, TeacherEstimate
from capgap.near_miss import DEFAULT_TOLERANCE, NearMiss, near_miss_band, penalty
from capgap.regime import Applies, check_regime
from capgap.size_convert import ConvertedSize, convert_size
from capgap.sizes import TOKENS_PER_PARAM, format_size, parse_size
from capgap.strategies import (BudgetBest, DistillRun, Strategy, available_teacher_strategies, budget_best,
                               search_strategies)

__all__ = ["BudgetBest", "DistillRun", "LawAnswer", "LawInfo", "NearestModel", "Recommendation", "Strategy",
           "recommend"]
INITS: tuple[StudentInit, ...] = ("pruned", "scratch")


class LawInfo(BaseModel):
    """Where a law came from and the setting it speaks for."""

    model_config = ConfigDict(frozen=True)
    name: str
    source: str  # a shipped name ('zhang2023', ...), a file path, or 'python object'
    label: str  # who, in a few words
    fitted_range: list[int] | None  # [min, max] student size the law was fitted on
    fitted: bool
    provenance: str
    n_runs: int
    metric: str
    size_measure: SizeMeasure
    regime: list[str]  # how students are made, tokens per parameter, how teachers were trained, size measure
    reference: str  # the publication or command behind it
    solidity: str  # how far to trust it


class LawAnswer(BaseModel):
    """One law's answer for the student: one entry of ``Recommendation.by_law``."""

    model_config = ConfigDict(frozen=True)
    law: LawInfo
    student_params: int  # in this law's size measure
    size_rule: str  # how the student's size was put in this law's measure
    tokens_per_param: float
    teacher_params: int  # the optimal teacher (the bound when censored; the compute-optimal one with pretraining counted)
    teacher_params_low: int | None
    teacher_params_high: int | None
    level: float
    censored: Censoring | None
    applies: Applies
    expected_metric: float | None  # the law's predicted metric at its teacher, where it predicts quality
    near_miss: NearMiss | None
    distillation_pays: bool | None  # with a budget and the teacher's pretraining counted, where the law can say
    compute_optimal: ComputeOptimal | None
    nearest: list[NearestModel]  # preferred first
    preferred: str | None
    preferred_reason: str | None
    budget_best: BudgetBest | None = None
    warnings: list[str]  # regime first, then the law file's own, then the rest
    notes: list[str]


class Recommendation(BaseModel):
    """Everything `capgap recommend` reports; the CLI only formats it. Top-level fields are the headline's."""

    model_config = ConfigDict(frozen=True)
    student_params: int  # in the headline law's size measure
    size_measure: SizeMeasure
    student_given: int  # the size as the user gave it
    given_measure: SizeMeasure
    init: StudentInit
    tokens: int
    tokens_rule: str
    teacher_params: int
    teacher_params_low: int | None
    teacher_params_high: int | None
    level: float
    censored: Censoring | None
    law: LawInfo
    ladder: str
    nearest: list[NearestModel]
    preferred: str | None
    preferred_reason: str | None
    teacher_cost: TeacherCost
    strategies: list[Strategy]
    flops_rule: str
    budget: float | None = None
    budget_best: BudgetBest | None = None
    tolerance: float
    by_law: list[LawAnswer]
    warnings: list[str]  # every law's, the headline's first; regime warnings first within each
    notes: list[str]

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)


def _describe(law: Law, source: str) -> LawInfo:
    file = law.file
    fitted_range = [int(round(x)) for x in file.student_range] if file.student_range else None
    shipped: ShippedLaw | None = SHIPPED_LAWS.get(source)
    if shipped is not None:
        regime = [f"students: {shipped.students}", f"tokens: {shipped.tokens}", f"teachers: {shipped.teachers}",
                  f"sizes: {shipped.size_measure}"]
        label, reference, solidity = shipped.label, shipped.source, shipped.solidity
    else:
        r = file.regime
        sizes = r.student_params or file.student_range
        regime = [f"students: {' or '.join(r.student_init) or 'init unknown'}"
                  + (f", {format_size(sizes[0])}–{format_size(sizes[1])}" if sizes else ""),
                  "tokens: " + (f"{r.tokens_per_param[0]:.3g}–{r.tokens_per_param[1]:.3g} per parameter"
                                if r.tokens_per_param else "per-parameter range unknown"),
                  f"sizes: {file.size_measure} parameters"]
        label = f"{law.name} law ({'fitted on ' + str(file.n_runs) + ' runs' if file.fitted else 'unfitted'})"
        reference, solidity = source, ("fitted by capgap from runs" if file.fitted else "not fitted from runs")
    return LawInfo(name=law.name, source=source, label=label, fitted_range=fitted_range, fitted=file.fitted,
                   provenance=file.provenance, n_runs=file.n_runs, metric=file.metric, size_measure=file.size_measure,
                   regime=regime, reference=reference, solidity=solidity)


def _estimate_warnings(estimate: TeacherEstimate) -> list[str]:
    if estimate.censored == "at_least":
        return [f"censored estimate: the law only bounds the optimum from below; "
                f"the teacher should be at least {format_size(estimate.estimate)}"]
    if estimate.censored == "at_most":
        return [f"censored estimate: the law only bounds the optimum from above; "
                f"the teacher should be at most {format_size(estimate.estimate)}"]
    return []


def _unfitted(law: Law, source: str) -> tuple[list[str], list[str]]:
    """A law with no runs behind it: a warning for a user's file, a note for a shipped published law
    (whose source and solidity are printed beside it anyway)."""
    if law.file.fitted:
        return [], []
    text = ("unfitted reference law: its coefficients are read from published work, not fitted on runs; "
            "treat it as a prior and refit on your runs with `capgap fit`")
    return ([], [text]) if source in SHIPPED_LAWS else ([text], [])


def _finite_int(value: float | None) -> int | None:
    return int(round(value)) if value is not None and math.isfinite(value) else None


class _Setting(BaseModel):
    """What every law is asked about: the student as given, its tokens, the ladder, budget and costs."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    student: int
    measure: SizeMeasure
    init: StudentInit
    tokens: int
    models: list[LadderModel]
    ladder: str
    budget: float | None
    cost: TeacherCost
    tolerance: float


def _convert(setting: _Setting, wanted: SizeMeasure) -> ConvertedSize:
    return convert_size(setting.student, setting.measure, wanted)


def answer(law: Law, source: str, setting: _Setting, strict_ladder: bool = False) -> LawAnswer:
    """One law's answer. ``strict_ladder``: refuse a ladder without this law's size measure instead of noting it."""
    measure = law.file.size_measure
    student = _convert(setting, measure)
    s, tokens = student.params, setting.tokens
    info = _describe(law, source)
    applies, regime_warnings = check_regime(law.file, s, tokens, setting.init)
    notes: list[str] = [] if student.exact and student.rule == "as given" else [
        f"student counted as {format_size(s)} {measure} parameters ({student.rule})"]
    unfitted_warnings, unfitted_notes = _unfitted(law, source)
    notes += unfitted_notes

    estimate = law.optimal_teacher(s, tokens)
    if not (math.isfinite(estimate.estimate) and estimate.estimate > 0):
        raise InputError(f"the {law.name} law gives no usable teacher size for a {format_size(s)} student "
                         f"({estimate.estimate!r}); check the law file's coefficients")
    optimum = None
    if setting.budget is not None and counts_pretraining(setting.cost) and law.name == "dsl":
        optimum = compute_optimal(law.file.coefficients, s, setting.budget, counts_inference(setting.cost))
        estimate = TeacherEstimate(estimate=optimum.teacher_params, level=estimate.level)
    teacher = estimate.estimate
    interval = interval_of(estimate)

    models = setting.models
    lacking = [m.name for m in models if measure == "nonembed" and m.params_nonembed is None]
    if lacking and strict_ladder:
        raise InputError(f"the law counts non-embedding parameters but ladder {setting.ladder} gives none for {lacking[0]}; "
                         "add a params_nonembed column to the ladder CSV, or use a law fitted on total counts")
    if lacking:
        notes.append(f"ladder {setting.ladder} gives no non-embedding counts (none for {lacking[0]}): "
                     f"no models snapped for this law")
        models = []
    nearest = nearest_models(models, measure, s, teacher, interval)

    band = near_miss_band(law, s, tokens, teacher, setting.tolerance) if optimum is None else None
    if band is not None:
        nearest = [n.model_copy(update={"penalty": penalty(law, s, n.params, tokens, band.best_metric)}) for n in nearest]
    expected = optimum.distilled_loss if optimum is not None else (band.best_metric if band is not None else None)
    law_warnings = [f"law file: {w}" for w in law.file.diagnostics.warnings]
    other = (unfitted_warnings + _estimate_warnings(estimate)
             + ladder_warnings(models, nearest, setting.ladder, teacher, interval))
    if interval is None and optimum is None:
        notes.append("the law gives a point estimate without an interval")
    return LawAnswer(
        law=info, student_params=s, size_rule=student.rule, tokens_per_param=tokens / s,
        teacher_params=int(round(teacher)), teacher_params_low=_finite_int(estimate.low),
        teacher_params_high=_finite_int(estimate.high), level=estimate.level, censored=estimate.censored,
        applies=applies, expected_metric=expected, near_miss=band,
        distillation_pays=optimum.distillation_pays if optimum is not None else None, compute_optimal=optimum,
        nearest=nearest, preferred=nearest[0].name if nearest else None,
        preferred_reason=preferred_reason(nearest, teacher),
        warnings=regime_warnings + law_warnings + other, notes=notes)


def _strategies(law: Law, head: LawAnswer, setting: _Setting, available: int | None,
                assistants: str | Path | None = None) -> tuple[list[Strategy], BudgetBest | None, list[str]]:
    """The headline law's strategies under the teacher-cost scenario, the budget's best student, and notes.

    ``assistants``: a run store whose measured chains (`capgap assistant`) replace the law's assistant sizes.
    """
    measure, s, tokens, cost = law.file.size_measure, head.student_params, setting.tokens, setting.cost
    models = [] if any(measure == "nonembed" and m.params_nonembed is None for m in setting.models) else setting.models
    teacher = float(head.teacher_params)
    law_model = f"{format_size(teacher)} (law)", head.teacher_params
    law_teacher = (head.nearest[0].name, head.nearest[0].params) if head.nearest else law_model
    candidates = [(m.name, m.size(measure)) for m in models if m.size(measure) > s]
    strategies = search_strategies(law, s, law_teacher, candidates, setting.ladder, tokens, cost)
    notes: list[str] = []
    if available is not None:
        given = convert_size(available, setting.measure, measure).params
        interval = (head.teacher_params_low or 0.0, head.teacher_params_high or math.inf) \
            if head.teacher_params_low is not None or head.teacher_params_high is not None else None
        if head.censored is not None:
            interval = interval_of(TeacherEstimate(estimate=teacher, censored=head.censored))
        measured = None
        if assistants is not None:
            measured = measured_assistant(assistants, s, given, measure)
            if measured is None:
                notes.append(f"no chain in {assistants} measured an assistant for a {format_size(s)} student and a "
                             f"{format_size(given)} teacher (within {SIZE_TOLERANCE:.0%}); the law's sizes are used")
        more, more_notes = available_teacher_strategies(law, s, given, teacher, interval, tokens, cost, measured)
        strategies += more
        notes += more_notes
    best = None
    if setting.budget is not None:
        strategies = [x.model_copy(update={"fits_budget": x.flops <= setting.budget}) for x in strategies]
        if head.compute_optimal is None:
            best = budget_best(law, s, [law_teacher, law_model, *candidates], setting.budget, cost)
            if best is None:
                notes.append(f"the {law.name} law places the teacher but cannot predict student quality; "
                             "a dsl law (e.g. --law busbridge2025) can say which student the budget buys")
    return strategies, best, notes


def _choice(value: str, accepted: tuple[str, ...], what: str) -> str:
    if value not in accepted:
        raise InputError(f"{what} {value!r} is not known; accepted: {', '.join(accepted)}")
    return value


def recommend(student: str | int, law: str | Path | Law | LawFile | None = None,
              ladder: str | list[LadderModel] = "pythia", size_measure: SizeMeasure | None = None,
              tokens: str | int | None = None, available_teacher: str | int | None = None,
              budget: str | float | None = None, init: StudentInit = "pruned",
              teacher_cost: TeacherCost = DEFAULT_TEACHER_COST, tolerance: float = DEFAULT_TOLERANCE,
              assistants: str | Path | None = None) -> Recommendation:
    """Recommend a teacher for a student of ``student`` parameters.

    ``law``: None or 'default' consults both published laws, ``init`` ('pruned': Zhang et al.,
    'scratch': Busbridge et al.) picks the headline; a shipped name (zhang2023, busbridge2025,
    cpu-demo, reference), a LAW.json path or a Law is the headline, the published laws follow it.
    ``size_measure``: what ``student`` counts (default: total; with a law of your own, that law's).
    ``tokens``: distillation tokens (default 20 per student parameter). ``budget`` in FLOPs.
    ``teacher_cost``: none, inference, pretraining or both (Busbridge et al.'s scenarios).
    ``tolerance``: the near-miss band's width in the metric's units (nats for losses).
    ``assistants``: a run store of `capgap assistant` chains; with ``available_teacher``, the
    teacher_assistant_chain goes through the measured assistant (else the law's sizes, as without it).
    """
    init = _choice(init, INITS, "student init")  # type: ignore[assignment]
    cost = _choice(teacher_cost, TEACHER_COSTS, "teacher cost")  # type: ignore[assignment]
    if not (isinstance(tolerance, (int, float)) and math.isfinite(tolerance) and tolerance > 0):
        raise InputError(f"tolerance {tolerance!r} must be a positive number (nats for a loss), e.g. 0.01")
    given = parse_size(student, what="student size")
    side_by_side = law is None or isinstance(law, str) and law.lower() == "default"
    laws = ([resolve_law(published_for(init))] if side_by_side else [resolve_law(law)])
    laws += [resolve_law(name) for name in PUBLISHED if name != laws[0][1]]
    head_law = laws[0][0]
    measure: SizeMeasure = size_measure or ("total" if side_by_side else head_law.file.size_measure)
    _choice(measure, ("total", "nonembed"), "size measure")
    models, label = resolve_ladder(ladder)
    available = parse_size(available_teacher, what="available teacher size") if available_teacher is not None else None
    if available is not None and available < given:
        raise InputError(f"available teacher {format_size(available)} is smaller than the student "
                         f"{format_size(given)}; give a teacher at least as large as the student")
    if tokens is None:
        distill_tokens = TOKENS_PER_PARAM * given
        tokens_rule = f"default: {TOKENS_PER_PARAM} tokens per student parameter"
    else:
        distill_tokens, tokens_rule = parse_size(tokens, what="tokens"), "given"
    budget_flops = float(parse_size(budget, what="budget (FLOPs)")) if budget is not None else None
    setting = _Setting(student=given, measure=measure, init=init, tokens=distill_tokens, models=models, ladder=label,
                       budget=budget_flops, cost=cost, tolerance=float(tolerance))

    answers = [answer(each, source, setting, strict_ladder=i == 0) for i, (each, source) in enumerate(laws)]
    head = answers[0]
    if assistants is not None and available is None:
        raise InputError("--assistants needs --available-teacher: a measured chain is for a teacher you have")
    strategies, best, strategy_notes = _strategies(head_law, head, setting, available, assistants)
    answers[0] = head = head.model_copy(update={"budget_best": best})
    labelled = [(a.law.source, w) for a in answers for w in a.warnings]
    return Recommendation(
        student_params=head.student_params, size_measure=head_law.file.size_measure, student_given=given,
        given_measure=measure, init=init, tokens=distill_tokens, tokens_rule=tokens_rule,
        teacher_params=head.teacher_params, teacher_params_low=head.teacher_params_low,
        teacher_params_high=head.teacher_params_high, level=head.level, censored=head.censored, law=head.law,
        ladder=label, nearest=head.nearest, preferred=head.preferred, preferred_reason=head.preferred_reason,
        teacher_cost=cost, strategies=strategies, flops_rule=cost_rule(cost), budget=budget_flops, budget_best=best,
        tolerance=float(tolerance), by_law=answers,
        warnings=[w if source == head.law.source else f"{source}: {w}" for source, w in labelled],
        notes=head.notes + strategy_notes)
