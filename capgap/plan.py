"""Plan the next runs: the (student, teacher, tokens) runs that most shrink the interval of the optimal teacher.

Method: a linearised (Fisher / delta-method) expected variance of ln T* at each
target student, under the one-stage model of ``capgap.onestage``, averaged over
draws of the model's parameters (a pseudo-Bayesian c-optimal design).

* The state. With runs, the law is fitted as ``capgap fit`` does (its interval is
  the one reported before the batch); the same one-stage point fit and a small
  residual bootstrap (``DRAWS`` refits) give draws of theta, the far shape and
  every group's baseline and curvatures. With no runs (or runs that cannot be
  fitted yet), the draws of ln(T*/S) come from the published laws as a wide prior:
  a normal whose 90% range spans Zhang et al.'s 2.5x and Busbridge et al.'s
  optimum at the target's tokens, with the ratio law's single parameter.
* The information. At each draw, a run of group g with teacher T adds the row
  x = d(metric)/d(theta, s, alpha, b, a^left, a^right) of the model (the
  location's derivative by finite differences through the family's own
  ``log_location``), so I = sum x x^T / noise^2 (+ the prior's precision on theta
  in a cold start, and a weak box prior on the far shape). The variance of
  ln T*(target) is c^T I^-1 c, c its gradient in theta.
* The fit's own parameters. A design is scored with the parameters the fit would
  spend on it: a group counts once it has three distinct teachers; the far shape
  (s, alpha) is free once a fitted group's ladder spans a decade (``FAR_SPAN``) and
  held at the parabola otherwise. The fit itself frees the shape only from five
  teachers on, but a planner that knows that proposes four-rung, decade-wide
  designs the fit takes for parabolas, whose intervals miss curves that flatten
  (``ROBUST_SHAPE``; the bench shows both). The variance is inflated by
  (t_df / z)^2 for the residual degrees of freedom df the design leaves the fit's
  noise estimate; a design with none is penalised, not excluded (a cold start needs
  one).
* The calibration. The linearised variance of the current design is compared
  with the current fitted interval: the interval after the batch is the
  current one shrunk about its estimate by sd_after / sd_now. Without a current
  interval, it is estimate · exp(±z·sd_after), and says so.
* The choice. Greedy first: each step adds the move that most lowers the summed
  variance over targets (per FLOP under a FLOP budget); a group with fewer than
  three teachers moves by the teacher sets that complete it, scored together.
  Then exchange (Fedorov): swap one run of the batch for any candidate while that
  lowers the score, from the greedy batch and from ``EXCHANGE_STARTS`` random
  batches, keeping the best. One swap at a time cannot leave a narrow design for a
  wide one (the first far rung frees the far shape and costs more than it brings);
  a random start can. A repeat of a pair (new seed) is a candidate like any other.
  The batch stops at the run budget, the FLOP budget, or when every target's
  expected interval is within ``target_width``.

Cost: one fit as `capgap fit` does, one bootstrap of ``DRAWS`` refits, then
small matrix solves; no refit per candidate (see bench/plan_efficiency.py).
"""

from __future__ import annotations

import csv
import itertools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from capgap.errors import InputError
from capgap.groups import SIZE_TOLERANCE
from capgap.ladders import LadderModel, get_ladder
from capgap.records import RunRecord
from capgap.sizes import TOKENS_PER_PARAM, distill_flops, format_size

LEVEL = 0.9
Z = 1.6448536269514722  # two-sided 90%
DRAWS = 32  # bootstrap refits the expected variance is averaged over
PLAN_BOOTSTRAP = 200  # resamples of the fit whose interval is reported before the batch
PRIOR_DEPTH = 10.0  # cold start: a curve this many noise levels deep one ln unit from its optimum (an assumption)
PRIOR_MIN_SD = 1.0  # ln units: the prior on ln(T*/S) is never narrower than this (a factor e each way at 1 sd)
PLAN_COLUMNS = ["student_params", "teacher_params", "teacher", "tokens", "seed"]
METHOD = ("linearised (Fisher) expected variance of ln T* under the one-stage model with the parameters the fit "
          f"would spend on the design, averaged over {DRAWS} bootstrap draws, calibrated to the current fitted "
          "interval; greedy batch, then exchange from random starts")
_RIDGE = 1e-9
# The far shape's prior: a normal of about half the search box (onestage.SHAPE_LIMIT, ALPHA_BOUNDS) per parameter.
SHAPE_PRIOR_SD = (2.0, 5.0)
_STEP = 1e-5
NO_DF_PENALTY = 10.0  # a design the fit cannot put an interval on scores this many times worse
EXCHANGE_PASSES = 3
EXCHANGE_STARTS = 12  # random batches an exchange also starts from
# A design whose ladder spans FAR_SPAN pays for the far shape from MIN_TEACHERS teachers on, not only from
# MIN_TEACHERS_FOR_SHAPE: below that the fit takes the curve for a parabola over the whole span, and a planner
# free to exploit it proposes 4-rung decade-wide designs whose intervals miss flattening curves (bench/plan_efficiency.py).
ROBUST_SHAPE = True


