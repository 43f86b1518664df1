"""Snapping the law's teacher to real models: the ladder, which models lie inside the interval, which to prefer.

Only models larger than the student can teach it; one within ``SAME_SIZE`` of the student is
taken for a model of its own size (pythia-160m for a 160M student). A censored estimate is a
one-sided interval; a law without an interval snaps to its point estimate.
"""

from __future__ import annotations

import math
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from capgap.sizes.ladders import KNOWN_LADDERS, LadderModel, get_ladder
from capgap.laws.base import TeacherEstimate
from capgap.sizes.units import format_ratio, format_size

SAME_SIZE = 0.05  # a model at most 5% larger than the student is a model of the student's size, not a teacher


class NearestModel(BaseModel):
    """A real ladder model near the optimal teacher."""

    model_config = ConfigDict(frozen=True)
    name: str
    params: int  # in the recommendation's size measure
    ratio: float  # params / student
    inside_interval: bool | None  # None when the law gives no interval
    log_distance: float  # |ln(params / optimal teacher)|
    hf_name: str | None = None
    total_params: int | None = None  # the model's total count (params is in the recommendation's measure)
    penalty: float | None = None  # predicted metric lost against the law's best teacher, where the law predicts quality



def resolve_ladder(ladder: str | list[LadderModel]) -> tuple[list[LadderModel], str]:
    """A known ladder name, 'none', a CSV path, or a list of LadderModel; with a label for messages."""
    if isinstance(ladder, list):
        return sorted(ladder, key=lambda m: m.params), "ladder"
    models = get_ladder(str(ladder))
    label = str(ladder).lower() if str(ladder).lower() in KNOWN_LADDERS else Path(str(ladder)).stem
    return models, label


def interval_of(estimate: TeacherEstimate) -> tuple[float, float] | None:
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
    larger = [(m, n) for m, n in sized if larger_than(n, student)]
    low, high = interval if interval is not None else (teacher, teacher)
    below = [(m, n) for m, n in larger if n < low]
    inside = [(m, n) for m, n in larger if low <= n <= high]
    above = [(m, n) for m, n in larger if n > high]
    chosen = below[-1:] + inside + above[:1]
    found = [NearestModel(name=m.name, params=n, ratio=n / student, hf_name=m.hf_name, total_params=m.params,
                          inside_interval=None if interval is None else low <= n <= high,
                          log_distance=abs(math.log(n / teacher)))
             for m, n in chosen]
    return sorted(found, key=lambda x: (x.inside_interval is not True, x.log_distance))


def larger_than(teacher: float, student: float) -> bool:
    """Whether a model of ``teacher`` parameters is larger than the student (by more than SAME_SIZE)."""
    return teacher > student * (1.0 + SAME_SIZE)


def preferred_reason(nearest: list[NearestModel], teacher: float) -> str | None:
    if not nearest:
        return None
    first = nearest[0]
    where = f"{format_ratio(first.params / teacher)} the optimal teacher"
    inside = [n for n in nearest if n.inside_interval]
    if len(inside) > 1:
        cheapest = " and the smallest of them, so the cheapest teacher to run" if first.params == min(n.params for n in inside) else ""
        others = ", ".join(n.name for n in inside[1:])
        return (f"{len(inside)} models lie inside the interval; {first.name} is preferred over {others}: "
                f"closest to the law's estimate on a log scale ({where}){cheapest}")
    if len(inside) == 1:
        return f"{first.name} is the only model inside the interval ({where})"
    return f"{first.name} is the closest model to the law's estimate on a log scale ({where})"


def ladder_warnings(models: list[LadderModel], nearest: list[NearestModel], label: str, teacher: float,
                    interval: tuple[float, float] | None, measure: str) -> list[str]:
    """No model to take: none larger than the student, none inside the interval, or (without an
    interval) the law's teacher beyond the ladder's end. Sizes are in ``measure``, and say so."""
    if models and not nearest:
        return [f"no {label} model is larger than the student; the law's size is a model you must train"]
    if not nearest:
        return []
    first = nearest[0]
    if interval is None and first.log_distance <= math.log(1.0 + SAME_SIZE):
        return []  # the ladder has the law's teacher, near enough
    closest = f"{first.name} ({format_size(first.params)} {measure}, {format_ratio(first.ratio)} the student)"
    if interval is not None and not any(n.inside_interval for n in nearest):
        return [f"no {label} model inside the interval ({interval_text(*interval)} {measure}); nearest: {closest}"]
    if interval is None and all(n.params < teacher for n in nearest):
        return [f"the law's teacher ({format_size(teacher)} {measure}) is larger than every {label} model; "
                f"nearest: {closest}"]
    if interval is None and all(n.params > teacher for n in nearest):
        return [f"the law's teacher ({format_size(teacher)} {measure}) is smaller than every {label} model larger than "
                f"the student; nearest: {closest}"]
    return []


def interval_text(low: float | None, high: float | None) -> str:
    """'2B–3B', 'at least 2B' or 'at most 3B' for an interval that may be open on one side."""
    if high is None or not math.isfinite(high):
        return f"at least {format_size(low or 0)}"
    if not low:
        return f"at most {format_size(high)}"
    return f"{format_size(low)}–{format_size(high)}"
