"""How much a near miss costs: the band of teacher sizes whose predicted student is within a tolerance
of the best, and each candidate teacher's predicted penalty.

Only laws that predict student quality (``Law.predict_metric`` not None) can say; the band is found
by bisection in log teacher size on each side of the law's best teacher, so it assumes one optimum.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict

from capgap.core.errors import InputError
from capgap.laws.base import Law

DEFAULT_TOLERANCE = 0.01  # nats: a difference in student loss too small to choose a teacher by


def check_tolerance(tolerance: float) -> float:
    """A --tolerance as a float, or one InputError line: it must be a finite positive number."""
    if isinstance(tolerance, bool) or not (isinstance(tolerance, (int, float)) and math.isfinite(tolerance)
                                           and tolerance > 0):
        raise InputError(f"tolerance {tolerance!r} must be a positive number (nats for a loss), e.g. 0.01")
    return float(tolerance)
SEARCH_SPAN = 1e4  # the band is searched up to this factor either side of the best teacher
BISECTIONS = 60


class NearMiss(BaseModel):
    """Teachers within ``tolerance`` of the best predicted metric; a bound of None: open on that side."""

    model_config = ConfigDict(frozen=True)
    tolerance: float
    metric: str
    best_metric: float  # predicted at the law's best teacher
    low: float | None
    high: float | None


def penalty(law: Law, student: float, teacher: float, tokens: float, best: float) -> float | None:
    """How much worse than ``best`` the predicted student is with this teacher (>= 0 is worse); None if unknown."""
    value = law.predict_metric(student, teacher, tokens)
    if value is None or not math.isfinite(value):
        return None
    return float(value - best) if law.file.direction == "lower" else float(best - value)


def near_miss_band(law: Law, student: float, tokens: float, best_teacher: float,
                   tolerance: float = DEFAULT_TOLERANCE) -> NearMiss | None:
    """The band around ``best_teacher`` where the predicted metric is within ``tolerance``; None if the law cannot say."""
    best = law.predict_metric(student, best_teacher, tokens)
    if best is None or not math.isfinite(best):
        return None

    def within(log_teacher: float) -> bool:
        lost = penalty(law, student, math.exp(log_teacher), tokens, best)
        return lost is not None and lost <= tolerance

    def edge(toward: float) -> float | None:
        inner, outer = math.log(best_teacher), math.log(best_teacher) + toward
        if within(outer):
            return None  # still within the tolerance at the end of the search: open on this side
        for _ in range(BISECTIONS):
            middle = (inner + outer) / 2.0
            inner, outer = (middle, outer) if within(middle) else (inner, middle)
        return math.exp(inner)

    span = math.log(SEARCH_SPAN)
    return NearMiss(tolerance=tolerance, metric=law.file.metric, best_metric=float(best),
                    low=edge(-span), high=edge(span))