class PlannedRun(BaseModel):
    """One proposed distillation run (a row of PLAN.csv)."""

    model_config = ConfigDict(frozen=True)
    student_params: int
    teacher_params: int
    teacher: str  # the ladder's model name
    tokens: int
    seed: int
    flops: float = 0.0


class TargetInterval(BaseModel):
    """The optimal teacher of a target student: estimate and 90% interval (None: no interval)."""

    model_config = ConfigDict(frozen=True)
    student_params: int
    tokens: int
    estimate: float
    low: float | None = None
    high: float | None = None
    level: float = LEVEL

    @property
    def relative_half_width(self) -> float | None:
        """Half the interval's width over the estimate (0.2 is ±20%); None without an interval."""
        if self.low is None or self.high is None:
            return None
        return (self.high - self.low) / (2.0 * self.estimate)


class Plan(BaseModel):
    """The proposed batch and the interval of T* at each target before and (expected) after it."""

    runs: list[PlannedRun]
    before: list[TargetInterval]
    after: list[TargetInterval]
    start: Literal["runs", "prior"]  # fitted runs, or the published laws as a wide prior
    law: str
    method: str = METHOD
    target_width: float | None = None
    done: bool = False  # every target already within target_width: nothing proposed
    flops: float = 0.0
    notes: list[str] = []


@dataclass
class _Model:
    """The linearised model at M draws: groups of runs, their locations, gradients and curvatures."""

    location: np.ndarray  # (M, G) ln T* per group
    gradient: np.ndarray  # (M, G, P) d ln T* / d theta
    curvature: np.ndarray  # (M, G, 2) left, right
    shape: np.ndarray  # (M, 2) w, alpha of onestage.shape_curve
    noise: float
    target_gradient: np.ndarray  # (M, K, P)
    prior_precision: np.ndarray  # (P + 2, P + 2): theta's prior (cold start) and the far shape's box

    @property
    def n_theta(self) -> int:
        return self.gradient.shape[2]

    @property
    def n_groups(self) -> int:
        return self.location.shape[1]

    def rows(self, group: np.ndarray, log_teacher: np.ndarray) -> np.ndarray:
        """Rows of d(metric)/d(theta, s, alpha, b, a_left, a_right) per draw, scaled by 1/noise: (M, n, Q)."""
        from capgap.onestage import shape_curve

        m, n, p, g = self.location.shape[0], group.size, self.n_theta, self.n_groups
        u = log_teacher[None, :] - self.location[:, group]
        w, alpha = self.shape[:, 0], self.shape[:, 1]
        h = shape_curve(u, w, alpha)
        slope = (shape_curve(u + _STEP, w, alpha) - shape_curve(u - _STEP, w, alpha)) / (2 * _STEP)
        step = 1e-3  # the far shape, in s = w² (one-sided: s >= 0) and alpha
        by_s = (shape_curve(u, np.sqrt(w * w + step), alpha) - h) / step
        by_alpha = (shape_curve(u, w, alpha + step) - shape_curve(u, w, alpha - step)) / (2 * step)
        left = u < 0
        a = np.where(left, self.curvature[:, group, 0], self.curvature[:, group, 1])
        x = np.zeros((m, n, self.n_lead + 3 * g))
        x[:, :, :p] = -(a * slope)[..., None] * self.gradient[:, group, :]
        x[:, :, p] = a * by_s
        x[:, :, p + 1] = a * by_alpha
        runs, lead = np.arange(n), self.n_lead
        x[:, runs, lead + group] = 1.0
        x[:, runs, lead + g + group] = h * left
        x[:, runs, lead + 2 * g + group] = h * ~left
        return x / self.noise

    @property
    def n_lead(self) -> int:
        """Shared parameters: theta and the far shape (s, alpha)."""
        return self.n_theta + 2

    def variance(self, info: np.ndarray) -> np.ndarray:
        """Var of ln T* at each target, per draw: info (..., M, Q, Q) -> (..., M, K)."""
        k = self.target_gradient.shape[1]
        c = np.zeros(info.shape[:-2] + (info.shape[-1], k))
        c[..., :self.n_theta, :] = np.swapaxes(self.target_gradient, 1, 2)
        solved = np.linalg.solve(info, c)
        return np.einsum("...qk,...qk->...k", c, solved)


@dataclass
class _Target:
    student: int
    tokens: int
    group: int  # index of its group in the model


