"""What the ratio, linear, power and power-tokens laws share: a location T*(S, D; theta) of the optimum.

A family defines only where the optimum is (``log_location``), its search box,
its starting grid and how its internal parameters read as the coefficients the
law file reports; this base reads a fitted law file (the optimal teacher with
its interval or bound). Fitting such a family to runs, one pass over all runs
by the one-stage model, is ``capgap.fit.curve_fit``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from capgap.core.errors import InputError
from capgap.laws.base import LawFile, TeacherEstimate, collapsed, edge_rung, one_sided_bound, quantile_interval
from capgap.runs.groups import RunGroups
from capgap.sizes.units import format_size


def grid_box(axes: Sequence[Sequence[float]]) -> np.ndarray:
    """The Cartesian grid of starting points: (K, P)."""
    mesh = np.meshgrid(*[np.asarray(a, dtype=float) for a in axes], indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)


@dataclass(frozen=True)
class Centre:
    """The geometric centre of the groups: the search works in sizes relative to it (nearly uncorrelated parameters)."""

    log_student: float
    log_tokens_per_param: float  # NaN when the runs give no tokens

    @classmethod
    def of(cls, groups: RunGroups) -> Centre:
        tpp = groups.log_tokens_per_param
        return cls(float(groups.log_student.mean()), float(np.nanmean(tpp)) if np.isfinite(tpp).any() else np.nan)


class CurveLaw:
    """Base of laws T* = curve(S, D; coefficients). Subclasses define the location and its parameterisation."""

    name: ClassVar[str]
    formula: ClassVar[str]
    parameters: ClassVar[tuple[str, ...]]
    uses_tokens: ClassVar[bool] = False

    # -- the location, defined by each family ---------------------------------
    @staticmethod
    def log_location(theta: np.ndarray, z_student: np.ndarray, z_tokens: np.ndarray) -> np.ndarray:
        """ln(T*) − centre at z = ln S − centre (and z_tokens = ln(D/S) − centre); theta (B, P) -> (B, G)."""
        raise NotImplementedError

    @staticmethod
    def natural(theta: np.ndarray, centre: Centre) -> dict[str, np.ndarray]:
        """Internal parameters (B, P) -> the coefficients the law file reports."""
        raise NotImplementedError

    @staticmethod
    def teacher(coefficients: dict[str, np.ndarray | float], student: float, tokens: float | None) -> np.ndarray:
        """T*(S, D) in natural units from natural coefficients (vectorised over coefficient draws)."""
        raise NotImplementedError

    @staticmethod
    def internal(coefficients: dict[str, float], centre: Centre) -> np.ndarray:
        """The law file's coefficients -> internal parameters (P,) about ``centre`` (``natural`` inverted)."""
        raise NotImplementedError

    @classmethod
    def bounds(cls) -> list[tuple[float, float]]:
        raise NotImplementedError

    @classmethod
    def grid(cls, groups: RunGroups, centre: Centre) -> np.ndarray:
        """Starting points (K, P) spanning the teachers measured."""
        raise NotImplementedError

    @staticmethod
    def shift(theta: np.ndarray, by: float) -> np.ndarray:
        """Parameters that move every location by ``by`` in ln units (first coordinate: the log level)."""
        moved = theta.copy()
        moved[:, 0] += by
        return moved

    @classmethod
    def cannot_fit(cls, groups: RunGroups) -> str | None:
        """Why the groups cannot identify this family's parameters, or None."""
        sizes = len({k.student_params for k in groups.keys})
        needed = len(cls.parameters)
        if cls.uses_tokens or sizes >= needed:
            return None
        return f"the {cls.name} law ({cls.formula}) needs runs at {needed} or more student sizes; found {sizes}"

    # -- the common face ----------------------------------------------------
    def __init__(self, file: LawFile) -> None:
        missing = [p for p in self.parameters if p not in file.coefficients]
        if missing:
            raise InputError(f"law file for {self.name} lacks coefficient(s) {', '.join(missing)}; "
                             f"expected {', '.join(self.parameters)}")
        self.file = file
        # The fit's own state (capgap.fit.curve_fit.FittedCurves) when this law was fitted in this process; None when
        # it was read from a file.
        self.fitted: object | None = None
        draws = [s for s in file.samples if all(p in s for p in self.parameters)]
        self._samples = {p: np.array([s[p] for s in draws], dtype=float) for p in self.parameters}

    def _tokens(self, student_params: float, tokens: float | None) -> float | None:
        if tokens is not None or not self.uses_tokens:
            return tokens
        tpp = self.file.regime.tokens_per_param
        # Without tokens, the geometric middle of the regime fitted on: the law's own ground.
        return float(np.sqrt(tpp[0] * tpp[1]) * student_params) if tpp else None

    def optimal_teacher(self, student_params: float, tokens: float | None = None) -> TeacherEstimate:
        tokens = self._tokens(student_params, tokens)
        if self.file.bound is not None:  # a one-sided answer: the bound, and no made-up point
            with np.errstate(all="ignore"):
                edge = float(self.teacher(self.file.coefficients, float(student_params), tokens))
            upper = self.file.bound == "at_most"
            return TeacherEstimate(estimate=edge, low=None if upper else edge, high=edge if upper else None,
                                   level=self.file.level, censored=self.file.bound)
        if self.uses_tokens and tokens is None:
            raise InputError(f"the {self.name} law needs the student's distillation tokens; give --tokens")
        with np.errstate(all="ignore"):
            estimate = float(self.teacher(self.file.coefficients, float(student_params), tokens))
        if not np.isfinite(estimate) or estimate <= 0:
            raise InputError(f"the {self.name} law ({self.formula}) gives no positive teacher for a "
                             f"{format_size(student_params)} student; it was fitted on students {self._range_text()}")
        draws = self._draws_at(float(student_params), tokens)
        beyond = beyond_measured(self.file.optima, float(student_params), tokens, estimate)
        if beyond is not None:
            # Past the teachers measured for students like this one, the law's point is extrapolation: the answer is
            # the bound the runs give, the ladder's edge, as for the per-student optima and one-sided laws; never
            # tighter than the law's own one-sided bound, since an optimum read just past the edge may lie inside.
            side, edge = beyond
            edge = one_sided_bound(edge, draws, side, self.file.level)
            rows = [o for o in ladders_like(self.file.optima, float(student_params), tokens)
                    if (o.high if side == "at_most" else o.low) is not None]
            widen = self._widening(rows, float(student_params), "high" if side == "at_most" else "low")
            edge = edge * np.exp(widen if side == "at_most" else -widen)
            return TeacherEstimate(estimate=edge, low=edge if side == "at_least" else None,
                                   high=edge if side == "at_most" else None, level=self.file.level, censored=side)
        low = high = None
        bracket = draws is None
        if bracket:
            low, high = self._listed_interval(float(student_params), tokens, estimate)
        else:
            low, high = quantile_interval(draws, self.file.level)
            low, high = min(low, estimate), max(high, estimate)  # an interval holds its own estimate
            if not np.isfinite(low) or collapsed(low, high):
                low = high = None
            else:
                low, high = self._reach_far_rungs(float(student_params), tokens, low, high)
        return TeacherEstimate(estimate=estimate, low=low, high=high, level=self.file.level,
                               bracket=bracket and low is not None)

    def _listed_interval(self, student: float, tokens: float | None,
                         estimate: float) -> tuple[float | None, float | None]:
        """Without draws (an exact fit), the listed optima's intervals (the measured teachers either side of
        the best ones), as multiples of the student interpolated in ln S; (None, None) unless every fitted
        student like this one has one."""
        rows = ladders_like(self.file.optima, student, tokens)
        if not rows or any(o.low is None or o.high is None for o in rows):
            return None, None
        low = student * np.exp(at_student(rows, student, [np.log(o.low / o.student_params) for o in rows]))
        high = student * np.exp(at_student(rows, student, [np.log(o.high / o.student_params) for o in rows]))
        return min(low, estimate), max(high, estimate)

    def _draws_at(self, student: float, tokens: float | None) -> np.ndarray | None:
        """T* of each interval draw at a student (NaN where a draw gives no positive teacher); None: no draws."""
        if not any(v.size for v in self._samples.values()):
            return None
        with np.errstate(all="ignore"):
            draws = np.asarray(self.teacher(self._samples, student, tokens), dtype=float)
        return np.where(draws > 0, draws, np.nan)

    def _reach_far_rungs(self, student: float, tokens: float | None, low: float, high: float) -> tuple[float, float]:
        """The interval widened as the fitted students' intervals are: to the measured teachers far beside their
        best ones (StudentOptimum.far_low/far_high) and to another law's reading where the two laws read the
        optimum apart (model_low/model_high); by each one's widening factor, interpolated in ln S (held at the
        nearest beyond the fitted range). At a fitted student this is its listed interval."""
        rows = [o for o in ladders_like(self.file.optima, student, tokens) if o.low is not None and o.high is not None]
        return (low * np.exp(-self._widening(rows, student, "low")),
                high * np.exp(self._widening(rows, student, "high")))

    def _widening(self, rows: list, student: float, side: str) -> float:
        """How far (in ln T) the answer at ``student`` widens on ``side`` ("low" or "high"): each fitted row's
        listed bound against the bound its draws give alone (its reach_low/reach_high, where set), interpolated in
        ln S; 0 where no row was widened or a row has no bound of its own."""
        reach = [o.reach_low if side == "low" else o.reach_high for o in rows]
        if not any(reach):
            return 0.0
        factors = []
        for o, bound in zip(rows, reach):
            own = self._own_bound(o, side)
            if not bound or own is None:
                factors.append(0.0)
            else:
                factors.append(max(0.0, float(np.log(own / bound) if side == "low" else np.log(bound / own))))
        return at_student(rows, student, np.nan_to_num(factors))

    def _own_bound(self, o, side: str) -> float | None:
        """A fitted row's bound on ``side`` from the law's draws alone, before any widening: as read_optima reads
        it (capgap.fit.optima): the two-sided percentile interval holding the estimate, or for a censored row its
        edge rung loosened to the draws' one-sided bound. None without draws."""
        draws = self._draws_at(float(o.student_params), o.tokens)
        if draws is None:
            return None
        if o.censored:
            return one_sided_bound(edge_rung(o.teachers, o.censored), draws, o.censored, self.file.level)
        own_low, own_high = quantile_interval(draws, self.file.level)
        return min(own_low, o.teacher_params) if side == "low" else max(own_high, o.teacher_params)

    def predict_metric(self, student_params: float, teacher_params: float, tokens: float | None = None) -> float | None:
        return None  # the group baselines of a new student are unknown: these laws locate the optimum only

    def _range_text(self) -> str:
        span = self.file.regime.student_params or self.file.student_range
        return f"{format_size(span[0])}-{format_size(span[1])}" if span else "(no range recorded)"


