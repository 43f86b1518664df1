"""Turn a law, a ladder and a budget into a teacher recommendation.

One call, ``recommend(student, ...)``, answers what `capgap recommend`
prints: the law's optimal teacher with its interval, the nearest real models
of a ladder, what each way of choosing a teacher costs (law, brute-force
search, teacher-assistant chain), what fits a budget, and warnings.
This module imports only pydantic and the standard library (the law family
it loads brings its own, e.g. numpy), so the command starts fast.
"""

from __future__ import annotations

import math
import sys
import types
import warnings
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from capgap.errors import InputError
from capgap.ladders import KNOWN_LADDERS, LadderModel, get_ladder
from capgap.laws.base import (Censoring, Law, LawFile, SizeMeasure, TeacherEstimate, UnfittedLawWarning, law_from_file,
                              load_law)
from capgap.sizes import TOKENS_PER_PARAM, distill_flops, format_size, parse_size

FLOPS_RULE = "FLOPs per run = 6*N_S*D (student training) + 2*N_T*D (teacher forward)"
MAX_ASSISTANTS = 8  # a chain longer than this means the law's ratio is ~1: stop rather than loop


class LawInfo(BaseModel):
    """Where the law came from, in one line."""

    model_config = ConfigDict(frozen=True)
    name: str
    source: str  # 'default', a file path, or 'python object'
    fitted_range: list[int] | None  # [min, max] student size the law was fitted on
    fitted: bool
    provenance: str
    n_runs: int
    metric: str
    size_measure: SizeMeasure


class NearestModel(BaseModel):
    """A real ladder model near the optimal teacher."""

    model_config = ConfigDict(frozen=True)
    name: str
    params: int  # in the recommendation's size measure
    ratio: float  # params / student
    inside_interval: bool | None  # None when the law gives no interval
    log_distance: float  # |ln(params / optimal teacher)|
    hf_name: str | None = None


class DistillRun(BaseModel):
    """One distillation run of a strategy: a student taught by a teacher for D tokens."""

    model_config = ConfigDict(frozen=True)
    student: str
    student_params: int
    teacher: str
    teacher_params: int
    tokens: int
    flops: float


class Strategy(BaseModel):
    """One way of choosing the teacher and what it costs."""

    model_config = ConfigDict(frozen=True)
    name: str  # law_teacher, brute_force_search, teacher_assistant_chain, available_teacher_direct
    description: str
    runs: int
    flops: float
    extra_runs: int = 0  # runs beyond the single distillation of the student
    extra_flops: float = 0.0
    steps: list[DistillRun]
    expected_metric: float | None = None  # the law's prediction for the final student, if it can say
    fits_budget: bool | None = None  # None without --budget


class BudgetBest(BaseModel):
    """The best student the law expects from one distillation that spends the whole budget."""

    model_config = ConfigDict(frozen=True)
    teacher: str
    teacher_params: int
    tokens: int
    flops: float
    metric: str
    expected_metric: float


class Recommendation(BaseModel):
    """Everything `capgap recommend` reports; the CLI only formats it."""

    model_config = ConfigDict(frozen=True)
    student_params: int
    size_measure: SizeMeasure
    tokens: int
    tokens_rule: str
    teacher_params: int  # the law's optimal teacher (the bound when censored)
    teacher_params_low: int | None
    teacher_params_high: int | None
    level: float
    censored: Censoring | None
    law: LawInfo
    ladder: str
    nearest: list[NearestModel]  # preferred first
    preferred: str | None
    preferred_reason: str | None
    strategies: list[Strategy]
    flops_rule: str = FLOPS_RULE
    budget: float | None = None
    budget_best: BudgetBest | None = None
    warnings: list[str]
    notes: list[str]

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)


def resolve_law(law: str | Path | Law | LawFile | None) -> tuple[Law, str]:
    """None/'default'/'reference' -> a shipped law; a path -> load_law; a Law or LawFile as is."""
    with warnings.catch_warnings():  # the recommendation states an unfitted law in its own warnings
        warnings.simplefilter("ignore", UnfittedLawWarning)
        return _resolve_law(law)


