"""Choosing a batch: greedy by the expected variance of ln T* at the targets, then exchange from random
starts; a one-target cold start looks two batches ahead. Then the forecast (each target's interval after the batch)
and a new seed for each run."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from capgap.plan.ensemble import DrawEnsemble
from capgap.plan.records import ENSEMBLE_METHOD, METHOD, Plan, PlannedRun, TargetInterval
from capgap.plan.scoring import (NO_DF_PENALTY, PRIOR_DEPTH, Z, DesignScorer, LinearisedModel, Target, ladder_cap,
                                 prior_model_at, same_group)
from capgap.runs.groups import SIZE_TOLERANCE
from capgap.runs.records import RunRecord
from capgap.sizes.ladders import LadderModel
from capgap.sizes.units import distill_flops

EXCHANGE_PASSES = 3
EXCHANGE_STARTS = 12  # random batches an exchange also starts from
LOOKAHEAD_TRUTHS = 6  # cold start: quantiles of the prior each first batch is tried against ...
LOOKAHEAD_DRAWS = 6  # ... and draws of what it leaves unknown, the second batch is planned over


@dataclass(frozen=True)
class BatchRequest:
    """What a batch is asked to be: its budgets and stopping width, and how the planner's state was reached."""

    budget: int  # runs at most
    flops_budget: float | None  # FLOPs at most (None: no FLOP budget)
    target_width: float | None  # stop once every target's interval is within ± this share (None: never stop early)
    seed: int  # of the exchange's random starts and of the new runs
    size_measure: str  # total or nonembed: how the candidates' sizes count
    law_name: str
    start: str  # runs (a fitted state), prior (the published laws) or bound (a one-sided fit)
    prior: tuple[float, float] | None = None  # a cold start's prior on ln(T*/S): mean, sd


def choose_batch(model: LinearisedModel, rows, targets: list[Target], before: list[TargetInterval],
                 ladder: list[LadderModel], runs: Sequence[RunRecord], request: BatchRequest,
                 notes: list[str]) -> Plan:
    """The batch that most lowers the targets' expected variance under ``request``, with its forecast and notes."""
    budget, flops_budget, target_width, seed = request.budget, request.flops_budget, request.target_width, request.seed
    size_measure, law_name, start, prior = request.size_measure, request.law_name, request.start, request.prior
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
                          cap=ladder_cap(log_candidates), target_groups=[t.group for t in targets])
    var_now = scorer.variances([[]])[0]
    scorer.ensemble = _ensemble(model, scorer, start)
    batch = _greedy(scorer, var_now, before, cost, budget, flops_budget, target_width, start != "runs")
    # A batch scored with the ensemble is exchanged from the greedy batch only: the best of random starts would be
    # whichever batch the noise of a 32-draw covariance favours most.
    finished = ([_exchange(scorer, batch, cost, flops_budget)] if scorer.ensemble is not None
                else _exchanged(scorer, batch, cost, flops_budget, np.random.default_rng(seed)))
    batch = finished[0]
    # The lookahead plans a second batch per first batch and truth: one target only (several multiply the moves
    # that complete each student's ladder past what a plan should wait for).
    if start == "prior" and prior is not None and flops_budget is None and len(batch) == budget and len(targets) == 1 \
            and not runs:
        batch = _lookahead(scorer, [*finished, *_spreads(scorer, budget)], prior, targets, rows, budget)
    var_after = scorer.variances([batch])[0]
    after = forecast_after(before, var_now, var_after)
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
        notes.append("the expected interval after the batch is a linearised forecast: in simulated loops the realised "
                     "width ran a median 0.97x it, and over 1.5x in one case in ten "
                     "(bench/plan_forecast.py)")
    if start == "runs" and any(b.low is None for b in before):
        notes.append("no current interval at some target: the expected interval after the batch is the linearised "
                     "one, uncalibrated")
    if flops_budget is not None and len(batch) < budget and \
            (target_width is None or any((a.relative_half_width or math.inf) > target_width for a in after)):
        notes.append(f"the FLOP budget ({flops_budget:.3g}) fits {len(batch)} of the {budget} runs")
    planned = with_seeds([candidates[c] for c in batch], targets, runs, seed, size_measure)
    return Plan(runs=planned, after=after, flops=float(cost[batch].sum()) if batch else 0.0,
                method=ENSEMBLE_METHOD if scorer.ensemble is not None else METHOD, **common)


def _ensemble(model: LinearisedModel, scorer: DesignScorer, start: str) -> DrawEnsemble | None:
    """The fit's draws as an ensemble, where the batch is scored with it too: a fitted start whose targets' groups are all
    fitted (a group without runs has no spread across the draws to learn from), with enough draws."""
    if start != "runs" or scorer.target_groups is None:
        return None
    now = scorer.structure([])
    if not now.fitted[scorer.target_groups].all():
        return None
    ensemble = DrawEnsemble.of(model, now.shared, scorer.candidate_group, scorer.candidate_log_teacher,
                               scorer.target_groups)
    return ensemble if ensemble.usable else None


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
            after = forecast_after(before, var_now, scorer.variances([batch])[0])
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
                            no_df_penalty=1.0, cap=scorer.cap, target_groups=scorer.target_groups)
    group, log_teacher = rows
    totals = []
    for first in shortlist:
        known = at_truth.per_draw([first])[0]  # (T, K): the variance of ln T* each truth leaves after the batch
        after_first = (np.r_[group, candidate_group[first]].astype(int), np.r_[log_teacher, candidate_log[first]])
        designs = []
        for t, truth in enumerate(truths):
            draws = truth + math.sqrt(float(known[t].max())) * spread
            planner = DesignScorer(prior_model_at(draws, targets, sd), *after_first, candidate_group, candidate_log,
                                   cap=scorer.cap, target_groups=scorer.target_groups)
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


def forecast_after(before: list[TargetInterval], var_now: np.ndarray, var_after: np.ndarray) -> list[TargetInterval]:
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


def with_seeds(chosen, targets, runs, seed, size_measure) -> list[PlannedRun]:
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