def plan_runs(runs: Sequence[RunRecord], students: Sequence[int], teachers: str | Sequence[LadderModel],
              runs_budget: int, *, flops_budget: float | None = None, tokens: int | None = None,
              law: str = "ratio", target_width: float | None = None, seed: int = 0, metric: str | None = None,
              size_measure: str = "total", bootstrap: int = PLAN_BOOTSTRAP, family: str | None = None,
              student_init: str | None = None) -> Plan:
    """Propose up to ``runs_budget`` runs that most shrink the 90% interval of T* at the target ``students``.

    ``teachers``: a ladder (pythia, gpt2, a ladder CSV path) or its models; candidates are its models
    larger than the student. ``tokens``: distillation tokens of every proposed run (default: the tokens of the
    student's runs, else 20 per parameter). ``law``: the family fitted (ratio, the paper's law, by default; auto
    chooses by cross-validation as `capgap fit` does, at the cost of one fit per family and fold).
    ``target_width``: stop (and propose nothing) once every target's interval is within ±target_width.
    ``family``, ``student_init``: plan with only those runs, as `capgap fit --family/--init` fits.
    """
    from capgap.lawfit import select_runs

    ladder = get_ladder(teachers) if isinstance(teachers, str) else list(teachers)
    _validate(students, ladder, runs_budget, flops_budget, target_width, tokens)
    targets_spec = [(int(s), _tokens_for(int(s), tokens, runs)) for s in students]
    notes: list[str] = []
    fitted = None
    if runs:
        runs = select_runs(runs, family, student_init)
        try:
            fitted = _fitted_model(runs, targets_spec, law, metric, size_measure, bootstrap, seed, notes)
        except InputError as exc:
            notes.append(f"the runs cannot be fitted yet ({exc}); planning from the published laws as a wide prior")
    else:
        notes.append("no runs yet: planning from the published laws (Zhang et al. 2.5x, Busbridge et al.'s optimum "
                     "at these tokens) as a wide prior")
    if fitted is None:
        fitted = _prior_model(runs, targets_spec, seed, size_measure)
        if law != "ratio":
            notes.append(f"the prior has the ratio law's one parameter; --law {law} is fitted once the runs allow it")
    model, before, rows, targets, law_name, start = fitted
    return _choose(model, rows, targets, before, ladder, runs, runs_budget, flops_budget, target_width, seed,
                   size_measure, law_name, start, notes)


def _validate(students, ladder, runs_budget, flops_budget, target_width, tokens) -> None:
    if not ladder:
        raise InputError("the teacher ladder is empty; give pythia, gpt2 or a ladder CSV with name,params columns")
    if not students:
        raise InputError("no target student; give --student SIZE[,SIZE...] (e.g. 160M)")
    if runs_budget < 1:
        raise InputError(f"--runs-budget must be at least 1 run; got {runs_budget}")
    if flops_budget is not None and not flops_budget > 0:
        raise InputError(f"--flops-budget must be a positive number of FLOPs (e.g. 1e18); got {flops_budget}")
    if target_width is not None and not 0 < target_width < 1:
        raise InputError(f"--target-width must lie between 0 and 1 (0.2 for ±20%); got {target_width}")
    if tokens is not None and tokens < 1:
        raise InputError(f"--tokens must be a positive count; got {tokens}")
    largest = max(ladder, key=lambda m: m.params)
    for student in students:
        if student * (1 + SIZE_TOLERANCE) >= largest.params:
            raise InputError(f"student {format_size(student)} is at least as large as every teacher of the ladder "
                             f"(largest: {largest.name}, {format_size(largest.params)}); give a smaller student "
                             "or a ladder with larger models")