def _resolve_law(law: str | Path | Law | LawFile | None) -> tuple[Law, str]:
    from capgap.laws import SHIPPED_LAWS, shipped_law_path  # data/laws/*.json

    name = "default" if law is None else str(law).lower() if isinstance(law, str) else None
    if name in SHIPPED_LAWS:
        return load_law(shipped_law_path(name)), name
    if isinstance(law, (str, Path)):
        return load_law(law), str(law)
    if isinstance(law, LawFile):
        return law_from_file(law), "python object"
    if isinstance(law, Law):
        return law, "python object"
    raise InputError(f"law {law!r} is not a law; accepted: 'default', 'reference', a LAW.json path, or a Law object")


def resolve_ladder(ladder: str | list[LadderModel]) -> tuple[list[LadderModel], str]:
    """A known ladder name, 'none', a CSV path, or a list of LadderModel; with a label for messages."""
    if isinstance(ladder, list):
        return sorted(ladder, key=lambda m: m.params), "ladder"
    models = get_ladder(str(ladder))
    label = str(ladder).lower() if str(ladder).lower() in KNOWN_LADDERS else Path(str(ladder)).stem
    return models, label


def _interval(estimate: TeacherEstimate) -> tuple[float, float] | None:
    """The range a ladder model must lie in to be 'inside': a censored bound is one-sided."""
    if estimate.censored == "at_least":
        return estimate.estimate, math.inf
    if estimate.censored == "at_most":
        return 0.0, estimate.estimate
    if estimate.low is None and estimate.high is None:
        return None
    # An interval open on one side (e.g. bootstrap draws with no finite optimum) keeps its other bound.
    return (estimate.low if estimate.low is not None else 0.0,
            estimate.high if estimate.high is not None else math.inf)


def nearest_models(models: list[LadderModel], measure: str, student: int, teacher: float,
                   interval: tuple[float, float] | None) -> list[NearestModel]:
    """Ladder models inside the interval plus the nearest one on each side; preferred first.

    Only models larger than the student can teach it. Order: inside the
    interval first, then by distance to the optimal teacher on a log scale.
    """
    sized = [(m, m.size(measure)) for m in models]
    larger = [(m, n) for m, n in sized if n > student]
    low, high = interval if interval is not None else (teacher, teacher)
    below = [(m, n) for m, n in larger if n < low]
    inside = [(m, n) for m, n in larger if low <= n <= high]
    above = [(m, n) for m, n in larger if n > high]
    chosen = below[-1:] + inside + above[:1]
    found = [NearestModel(name=m.name, params=n, ratio=n / student, hf_name=m.hf_name,
                          inside_interval=None if interval is None else low <= n <= high,
                          log_distance=abs(math.log(n / teacher)))
             for m, n in chosen]
    return sorted(found, key=lambda x: (x.inside_interval is not True, x.log_distance))


def _preferred_reason(nearest: list[NearestModel], teacher: float) -> str | None:
    if not nearest:
        return None
    first = nearest[0]
    where = f"{first.params / teacher:.2f}x the optimal teacher"
    inside = [n for n in nearest if n.inside_interval]
    if len(inside) > 1:
        cheapest = " and the smallest of them, so the cheapest teacher to run" if first.params == min(n.params for n in inside) else ""
        others = ", ".join(n.name for n in inside[1:])
        return (f"{len(inside)} models lie inside the interval; {first.name} is preferred over {others}: "
                f"closest to the law's estimate on a log scale ({where}){cheapest}")
    if len(inside) == 1:
        return f"{first.name} is the only model inside the interval ({where})"
    return f"{first.name} is the closest model to the law's estimate on a log scale ({where})"


def _run(student: str, student_params: int, teacher: str, teacher_params: int, tokens: int) -> DistillRun:
    return DistillRun(student=student, student_params=student_params, teacher=teacher,
                      teacher_params=teacher_params, tokens=tokens,
                      flops=distill_flops(student_params, teacher_params, tokens))


def _strategy(name: str, description: str, steps: list[DistillRun], expected: float | None,
              extra_runs: int = 0) -> Strategy:
    """``extra_runs``: the first runs of ``steps`` that only train assistants."""
    flops = sum(s.flops for s in steps)
    extra = steps[:extra_runs]
    return Strategy(name=name, description=description, runs=len(steps), flops=flops, steps=steps,
                    extra_runs=len(extra), extra_flops=sum(s.flops for s in extra), expected_metric=expected)


