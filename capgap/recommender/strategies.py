"""Ways of choosing a teacher and what each costs: the law's teacher, brute-force search over a
ladder, the available teacher directly or through assistants, and the best student a budget buys.

Every run is priced by ``capgap.sizes.costs.run_flops`` under the chosen teacher-cost scenario.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict

from capgap.recommender.assistants import MeasuredAssistant
from capgap.sizes.costs import TeacherCost, run_flops, without_pretraining
from capgap.recommender.ladder_snap import interval_of
from capgap.laws.base import Law
from capgap.sizes.units import format_size

MAX_ASSISTANTS = 8  # a chain longer than this means the law's ratio is ~1: stop rather than loop


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


def _run(student: str, student_params: int, teacher: str, teacher_params: int, tokens: int,
         cost: TeacherCost) -> DistillRun:
    return DistillRun(student=student, student_params=student_params, teacher=teacher,
                      teacher_params=teacher_params, tokens=tokens,
                      flops=run_flops(student_params, teacher_params, tokens, cost))


def _strategy(name: str, description: str, steps: list[DistillRun], expected: float | None,
              extra_runs: int = 0) -> Strategy:
    """``extra_runs``: the first runs of ``steps`` that only train assistants."""
    flops = sum(s.flops for s in steps)
    extra = steps[:extra_runs]
    return Strategy(name=name, description=description, runs=len(steps), flops=flops, steps=steps,
                    extra_runs=len(extra), extra_flops=sum(s.flops for s in extra), expected_metric=expected)


def assistant_chain(law: Law, student: int, available: int, tokens: int, cost: TeacherCost) -> list[DistillRun]:
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
        upper = (interval_of(estimate) or (estimate.estimate, estimate.estimate))[1]
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
    # An assistant is trained by its own distillation run: only the available teacher's pretraining can count.
    runs = [_run(chain[i][0], chain[i][1], chain[i + 1][0], chain[i + 1][1], tokens,
                 cost if i == len(chain) - 2 else without_pretraining(cost)) for i in range(len(chain) - 1)]
    return runs[::-1]  # the largest assistant is distilled first


def _predict(law: Law, student: float, teacher: float, tokens: float) -> float | None:
    value = law.predict_metric(student, teacher, tokens)
    return None if value is None or not math.isfinite(value) else float(value)


def _better(law: Law, a: float, b: float) -> bool:
    return a < b if law.file.direction == "lower" else a > b


def budget_best(law: Law, student: int, candidates: list[tuple[str, int]], budget: float,
                cost: TeacherCost) -> BudgetBest | None:
    """One distillation spending the whole budget: for each candidate teacher, the tokens it buys
    (what is left after the teacher's pretraining, if counted, over the FLOPs per token) and the law's
    expected student; the best of them."""
    best: BudgetBest | None = None
    for name, params in candidates:
        fixed = run_flops(student, params, 0, cost)
        tokens = int((budget - fixed) // (run_flops(student, params, 1, cost) - fixed))
        if tokens < 1:
            continue
        expected = _predict(law, student, params, tokens)
        if expected is not None and (best is None or _better(law, expected, best.expected_metric)):
            best = BudgetBest(teacher=name, teacher_params=params, tokens=tokens, metric=law.file.metric,
                              flops=run_flops(student, params, tokens, cost), expected_metric=expected)
    return best


def _best_of(law: Law, values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    if not known:
        return None
    return min(known) if law.file.direction == "lower" else max(known)


def search_strategies(law: Law, student: int, law_teacher: tuple[str, int], candidates: list[tuple[str, int]],
                      label: str, tokens: int, cost: TeacherCost) -> list[Strategy]:
    """(a) the law's teacher, one run; (b) brute force, one run per ladder model larger than the student."""
    name, size = law_teacher
    strategies = [_strategy("law_teacher", f"distil from the law's teacher {name}",
                            [_run("student", student, name, size, tokens, cost)], _predict(law, student, size, tokens))]
    if candidates:
        which = (f"the one {label} model larger than the student ({candidates[0][0]})" if len(candidates) == 1 else
                 f"each of the {len(candidates)} {label} models larger than the student "
                 f"({candidates[0][0]} … {candidates[-1][0]}) and keep the best")
        strategies.append(_strategy(
            "brute_force_search", f"distil from {which}",
            [_run("student", student, n, p, tokens, cost) for n, p in candidates],
            _best_of(law, [_predict(law, student, p, tokens) for _, p in candidates])))
    return strategies


def measured_chain(law: Law, student: int, available: int, measured: MeasuredAssistant, tokens: int,
                   cost: TeacherCost) -> tuple[Strategy, list[str]]:
    """(c) through the assistant `capgap assistant` measured for this student and teacher, with a note."""
    name = "assistant (measured)"
    steps = [_run(name, measured.assistant_params, "available teacher", available, tokens, cost),
             _run("student", student, name, measured.assistant_params, tokens, without_pretraining(cost))]
    how = (f"chosen by the lambda-tradeoff (lambda {measured.lam:g}) over {measured.candidates} candidates"
           if measured.lam is not None and measured.candidates else f"a measured chain ({measured.method})")
    strategy = _strategy("teacher_assistant_chain", f"available teacher → 1 measured assistant "
                         f"({format_size(measured.assistant_params)}, {how}) → student", steps,
                         _predict(law, student, measured.assistant_params, tokens), 1)
    return strategy, [f"teacher_assistant_chain uses the assistant measured in run {measured.run_id}: student "
                      f"{format_size(measured.student_params)} from {format_size(measured.teacher_params)} through "
                      f"{format_size(measured.assistant_params)}, measured {measured.metric} {measured.student_metric:.4g}"]


def available_teacher_strategies(law: Law, student: int, available: int, teacher: float,
                                 interval: tuple[float, float] | None, tokens: int,
                                 cost: TeacherCost, measured: MeasuredAssistant | None = None
                                 ) -> tuple[list[Strategy], list[str]]:
    """The available teacher used directly and, when it is too large, (c) through assistants; with notes.

    With ``measured`` (capgap.recommender.assistants), the chain goes through that measured assistant, not the law's sizes.
    """
    strategies = [_strategy("available_teacher_direct", f"distil directly from the available {format_size(available)} teacher",
                            [_run("student", student, "available teacher", available, tokens, cost)],
                            _predict(law, student, available, tokens))]
    if measured is not None:
        chain, notes = measured_chain(law, student, available, measured, tokens, cost)
        return strategies + [chain], notes
    lower, upper = interval if interval is not None else (teacher, teacher)
    if available < lower:
        return strategies, [f"the available teacher ({format_size(available)}) is below the law's optimal teacher: "
                            "a larger teacher is expected to do better"]
    steps = assistant_chain(law, student, available, tokens, cost) if available > upper else []
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
