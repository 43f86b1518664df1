"""One-sided answers: every student's best measured teacher at the same edge of its ladder.

When the smallest teacher tried is the best for every student (or the largest is), the runs locate
no optimum: a curve fitted through them reads a location off its own assumed shape. What the runs
do say is a bound, and that is what capgap writes: "T* is at most the smallest teacher tried"
(or at least the largest). The bound is taken at the edge rung where the edge beats its neighbour
by more than twice the noise's standard error in every group and the neighbour lies within
DENSE_RUNG of it, and at the neighbouring rung otherwise: within noise the optimum may lie between
the two, and so it may where they are far apart (a curve with one minimum that is best at the
smallest teacher has its minimum below the second smallest, not necessarily below the smallest);
the law file says which.

The same reading bounds a two-sided optimum where the rungs are far apart (``far_bracket``): a curve with one
minimum has it between the outer neighbours of its best measured teachers, and where a neighbour lies more
than FAR_RUNG away, where in between is the curve model's assumption, not a measurement.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from capgap.runs.groups import RunGroups
from capgap.laws.base import DENSE_RUNG, Censoring, StudentOptimum, edge_rung  # noqa: F401 (edge_rung: also this module's face)
from capgap.sizes.units import format_size

CLEAR_MARGIN = 2.0  # standard errors by which the edge rung must beat its neighbour to bound at the edge itself
FAR_RUNG = 3.0  # a two-sided interval reaches a best teacher's neighbour this far away (capgap.fit.one_sided.far_bracket):
# past the steps of common ladders (doubling, or the 2.08x of 120M -> 250M), short of skipped rungs (4x and more)


@dataclass(frozen=True)
class EdgeBound:
    """Per group, the bound on its optimal teacher, and the ratio bound all groups share."""

    side: Censoring  # at_most: the smallest teacher was best; at_least: the largest
    teachers: list[float]  # per group: the bound (a teacher size measured)
    at_edge: bool  # True: at the edge rung itself; False: at its neighbour (the edge's lead was within noise, or
    # some neighbour lies more than DENSE_RUNG away)
    noise: float | None  # the noise scale the lead was judged by (None: unknown, so not clear)
    clear: bool = False  # the edge beat its neighbour by more than CLEAR_MARGIN standard errors in every group


def _means(groups: RunGroups, j: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct ln teachers of group j, the mean badness at each and the count of runs."""
    members = groups.group == j
    logs, inverse = np.unique(groups.log_teacher[members], return_inverse=True)
    values = groups.badness[members]
    counts = np.bincount(inverse, minlength=logs.size)
    return logs, np.bincount(inverse, weights=values, minlength=logs.size) / counts, counts


def far_bracket(groups: RunGroups, j: int, noise: float | None,
                farther_than: float = FAR_RUNG) -> tuple[float | None, float | None]:
    """The measured teachers that bound group j's optimum from below and above where they lie more than
    ``farther_than`` from its best ones (1: wherever they lie): (lower, upper), each None where that side's
    neighbour lies nearer, or where the best teachers reach the ladder's edge (censoring answers that side).
    The best teachers are those within CLEAR_MARGIN standard errors of the best mean (the best alone where the
    noise cannot be measured)."""
    logs, means, counts = _means(groups, j)
    best = int(np.argmin(means))
    if noise:
        tied = np.flatnonzero(means - means[best] <= CLEAR_MARGIN * noise * np.sqrt(1 / counts + 1 / counts[best]))
    else:
        tied = np.array([best])
    first, last = int(tied.min()), int(tied.max())
    far = np.log(farther_than)
    lower = float(np.exp(logs[first - 1])) if first > 0 and logs[first] - logs[first - 1] > far else None
    upper = float(np.exp(logs[last + 1])) if last < logs.size - 1 and logs[last + 1] - logs[last] > far else None
    return lower, upper


def pure_error(groups: RunGroups) -> tuple[float, int]:
    """The sum of squares of runs about their (group, teacher) mean, and its degrees of freedom."""
    from capgap.fit.solver import replicate_error

    return replicate_error(np.column_stack([groups.group, groups.log_teacher]), groups.badness)


def noise_scale(groups: RunGroups) -> float | None:
    """The noise standard deviation: pure error from repeated runs where there are any, else the residuals
    of a quadratic in ln T per group (None where neither leaves a degree of freedom)."""
    pure, pure_df = pure_error(groups)
    quad, quad_df = 0.0, 0
    for j in range(len(groups.keys)):
        members = groups.group == j
        x, y = groups.log_teacher[members], groups.badness[members]
        if np.unique(x).size > 3:
            coefficients = np.polyfit(x, y, 2)
            quad += float(np.sum((y - np.polyval(coefficients, x)) ** 2))
            quad_df += x.size - 3
    if pure_df > 0:
        return float(np.sqrt(pure / pure_df))
    return float(np.sqrt(quad / quad_df)) if quad_df > 0 else None