def assistant_chain(law: Law, student: int, available: int, tokens: int) -> list[DistillRun]:
    """Teacher -> assistant(s) of the law's size -> student, one run per arrow, in training order.

    Each assistant is the law's optimal teacher for the model below it. One is
    added while the available teacher lies above the law's interval (or point
    estimate) for the current top model, and only if the new top hop comes
    closer to the law's optimum on a log scale than teaching the current top
    model directly, so a teacher just above the optimum gets no assistant.
    """
    sizes = [student]  # student, assistant 1, assistant 2, ...
    while len(sizes) <= MAX_ASSISTANTS:
        estimate = law.optimal_teacher(sizes[-1], tokens)
        upper = (_interval(estimate) or (estimate.estimate, estimate.estimate))[1]
        if available <= upper or not sizes[-1] < estimate.estimate < available:
            break
        direct_gap = abs(math.log(available / estimate.estimate))
        assistant = estimate.estimate
        hop_gap = abs(math.log(available / law.optimal_teacher(assistant, tokens).estimate))
        if hop_gap >= direct_gap:
            break
        sizes.append(int(round(assistant)))
    names = ["student"] + [f"assistant {i}" for i in range(1, len(sizes))]
    chain = list(zip(names, sizes)) + [("available teacher", available)]
    runs = [_run(chain[i][0], chain[i][1], chain[i + 1][0], chain[i + 1][1], tokens) for i in range(len(chain) - 1)]
    return runs[::-1]  # the largest assistant is distilled first


def _predict(law: Law, student: float, teacher: float, tokens: float) -> float | None:
    value = law.predict_metric(student, teacher, tokens)
    return None if value is None or not math.isfinite(value) else float(value)


def _better(law: Law, a: float, b: float) -> bool:
    return a < b if law.file.direction == "lower" else a > b


