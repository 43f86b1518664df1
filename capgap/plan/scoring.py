"""How `capgap plan` scores a design: the linearised (Fisher) variance of ln T* under the fit's own curve model.

The model is the one-stage model of ``capgap.fit.onestage`` with the curves the fit would use on the design
(``capgap.fit.curve_fit.curve_options``): a left/right curvature ratio shared by every student while some student
has few teachers, free per student once every one has ``MIN_TEACHERS_FOR_FREE_ASYMMETRY``; the far shape
(s, alpha) fitted once a ladder spans a decade with five teachers; symmetric parabolas where nothing richer
leaves a degree of freedom: the fit's own ``affordable_space`` on a stand-in of the design's groups
(``affordable``). The curve columns come from the fit's own ``curve_columns``, so the planner's curve is the fit's
curve by construction, not a copy of it.

At each of M draws of the model (the fit's point and residual-bootstrap refits of it on the curves it chose;
each group's baseline and curvatures profiled at the draw as the fit profiles them, under a shared and under
free ratios), a run of group g at teacher T adds the row
x = d(metric)/d(theta, ln ratio, s, alpha, b, c1, c2) / noise: c1 multiplies the left (or, with a shared ratio,
the whole) curve column and c2 the right one. I = sum x x^T, and Var ln T*(target) = c^T I^-1 c.
Parameters the design's model does not have are pinned (the far shape) or decouple exactly (a right curvature
under a shared ratio, a shared ratio under free ones).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from capgap.core.errors import InputError
from capgap.plan.ensemble import DrawEnsemble
from capgap.runs.groups import MIN_TEACHERS, SIZE_TOLERANCE, GroupKey, RunGroups
from capgap.runs.records import RunRecord

LEVEL = 0.9
Z = 1.6448536269514722  # two-sided 90%
DRAWS = 32  # draws of the model the expected variance is averaged over
PRIOR_DEPTH = 10.0  # cold start: a curve this many noise levels deep one ln unit from its optimum (an assumption)
PRIOR_MIN_SD = 1.0  # ln units: the prior on ln(T*/S) is never narrower than this (a factor e each way at 1 sd)
NO_DF_PENALTY = 10.0  # a design the fit cannot put an interval on scores this many times worse
# The far shape's prior: a normal of about half the search box (onestage.SHAPE_LIMIT, ALPHA_BOUNDS) per parameter;
# the shared ratio's: half its box (ln 10 each way).
SHAPE_PRIOR_SD = (2.0, 5.0)
RATIO_PRIOR_SD = 1.2
# The planner counts a design's curves as the fit counts them. (An earlier default charged a decade-wide ladder for
# the far shape from MIN_TEACHERS teachers on, before the fit would free it: the planner then added a fifth
# decade-wide rung for free, the fit freed the far shape, and its interval stalled near ±25% on a plain parabola,
# 52 runs against 24 on the symmetric scenario of bench/plan_efficiency.py. That variant is gone.)
_RIDGE = 1e-9
_PIN = 1e9  # precision that holds a parameter the design's model does not fit at its value
_STEP = 1e-4  # ln units: finite differences along the curve
_SHAPE_STEP = 1e-3
_RATIO_COMB = np.linspace(np.log(0.1), np.log(10.0), 15)  # profiling a shared ratio where the fit had free ones
N_CURVE = 3  # ln ratio, s, alpha: the curve coordinates every design is scored over


class OneSided(InputError):
    """The fit's answer is a bound (capgap.fit.one_sided): T*/S at most (or at least) ``ratio``, no curve."""

    def __init__(self, side: str, ratio: float, neighbour: float) -> None:
        super().__init__(f"every student's best teacher is at the edge of its ladder (T* {side.replace('_', ' ')} "
                         f"{ratio:.3g}x the student)")
        self.side, self.ratio = side, ratio
        self.neighbour = neighbour  # T/S of the rung next to the edge one, inside the ladder


@dataclass
class Variant:
    """The model's curves under one asymmetry choice, at every draw."""

    curve: np.ndarray  # (M, 6): curve rows as onestage.profile takes them
    coefficients: np.ndarray  # (M, G, 3): baseline, then what multiplies the left and the right curve column


