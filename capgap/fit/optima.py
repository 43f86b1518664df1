"""Per-student optimal teachers, read off the fitted one-stage model (for tables and plots).

Each group's optimum is the law's location T*(S, D) at that group, with a
percentile interval from the bootstrap draws of the law. They are a reading
of the fitted model, never its input. Where the group's own ladder does not
bracket its optimum, the data are one-sided and so is the optimum: it is
marked censored ('at_least': beyond the largest teacher measured; 'at_most':
below the smallest), and only a bound on the measured side is given: the edge
rung (its neighbour where that is far, as capgap.fit.one_sided reads it) or the
draws' one-sided bound at the law's level, whichever reaches further. A
two-sided interval reaches the measured teachers beside the best ones where
they lie far from them (capgap.fit.one_sided.far_bracket), and an exact fit's
optimum, which has no draws, is bracketed by them wherever they lie.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from capgap.runs.groups import RunGroups
from capgap.laws.base import StudentOptimum, collapsed, one_sided_bound
from capgap.fit.one_sided import FAR_RUNG, edge_rung, far_bracket, noise_scale
from capgap.sizes.units import format_size


def read_optima(groups: RunGroups, space, point, draws: np.ndarray, level: float) -> list[StudentOptimum]:
    """One StudentOptimum per group from the point fit and the bootstrap draws (B, P+1) of the search."""
    estimate = np.exp(space.log_location(point.theta[None, :])[0])
    sampled = np.exp(space.log_location(space.split(draws)[0])) if draws.size else None
    optima = []
    noise = noise_scale(groups)
    for j, key in enumerate(groups.keys):
        teachers = groups.teachers[j]
        low = high = None
        far_low = far_high = None
        censored = None
        if estimate[j] > teachers[-1]:
            censored = "at_least"
        elif estimate[j] < teachers[0]:
            censored = "at_most"
        if sampled is not None:
            column = sampled[:, j][np.isfinite(sampled[:, j])]
            if column.size:
                # An interval always holds its own estimate: where the likelihood is skewed, its
                # percentiles can pass the point fit, and a bound beyond the estimate would read as nonsense.
                # A censored optimum's bound is the edge rung (or its far neighbour), loosened to the draws'
                # one-sided bound where that reaches further: an optimum read just past the edge may lie inside.
                if censored == "at_least":
                    low = one_sided_bound(_edge(teachers, censored), column, censored, level)
                elif censored == "at_most":
                    high = one_sided_bound(_edge(teachers, censored), column, censored, level)
                else:
                    tail = (1.0 - level) / 2.0
                    low, high = (float(v) for v in np.quantile(column, [tail, 1.0 - tail]))
                    low, high = min(low, float(estimate[j])), max(high, float(estimate[j]))
                    if collapsed(low, high):
                        low = high = None
                    else:  # between far-apart rungs the curve model only assumes where the optimum is
                        far_low, far_high = far_bracket(groups, j, noise)
                        low = low if far_low is None else min(low, far_low)
                        high = high if far_high is None else max(high, far_high)
        if point.df == 0 and censored is None:
            # An exact fit has no interval; what the runs still say is that a curve with one minimum has it
            # between the measured teachers either side of the best ones.
            low, high = far_bracket(groups, j, noise, farther_than=1.0)
            if low is None or high is None:
                low = high = None
            else:
                low, high = min(low, float(estimate[j])), max(high, float(estimate[j]))
        optima.append(StudentOptimum(
            family=key.family, student_init=key.student_init, student_params=key.student_params, tokens=key.tokens,
            teacher_params=float(estimate[j]), low=low, high=high, censored=censored,
            n_runs=int(np.sum(groups.group == j)), teachers=teachers, far_low=far_low, far_high=far_high))
    return optima


def far_rung_warning(optima: Sequence[StudentOptimum]) -> str | None:
    """The sentence for intervals widened to the measured teachers far beside the best ones (None: none was)."""
    widened = [o for o in optima if (o.far_low is not None and o.low == o.far_low)
               or (o.far_high is not None and o.high == o.far_high)]
    if not widened:
        return None
    def reach(o: StudentOptimum) -> str:
        return f"{format_size(o.student_params)}: {format_size(o.low)} to {format_size(o.high)}"

    return (f"the measured teachers lie far apart (more than {FAR_RUNG:g}x) beside the best ones of "
            f"{len(widened)} of {len(optima)} student(s), and between them where the optimum lies is the curve "
            f"model's assumption, not a measurement: their intervals reach those teachers "
            f"({'; '.join(reach(o) for o in widened)}); measure teachers between them")


def censored_warning(optima: Sequence[StudentOptimum]) -> str | None:
    """The sentence for the students whose optimum the law puts past their own ladder (None: none is). Their
    answers are bounds at the ladder's edge, read from where the curve model puts the optimum rather than from a
    turn the runs show, and the table lists them low down; a skeptical reader needs them said up front, with
    which way to measure."""
    beyond = [o for o in optima if o.censored]
    if not beyond:
        return None

    def past(o: StudentOptimum) -> str:
        if o.censored == "at_least":
            return f"{format_size(o.student_params)}: above its largest teacher, {format_size(o.teachers[-1])}"
        return f"{format_size(o.student_params)}: below its smallest teacher, {format_size(o.teachers[0])}"

    return (f"the law puts the optimum of {len(beyond)} of {len(optima)} student(s) past the teachers measured "
            f"for it ({'; '.join(past(o) for o in beyond)}): each answer is a one-sided bound near its ladder's "
            "edge, where the curve model, not a measured turn, places the optimum (it may lie just inside the "
            f"edge or far beyond it); {'; '.join(ladder_advice(beyond))}")


def ranking_bracket(groups: RunGroups, optima: Sequence[StudentOptimum], wide: float) -> str | None:
    """For the optima whose interval spans more than ``wide``, what the runs say without the curve model: a
    curve with one minimum has the optimum between the measured teachers either side of the best ones (those
    tied with the best within CLEAR_MARGIN standard errors), if the measured ranking holds. None: no such
    optimum has a measured teacher on both sides."""
    noise = noise_scale(groups)
    brackets = []
    for j, o in enumerate(optima):
        if o.censored or not (o.low and o.high and o.high / o.low > wide):
            continue
        low, high = far_bracket(groups, j, noise, farther_than=1.0)
        if low is not None and high is not None:
            brackets.append(f"{format_size(o.student_params)}: {format_size(low)} to {format_size(high)}")
    if not brackets:
        return None
    return ("the runs alone, if their ranking of teachers holds, put the optimum between the measured teachers "
            "either side of the best ones (those within noise of the best), where a curve with one minimum has "
            f"it: {'; '.join(brackets)}")


def _edge(teachers: Sequence[float], side: str) -> float:
    """The measured teacher that bounds a censored optimum (capgap.fit.one_sided.edge_rung; a lone rung itself)."""
    return float(teachers[0] if len(teachers) < 2 else edge_rung(teachers, side))


def ladder_advice(optima: Sequence[StudentOptimum]) -> list[str]:
    """Which way to extend the teacher ladders of censored optima, one line per direction."""
    above = [o for o in optima if o.censored == "at_least"]
    below = [o for o in optima if o.censored == "at_most"]
    advice = []
    if above:
        largest = max(max(o.teachers) for o in above)
        advice.append(f"{len(above)} optimum(s) beyond the largest teacher measured: add teachers above "
                      f"{format_size(largest)}")
    if below:
        smallest = min(min(o.teachers) for o in below)
        advice.append(f"{len(below)} optimum(s) below the smallest teacher measured: add teachers below "
                      f"{format_size(smallest)}")
    return advice