def budget_best(law: Law, student: int, candidates: list[tuple[str, int]], budget: float) -> BudgetBest | None:
    """One distillation spending the whole budget: for each candidate teacher, the tokens it buys
    (D = budget / (6*N_S + 2*N_T)) and the law's expected student; the best of them."""
    best: BudgetBest | None = None
    for name, params in candidates:
        tokens = int(budget // (6.0 * student + 2.0 * params))
        if tokens < 1:
            continue
        expected = _predict(law, student, params, tokens)
        if expected is not None and (best is None or _better(law, expected, best.expected_metric)):
            best = BudgetBest(teacher=name, teacher_params=params, tokens=tokens, metric=law.file.metric,
                              flops=distill_flops(student, params, tokens), expected_metric=expected)
    return best


def _law_info(law: Law, source: str) -> LawInfo:
    file = law.file
    fitted_range = [int(round(x)) for x in file.student_range] if file.student_range else None
    return LawInfo(name=law.name, source=source, fitted_range=fitted_range, fitted=file.fitted,
                   provenance=file.provenance, n_runs=file.n_runs, metric=file.metric,
                   size_measure=file.size_measure)


def law_warnings(info: LawInfo, estimate: TeacherEstimate, student: int) -> list[str]:
    """Warnings about the law itself: extrapolation, no fit behind it, a one-sided estimate."""
    found = []
    if info.fitted_range and not info.fitted_range[0] <= student <= info.fitted_range[1]:
        low, high = info.fitted_range
        found.append(f"extrapolating: law fitted on {format_size(low)}–{format_size(high)} students; "
                        f"the student ({format_size(student)}) lies outside")
    if not info.fitted:
        found.append("unfitted reference law: its coefficients are read from published work, not fitted on "
                        "runs; treat it as a prior and refit on your runs with `capgap fit`")
    if estimate.censored == "at_least":
        found.append(f"censored estimate: the law only bounds the optimum from below; "
                        f"the teacher should be at least {format_size(estimate.estimate)}")
    elif estimate.censored == "at_most":
        found.append(f"censored estimate: the law only bounds the optimum from above; "
                        f"the teacher should be at most {format_size(estimate.estimate)}")
    return found


def ladder_warnings(models: list[LadderModel], nearest: list[NearestModel], label: str, teacher: float,
                    interval: tuple[float, float] | None) -> list[str]:
    """No model to take: none larger than the student, none inside the interval, or (without an
    interval) the law's teacher beyond the ladder's end."""
    if models and not nearest:
        return [f"no {label} model is larger than the student; the law's size is a model you must train"]
    if not nearest:
        return []
    first = nearest[0]
    closest = f"{first.name} ({format_size(first.params)}, {first.ratio:.2f}x the student)"
    if interval is not None and not any(n.inside_interval for n in nearest):
        return [f"no {label} model inside the interval ({interval_text(*interval)}); nearest: {closest}"]
    if interval is None and all(n.params < teacher for n in nearest):
        return [f"the law's teacher ({format_size(teacher)}) is larger than every {label} model; nearest: {closest}"]
    if interval is None and all(n.params > teacher for n in nearest):
        return [f"the law's teacher ({format_size(teacher)}) is smaller than every {label} model larger than the student; "
                f"nearest: {closest}"]
    return []


def _best_of(law: Law, values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    if not known:
        return None
    return min(known) if law.file.direction == "lower" else max(known)


def search_strategies(law: Law, student: int, law_teacher: tuple[str, int], candidates: list[tuple[str, int]],
                      label: str, tokens: int) -> list[Strategy]:
    """(a) the law's teacher, one run; (b) brute force, one run per ladder model larger than the student."""
    name, size = law_teacher
    strategies = [_strategy("law_teacher", f"distil from the law's teacher {name}",
                            [_run("student", student, name, size, tokens)], _predict(law, student, size, tokens))]
    if candidates:
        strategies.append(_strategy(
            "brute_force_search", f"distil from each of the {len(candidates)} {label} models larger "
            f"than the student ({candidates[0][0]} … {candidates[-1][0]}) and keep the best",
            [_run("student", student, n, p, tokens) for n, p in candidates],
            _best_of(law, [_predict(law, student, p, tokens) for _, p in candidates])))
    return strategies


def available_teacher_strategies(law: Law, student: int, available: int, teacher: float,
                                 interval: tuple[float, float] | None, tokens: int) -> tuple[list[Strategy], list[str]]:
    """The available teacher used directly and, when it is too large, (c) through assistants; with notes."""
    strategies = [_strategy("available_teacher_direct", f"distil directly from the available {format_size(available)} teacher",
                            [_run("student", student, "available teacher", available, tokens)],
                            _predict(law, student, available, tokens))]
    lower, upper = interval if interval is not None else (teacher, teacher)
    if available < lower:
        return strategies, [f"the available teacher ({format_size(available)}) is below the law's optimal teacher: "
                            "a larger teacher is expected to do better"]
    steps = assistant_chain(law, student, available, tokens) if available > upper else []
    if len(steps) < 2:
        return strategies, [f"the available teacher ({format_size(available)}) is within the law's range: "
                            "distil from it directly"]
    assistants = len(steps) - 1
    strategies.append(_strategy(
        "teacher_assistant_chain", f"available teacher → {assistants} assistant(s) of the law's size "
        f"({', '.join(format_size(s.student_params) for s in steps[:-1])}) → student",
        steps, _predict(law, student, steps[-1].teacher_params, tokens), assistants))
    notes = ["the chain's expected metric treats the last assistant as a model of its size"] \
        if strategies[-1].expected_metric is not None else []
    return strategies, notes


def _check_measure(law_measure: str, asked: str | None, models: list[LadderModel], label: str) -> None:
    if asked is not None and asked != law_measure:
        raise InputError(f"the law was fitted on {law_measure} parameter counts, but --size {asked} was given; "
                         f"pass --size {law_measure} (and the student's {law_measure} count) or a law fitted on {asked} counts")
    lacking = [m.name for m in models if law_measure == "nonembed" and m.params_nonembed is None]
    if lacking:
        raise InputError(f"the law counts non-embedding parameters but ladder {label} gives none for {lacking[0]}; "
                         "add a params_nonembed column to the ladder CSV, or use a law fitted on total counts")


def recommend(student: str | int, law: str | Path | Law | LawFile | None = None,
              ladder: str | list[LadderModel] = "pythia", size_measure: SizeMeasure | None = None,
              tokens: str | int | None = None, available_teacher: str | int | None = None,
              budget: str | float | None = None) -> Recommendation:
    """Recommend a teacher for a student of ``student`` parameters.

    ``law``: None or 'default' (the law fitted on the shipped runs), 'reference' (T* = 2.5·S), a LAW.json path,
    or a Law. ``ladder``: pythia, gpt2, none, a CSV path, or a list of
    LadderModel. ``size_measure`` says whether sizes count all or only
    non-embedding parameters: None takes the law's; another must match it.
    ``tokens`` defaults to 20 per student parameter; ``budget`` is in FLOPs.
    """
    student_params = parse_size(student, what="student size")
    the_law, source = resolve_law(law)
    measure = the_law.file.size_measure
    models, label = resolve_ladder(ladder)
    _check_measure(measure, size_measure, models, label)
    available = parse_size(available_teacher, what="available teacher size") if available_teacher is not None else None
    if available is not None and available < student_params:
        raise InputError(f"available teacher {format_size(available)} is smaller than the student "
                         f"{format_size(student_params)}; give a teacher at least as large as the student")
    if tokens is None:
        distill_tokens = TOKENS_PER_PARAM * student_params
        tokens_rule = f"default: {TOKENS_PER_PARAM} tokens per student parameter"
    else:
        distill_tokens, tokens_rule = parse_size(tokens, what="tokens"), "given"
    budget_flops = float(parse_size(budget, what="budget (FLOPs)")) if budget is not None else None

    estimate = the_law.optimal_teacher(student_params, distill_tokens)
    teacher = estimate.estimate
    if not (math.isfinite(teacher) and teacher > 0):
        raise InputError(f"the law gives no usable teacher size for a {format_size(student_params)} student "
                         f"({teacher!r}); check the law file's coefficients")
    interval = _interval(estimate)
    info = _law_info(the_law, source)
    nearest = nearest_models(models, measure, student_params, teacher, interval)
    cautions = law_warnings(info, estimate, student_params) + ladder_warnings(models, nearest, label, teacher, interval)
    notes = ["the law gives a point estimate without an interval"] if interval is None else []

    law_model = f"{format_size(teacher)} (law)", int(round(teacher))
    law_teacher = (nearest[0].name, nearest[0].params) if nearest else law_model  # the real model to take
    candidates = [(m.name, m.size(measure)) for m in models if m.size(measure) > student_params]
    strategies = search_strategies(the_law, student_params, law_teacher, candidates, label, distill_tokens)
    if available is not None:
        more, more_notes = available_teacher_strategies(the_law, student_params, available, teacher, interval, distill_tokens)
        strategies += more
        notes += more_notes

    best_in_budget = None
    if budget_flops is not None:
        strategies = [s.model_copy(update={"fits_budget": s.flops <= budget_flops}) for s in strategies]
        best_in_budget = budget_best(the_law, student_params, [law_teacher, law_model, *candidates], budget_flops)
        if best_in_budget is None:
            notes.append(f"the {the_law.name} law places the teacher but cannot predict student quality; "
                         "a dsl law can say which student the budget buys")

    return Recommendation(
        student_params=student_params, size_measure=measure, tokens=distill_tokens, tokens_rule=tokens_rule,
        teacher_params=int(round(teacher)),
        teacher_params_low=_finite_int(estimate.low), teacher_params_high=_finite_int(estimate.high),
        level=estimate.level, censored=estimate.censored, law=info, ladder=label, nearest=nearest,
        preferred=nearest[0].name if nearest else None, preferred_reason=_preferred_reason(nearest, teacher),
        strategies=strategies, budget=budget_flops, budget_best=best_in_budget, warnings=cautions, notes=notes)


def _finite_int(value: float | None) -> int | None:
    return int(round(value)) if value is not None and math.isfinite(value) else None


def interval_text(low: float | None, high: float | None) -> str:
    """'2B–3B', 'at least 2B' or 'at most 3B' for an interval that may be open on one side."""
    if high is None or not math.isfinite(high):
        return f"at least {format_size(low or 0)}"
    if not low:
        return f"at most {format_size(high)}"
    return f"{format_size(low)}–{format_size(high)}"


class _CallableModule(types.ModuleType):
    """`capgap.recommend` names both this module and its function: importing the module
    rebinds the package attribute to it, so the module forwards calls to the function."""

    def __call__(self, *args: Any, **kwargs: Any) -> Recommendation:
        return recommend(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