@dataclass
class LinearisedModel:
    """The model at M draws: the groups' locations, their gradients in theta, and the curves of both asymmetry
    choices (``variants[True]``: one ratio shared by the groups; ``variants[False]``: a free ratio per group)."""

    location: np.ndarray  # (M, G) ln T* per group
    gradient: np.ndarray  # (M, G, P) d ln T* / d theta
    variants: dict[bool, Variant]
    noise: float
    target_gradient: np.ndarray  # (M, K, P)
    prior_precision: np.ndarray  # (P + 3, P + 3): theta's prior (cold start), the ratio's and the far shape's
    keys: list[GroupKey]  # one per group: what the fit's curve choice is counted on
    law: type  # the CurveLaw family, and ...
    centre: object  # ... the laws.curve.Centre its search space is built about

    @property
    def n_theta(self) -> int:
        return self.gradient.shape[2]

    @property
    def n_groups(self) -> int:
        return self.location.shape[1]

    @property
    def n_lead(self) -> int:
        """Shared parameters: theta, the shared ratio and the far shape (s, alpha)."""
        return self.n_theta + N_CURVE

    @property
    def n_params(self) -> int:
        return self.n_lead + 3 * self.n_groups

    def rows(self, shared: bool, group: np.ndarray, log_teacher: np.ndarray) -> np.ndarray:
        """Rows d(metric)/d(theta, ln ratio, s, alpha, b, c1, c2) per draw, scaled by 1/noise: (M, n, Q)."""
        # The fit's own curve columns: private in onestage, used here so that the two can never drift apart.
        from capgap.fit.onestage import curve_columns

        variant = self.variants[shared]
        m, n, p, g = self.location.shape[0], group.size, self.n_theta, self.n_groups
        u = log_teacher[None, :] - self.location[:, group]
        curve = variant.curve
        coefficient = variant.coefficients[:, group, :]  # (M, n, 3)

        def mean(u_: np.ndarray, curve_: np.ndarray) -> np.ndarray:
            left, right = curve_columns(u_, curve_)
            return coefficient[..., 1] * left + coefficient[..., 2] * right

        left, right = curve_columns(u, curve)
        slope = (mean(u + _STEP, curve) - mean(u - _STEP, curve)) / (2 * _STEP)
        x = np.zeros((m, n, self.n_lead + 3 * g))
        x[:, :, :p] = -slope[..., None] * self.gradient[:, group, :]
        if shared:
            up, down = curve.copy(), curve.copy()
            up[:, 2] += _SHAPE_STEP
            down[:, 2] -= _SHAPE_STEP
            x[:, :, p] = (mean(u, up) - mean(u, down)) / (2 * _SHAPE_STEP)
        # The far shape, one (s, alpha) for both sides: in s = w² (one-sided, s >= 0) and alpha.
        wider = curve.copy()
        for col in (0, 3):
            wider[:, col] = np.sqrt(curve[:, col] ** 2 + _SHAPE_STEP)
        x[:, :, p + 1] = (mean(u, wider) - mean(u, curve)) / _SHAPE_STEP
        up, down = curve.copy(), curve.copy()
        up[:, [1, 4]] += _SHAPE_STEP
        down[:, [1, 4]] -= _SHAPE_STEP
        x[:, :, p + 2] = (mean(u, up) - mean(u, down)) / (2 * _SHAPE_STEP)
        runs, lead = np.arange(n), self.n_lead
        x[:, runs, lead + group] = 1.0
        x[:, runs, lead + g + group] = left
        x[:, runs, lead + 2 * g + group] = right
        return x / self.noise

    def variance(self, info: np.ndarray) -> np.ndarray:
        """Var of ln T* at each target, per draw: info (..., M, Q, Q) -> (..., M, K)."""
        k = self.target_gradient.shape[1]
        c = np.zeros(info.shape[:-2] + (info.shape[-1], k))
        c[..., :self.n_theta, :] = np.swapaxes(self.target_gradient, 1, 2)
        solved = np.linalg.solve(info, c)
        return np.einsum("...qk,...qk->...k", c, solved)


@dataclass(frozen=True)
class Structure:
    """What the fit would spend on a design: the groups it fits, its curves, its residual degrees of freedom."""

    fitted: np.ndarray  # (G,) bool: groups with MIN_TEACHERS distinct teachers
    shared: bool  # one left/right curvature ratio for all groups (or none: ``ratio``)
    ratio: bool  # False: symmetric curves, no ratio fitted
    far: bool  # the far shape (s, alpha) is fitted
    df: int
    teachers: list[set[float]]  # each group's distinct ln teachers


