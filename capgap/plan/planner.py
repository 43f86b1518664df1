"""Plan the next runs: the (student, teacher, tokens) runs that most shrink the interval of the optimal teacher.

Method: a linearised (Fisher / delta-method) expected variance of ln T* at each
target student, under the fit's own one-stage model (``capgap.plan.scoring``),
averaged over draws of the model's parameters (a pseudo-Bayesian c-optimal design).

* The state. With runs, the law is fitted as ``capgap fit`` does (its interval is
  the one reported before the batch); the fit's own state (``FittedCurves``: its
  groups, the curves it answered with and its point, not refitted here) and a
  small residual bootstrap of that point (``DRAWS`` refits) give
  draws of theta, the curves' shape and every group's baseline and curvatures.
  With no runs (or runs that cannot be fitted yet), the draws of ln(T*/S) come
  from the published laws as a wide prior: a normal whose 90% range spans Zhang
  et al.'s 2.5x and Busbridge et al.'s optimum at the target's tokens, with the
  ratio law's single parameter. Where the fit's answer is a bound (the smallest or
  largest teacher tried was best), the draws spread beyond the bound, with the runs
  so far (``plan_scoring.bounded_model``).
* The information and the fit's own parameters: ``capgap.plan.scoring``. A design
  is scored with the curves the fit would use on it (a left/right ratio shared by
  the students while one has few teachers, free per student once every one has
  six; the far shape once a ladder spans a decade with five teachers; the
  symmetric fallback), counted by the fit's own functions on a stand-in of the
  design's groups. The variance is inflated by (t_df / z)^2 for the residual
  degrees of freedom df the design leaves the fit's noise estimate; a design with
  none is penalised, not excluded (a cold start needs one).
* What the fit will do with a design beyond its curve. Where the measured teachers next to the best ones
  (those tied with it within the noise) lie more than 3x away, the fit reaches its interval out to them, and
  where a target's optimum lies beyond its own teachers it answers with a bound: at each draw the expected
  variance is floored there (``DesignScorer``'s far-rung floor), so the planner fills the gap, or extends the
  target's own ladder, instead of piling runs where they cannot narrow the answer.
* The calibration. The linearised variance of the current design is compared
  with the current fitted interval: the interval after the batch is the
  current one shrunk about its estimate by sd_after / sd_now. Without a current
  interval, it is estimate · exp(±z·sd_after), and says so.
* The choice from a fitted state (every target's group fitted): by the geometric mean of the Fisher variance and
  the ensemble one (``capgap.plan.ensemble``): the expected variance of ln T* after the batch from a linear-Bayes
  update of the fit's own draws (the covariance across draws of the batch's predicted metrics and of ln T*),
  floored draw by draw as above; greedy, then exchange from the greedy batch. The ensemble is global where the
  Fisher score is local: where some draws put the optimum past the ladder's edge, it values the runs that tell
  them apart. The forecast (the calibration above) stays the Fisher one.
* The choice otherwise (a cold start, a bound, a target not fitted yet). Greedy first: each step adds
  the move that most lowers the summed variance over targets (per FLOP under a FLOP budget); a group
  with fewer than three teachers moves by the teacher sets that complete it, scored together.
  Then exchange (Fedorov): swap one run of the batch for any candidate while that
  lowers the score, from the greedy batch and from ``EXCHANGE_STARTS`` random
  batches, keeping the best. A random start can leave a narrow design for a wide
  one where single swaps cannot. A repeat of a pair (new seed) is a candidate like
  any other. The batch stops at the run budget, the FLOP budget, or when every
  target's expected interval is within ``target_width``.
* The cold start of one target looks two batches ahead (``_lookahead``): of the
  exchanged batches and even spreads over windows of the ladder, the first batch
  whose expected variance after it and the second batch planned from its outcome
  is least.

Cost: one fit as `capgap fit` does and a bootstrap of ``DRAWS`` refits of its point, then small matrix solves; no refit per candidate (see bench/plan_efficiency.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np

from capgap.core.errors import InputError
from capgap.plan.records import (METHOD, PLAN_COLUMNS, Plan, PlannedRun, TargetInterval,  # noqa: F401 (this
                                 read_plan_csv, write_plan_csv)  # module's face: capgap.plan answers these names)
from capgap.plan.scoring import Z, OneSided, bounded_model, fitted_model, prior_model
from capgap.plan.search import BatchRequest, choose_batch
from capgap.runs.groups import SIZE_TOLERANCE
from capgap.runs.records import RunRecord
from capgap.sizes.ladders import LadderModel, get_ladder
from capgap.sizes.units import TOKENS_PER_PARAM, format_size

PLAN_BOOTSTRAP = 200  # resamples of the fit whose interval is reported before the batch


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
    from capgap.fit.law_fit import select_runs

    ladder = get_ladder(teachers) if isinstance(teachers, str) else list(teachers)
    _validate(students, ladder, runs_budget, flops_budget, target_width, tokens)
    targets_spec = [(int(s), _tokens_for(int(s), tokens, runs)) for s in students]
    notes: list[str] = []
    fit_warnings: list[str] = []
    fitted = None
    start: Literal["runs", "prior", "bound"] = "runs"
    fitted = bounded = None
    if runs:
        runs = select_runs(runs, family, student_init)
        try:
            fitted = fitted_model(runs, targets_spec, law, metric, size_measure, bootstrap, seed, fit_warnings)
        except OneSided as exc:
            bounded = exc
            notes.append(f"the fit's answer is one-sided ({exc}); planning to bracket it: the optimum spread over "
                         "the teachers beyond the bound, with the runs so far")
        except InputError as exc:
            notes.append(f"the runs cannot be fitted yet ({exc}); planning from the published laws as a wide prior")
    else:
        notes.append("no runs yet: planning from the published laws (Zhang et al. 2.5x, Busbridge et al.'s optimum "
                     "at these tokens) as a wide prior")
    if fitted is not None:
        model, intervals, rows, targets, law_name = fitted
        before = [TargetInterval(student_params=t.student, tokens=t.tokens, estimate=e, low=lo, high=hi)
                  for t, (e, lo, hi) in zip(targets, intervals)]
    else:
        start, law_name = ("bound" if bounded is not None else "prior"), "ratio"
        if bounded is not None:
            log_candidates = np.log([m.size(size_measure) for m in ladder])
            model, (mean, sd), rows, targets = bounded_model(runs, targets_spec, size_measure, bounded, log_candidates)
            upper = bounded.side == "at_most"
            before = [TargetInterval(student_params=t.student, tokens=t.tokens, estimate=t.student * bounded.ratio,
                                     low=None if upper else t.student * bounded.ratio,
                                     high=t.student * bounded.ratio if upper else None) for t in targets]
        else:
            model, (mean, sd), rows, targets = prior_model(runs, targets_spec, seed, size_measure)
            before = [TargetInterval(student_params=t.student, tokens=t.tokens,
                                     estimate=float(t.student * math.exp(mean)),
                                     low=float(t.student * math.exp(mean - Z * sd)),
                                     high=float(t.student * math.exp(mean + Z * sd))) for t in targets]
        if law != "ratio":
            notes.append(f"the prior has the ratio law's one parameter; --law {law} is fitted once the runs allow it")
    request = BatchRequest(budget=runs_budget, flops_budget=flops_budget, target_width=target_width, seed=seed,
                           size_measure=size_measure, law_name=law_name, start=start,
                           prior=(mean, sd) if start != "runs" else None)
    plan = choose_batch(model, rows, targets, before, ladder, runs, request, notes)
    return plan.model_copy(update={"warnings": fit_warnings})


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
