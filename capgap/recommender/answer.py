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

from capgap.recommender.assistants import SIZE_TOLERANCE, measured_assistant
from capgap.recommender.compute_optimal import ComputeOptimal, compute_optimal
from capgap.sizes.costs import DEFAULT_TEACHER_COST, TEACHER_COSTS, TeacherCost, cost_rule, counts_inference, counts_pretraining
from capgap.core.errors import InputError
from capgap.runs.kinds import check_kind, kind_caveat
from capgap.recommender.ladder_snap import (NearestModel, interval_of, ladder_warnings, larger_than, nearest_models, preferred_reason,
                                resolve_ladder)
from capgap.sizes.ladders import LadderModel
from capgap.laws.files import PUBLISHED, SHIPPED_LAWS, ShippedLaw, StudentInit, published_for, resolve_law, shipped_name
from capgap.laws.base import Censoring, Law, LawFile, SizeMeasure, TeacherEstimate
from capgap.recommender.near_miss import DEFAULT_TOLERANCE, NearMiss, near_miss_band, penalty
from capgap.recommender.reach import check_reach, distill_tokens, far_outside
from capgap.laws.regime import Applies, check_regime, not_a_language_model, runs_without_tokens
from capgap.recommender.size_convert import ConvertedSize, convert_size
from capgap.sizes.units import TOKENS_PER_PARAM, format_size, parse_size
from capgap.recommender.strategies import (BudgetBest, DistillRun, Strategy, available_teacher_strategies, budget_best,
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
    author: str  # whose law, as a sentence names it: 'Zhang et al.', 'the law in law.json'
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
    tokens_per_param: float | None  # None: tokens unknown (a law fitted on runs without tokens)
    teacher_params: int  # the optimal teacher (the bound when censored; the compute-optimal one with pretraining counted)
    teacher_at_tokens: int | None = None  # with a budget that moved the teacher: the optimal teacher at the given tokens
    teacher_params_low: int | None
    teacher_params_high: int | None
    level: float
    censored: Censoring | None
    bracket: bool = False  # low/high: the measured teachers either side of the best ones, not a level interval
    applies: Applies
    expected_metric: float | None  # the law's predicted metric at its teacher, where it predicts quality
    near_miss: NearMiss | None
    distillation_pays: bool | None  # with a budget and the teacher's pretraining counted, where the law can say
    compute_optimal: ComputeOptimal | None
    nearest: list[NearestModel]  # preferred first
    preferred: str | None
    preferred_reason: str | None
    budget_best: BudgetBest | None = None
    supervised_metric: float | None = None  # the student trained alone on the same budget, where the law can say
    warnings: list[str]  # an extrapolation first (dsl), then far outside, then regime, then the law file's own, then the rest
    notes: list[str]


class Recommendation(BaseModel):
    """Everything `capgap recommend` reports; the CLI only formats it. Top-level fields are the headline's."""

    model_config = ConfigDict(frozen=True)
    student_params: int  # in the headline law's size measure
    size_measure: SizeMeasure
    student_given: int  # the size as the user gave it
    given_measure: SizeMeasure
    init: StudentInit
    tokens: int  # what strategies are priced at
    tokens_rule: str
    teacher_params: int
    teacher_params_low: int | None
    teacher_params_high: int | None
    level: float
    censored: Censoring | None
    law: LawInfo
    ladder: str
    bracket: bool = False  # as LawAnswer.bracket
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
    student_kind: str = "dense"  # or moe: a mixture-of-experts student (capgap.runs.kinds)
    kind_caveat: str | None = None  # said before the answer: the law does not cover this kind of student

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)



def _range_text(bounds: list[float]) -> str:
    """'1.7–8.4', or one number where both ends agree ('20', never '20–20')."""
    low, high = (f"{b:.3g}" for b in bounds)
    return low if low == high else f"{low}–{high}"