def affordable(model: LinearisedModel, index: np.ndarray, teachers: Sequence[set[float]],
               n_runs: Sequence[int]) -> tuple[bool, bool, bool, int]:
    """(shared ratio, a ratio at all, far shape, residual df) of the curves the fit would use on the groups
    ``index`` of the model with these distinct ln teachers and run counts: the fit's own choice
    (``affordable_space`` on a stand-in of the design's groups), or (True, False, False, -1) where it would
    refuse."""
    from capgap.fit.curve_fit import affordable_space
    from capgap.fit.onestage import degrees_of_freedom

    ladders = [sorted(t) for t in teachers]
    group = np.repeat(np.arange(index.size), n_runs)
    stand_in = RunGroups(keys=[model.keys[g] for g in index], log_teacher=np.zeros(group.size),
                         badness=np.zeros(group.size), group=group,
                         starts=np.flatnonzero(np.r_[True, group[1:] != group[:-1]]),
                         teachers=[[int(round(math.exp(t))) for t in lad] for lad in ladders],
                         run_ids=[""] * group.size, skipped=[])
    try:
        space, _ = affordable_space(model.law, stand_in, model.centre)
    except InputError:
        return True, False, False, -1
    df = degrees_of_freedom(stand_in, space)
    return space.shared_asymmetry or not space.ratio, space.ratio, space.n_shape > 0, df


