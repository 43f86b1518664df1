"""Plan the next runs: the (student, teacher, tokens) runs that most shrink the interval of the optimal teacher.

Method: a linearised (Fisher / delta-method) expected variance of ln T* at each
target student, under the fit's own one-stage model (``capgap.plan.scoring``),
averaged over draws of the model's parameters (a pseudo-Bayesian c-optimal design).

* The state. With runs, the law is fitted as ``capgap fit`` does (its interval is
  the one reported before the batch); the fit's point fit on the curves it chose
  (``affordable_space``) and a small residual bootstrap (``DRAWS`` refits) give
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
* The calibration. The linearised variance of the current design is compared
  with the current fitted interval: the interval after the batch is the
  current one shrunk about its estimate by sd_after / sd_now. Without a current
  interval, it is estimate · exp(±z·sd_after), and says so.
* The choice. Greedy first: each step adds the move that most lowers the summed
  variance over targets (per FLOP under a FLOP budget); a group with fewer than
  three teachers moves by the teacher sets that complete it, scored together.
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

Cost: one fit as `capgap fit` does, one point fit and a bootstrap of ``DRAWS``
refits, then small matrix solves; no refit per candidate (see bench/plan_efficiency.py).
"""

from __future__ import annotations

import csv
import itertools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from capgap.core.errors import InputError
from capgap.runs.groups import SIZE_TOLERANCE
from capgap.sizes.ladders import LadderModel, get_ladder
from capgap.plan.scoring import (DRAWS, LEVEL, NO_DF_PENALTY, PRIOR_DEPTH, Z, DesignScorer, LinearisedModel,
                                 OneSided, Target, bounded_model, fitted_model, ladder_cap, prior_model,
                                 prior_model_at, same_group)
from capgap.runs.records import RunRecord
from capgap.sizes.units import TOKENS_PER_PARAM, distill_flops, format_size

PLAN_BOOTSTRAP = 200  # resamples of the fit whose interval is reported before the batch
PLAN_COLUMNS = ["student_params", "teacher_params", "teacher", "tokens", "seed"]
METHOD = ("linearised (Fisher) expected variance of ln T* under the fit's own curve model (its pooling of the "
          "left/right ratio and its far shape) with the parameters the fit would spend on the design, averaged "
          f"over the fit's point and {DRAWS - 1} bootstrap refits, calibrated to the current fitted interval; greedy "
          "batch, then exchange from random starts (a one-target cold start looks two batches ahead)")
EXCHANGE_PASSES = 3
EXCHANGE_STARTS = 12  # random batches an exchange also starts from
LOOKAHEAD_TRUTHS = 6  # cold start: quantiles of the prior each first batch is tried against ...
LOOKAHEAD_DRAWS = 6  # ... and draws of what it leaves unknown, the second batch is planned over


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
    start: Literal["runs", "prior", "bound"]  # fitted runs, the published laws as a wide prior, or a one-sided fit
    law: str
    method: str = METHOD
    target_width: float | None = None
    done: bool = False  # every target already within target_width: nothing proposed
    flops: float = 0.0
    warnings: list[str] = []  # the fit's own, printed first: the plan is only as good as the fit it starts from
    notes: list[str] = []  # the planner's


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
    plan = _choose(model, rows, targets, before, ladder, runs, runs_budget, flops_budget, target_width, seed,
                   size_measure, law_name, start, notes, prior=(mean, sd) if start != "runs" else None)
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


def _choose(model: LinearisedModel, rows, targets: list[Target], before: list[TargetInterval], ladder: list[LadderModel],
            runs: Sequence[RunRecord], budget: int, flops_budget: float | None, target_width: float | None,
            seed: int, size_measure: str, law_name: str, start: str, notes: list[str],
            prior: tuple[float, float] | None = None) -> Plan:
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
    log_candidates = np.array([math.log(m.size(size_measure)) for _, m in candidates])
    scorer = DesignScorer(model, group, log_teacher, np.array([targets[k].group for k, _ in candidates], dtype=int),
                          log_candidates, no_df_penalty=1.0 if start != "runs" else NO_DF_PENALTY,
                          cap=ladder_cap(log_candidates))
    var_now = scorer.variances([[]])[0]
    batch = _greedy(scorer, var_now, before, cost, budget, flops_budget, target_width, start != "runs")
    finished = _exchanged(scorer, batch, cost, flops_budget, np.random.default_rng(seed))
    batch = finished[0]
    # The lookahead plans a second batch per first batch and truth: one target only (several multiply the moves
    # that complete each student's ladder past what a plan should wait for).
    if start == "prior" and prior is not None and flops_budget is None and len(batch) == budget and len(targets) == 1 \
            and not runs:
        batch = _lookahead(scorer, [*finished, *_spreads(scorer, budget)], prior, targets, rows, budget)
    var_after = scorer.variances([batch])[0]
    after = _after(before, var_now, var_after)
    df = scorer.degrees_of_freedom(batch)
    if df <= 0:
        after = [a.model_copy(update={"low": None, "high": None}) for a in after]
        notes.append(f"after this batch the fit still has no degrees of freedom left ({df}): no interval yet; "
                     "plan more runs (a larger --runs-budget)")
    if start != "runs" and df > 0:
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