def _describe(law: Law, source: str) -> LawInfo:
    file = law.file
    fitted_range = [int(round(x)) for x in file.student_range] if file.student_range else None
    shipped: ShippedLaw | None = SHIPPED_LAWS.get(source)
    if shipped is not None:
        regime = [f"students: {shipped.students}", f"tokens: {shipped.tokens}", f"teachers: {shipped.teachers}",
                  f"sizes: {shipped.size_measure}"]
        label, reference, solidity, author = shipped.label, shipped.source, shipped.solidity, shipped.author
    else:
        r = file.regime
        sizes = r.student_params or file.student_range
        regime = [f"students: {' or '.join(r.student_init) or 'init unknown'}"
                  + (f", {format_size(sizes[0])}–{format_size(sizes[1])}" if sizes else ""),
                  "tokens: " + (_range_text(r.tokens_per_param) + " per parameter"
                                if r.tokens_per_param else "per-parameter range unknown"),
                  f"sizes: {file.size_measure} parameters"]
        label = f"{law.name} law ({'fitted on ' + str(file.n_runs) + ' runs' if file.fitted else 'unfitted'})"
        reference, solidity = source, ("fitted by capgap from runs" if file.fitted else "not fitted from runs")
        author = f"the {law.name} law in {Path(source).name}" if source != "python object" else f"the {law.name} law"
    return LawInfo(name=law.name, source=source, label=label, author=author, fitted_range=fitted_range, fitted=file.fitted,
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
    tokens: int  # distillation tokens (what strategies are priced at)
    tokens_unknown: bool  # the headline law's runs carry no tokens and none were given: it is asked without
    foreign: str | None  # why the headline law's students are not language models, if they are not
    models: list[LadderModel]
    ladder: str
    budget: float | None
    cost: TeacherCost
    tolerance: float


def _convert(setting: _Setting, wanted: SizeMeasure) -> ConvertedSize:
    return convert_size(setting.student, setting.measure, wanted)


def _size_notes(student: ConvertedSize, measure: SizeMeasure, foreign: str | None) -> tuple[list[str], list[str]]:
    """(warnings, notes) on how the student was put in the law's measure: an embedding share assumed for
    models that are not language models is a warning, not a note."""
    if student.exact and student.rule == "as given":
        return [], []
    text = f"student counted as {format_size(student.params)} {measure} parameters ({student.rule})"
    if foreign and not student.exact:
        return [f"{text}: an embedding share has no meaning for these models"], []
    return [], [text]


def _budget_answer(law: Law, s: int, setting: _Setting, nearest: list[NearestModel], teacher: float,
                   measure: SizeMeasure) -> tuple[BudgetBest | None, float | None]:
    """The best one-run student the budget buys among the law's teacher and the ladder (where the law
    predicts quality), and the same budget spent on the student alone (a dsl law)."""
    if setting.budget is None:
        return None, None
    law_model = (f"{format_size(teacher)} (law)", int(round(teacher)))
    preferred = [(nearest[0].name, nearest[0].params)] if nearest else []
    models = [] if any(measure == "nonembed" and m.params_nonembed is None for m in setting.models) else setting.models
    candidates = [(m.name, m.size(measure)) for m in models if larger_than(m.size(measure), s)]
    best = budget_best(law, s, [*preferred, law_model, *candidates], setting.budget, setting.cost)
    supervised = None
    if best is not None and law.name == "dsl":
        from capgap.laws.dsl import supervised_loss

        supervised = float(supervised_loss(law.file.coefficients, s, setting.budget / (6.0 * s)))
    return best, supervised


def answer(law: Law, source: str, setting: _Setting, strict_ladder: bool = False, head: bool = False) -> LawAnswer:
    """One law's answer. ``strict_ladder``: refuse a ladder without this law's size measure instead of noting it.
    ``head``: the headline law (asked without tokens when its runs carry none)."""
    measure = law.file.size_measure
    student = _convert(setting, measure)
    s = student.params
    tokens = None if head and setting.tokens_unknown else setting.tokens
    info = _describe(law, source)
    shipped = SHIPPED_LAWS.get(source)
    foreign = setting.foreign if shipped is not None else None
    applies, regime_warnings = check_regime(law.file, s, tokens, setting.init,
                                            token_span=shipped.token_span if shipped else None, foreign=foreign)
    size_warnings, notes = _size_notes(student, measure, foreign)
    if tokens is None:
        notes.append(f"tokens unknown: the law's runs carry none; strategies are priced at {TOKENS_PER_PARAM} tokens "
                     "per student parameter, a placeholder")
    unfitted_warnings, unfitted_notes = _unfitted(law, source)
    notes += unfitted_notes

    estimate = law.optimal_teacher(s, tokens)
    # A law that knows its measured range (dsl: teacher losses) says first where this optimum lies beyond it.
    extrapolation = getattr(law, "extrapolation", None)
    beyond = extrapolation(s, tokens) if callable(extrapolation) else None
    if not (math.isfinite(estimate.estimate) and estimate.estimate > 0):
        raise InputError(f"the {law.name} law gives no usable teacher size for a {format_size(s)} student "
                         f"({estimate.estimate!r}); check the law file's coefficients")
    optimum, at_tokens = None, None
    if setting.budget is not None and counts_pretraining(setting.cost) and law.name == "dsl":
        optimum = compute_optimal(law.file.coefficients, s, setting.budget, counts_inference(setting.cost))
        at_tokens = int(round(estimate.estimate))
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
    best, supervised = (None, None) if optimum is not None else _budget_answer(law, s, setting, nearest, teacher, measure)
    expected = optimum.distilled_loss if optimum is not None else (band.best_metric if band is not None else None)
    pays = optimum.distillation_pays if optimum is not None else (
        best.expected_metric < supervised if best is not None and supervised is not None else None)
    law_warnings = [f"law file: {w}" for w in law.file.diagnostics.warnings]
    far = far_outside(law.file, s)
    other = (unfitted_warnings + _estimate_warnings(estimate)
             + ladder_warnings(models, nearest, setting.ladder, teacher, interval, measure))
    if interval is None and optimum is None:
        notes.append("the law gives a point estimate without an interval")
    return LawAnswer(
        law=info, student_params=s, size_rule=student.rule, tokens_per_param=tokens / s if tokens is not None else None,
        teacher_params=int(round(teacher)), teacher_at_tokens=at_tokens, teacher_params_low=_finite_int(estimate.low),
        teacher_params_high=_finite_int(estimate.high), level=estimate.level, censored=estimate.censored,
        bracket=estimate.bracket, applies=applies, expected_metric=expected, near_miss=band, distillation_pays=pays, compute_optimal=optimum,
        nearest=nearest, preferred=nearest[0].name if nearest else None,
        preferred_reason=preferred_reason(nearest, teacher), budget_best=best,
        supervised_metric=optimum.supervised_loss if optimum is not None else supervised,
        warnings=([beyond] if beyond else []) + ([far] if far else []) + regime_warnings + size_warnings + law_warnings + other, notes=notes)


def _strategies(law: Law, head: LawAnswer, setting: _Setting, available: int | None,
                assistants: str | Path | None = None) -> tuple[list[Strategy], list[str]]:
    """The headline law's strategies under the teacher-cost scenario, and notes.

    ``assistants``: a run store whose measured chains (`capgap assistant`) replace the law's assistant sizes.
    """
    measure, s, tokens, cost = law.file.size_measure, head.student_params, setting.tokens, setting.cost
    models = [] if any(measure == "nonembed" and m.params_nonembed is None for m in setting.models) else setting.models
    teacher = float(head.teacher_params)
    law_teacher = (head.nearest[0].name, head.nearest[0].params) if head.nearest else \
        (f"{format_size(teacher)} (law)", head.teacher_params)
    candidates = [(m.name, m.size(measure)) for m in models if larger_than(m.size(measure), s)]
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
    if setting.budget is not None:
        strategies = [x.model_copy(update={"fits_budget": x.flops <= setting.budget}) for x in strategies]
        if head.compute_optimal is None and head.budget_best is None:
            notes.append(f"the {law.name} law places the teacher but cannot predict student quality; "
                         "a dsl law (e.g. --law busbridge2025) can say which student the budget buys")
    return strategies, notes


def _consulted(law: str | Path | Law | LawFile | None, init: StudentInit) -> list[tuple[Law, str]]:
    """The laws that answer: both published ones (``init``'s first) without a law or with 'default'; a shipped
    name alone; a law file or object first, the published ones after it for comparison."""
    if law is None or isinstance(law, str) and law.lower() == "default":
        first = published_for(init)
        return [resolve_law(first)] + [resolve_law(name) for name in PUBLISHED if name != first]
    if isinstance(law, str) and shipped_name(law) is not None:
        return [resolve_law(law)]
    return [resolve_law(law)] + [resolve_law(name) for name in PUBLISHED]


def _choice(value: str, accepted: tuple[str, ...], what: str) -> str:
    if value not in accepted:
        raise InputError(f"{what} {value!r} is not known; accepted: {', '.join(accepted)}")
    return value


def recommend(student: str | int, law: str | Path | Law | LawFile | None = None,
              ladder: str | list[LadderModel] = "pythia", size_measure: SizeMeasure | None = None,
              tokens: str | int | None = None, available_teacher: str | int | None = None,
              budget: str | float | None = None, init: StudentInit | None = None,
              teacher_cost: TeacherCost = DEFAULT_TEACHER_COST, tolerance: float = DEFAULT_TOLERANCE,
              assistants: str | Path | None = None, student_kind: str = "dense") -> Recommendation:
    """Recommend a teacher for a student of ``student`` parameters.

    ``law``: None or 'default' consults both published laws, ``init`` ('pruned': Zhang et al.,
    'scratch': Busbridge et al.) picks the headline; a shipped name (zhang2023, busbridge2025,
    cpu-demo, reference) answers alone; a LAW.json path or a Law is the headline, the published
    laws follow it for comparison.
    ``size_measure``: what ``student`` counts (default: total, whatever the law; each law converts).
    ``tokens``: distillation tokens, or per student parameter as '20x' (default 20 per student parameter).
    ``budget`` in FLOPs. ``init``: how the student is made (default: pruned; with a shipped law alone, its own).
    ``teacher_cost``: none, inference, pretraining or both (Busbridge et al.'s scenarios).
    ``tolerance``: the near-miss band's width in the metric's units (nats for losses).
    ``assistants``: a run store of `capgap assistant` chains; with ``available_teacher``, the
    teacher_assistant_chain goes through the measured assistant (else the law's sizes, as without it).
    ``student_kind``: dense, or moe (``student`` is then its active size, what a token uses); an MoE student is
    answered by a law fitted on MoE runs where ``law`` is one, else by the dense answer after a caveat.
    """
    cost = _choice(teacher_cost, TEACHER_COSTS, "teacher cost")  # type: ignore[assignment]
    check_kind(student_kind)
    if not (isinstance(tolerance, (int, float)) and math.isfinite(tolerance) and tolerance > 0):
        raise InputError(f"tolerance {tolerance!r} must be a positive number (nats for a loss), e.g. 0.01")
    given = parse_size(student, what="student size")
    if init is None:
        alone = isinstance(law, str) and law.lower() != "default" and shipped_name(law) is not None
        init = (SHIPPED_LAWS[shipped_name(law)].init if alone else None) or "pruned"  # type: ignore[arg-type]
    init = _choice(init, INITS, "student init")  # type: ignore[assignment]
    measure: SizeMeasure = size_measure or "total"
    _choice(measure, ("total", "nonembed"), "size measure")
    laws = _consulted(law, init)
    check_reach(given, measure, laws + [resolve_law(name) for name in SHIPPED_LAWS])
    head_law, head_source = laws[0]
    law_given = not (law is None or isinstance(law, str) and (law.lower() == "default" or shipped_name(law) is not None))
    caveat = kind_caveat(student_kind, head_law.file, head_source, law_given)
    models, label = resolve_ladder(ladder)
    available = parse_size(available_teacher, what="available teacher size") if available_teacher is not None else None
    if available is not None and available < given:
        raise InputError(f"available teacher {format_size(available)} is smaller than the student "
                         f"{format_size(given)}; give a teacher at least as large as the student")
    tokens_unknown = tokens is None and runs_without_tokens(head_law.file)
    distilled_on, tokens_rule = distill_tokens(tokens, given)
    if tokens_unknown:
        tokens_rule = (f"unknown: the law's runs carry no tokens; strategies priced at {TOKENS_PER_PARAM} per "
                       "student parameter, a placeholder")
    budget_flops = float(parse_size(budget, what="budget (FLOPs)")) if budget is not None else None
    setting = _Setting(student=given, measure=measure, init=init, tokens=distilled_on, tokens_unknown=tokens_unknown,
                       foreign=not_a_language_model(head_law.file, head_source), models=models, ladder=label,
                       budget=budget_flops, cost=cost, tolerance=float(tolerance))

    answers = [answer(each, source, setting, strict_ladder=i == 0, head=i == 0) for i, (each, source) in enumerate(laws)]
    head = answers[0]
    if assistants is not None and available is None:
        raise InputError("--assistants needs --available-teacher: a measured chain is for a teacher you have")
    strategies, strategy_notes = _strategies(head_law, head, setting, available, assistants)
    labelled = [(a.law.source, w) for a in answers for w in a.warnings]
    return Recommendation(
        student_params=head.student_params, size_measure=head_law.file.size_measure, student_given=given,
        given_measure=measure, init=init, tokens=distilled_on, tokens_rule=tokens_rule,
        teacher_params=head.teacher_params, teacher_params_low=head.teacher_params_low,
        teacher_params_high=head.teacher_params_high, level=head.level, censored=head.censored, law=head.law,
        bracket=head.bracket, ladder=label, nearest=head.nearest, preferred=head.preferred, preferred_reason=head.preferred_reason,
        teacher_cost=cost, strategies=strategies, flops_rule=cost_rule(cost), budget=budget_flops,
        budget_best=head.budget_best, tolerance=float(tolerance), by_law=answers,
        warnings=[w if source == head.law.source else f"{source}: {w}" for source, w in labelled],
        notes=head.notes + strategy_notes, student_kind=student_kind, kind_caveat=caveat)