def _tokens_for(student: int, tokens: int | None, runs: Sequence[RunRecord]) -> int:
    if tokens is not None:
        return tokens
    own = sorted(r.tokens for r in runs if r.tokens and abs(r.student_params - student) <= SIZE_TOLERANCE * student)
    return own[len(own) // 2] if own else TOKENS_PER_PARAM * student


def _same_group(key_student: int, key_tokens: int | None, student: int, tokens: int) -> bool:
    # Tokens are rounded up to whole optimizer steps by a sweep: within 10% is the same budget.
    return abs(key_student - student) <= SIZE_TOLERANCE * student and abs((key_tokens or 0) - tokens) <= 0.1 * tokens


def _fitted_model(runs, targets_spec, law, metric, size_measure, n_boot, seed, notes: list[str]):
    """The model at the fit's bootstrap draws; raises InputError where the runs cannot be fitted. The fit's own
    warnings go first in ``notes``: the plan is only as good as the fit it starts from."""
    from threadpoolctl import threadpool_limits

    from capgap.groups import group_runs
    from capgap.lawfit import fit_law
    from capgap.laws.base import law_class
    from capgap.laws.curve import SHAPE_PARAMETERS, Centre, CurveLaw, sees_far_shape
    from capgap.onestage import bootstrap, fit_point

    fitted_law = fit_law(runs, law=law, metric=metric, size_measure=size_measure, bootstrap=n_boot, seed=seed)
    file = fitted_law.file
    notes += [f"fit: {w}" for w in file.diagnostics.warnings]
    if file.bound is not None:  # a one-sided answer has no curve to plan with: the prior brackets the bound
        raise InputError("every student's best teacher is at the edge of its ladder")
    cls = law_class(file.law)
    if not (isinstance(cls, type) and issubclass(cls, CurveLaw)):
        raise InputError(f"the planner reasons with the one-stage model; the {file.law} law is not one (use --law ratio)")
    usable = [r for r in runs if r.metric(file.metric) is not None]
    with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        groups = group_runs(usable, file.metric, file.direction, size_measure)
        centre = Centre.of(groups)
        space = cls.search_space(groups, centre, SHAPE_PARAMETERS if sees_far_shape(groups) else 0)
        point = fit_point(groups, space)
        boot = bootstrap(groups, point, DRAWS - 1, np.random.default_rng(seed)) if point.df > 0 else None
    phi = np.vstack([point.phi[None, :], boot.draws]) if boot is not None else point.phi[None, :]
    theta, shape = space.split(phi)
    with np.errstate(all="ignore"):
        coefficients = space.evaluate(groups, phi, groups.badness, point.delta).coefficients  # (M, G, 3)
    keys = list(groups.keys)
    targets: list[_Target] = []
    extra_groups = []
    for student, tokens in targets_spec:
        match = next((j for j, k in enumerate(keys) if _same_group(k.student_params, k.tokens, student, tokens)), None)
        if match is None:
            match = len(keys) + len(extra_groups)
            extra_groups.append((student, tokens))
        targets.append(_Target(student, tokens, match))

    def locate(students_z, tokens_z, th):
        return cls.log_location(th, students_z, tokens_z) + centre.log_student

    z_groups = np.r_[groups.log_student, np.log([s for s, _ in extra_groups])] - centre.log_student
    tpp = np.r_[groups.log_tokens_per_param, np.log([d / s for s, d in extra_groups])]
    zt_groups = np.nan_to_num(tpp - centre.log_tokens_per_param)
    zt_t = np.nan_to_num(np.log([t.tokens / t.student for t in targets]) - centre.log_tokens_per_param)
    z_t = np.log([t.student for t in targets]) - centre.log_student
    location, gradient = _with_gradient(lambda th: locate(z_groups, zt_groups, th), theta)
    _, target_gradient = _with_gradient(lambda th: locate(z_t, zt_t, th), theta)
    curvature = _curvatures(coefficients[:, :, 1:], len(extra_groups), point.noise)
    noise = point.noise if point.noise > 0 else float(np.median(curvature)) / PRIOR_DEPTH
    model = _Model(location=location, gradient=gradient, curvature=curvature, shape=shape, noise=noise,
                   target_gradient=target_gradient, prior_precision=_prior_precision(np.zeros(theta.shape[1])))
    before = []
    for t in targets:  # the interval `capgap fit` reports
        estimate = fitted_law.optimal_teacher(t.student, t.tokens)
        before.append(TargetInterval(student_params=t.student, tokens=t.tokens, estimate=estimate.estimate,
                                     low=estimate.low, high=estimate.high))
    rows = (groups.group.copy(), groups.log_teacher.copy())
    # Runs of a target student in a group too small to be fitted still count as rows of its new group.
    rows = _add_unfitted_rows(rows, runs, targets, keys, size_measure)
    return model, before, rows, targets, file.law, "runs"


def _prior_precision(theta_precision: np.ndarray) -> np.ndarray:
    return np.diag(np.r_[theta_precision, 1.0 / np.square(SHAPE_PRIOR_SD)])


def _with_gradient(function, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """function(theta (M, P)) -> (M, G), and its gradient (M, G, P) by central differences."""
    value = function(theta)
    gradient = np.zeros(value.shape + (theta.shape[1],))
    for i in range(theta.shape[1]):
        step = np.zeros(theta.shape[1])
        step[i] = _STEP
        gradient[..., i] = (function(theta + step) - function(theta - step)) / (2 * _STEP)
    return value, gradient


def _curvatures(fitted: np.ndarray, n_new: int, noise: float) -> np.ndarray:
    """Curvatures per draw (M, G + n_new, 2): a side fitted flat, and every side of a new group, get the typical one."""
    positive = np.where(fitted > 0, fitted, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        typical = np.nanmedian(positive.reshape(positive.shape[0], -1), axis=1)
    typical = np.where(np.isfinite(typical), typical, PRIOR_DEPTH * max(noise, 1e-12))
    full = np.concatenate([fitted, np.zeros((fitted.shape[0], n_new, 2))], axis=1)
    return np.where(full > 0, full, typical[:, None, None])


def _add_unfitted_rows(rows, runs, targets, keys, size_measure):
    group, log_teacher = rows
    fitted_keys = len(keys)
    extra_g, extra_t = [], []
    for t in targets:
        if t.group < fitted_keys:
            continue
        for r in runs:
            if _same_group(r.size("student", size_measure), r.tokens, t.student, t.tokens):
                extra_g.append(t.group)
                extra_t.append(math.log(r.size("teacher", size_measure)))
    return np.r_[group, np.array(extra_g, dtype=int)].astype(int), np.r_[log_teacher, extra_t]


def _prior_ratio(student: int, tokens: int) -> tuple[float, float]:
    """Mean and sd of ln(T*/S) from the published laws: a normal whose 90% range spans both."""
    from capgap.lawfiles import resolve_law

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zhang = resolve_law("zhang2023")[0].optimal_teacher(student).estimate
        try:
            busbridge = resolve_law("busbridge2025")[0].optimal_teacher(student, tokens).estimate
        except InputError:
            busbridge = zhang
    ends = np.log([zhang / student, busbridge / student])
    return float(ends.mean()), max(PRIOR_MIN_SD, float(abs(ends[1] - ends[0]) / (2 * Z)))


def _prior_model(runs, targets_spec, seed, size_measure):
    """The ratio law's one parameter ln r drawn from the prior; every target student its own new group."""
    targets = [_Target(s, d, j) for j, (s, d) in enumerate(targets_spec)]
    moments = [_prior_ratio(s, d) for s, d in targets_spec]
    mean = float(np.mean([m for m, _ in moments]))
    sd = float(np.sqrt(np.mean([s**2 for _, s in moments]) + np.var([m for m, _ in moments])))
    rng = np.random.default_rng(seed)
    draws = mean + sd * rng.standard_normal(DRAWS)
    log_s = np.log([t.student for t in targets])
    m, g = DRAWS, len(targets)
    model = _Model(location=draws[:, None] + log_s[None, :], gradient=np.ones((m, g, 1)),
                   curvature=np.full((m, g, 2), PRIOR_DEPTH), shape=np.zeros((m, 2)), noise=1.0,
                   target_gradient=np.ones((m, g, 1)), prior_precision=_prior_precision(np.array([1.0 / sd**2])))
    before = [TargetInterval(student_params=t.student, tokens=t.tokens, estimate=float(t.student * math.exp(mean)),
                             low=float(t.student * math.exp(mean - Z * sd)),
                             high=float(t.student * math.exp(mean + Z * sd))) for t in targets]
    rows = _add_unfitted_rows((np.zeros(0, dtype=int), np.zeros(0)), runs, targets, [], size_measure)
    return model, before, rows, targets, "ratio", "prior"


def _choose(model: _Model, rows, targets: list[_Target], before: list[TargetInterval], ladder: list[LadderModel],
            runs: Sequence[RunRecord], budget: int, flops_budget: float | None, target_width: float | None,
            seed: int, size_measure: str, law_name: str, start: str, notes: list[str]) -> Plan:
    group, log_teacher = rows
    common = dict(before=before, start=start, law=law_name, target_width=target_width, notes=notes)
    if target_width is not None and all((b.relative_half_width or math.inf) <= target_width for b in before):
        notes.append(f"the interval at every target is already within ±{target_width:.0%}: no more runs proposed")
        return Plan(runs=[], after=before, done=True, **common)
    # A teacher of the student's own size (within the grouping tolerance) is no larger: not a candidate.
    candidates = [(k, m) for k, t in enumerate(targets) for m in ladder if m.params > (1 + SIZE_TOLERANCE) * t.student]
    cost = np.array([distill_flops(targets[k].student, m.size(size_measure), targets[k].tokens)
                     for k, m in candidates])
    # A cold start brackets the prior first: it is not steered towards designs the fit could already put an
    # interval on, which (under a decade wide, to keep the far shape fixed) would leave part of the prior out.
    scorer = _DesignScorer(model, group, log_teacher,
                           np.array([targets[k].group for k, _ in candidates], dtype=int),
                           np.array([math.log(m.size(size_measure)) for _, m in candidates]),
                           no_df_penalty=1.0 if start == "prior" else NO_DF_PENALTY)
    var_now = scorer.variances([[]])[0]
    batch = _greedy(scorer, var_now, before, cost, budget, flops_budget, target_width, start == "prior")
    batch = _best_exchange(scorer, batch, cost, flops_budget, np.random.default_rng(seed))
    var_after = scorer.variances([batch])[0]
    after = _after(before, var_now, var_after)
    df = scorer.degrees_of_freedom(batch)
    if df <= 0:
        after = [a.model_copy(update={"low": None, "high": None}) for a in after]
        notes.append(f"after this batch the fit still has no degrees of freedom left ({df}): no interval yet; "
                     "plan more runs (a larger --runs-budget)")
    if start == "prior" and df > 0:
        # How deep the curve is against the run noise is unknown before any run: the prior assumes a depth, and
        # an interval computed from an assumed depth is not a forecast.
        assumed = ", ".join(f"±{a.relative_half_width:.0%}" for a in after if a.relative_half_width is not None)
        after = [a.model_copy(update={"low": None, "high": None}) for a in after]
        notes.append("cold start: the interval after the batch depends on how deep the curve is against the run "
                     f"noise, unknown until runs are fitted (if {PRIOR_DEPTH:g} noise levels deep one ln unit from "
                     f"the optimum, an assumption: {assumed}); plan again with the runs")
    if any(a.low is not None for a in after):
        notes.append("the expected interval after the batch is a linearised forecast, often optimistic: in simulated "
                     "loops the realised width ran a median 1.1x it, and over 3x in one case in ten "
                     "(bench/plan_forecast.py)")
    if start == "runs" and any(b.low is None for b in before):
        notes.append("no current interval at some target: the expected interval after the batch is the linearised "
                     "one, uncalibrated")
    if flops_budget is not None and len(batch) < budget and \
            (target_width is None or any((a.relative_half_width or math.inf) > target_width for a in after)):
        notes.append(f"the FLOP budget ({flops_budget:.3g}) fits {len(batch)} of the {budget} runs")
    planned = _with_seeds([candidates[c] for c in batch], targets, runs, seed, size_measure)
    return Plan(runs=planned, after=after, flops=float(cost[batch].sum()) if batch else 0.0, **common)


class _DesignScorer:
    """The expected variance of ln T* at the targets for a design: the runs so far plus candidate runs.

    The parameters are the ones the fit will spend on that design: a group counts only once it has
    ``MIN_TEACHERS`` distinct teachers, the far shape (s, alpha) is free only once some fitted group's ladder
    spans ``FAR_SPAN`` with ``MIN_TEACHERS_FOR_SHAPE`` teachers (else the curves are parabolas), and the
    variance is inflated by (t_df / z)², the widening of an interval whose noise level is estimated from df
    residual degrees of freedom (a design left with none is penalised, not ruled out: a cold start needs it).
    """

    def __init__(self, model: _Model, group: np.ndarray, log_teacher: np.ndarray, candidate_group: np.ndarray,
                 candidate_log_teacher: np.ndarray, no_df_penalty: float = NO_DF_PENALTY) -> None:
        self.model = model
        self.no_df_penalty = no_df_penalty
        n_groups = model.n_groups
        base = model.rows(group, log_teacher)  # (M, n, Q)
        self.base_info = np.stack([np.einsum("mni,mnj->mij", base[:, group == g], base[:, group == g])
                                   for g in range(n_groups)])  # (G, M, Q, Q)
        self.base_runs = np.bincount(group, minlength=n_groups)
        self.base_teachers = [set(np.round(log_teacher[group == g], 6).tolist()) for g in range(n_groups)]
        x = model.rows(candidate_group, candidate_log_teacher)  # (M, C, Q)
        self.candidate_info = np.einsum("mci,mcj->cmij", x, x)  # (C, M, Q, Q)
        self.candidate_group = candidate_group
        self.candidate_teacher = np.round(candidate_log_teacher, 6)
        q = model.n_lead + 3 * n_groups
        self.fixed_shape = np.zeros((q, q))
        self.fixed_shape[model.n_theta:model.n_lead, model.n_theta:model.n_lead] = np.eye(2) / _RIDGE
        self.prior = _RIDGE * np.eye(q)
        self.prior[:model.n_lead, :model.n_lead] += model.prior_precision
        self.now = self._per_draw([[]])[0][0]  # (M, K): the runs so far

    def _structure(self, design: Sequence[int]) -> tuple[np.ndarray, bool, int, list[set[float]]]:
        """Which groups the fit will use, whether it fits the far shape, its residual degrees of freedom, and
        each group's distinct ln teachers."""
        from capgap.groups import MIN_TEACHERS
        from capgap.laws.curve import MIN_TEACHERS_FOR_SHAPE, SHAPE_PARAMETERS, ladder_shows_far_shape
        from capgap.onestage import count_degrees_of_freedom

        teachers = [set(t) for t in self.base_teachers]
        n_runs = self.base_runs.copy()
        for c in design:
            teachers[self.candidate_group[c]].add(float(self.candidate_teacher[c]))
            n_runs[self.candidate_group[c]] += 1
        fitted = np.array([len(t) >= MIN_TEACHERS for t in teachers])
        rungs = MIN_TEACHERS if ROBUST_SHAPE else MIN_TEACHERS_FOR_SHAPE
        far = any(f and ladder_shows_far_shape(list(t), rungs) for f, t in zip(fitted, teachers))
        if not fitted.any():
            return fitted, far, -1, teachers
        df = count_degrees_of_freedom(int(n_runs[fitted].sum()), [len(t) for f, t in zip(fitted, teachers) if f],
                                      self.model.n_theta + (SHAPE_PARAMETERS if far else 0))
        return fitted, far, df, teachers

    def degrees_of_freedom(self, design: Sequence[int]) -> int:
        return self._structure(design)[2]

    def _bracketed(self, fitted: np.ndarray, teachers: list[set[float]]) -> np.ndarray:
        """(M,): at each draw, whether some fitted group's ladder reaches its optimum (within a mean spacing).

        Where none does the fit reads the optimum off a curve that never turns, or refuses (`capgap fit`'s
        rule): such a design is credited with nothing at that draw."""
        inside = np.zeros(self.model.location.shape[0], dtype=bool)
        for g in np.flatnonzero(fitted):
            ladder = sorted(teachers[g])
            spacing = (ladder[-1] - ladder[0]) / (len(ladder) - 1)
            location = self.model.location[:, g]
            inside |= (location >= ladder[0] - spacing) & (location <= ladder[-1] + spacing)
        return inside

    def _per_draw(self, designs: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
        """(D, M, K) df-inflated variances and (D, M) bracketing of each design at each draw."""
        from scipy.special import stdtrit  # the t quantile, without scipy.stats' second of imports

        infos, factors, brackets = [], [], []
        for design in designs:
            fitted, far, df, teachers = self._structure(design)
            info = self.prior + (0.0 if far else self.fixed_shape) + self.base_info[fitted].sum(axis=0)
            used = [c for c in design if fitted[self.candidate_group[c]]]
            if used:
                info = info + self.candidate_info[used].sum(axis=0)
            infos.append(info)
            widening = (float(stdtrit(max(df, 1), 0.5 + LEVEL / 2)) / Z) ** 2
            factors.append(widening * (1.0 if df > 0 else self.no_df_penalty))
            brackets.append(self._bracketed(fitted, teachers))
        variance = self.model.variance(np.stack(infos)) * np.array(factors)[:, None, None]
        return variance, np.array(brackets)

    def variances(self, designs: Sequence[Sequence[int]]) -> np.ndarray:
        """(D, K): per design the expected variance of ln T* at each target, the mean over draws (at a draw the
        design does not bracket, the variance of the runs so far)."""
        variance, bracketed = self._per_draw(designs)
        return np.where(bracketed[..., None], variance, self.now[None]).mean(axis=1)

    def score(self, designs: Sequence[Sequence[int]]) -> np.ndarray:
        return self.variances(designs).sum(axis=1)


def _greedy(scorer: _DesignScorer, var_now: np.ndarray, before: list[TargetInterval], cost: np.ndarray,
            budget: int, flops_budget: float | None, target_width: float | None, cold: bool) -> list[int]:
    """Add the best move at a time (per FLOP under a FLOP budget) until the budget or the target width is met
    (never early in a ``cold`` start, whose widths rest on an assumed curve depth)."""
    batch: list[int] = []
    spent = 0.0
    while len(batch) < budget:
        moves = [m for m in _moves(scorer, batch, budget - len(batch))
                 if flops_budget is None or spent + cost[m].sum() <= flops_budget]
        if not moves:
            break
        scores = scorer.score([batch + m for m in moves])
        if flops_budget is not None:
            gain = (scorer.score([batch])[0] - scores) / np.array([cost[m].sum() for m in moves])
            best = int(np.argmax(gain))
        else:
            best = int(np.argmin(scores))
        batch += moves[best]
        spent += float(cost[moves[best]].sum())
        if target_width is not None and not cold:
            after = _after(before, var_now, scorer.variances([batch])[0])
            if all((a.relative_half_width or math.inf) <= target_width for a in after):
                break
    return batch


def _moves(scorer: _DesignScorer, batch: list[int], room: int) -> list[list[int]]:
    """Single runs in groups the fit uses; teacher sets completing a group to MIN_TEACHERS otherwise."""
    from capgap.groups import MIN_TEACHERS

    moves: list[list[int]] = []
    for g in np.unique(scorer.candidate_group):
        mine = np.flatnonzero(scorer.candidate_group == g)
        have = set(scorer.base_teachers[g]) | {float(scorer.candidate_teacher[c]) for c in batch
                                               if scorer.candidate_group[c] == g}
        missing = MIN_TEACHERS - len(have)
        if missing <= 0:
            moves += [[int(c)] for c in mine]
            continue
        fresh = [int(c) for c in mine if float(scorer.candidate_teacher[c]) not in have]
        if missing <= room and len(fresh) >= missing:
            moves += [list(combo) for combo in itertools.combinations(fresh, missing)]
    return moves


def _best_exchange(scorer: _DesignScorer, greedy: list[int], cost: np.ndarray, flops_budget: float | None,
                   rng: np.random.Generator, starts: int = EXCHANGE_STARTS) -> list[int]:
    """The best of exchanges started from the greedy batch and from random batches of its size.

    One swap at a time cannot leave a narrow design for a decade-wide one: the first far rung turns the far
    shape on and costs more than it brings, the rungs that would repay it come later. Random starts can."""
    if not greedy:
        return greedy
    batches = [greedy] + [list(rng.choice(cost.size, size=len(greedy))) for _ in range(starts)]
    if flops_budget is not None:
        batches = [b for b in batches if cost[b].sum() <= flops_budget] or [greedy]
    finished = [_exchange(scorer, [int(c) for c in b], cost, flops_budget) for b in batches]
    scores = scorer.score(finished)
    return finished[int(np.argmin(scores))]


def _exchange(scorer: _DesignScorer, batch: list[int], cost: np.ndarray, flops_budget: float | None,
              passes: int = EXCHANGE_PASSES) -> list[int]:
    """Fedorov-style exchange: swap one run of the batch for another candidate while that lowers the score.

    Greedy steps cannot see that two runs together are worth more than either alone (a far rung that turns the
    far shape on only pays with a second); swaps of a finished batch can."""
    if not batch:
        return batch
    best = float(scorer.score([batch])[0])
    for _ in range(passes):
        improved = False
        for slot in range(len(batch)):
            trials = [batch[:slot] + [c] + batch[slot + 1:] for c in range(cost.size) if c != batch[slot]]
            if flops_budget is not None:
                trials = [t for t in trials if cost[t].sum() <= flops_budget]
            if not trials:
                continue
            scores = scorer.score(trials)
            i = int(np.argmin(scores))
            if scores[i] < best * (1.0 - 1e-6):
                batch, best, improved = trials[i], float(scores[i]), True
        if not improved:
            break
    return sorted(batch)


def _after(before: list[TargetInterval], var_now: np.ndarray, var_after: np.ndarray) -> list[TargetInterval]:
    """The current interval shrunk about its estimate by sd_after / sd_now (or the linearised one without one)."""
    out = []
    for b, now, later in zip(before, var_now, var_after):
        factor = math.sqrt(max(later, 0.0) / now) if now > 0 else 1.0
        if b.low is not None and b.high is not None:
            low, high = b.estimate * (b.low / b.estimate) ** factor, b.estimate * (b.high / b.estimate) ** factor
        else:
            spread = Z * math.sqrt(max(later, 0.0))
            low, high = b.estimate * math.exp(-spread), b.estimate * math.exp(spread)
        out.append(b.model_copy(update={"low": low, "high": high}))
    return out


def _with_seeds(chosen, targets, runs, seed, size_measure) -> list[PlannedRun]:
    """Each run a seed not used before for its (student, teacher, tokens): a repeat is a new seed."""
    used: dict[tuple[int, int, int], set[int]] = {}
    for r in runs:
        for k, t in enumerate(targets):
            if _same_group(r.size("student", size_measure), r.tokens, t.student, t.tokens):
                used.setdefault((k, r.size("teacher", size_measure), t.tokens), set()).add(r.seed or 0)
    planned = []
    for k, teacher in sorted(chosen, key=lambda c: (targets[c[0]].student, c[1].params)):
        t = targets[k]
        taken = used.setdefault((k, teacher.size(size_measure), t.tokens), set())
        new_seed = seed
        while new_seed in taken:
            new_seed += 1
        taken.add(new_seed)
        planned.append(PlannedRun(student_params=t.student, teacher_params=teacher.params, teacher=teacher.name,
                                  tokens=t.tokens, seed=new_seed,
                                  flops=distill_flops(t.student, teacher.params, t.tokens)))
    return planned


def write_plan_csv(plan: Plan, path: str | Path) -> None:
    """The plan as PLAN.csv, whole or not at all (capgap.output)."""
    import io

    from capgap.output import write_output

    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(PLAN_COLUMNS)
    for run in plan.runs:
        writer.writerow([run.student_params, run.teacher_params, run.teacher, run.tokens, run.seed])
    write_output(path, text.getvalue(), what="plan")


def read_plan_csv(path: str | Path) -> list[PlannedRun]:
    """PLAN.csv rows (columns student_params,teacher_params,teacher,tokens,seed); one-line errors naming the row."""
    from capgap.sizes import parse_size

    path = Path(path)
    if not path.is_file():
        raise InputError(f"plan file not found; give the PLAN.csv written by capgap plan --out", where=str(path))
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in PLAN_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(f"plan lacks column(s) {', '.join(missing)}; expected {','.join(PLAN_COLUMNS)}",
                             where=str(path))
        planned = []
        for line, row in enumerate(reader, start=2):
            where = f"{path}:{line}"
            try:
                seed = int(row["seed"])
            except (TypeError, ValueError):
                raise InputError(f"seed {row['seed']!r} is not an integer", where=where) from None
            if not (row["teacher"] or "").strip():
                raise InputError("teacher is empty; expected the ladder's model name", where=where)
            planned.append(PlannedRun(student_params=parse_size(row["student_params"], what="student_params"),
                                      teacher_params=parse_size(row["teacher_params"], what="teacher_params"),
                                      teacher=row["teacher"].strip(), seed=seed,
                                      tokens=parse_size(row["tokens"], what="tokens")))
    if not planned:
        raise InputError(f"plan has no rows; expected one run per row with {','.join(PLAN_COLUMNS)}", where=str(path))
    return planned