def edge_bound(groups: RunGroups) -> EdgeBound | None:
    """The one-sided answer where every group's best measured teacher sits at the same edge of its ladder."""
    sides = set()
    leads = []
    for j in range(len(groups.keys)):
        logs, means, counts = _means(groups, j)
        best = int(np.argmin(means))
        if best == 0:
            sides.add("at_most")
            leads.append((means[1] - means[0], counts[0], counts[1], float(np.exp(logs[0])), float(np.exp(logs[1]))))
        elif best == logs.size - 1:
            sides.add("at_least")
            leads.append((means[-2] - means[-1], counts[-1], counts[-2], float(np.exp(logs[-1])),
                          float(np.exp(logs[-2]))))
        else:
            return None
    # Ties are no edge; and the edge must stand out from the group's worst rung, or the curve is flat.
    noise = noise_scale(groups)
    if len(sides) != 1 or any(lead[0] <= 0 for lead in leads) or not _trend(groups, noise):
        return None
    clear = noise is not None and all(lead > CLEAR_MARGIN * noise * np.sqrt(1 / n_edge + 1 / n_next)
                                      for lead, n_edge, n_next, _, _ in leads)
    side = sides.pop()
    teachers = [edge_rung(sorted((edge, nxt)), side, clear) for _, _, _, edge, nxt in leads]
    return EdgeBound(side=side, teachers=teachers, noise=noise, clear=clear,
                     at_edge=all(t == lead[3] for t, lead in zip(teachers, leads)))


def _trend(groups: RunGroups, noise: float | None) -> bool:
    """Whether the runs change with teacher size at all: pooled over groups, the worst rung's mean lies more than
    CLEAR_MARGIN standard errors above the best one's (any positive gap where the noise cannot be measured)."""
    gaps, variances = 0.0, 0.0
    for j in range(len(groups.keys)):
        _, means, counts = _means(groups, j)
        gaps += float(means.max() - means.min())
        variances += 1.0 / counts[np.argmax(means)] + 1.0 / counts[np.argmin(means)]
    if noise is None or noise == 0:
        return gaps > 0
    return gaps > CLEAR_MARGIN * noise * np.sqrt(variances)


def ratio_bound(groups: RunGroups, bound: EdgeBound) -> float:
    """The bound on T*/S that holds for every group (the weakest of theirs: the largest 'at most', the smallest
    'at least')."""
    ratios = [t / k.student_params for t, k in zip(bound.teachers, groups.keys)]
    return max(ratios) if bound.side == "at_most" else min(ratios)


def bound_optima(groups: RunGroups, bound: EdgeBound) -> list[StudentOptimum]:
    """Each group's optimum as the one-sided bound its runs give."""
    return [StudentOptimum(family=k.family, student_init=k.student_init, student_params=k.student_params,
                           tokens=k.tokens, teacher_params=t, censored=bound.side,
                           high=t if bound.side == "at_most" else None, low=t if bound.side == "at_least" else None,
                           n_runs=int(np.sum(groups.group == j)), teachers=groups.teachers[j])
            for j, (k, t) in enumerate(zip(groups.keys, bound.teachers))]


def bound_warning(groups: RunGroups, bound: EdgeBound, ratio: float) -> str:
    """The sentence that goes first: what the bound is, its basis, and what to measure."""
    smallest = bound.side == "at_most"
    edge = "smallest" if smallest else "largest"
    relation = "at most" if smallest else "at least"
    if bound.at_edge:
        basis = (f"the {edge} teacher tried, which beat its neighbour by more than {CLEAR_MARGIN:g} standard errors "
                 "in every group")
    elif bound.clear:
        basis = (f"the {edge} teacher's neighbour: the {edge} teacher was best in every group, but some neighbour "
                 f"is more than {DENSE_RUNG:.3g}x away and the optimum may lie between them")
    else:
        basis = (f"the {edge} teacher's neighbour: the {edge} teacher was best in every group, but not by more than "
                 f"{CLEAR_MARGIN:g} standard errors of the noise"
                 + ("" if bound.noise is not None else " (the runs leave no degree of freedom to measure the noise)"))
    extend = min(min(t) for t in groups.teachers) if smallest else max(max(t) for t in groups.teachers)
    return (f"one-sided answer: the {edge} teacher tried was the best for every student, so the runs locate no "
            f"optimum; T* is {relation} {ratio:.3g}x the student ({basis}); measure "
            f"{'smaller' if smallest else 'larger'} teachers than {format_size(extend)} to locate it")