def _greedy(scorer: DesignScorer, var_now: np.ndarray, before: list[TargetInterval], cost: np.ndarray,
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


def _moves(scorer: DesignScorer, batch: list[int], room: int) -> list[list[int]]:
    """Single runs in groups the fit uses; teacher sets completing a group to MIN_TEACHERS otherwise."""
    from capgap.runs.groups import MIN_TEACHERS

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


def _exchanged(scorer: DesignScorer, greedy: list[int], cost: np.ndarray, flops_budget: float | None,
               rng: np.random.Generator, starts: int = EXCHANGE_STARTS) -> list[list[int]]:
    """Exchanges started from the greedy batch and from random batches of its size, best first, each once.

    One swap at a time cannot leave a narrow design for a decade-wide one: the first far rung turns the far
    shape on and costs more than it brings, the rungs that would repay it come later. Random starts can."""
    if not greedy:
        return [greedy]
    batches = [greedy] + [list(rng.choice(cost.size, size=len(greedy))) for _ in range(starts)]
    if flops_budget is not None:
        batches = [b for b in batches if cost[b].sum() <= flops_budget] or [greedy]
    finished = [_exchange(scorer, [int(c) for c in b], cost, flops_budget) for b in batches]
    order = np.argsort(scorer.score(finished), kind="stable")
    return list({tuple(finished[i]): finished[i] for i in order}.values())


def _lookahead(scorer: DesignScorer, shortlist: list[list[int]], prior: tuple[float, float], targets: list[Target],
               rows: tuple[np.ndarray, np.ndarray], second: int) -> list[int]:
    """The first batch of a cold start that leaves the best second batch: of ``shortlist``, the one whose
    expected variance after it and the batch of ``second`` runs planned from its outcome is least.

    At each of LOOKAHEAD_TRUTHS quantiles of the prior taken as the truth, the first batch leaves the optimum
    known to its linearised sd about that truth; the second batch is planned greedily from draws of that
    spread (as the next `capgap plan` would from the first batch's fit), and both batches are scored at the
    truth. A one-batch plan spreads its runs over the whole prior, since any part of it may hold the optimum;
    looking ahead it can also weigh how well each spread sets up the batch that will follow it."""
    from scipy.special import ndtri

    from capgap.runs.groups import MIN_TEACHERS

    # Only first batches the fit can use: the second batch is planned from the first one's fit, and a batch the fit
    # cannot use leaves it planned from the prior again (scored alone, four runs piled on one rung can look best:
    # the second batch then spreads, and the pair keeps to four rungs, which the fit reads as a parabola).
    shortlist = [b for b in shortlist if scorer.structure(b).fitted.all()] or shortlist
    if len(shortlist) < 2 or LOOKAHEAD_TRUTHS < 1:
        return shortlist[0]
    mean, sd = prior
    quantiles = (np.arange(LOOKAHEAD_TRUTHS) + 0.5) / LOOKAHEAD_TRUTHS
    truths = mean + sd * ndtri(quantiles)
    spread = ndtri((np.arange(LOOKAHEAD_DRAWS) + 0.5) / LOOKAHEAD_DRAWS)
    candidate_group, candidate_log = scorer.candidate_group, scorer.candidate_log_teacher
    at_truth = DesignScorer(prior_model_at(truths, targets, sd), *rows, candidate_group, candidate_log,
                            no_df_penalty=1.0, cap=scorer.cap)
    group, log_teacher = rows
    totals = []
    for first in shortlist:
        known = at_truth.per_draw([first])[0]  # (T, K): the variance of ln T* each truth leaves after the batch
        after_first = (np.r_[group, candidate_group[first]].astype(int), np.r_[log_teacher, candidate_log[first]])
        designs = []
        for t, truth in enumerate(truths):
            draws = truth + math.sqrt(float(known[t].max())) * spread
            planner = DesignScorer(prior_model_at(draws, targets, sd), *after_first, candidate_group, candidate_log,
                                   cap=scorer.cap)
            batch = _greedy(planner, planner.variances([[]])[0], [], np.zeros(candidate_log.size), second, None,
                            None, True)
            designs.append(first + batch)
        both = at_truth.per_draw(designs)  # (T designs, T truths, K): each design at its own truth
        totals.append(float(np.mean([both[t, t].sum() for t in range(len(truths))])))
    return shortlist[int(np.argmin(totals))]


def _spreads(scorer: DesignScorer, budget: int) -> list[list[int]]:
    """Batches of ``budget`` distinct rungs spaced evenly in rank over windows of the ladder (one target only):
    the spreads a cold start's lookahead weighs beside the one-batch optimum, from narrow to the whole ladder."""
    if np.unique(scorer.candidate_group).size != 1:
        return []
    n = scorer.candidate_group.size
    out = []
    for low in range(0, n, 2):
        for high in range(low + budget - 1, n, 2):
            picks = np.unique(np.round(np.linspace(low, high, budget)).astype(int))
            if picks.size == budget:
                out.append([int(c) for c in picks])
    return out


def _exchange(scorer: DesignScorer, batch: list[int], cost: np.ndarray, flops_budget: float | None,
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
            if same_group(r.size("student", size_measure), r.tokens, t.student, t.tokens):
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
    """The plan as PLAN.csv, whole or not at all (capgap.core.output)."""
    import io

    from capgap.core.output import write_output

    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(PLAN_COLUMNS)
    for run in plan.runs:
        writer.writerow([run.student_params, run.teacher_params, run.teacher, run.tokens, run.seed])
    write_output(path, text.getvalue(), what="plan")


def read_plan_csv(path: str | Path) -> list[PlannedRun]:
    """PLAN.csv rows (columns student_params,teacher_params,teacher,tokens,seed); one-line errors naming the row."""
    from capgap.sizes.units import parse_size

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