def at_student(rows, student: float, values) -> float:
    """``values`` given per row (StudentOptimum, by student size) read at ``student``: linear in ln S between the
    fitted students, held at the nearest beyond them."""
    return float(np.interp(np.log(student), np.log([o.student_params for o in rows]), values))


def ladders_like(optima, student: float, tokens: float | None) -> list:
    """The fitted groups (StudentOptimum rows with a ladder) whose tokens per parameter are nearest the student's
    (all of them where tokens are unknown), by student size."""
    rows = [o for o in optima if len(o.teachers) >= 2]
    if rows and tokens and all(o.tokens for o in rows):
        distance = np.array([abs(np.log(o.tokens / o.student_params) - np.log(tokens / student)) for o in rows])
        rows = [o for o, d in zip(rows, distance) if d <= distance.min() + 0.1]
    return sorted(rows, key=lambda o: o.student_params)


def beyond_measured(optima, student: float, tokens: float | None, estimate: float) -> tuple[str, float] | None:
    """Whether a law's optimal teacher for ``student`` lies past the teachers measured for students like it, and
    if so which way ("at_most": below the smallest, "at_least": above the largest) and the edge (in teacher
    size); None when it lies within them or nothing is known of the ladders.

    The ladder at ``student`` is read from the fitted groups' ladders, as multiples of their student,
    interpolated in ln S between the nearest fitted students (the groups nearest in tokens per parameter where
    tokens vary); for students outside the fitted range there is no such ladder, and None. Any estimate past
    the edge counts, as for the per-student optima (capgap.fit.optima), so that the answer at a fitted student is
    its listed optimum's: with a tolerance of half a rung, 13% of the answers on a ladder starting above every
    optimum were two-sided intervals there, some leaving the truth out. The bound is the edge rung, or its
    neighbour where that lies more than DENSE_RUNG away (capgap.fit.one_sided).
    """
    rows = ladders_like(optima, student, tokens)
    if not rows:
        return None
    log_s = np.log([o.student_params for o in rows])
    low = np.array([np.log(o.teachers[0] / o.student_params) for o in rows])
    high = np.array([np.log(o.teachers[-1] / o.student_params) for o in rows])
    at = np.log(student)
    if not log_s[0] - 0.01 <= at <= log_s[-1] + 0.01:
        return None  # beyond the students fitted on the law extrapolates in S, which is what a law is for
    low_at, high_at = at_student(rows, student, low), at_student(rows, student, high)
    ratio = np.log(estimate / student)
    for side, beyond in (("at_most", ratio < low_at), ("at_least", ratio > high_at)):
        if beyond:  # the bound: each ladder's edge, or its neighbour where that is far (capgap.fit.one_sided)
            bounds = [np.log(edge_rung(o.teachers, side) / o.student_params) for o in rows]
            return side, float(student * np.exp(at_student(rows, student, bounds)))
    return None