class DesignScorer:
    """The expected variance of ln T* at the targets for a design: the runs so far plus candidate runs.

    The parameters are the ones the fit will spend on that design (``affordable``); the variance is inflated
    by (t_df / z)², the widening of an interval whose noise level is estimated from df residual degrees of
    freedom (a design left with none is penalised, not ruled out: a cold start needs it). At each draw the
    variance is capped at ``cap``: a linearisation far from its draw's data can read 10^4 ln units², and one
    such draw would outweigh all the others in the mean (``ladder_cap``).
    """

    def __init__(self, model: LinearisedModel, group: np.ndarray, log_teacher: np.ndarray,
                 candidate_group: np.ndarray, candidate_log_teacher: np.ndarray,
                 no_df_penalty: float = NO_DF_PENALTY, cap: float = math.inf,
                 target_groups: Sequence[int] | None = None) -> None:
        self.model = model
        self.target_groups = list(target_groups) if target_groups is not None else None
        self._floors: dict[tuple, np.ndarray] = {}
        self.no_df_penalty = no_df_penalty
        self.cap = cap
        n_groups = model.n_groups
        self.base_info, self.candidate_info = {}, {}
        for shared in (True, False):
            base = model.rows(shared, group, log_teacher)  # (M, n, Q)
            self.base_info[shared] = np.stack([np.einsum("mni,mnj->mij", base[:, group == g], base[:, group == g])
                                               for g in range(n_groups)])  # (G, M, Q, Q)
            x = model.rows(shared, candidate_group, candidate_log_teacher)  # (M, C, Q)
            self.candidate_info[shared] = np.einsum("mci,mcj->cmij", x, x)  # (C, M, Q, Q)
        self.base_runs = np.bincount(group, minlength=n_groups)
        self.base_group, self.base_teacher = group, np.round(log_teacher, 6)
        self.base_teachers = [set(self.base_teacher[group == g].tolist()) for g in range(n_groups)]
        self.candidate_group = candidate_group
        self.candidate_log_teacher = candidate_log_teacher
        self.candidate_teacher = np.round(candidate_log_teacher, 6)
        q, p, lead = model.n_params, model.n_theta, model.n_lead
        self.prior = _RIDGE * np.eye(q)
        self.prior[:lead, :lead] += model.prior_precision
        self.pin_shape = np.zeros((q, q))
        self.pin_shape[p + 1:lead, p + 1:lead] = np.eye(2) * _PIN
        self.pin_ratio = np.zeros((q, q))
        self.pin_ratio[p, p] = _PIN
        self._structures: dict[tuple, Structure] = {}
        self.now = np.minimum(self._per_draw([[]])[0][0], cap)  # (M, K): the runs so far
        self.ensemble: DrawEnsemble | None = None  # set from a fitted state: ``score`` then combines both

    def structure(self, design: Sequence[int]) -> Structure:
        """Which groups the fit will use, with which curves, and its residual degrees of freedom."""
        teachers = [set(t) for t in self.base_teachers]
        n_runs = self.base_runs.copy()
        for c in design:
            teachers[self.candidate_group[c]].add(float(self.candidate_teacher[c]))
            n_runs[self.candidate_group[c]] += 1
        fitted = np.array([len(t) >= MIN_TEACHERS for t in teachers])
        key = tuple((frozenset(t), int(n)) for f, t, n in zip(fitted, teachers, n_runs) if f)
        if key not in self._structures:
            if not fitted.any():
                self._structures[key] = Structure(fitted, True, False, False, -1, teachers)
            else:
                index = np.flatnonzero(fitted)
                shared, ratio, far, df = affordable(self.model, index, [teachers[g] for g in index], n_runs[index])
                self._structures[key] = Structure(fitted, shared, ratio, far, df, teachers)
        found = self._structures[key]
        return Structure(fitted, found.shared, found.ratio, found.far, found.df, teachers)

    def degrees_of_freedom(self, design: Sequence[int]) -> int:
        return self.structure(design).df

    def _bracketed(self, structure: Structure) -> np.ndarray:
        """(M,): at each draw, whether some fitted group's ladder reaches its optimum (within a mean spacing).

        Where none does the fit reads the optimum off a curve that never turns, or refuses (`capgap fit`'s
        rule): such a design is credited with nothing at that draw."""
        inside = np.zeros(self.model.location.shape[0], dtype=bool)
        for g in np.flatnonzero(structure.fitted):
            ladder = sorted(structure.teachers[g])
            spacing = (ladder[-1] - ladder[0]) / (len(ladder) - 1)
            location = self.model.location[:, g]
            inside |= (location >= ladder[0] - spacing) & (location <= ladder[-1] + spacing)
        return inside

    def _per_draw(self, designs: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
        """(D, M, K) df-inflated variances and (D, M) bracketing of each design at each draw."""
        from scipy.special import stdtrit  # the t quantile, without scipy.stats' second of imports

        infos, factors, brackets, floors = [], [], [], []
        for design in designs:
            found = self.structure(design)
            if self.target_groups is not None:
                floors.append(self._far_rung_floor(design, found))
            info = self.prior + (0.0 if found.far else self.pin_shape) + (0.0 if found.ratio else self.pin_ratio)
            info = info + self.base_info[found.shared][found.fitted].sum(axis=0)
            used = [c for c in design if found.fitted[self.candidate_group[c]]]
            if used:
                info = info + self.candidate_info[found.shared][used].sum(axis=0)
            infos.append(info)
            widening = (float(stdtrit(max(found.df, 1), 0.5 + LEVEL / 2)) / Z) ** 2
            factors.append(widening * (1.0 if found.df > 0 else self.no_df_penalty))
            brackets.append(self._bracketed(found))
        variance = self.model.variance(np.stack(infos)) * np.array(factors)[:, None, None]
        if floors:
            variance = np.maximum(variance, np.stack(floors))
        return variance, np.array(brackets)

    def _far_rung_floor(self, design: Sequence[int], structure: Structure) -> np.ndarray:
        """(M, K): per draw, the variance of ln T* below which no target's interval can fall on this design.

        Where the measured teachers next to the best ones lie more than FAR_RUNG away, `capgap fit` reaches the
        interval out to them (``capgap.fit.one_sided.far_bracket``): in between, where the optimum lies is the
        curve model's assumption. The best ones are those within CLEAR_MARGIN standard errors of the best, here
        by the draw's own curve and the design's runs per teacher, and the floor is the variance whose 90%
        half-width reaches the far neighbour. Without it the planner kept adding runs beside a wide gap it never
        filled (symmetric 2.5x: rungs 3.45x and 13.4x, 48 runs, interval still [2.1x, 13.4x]). And where a draw's
        optimum lies beyond a target's own measured teachers, the fit's answer there is a bound, not an interval:
        the floor is then the cap, so that the planner extends that target's ladder rather than trusting the other
        students to pin it (three students: the smallest one's runs all above its optimum, 20 runs on, and its
        answer still a bound)."""
        from capgap.fit.one_sided import CLEAR_MARGIN, FAR_RUNG
        from capgap.fit.onestage import curve_columns

        beyond = self.cap if math.isfinite(self.cap) else ladder_cap(self.candidate_log_teacher)
        variant = self.model.variants[structure.shared]
        floor = np.zeros((self.model.location.shape[0], len(self.target_groups)))
        for k, g in enumerate(self.target_groups):
            if not structure.fitted[g]:  # a group the fit does not use yet has no interval to floor
                continue
            chosen = [float(self.candidate_teacher[c]) for c in design if self.candidate_group[c] == g]
            logs, counts = np.unique(np.r_[self.base_teacher[self.base_group == g], chosen], return_counts=True)
            key = (g, tuple(logs), tuple(counts), structure.shared)
            if key not in self._floors:
                u = logs[None, :] - self.model.location[:, g:g + 1]
                left, right = curve_columns(u, variant.curve)
                depth = variant.coefficients[:, g, 1:2] * left + variant.coefficients[:, g, 2:3] * right
                self._floors[key] = gap_floor(logs, counts, self.model.location[:, g], depth,
                                              CLEAR_MARGIN * self.model.noise, math.log(FAR_RUNG), beyond)
            floor[:, k] = self._floors[key]
        return floor

    def per_draw(self, designs: Sequence[Sequence[int]]) -> np.ndarray:
        """(D, M, K): per design and draw the expected variance (at a draw it does not bracket, the runs so far)."""
        variance, bracketed = self._per_draw(designs)
        return np.minimum(np.where(bracketed[..., None], variance, self.now[None]), self.cap)

    def variances(self, designs: Sequence[Sequence[int]]) -> np.ndarray:
        """(D, K): per design the expected variance of ln T* at each target, the mean over draws."""
        return self.per_draw(designs).mean(axis=1)

    def score(self, designs: Sequence[Sequence[int]]) -> np.ndarray:
        """(D,): per design the expected variance summed over the targets; with an ``ensemble``, the geometric mean
        of its variance and this Fisher one at each target, summed.

        Each is blind where the other sees: the ensemble (``capgap.plan.ensemble``) is global but linear, estimated
        from 32 draws, and knows nothing of the parameters a design would make the fit spend; the Fisher score
        knows those and is local. The geometric mean ranks a design by the sum of its log-reductions under both,
        so a batch must do well by each (summed over the closed-loop scenarios it beat either alone: docs/plan.md).
        The forecast (``variances``) stays the Fisher one."""
        fisher = self.variances(designs)  # (D, K)
        if self.ensemble is None:
            return fisher.sum(axis=1)
        out = []
        for design, local in zip(designs, fisher):
            # The fit's own rules floor what any spread can give, draw by draw, as they floor the Fisher variance.
            floor = self._far_rung_floor(design, self.structure(design))  # (M, K)
            spread = np.maximum(self.ensemble.variance(design)[None, :], floor).mean(axis=0)
            out.append(float(np.sqrt(spread * local).sum()))
        return np.array(out)


def gap_floor(logs: np.ndarray, counts: np.ndarray, location: np.ndarray, depth: np.ndarray, margin: float,
              far: float, beyond: float) -> np.ndarray:
    """(M,): the floor on the variance of ln T* for one group: its measured ln teachers ``logs`` (T,, sorted) with
    ``counts`` runs each, its optimum at M draws and the curve's depth above it at each teacher (M, T).

    The best teachers are those within ``margin`` / sqrt(runs) (combined with the best one's) of the best; where
    the teacher next to them lies more than ``far`` away, the floor is (reach / Z)², reach the distance from the
    optimum to it; ``beyond`` where the optimum lies outside the measured teachers; else 0."""
    m, t = depth.shape
    if t < 2:
        return np.zeros(m)
    best = depth.argmin(axis=1)
    se = margin * np.sqrt(1.0 / counts[None, :] + 1.0 / counts[best][:, None])
    tied = depth - depth[np.arange(m), best][:, None] <= se
    index = np.arange(t)[None, :]
    first = np.where(tied, index, t).min(axis=1)
    last = np.where(tied, index, -1).max(axis=1)
    lower, upper = logs[np.maximum(first - 1, 0)], logs[np.minimum(last + 1, t - 1)]
    reach = np.where((first > 0) & (logs[first] - lower > far), location - lower, 0.0)
    reach = np.where((last < t - 1) & (upper - logs[last] > far), np.maximum(reach, upper - location), reach)
    outside = (location < logs[0]) | (location > logs[-1])
    return np.where(outside, beyond, (np.maximum(reach, 0.0) / Z) ** 2)


def ladder_cap(log_teachers: np.ndarray) -> float:
    """The variance of ln T* whose 90% interval spans the whole candidate ladder: no run can leave a draw less
    sure of the optimum than that, whatever its linearisation says."""
    span = float(np.ptp(log_teachers)) if log_teachers.size else 0.0
    return max(span / (2 * Z), PRIOR_MIN_SD) ** 2


@dataclass
class Target:
    student: int
    tokens: int
    group: int  # index of its group in the model


def same_group(key_student: int, key_tokens: int | None, student: int, tokens: int) -> bool:
    # Tokens are rounded up to whole optimizer steps by a sweep: within 10% is the same budget.
    return abs(key_student - student) <= SIZE_TOLERANCE * student and abs((key_tokens or 0) - tokens) <= 0.1 * tokens


def _new_key(student: int, tokens: int) -> GroupKey:
    """The key of a target student's group that has no fitted runs yet (only its teacher count matters)."""
    return GroupKey(family="planned", student_init="planned", student_params=student, tokens=tokens)


def _search_point(space, theta: np.ndarray, log_ratio: np.ndarray | None, shape: np.ndarray) -> np.ndarray:
    """Search points (M, P + n_curve) in ``space``'s layout (theta, ln ratio when shared, far shape)."""
    parts = [theta]
    if space.shared_asymmetry and space.ratio:
        parts.append(log_ratio[:, None])
    parts.append(shape[:, :space.n_shape])
    return np.hstack(parts)


def fitted_model(runs: Sequence[RunRecord], targets_spec, law: str, metric: str | None, size_measure: str,
                 n_boot: int, seed: int, fit_warnings: list[str]):
    """The model at draws of the fit (its point and DRAWS - 1 residual-bootstrap refits, on the curves it chose);
    raises InputError where the runs cannot be fitted, OneSided where the fit's answer is a bound. The fit's
    own warnings are added to ``fit_warnings``: the plan is only as good as the fit it starts from.

    Returns (model, intervals before the batch as (estimate, low, high) per target, rows, targets, law name)."""
    from threadpoolctl import threadpool_limits

    from capgap.fit.curve_fit import search_space
    from capgap.fit.intervals.bootstrap import bootstrap
    from capgap.fit.law_fit import fit_law
    from capgap.laws.base import law_class
    from capgap.laws.curve import CurveLaw

    fitted_law = fit_law(runs, law=law, metric=metric, size_measure=size_measure, bootstrap=n_boot, seed=seed)
    file = fitted_law.file
    fit_warnings += file.diagnostics.warnings
    if file.bound is not None:  # a one-sided answer has no curve to plan with: draws beyond the bound bracket it
        ratios = [fitted_law.optimal_teacher(s, d).estimate / s for s, d in targets_spec]
        upper = file.bound == "at_most"
        # The rung next to the best one, in the target's own runs: the optimum lies nearer the edge than it.
        tried = sorted({r.size("teacher", size_measure) / s for r in runs for s, d in targets_spec
                        if same_group(r.size("student", size_measure), r.tokens, s, d)})
        edge = min(ratios) if upper else max(ratios)
        inside = [t for t in tried if (t > edge * 1.001 if upper else t < edge / 1.001)]
        neighbour = (min(inside) if upper else max(inside)) if inside else edge
        raise OneSided(file.bound, edge, neighbour)
    cls = law_class(file.law)
    if not (isinstance(cls, type) and issubclass(cls, CurveLaw)):
        raise InputError(f"the planner reasons with the one-stage model; the {file.law} law is not one (use --law ratio)")
    state = fitted_law.fitted  # the fit's own groups, curves and point (capgap.fit.curve_fit.FittedCurves)
    with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        groups, centre, space, point = state.groups, state.centre, state.space, state.point
        # The fit's point on the curves it answered with, and residual-bootstrap refits of it: draws of theta and
        # of the curves' shape together, so that a design is scored over the shapes the runs allow, not one.
        boot = (bootstrap(state.fitted_groups, point, DRAWS - 1, np.random.default_rng(seed)) if point.df > 0
                else None)
        phi = np.vstack([point.phi[None, :], boot.draws]) if boot is not None else point.phi[None, :]
        theta, curve = space.split(phi)
        m = theta.shape[0]
        shape = curve[:, [0, 1, 3, 4]]  # w, alpha left, then right
        log_ratio = curve[:, 2] if np.isfinite(curve[:, 2]).all() else None
        variants = {}
        for shared in (True, False):
            this = search_space(cls, groups, centre, space.n_shape, shared_asymmetry=shared)
            if shared and log_ratio is None:
                # The fit had a free ratio per group: the shared ratio a design with fewer teachers would use is
                # profiled at each draw on a comb of its box.
                comb = np.repeat(_RATIO_COMB[None, :], m, axis=0)
                trial = _search_point(this, np.repeat(theta, comb.shape[1], axis=0), comb.ravel(),
                                      np.repeat(shape, comb.shape[1], axis=0))
                objective = this.evaluate(groups, trial, groups.badness, point.delta).objective.reshape(m, -1)
                log_ratio = _RATIO_COMB[np.nanargmin(np.where(np.isfinite(objective), objective, np.inf), axis=1)]
            at = _search_point(this, theta, log_ratio, shape)
            variants[shared] = (this.split(at)[1], this.evaluate(groups, at, groups.badness, point.delta).coefficients)
        noise = point.noise
    keys = list(groups.keys)
    targets: list[Target] = []
    extra_groups: list[tuple[int, int]] = []
    for student, tokens in targets_spec:
        match = next((j for j, k in enumerate(keys) if same_group(k.student_params, k.tokens, student, tokens)), None)
        if match is None:
            match = len(keys) + len(extra_groups)
            extra_groups.append((student, tokens))
        targets.append(Target(student, tokens, match))

    def locate(students_z, tokens_z, th):
        return cls.log_location(th, students_z, tokens_z) + centre.log_student

    z_groups = np.r_[groups.log_student, np.log([s for s, _ in extra_groups])] - centre.log_student
    tpp = np.r_[groups.log_tokens_per_param, np.log([d / s for s, d in extra_groups])]
    zt_groups = np.nan_to_num(tpp - centre.log_tokens_per_param)
    zt_t = np.nan_to_num(np.log([t.tokens / t.student for t in targets]) - centre.log_tokens_per_param)
    z_t = np.log([t.student for t in targets]) - centre.log_student
    location, gradient = _with_gradient(lambda th: locate(z_groups, zt_groups, th), theta)
    _, target_gradient = _with_gradient(lambda th: locate(z_t, zt_t, th), theta)
    typical = None
    built = {}
    for shared, (curve, coefficients) in variants.items():
        full, typical = _curvatures(coefficients, len(extra_groups), noise, shared, typical)
        built[shared] = Variant(curve=curve, coefficients=full)
    noise = noise if noise > 0 else float(np.median(typical)) / PRIOR_DEPTH
    model = LinearisedModel(location=location, gradient=gradient, variants=built, noise=noise,
                            target_gradient=target_gradient, prior_precision=prior_precision(np.zeros(theta.shape[1])),
                            keys=keys + [_new_key(s, d) for s, d in extra_groups], law=cls, centre=centre)
    before = []
    for t in targets:  # the interval `capgap fit` reports
        estimate = fitted_law.optimal_teacher(t.student, t.tokens)
        before.append((estimate.estimate, estimate.low, estimate.high))
    rows = (groups.group.copy(), groups.log_teacher.copy())
    # Runs of a target student in a group too small to be fitted still count as rows of its new group.
    rows = add_unfitted_rows(rows, runs, targets, len(keys), size_measure)
    return model, before, rows, targets, file.law


def prior_precision(theta_precision: np.ndarray) -> np.ndarray:
    return np.diag(np.r_[theta_precision, 1.0 / RATIO_PRIOR_SD**2, 1.0 / np.square(SHAPE_PRIOR_SD)])


def _with_gradient(function, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """function(theta (M, P)) -> (M, G), and its gradient (M, G, P) by central differences."""
    value = function(theta)
    gradient = np.zeros(value.shape + (theta.shape[1],))
    for i in range(theta.shape[1]):
        step = np.zeros(theta.shape[1])
        step[i] = 1e-5
        gradient[..., i] = (function(theta + step) - function(theta - step)) / 2e-5
    return value, gradient


def _curvatures(coefficients: np.ndarray, n_new: int, noise: float, shared: bool,
                typical: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients per draw (M, G + n_new, 3) with a curvature fitted flat, and every curvature of a new group,
    set to the typical one (a flat fit is most often noise; a new group's curve is unknown), and that typical
    curvature (M,) (the first variant's, so that both variants give a new group the same curve)."""
    curvatures = coefficients[:, :, 1:2] if shared else coefficients[:, :, 1:]
    if typical is None:
        positive = np.where(curvatures > 0, curvatures, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            typical = np.nanmedian(positive.reshape(positive.shape[0], -1), axis=1)
        typical = np.where(np.isfinite(typical), typical, PRIOR_DEPTH * max(noise, 1e-12))
    full = np.concatenate([coefficients, np.zeros((coefficients.shape[0], n_new, 3))], axis=1)
    columns = [1] if shared else [1, 2]
    full[:, :, columns] = np.where(full[:, :, columns] > 0, full[:, :, columns], typical[:, None, None])
    return full, typical


def add_unfitted_rows(rows, runs, targets: list[Target], n_fitted: int, size_measure: str):
    group, log_teacher = rows
    extra_g, extra_t = [], []
    for t in targets:
        if t.group < n_fitted:
            continue
        for r in runs:
            if same_group(r.size("student", size_measure), r.tokens, t.student, t.tokens):
                extra_g.append(t.group)
                extra_t.append(math.log(r.size("teacher", size_measure)))
    return np.r_[group, np.array(extra_g, dtype=int)].astype(int), np.r_[log_teacher, extra_t]


def prior_ratio(student: int, tokens: int) -> tuple[float, float]:
    """Mean and sd of ln(T*/S) from the published laws: a normal whose 90% range spans both."""
    from capgap.laws.files import resolve_law

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zhang = resolve_law("zhang2023")[0].optimal_teacher(student).estimate
        try:
            busbridge = resolve_law("busbridge2025")[0].optimal_teacher(student, tokens).estimate
        except InputError:
            busbridge = zhang
    ends = np.log([zhang / student, busbridge / student])
    return float(ends.mean()), max(PRIOR_MIN_SD, float(abs(ends[1] - ends[0]) / (2 * Z)))


def prior_model(runs, targets_spec, seed: int, size_measure: str, draws: int = DRAWS):
    """The ratio law's one parameter ln r drawn from the prior; every target student its own new group, with a
    symmetric curve ``PRIOR_DEPTH`` noise levels deep one ln unit from its optimum.

    Returns (model, (mean, sd) of ln r, rows, targets)."""
    targets = [Target(s, d, j) for j, (s, d) in enumerate(targets_spec)]
    moments = [prior_ratio(s, d) for s, d in targets_spec]
    mean = float(np.mean([m for m, _ in moments]))
    sd = float(np.sqrt(np.mean([s**2 for _, s in moments]) + np.var([m for m, _ in moments])))
    rng = np.random.default_rng(seed)
    ln_r = mean + sd * rng.standard_normal(draws)
    model = prior_model_at(ln_r, targets, sd)
    rows = add_unfitted_rows((np.zeros(0, dtype=int), np.zeros(0)), runs, targets, 0, size_measure)
    return model, (mean, sd), rows, targets


BOUND_REACH = 0.5  # ln units: a bounded optimum may lie beyond the ladder's last candidate by this much


def bounded_model(runs, targets_spec, size_measure: str, bound: OneSided, log_candidates: np.ndarray,
                  draws: int = DRAWS):
    """The model where the fit's answer is a bound: ln(T*/S) spread evenly over the candidates beyond the bound
    (and a little past them), and inward to halfway to the rung next to the edge one: on a curve symmetric about
    its optimum, the edge rung beats its neighbour only where the optimum is nearer the edge. Every target
    student is a new group holding its runs so far. Planning from the published prior instead would ignore the
    runs and keep measuring the side they ruled out.

    Returns (model, (mean, sd) of ln r, rows, targets)."""
    targets = [Target(s, d, j) for j, (s, d) in enumerate(targets_spec)]
    edge = math.log(bound.ratio)
    log_ratios = log_candidates - math.log(min(s for s, _ in targets_spec))
    halfway = 0.5 * (edge + math.log(bound.neighbour))
    if bound.side == "at_most":
        low, high = min(float(log_ratios.min()), edge) - BOUND_REACH, halfway
    else:
        low, high = halfway, max(float(log_ratios.max()), edge) + BOUND_REACH
    ln_r = low + (high - low) * (np.arange(draws) + 0.5) / draws
    sd = (high - low) / math.sqrt(12.0)
    model = prior_model_at(ln_r, targets, sd)
    rows = add_unfitted_rows((np.zeros(0, dtype=int), np.zeros(0)), runs, targets, 0, size_measure)
    return model, (float(ln_r.mean()), sd), rows, targets


def prior_model_at(ln_r: np.ndarray, targets: list[Target], sd: float) -> LinearisedModel:
    """The cold-start model at draws ``ln_r`` (M,) of the ratio law's parameter, with a prior of ``sd`` on it."""
    from capgap.laws.base import law_class
    from capgap.laws.curve import Centre

    log_s = np.log([t.student for t in targets])
    m, g = ln_r.size, len(targets)
    curve = np.zeros((m, 6))
    free = curve.copy()
    free[:, 2] = np.nan
    shared_coefficients = np.zeros((m, g, 3))
    shared_coefficients[:, :, 1] = PRIOR_DEPTH
    free_coefficients = shared_coefficients.copy()
    free_coefficients[:, :, 2] = PRIOR_DEPTH
    return LinearisedModel(location=ln_r[:, None] + log_s[None, :], gradient=np.ones((m, g, 1)),
                           variants={True: Variant(curve, shared_coefficients), False: Variant(free, free_coefficients)},
                           noise=1.0, target_gradient=np.ones((m, g, 1)),
                           prior_precision=prior_precision(np.array([1.0 / sd**2])),
                           keys=[_new_key(t.student, t.tokens) for t in targets], law=law_class("ratio"),
                           centre=Centre(float(log_s.mean()), float(np.mean([math.log(t.tokens / t.student)
                                                                             for t in targets]))))
