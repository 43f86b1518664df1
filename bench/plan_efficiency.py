"""Closed-loop efficiency of `capgap plan`: runs needed to reach ±20% at the target, planner vs grid vs random.

Run: nice .venv/bin/python bench/plan_efficiency.py [--loops 30] [--scenarios NAME ...] [--bootstrap 100] [--workers 2]

Each loop starts with no runs and repeats: choose a batch of BATCH runs, measure them
(synthetic runs with a planted optimum, capgap.runs.synthetic), fit the law the same way
for every design (`fit_law(runs, law="ratio", bootstrap=B)`, as `capgap fit --law
ratio`), and stop once the 90% interval of T* at every target is within ±20%
((high − low) / (2·estimate) <= 0.2), or at CAP runs. Designs:

* planner: `capgap.plan.planner.plan_runs(runs, targets, ladder, BATCH)` (the published laws as prior at the start);
* grid: the ladder swept coarse to fine (every 4th teacher first, then the ones between), round robin over
  the target students, then again with new seeds: the usual full sweep, in its most favourable order;
* random: teachers drawn uniformly from the ladder (repeats allowed), round robin over the target students;
* oracle (one student only): the locally c-optimal design at the planted truth under the parabola model
  (bench/plan_bound.py), its shares of runs apportioned run by run: what knowing the answer buys.

Printed per scenario: the median runs needed by each design (a loop that never gets
there counts as CAP + BATCH), how many loops reached the target, and how often the
final interval held the planted optimum. Target (issue 19): in every scenario the planner's
median at most TARGET_RATIO (0.8) of the grid's, and the truth held in at least as many loops
as the grid; each scenario's row says PASS or FAIL against it. (Half the grid's, the earlier
target, sits at the edge of what knowing T* buys: bench/plan_bound.py.)
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import platform
import time
import warnings
from datetime import date

import numpy as np

BATCH = 4
DESIGNS = ("planner", "grid", "random", "oracle")
CAP = 48  # runs: a loop that has not reached the target by then stops
TARGET_RATIO = 0.8  # the planner's median runs over the grid's, at most, in every scenario
WIDTH = 0.2
NOISE, CURVATURE = 0.02, 0.05  # a curve 2.5 noise levels deep one ln unit from its optimum: a hard, honest case
S = 100_000_000
MULTIPLES = tuple(float(m) for m in np.geomspace(1.25, 200.0, 16))  # a 16-model ladder, 1.25x to 200x

# name -> (target students, planted ratio, synthetic_runs arguments)
SCENARIOS: dict[str, tuple[tuple[int, ...], float, dict]] = {
    "symmetric, 2.5x": ((S,), 2.5, {}),
    "asymmetric 3:1, 2.5x": ((S,), 2.5, dict(asymmetry=3.0)),
    "flattening far away, 4x": ((S,), 4.0, dict(plateau=1.0, curvature=0.08)),
    "far from the prior, 1.6x": ((S,), 1.6, dict(asymmetry=2.0)),
    "far from the prior, 120x": ((S,), 120.0, {}),
    "three students, 2.5x": ((S // 2, S, 2 * S), 2.5, dict(asymmetry=2.0)),
}


def _ladder(students):
    from capgap.sizes.ladders import LadderModel

    low, high = min(students) * MULTIPLES[0], max(students) * MULTIPLES[-1]
    sizes = np.geomspace(low, high, len(MULTIPLES)) if len(students) > 1 else [S * m for m in MULTIPLES]
    return [LadderModel(name=f"T{i:02d}", params=int(round(t))) for i, t in enumerate(sizes)]


def _measure(student, teacher, seed, ratio, extra, rng):
    from capgap.runs.synthetic import synthetic_runs

    args = dict(dict(noise=NOISE, curvature=CURVATURE), **extra)
    run = synthetic_runs(ratio=ratio, students=[student], teachers=[teacher], seed=int(rng.integers(1 << 30)), **args)[0]
    return run.model_copy(update={"seed": seed, "run_id": f"{student}-{teacher}-{seed}-{rng.integers(1 << 40)}"})


def _width(runs, students, bootstrap, seed):
    """The fitted intervals at the targets (`capgap fit --law ratio`); None where the runs cannot be fitted yet."""
    from capgap.core.errors import InputError
    from capgap.fit.law_fit import fit_law

    try:
        law = fit_law(runs, law="ratio", bootstrap=bootstrap, seed=seed)
    except InputError:
        return None
    return [law.optimal_teacher(s, 20 * s) for s in students]


def _grid_order(ladder, students):
    order = []
    for offset in (0, 2, 1, 3):
        order += [m for i, m in enumerate(ladder) if i % 4 == offset]
    return [(s, m) for m in order for s in students if m.params > s]


def _oracle_shares(students, ratio, extra):
    """Shares of runs per rung of the c-optimal design at the truth (parabola model); None for several students."""
    if len(students) > 1:
        return None
    sys.path.insert(0, os.path.dirname(__file__))
    from plan_bound import c_optimal, run_rows

    return c_optimal(run_rows(ratio, extra.get("asymmetry", 1.0), (0.0, 0.0), free_shape=False), 5000)


def _loop(design, students, ratio, extra, bootstrap, seed, cap=CAP):
    from capgap.plan.planner import plan_runs

    rng = np.random.default_rng(seed)
    ladder = _ladder(students)
    runs, used = [], {}
    grid = _grid_order(ladder, students)
    shares = _oracle_shares(students, ratio, extra) if design == "oracle" else None
    counts = np.zeros(len(ladder))
    while True:
        plan = plan_runs(runs, list(students), ladder, BATCH, seed=seed, bootstrap=bootstrap) \
            if design.endswith("planner") else None
        if runs:  # the planner's own "before" is this very fit (ratio law, same resamples and seed): not fitted twice
            estimates = (plan.before if plan.start == "runs" else None) if plan is not None \
                else _width(runs, students, bootstrap, seed)
            # A one-sided answer (a bound, capgap.fit.one_sided) has one end only: it is no interval yet.
            if estimates and all(e.low is not None and e.high is not None and
                                 (e.high - e.low) / (2 * e.estimate) <= WIDTH for e in estimates):
                return len(runs), True, all(e.low <= ratio * s <= e.high for e, s in zip(estimates, students))
        if len(runs) >= cap:
            return cap + BATCH, False, False
        if plan is not None:
            batch = [(r.student_params, r.teacher_params) for r in plan.runs]
        elif design == "oracle":
            batch = []
            for _ in range(BATCH):  # the rung furthest behind its share
                rung = int(np.argmax(shares * (counts.sum() + 1) - counts))
                counts[rung] += 1
                batch.append((students[0], ladder[rung].params))
        elif design == "grid":
            batch = [grid[(len(runs) + i) % len(grid)] for i in range(BATCH)]
            batch = [(s, m.params) for s, m in batch]
        else:
            batch = []
            for i in range(BATCH):
                s = students[(len(runs) + i) % len(students)]
                batch.append((s, int(rng.choice([m.params for m in ladder if m.params > s]))))
        for s, t in batch:
            used[(s, t)] = used.get((s, t), -1) + 1
            runs.append(_measure(s, t, used[(s, t)], ratio, extra, rng))


def target_verdict(share: float, planner_held: int, grid_held: int) -> str:
    """PASS where the planner needs at most TARGET_RATIO of the grid's runs and holds the truth as often; else FAIL
    and which half of the target it missed."""
    missed = ([f"runs {share:.2f} > {TARGET_RATIO:g}"] if not share <= TARGET_RATIO else []) + \
        ([f"held {planner_held} < {grid_held}"] if planner_held < grid_held else [])
    return "PASS" if not missed else "FAIL (" + "; ".join(missed) + ")"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loops", type=int, default=30)
    parser.add_argument("--bootstrap", type=int, default=100)
    parser.add_argument("--scenarios", nargs="*", help="only these scenarios (by name)")
    parser.add_argument("--designs", nargs="*", choices=DESIGNS, default=list(DESIGNS), help="only these designs")
    parser.add_argument("--workers", type=int, default=1, help="processes the loops are spread over (same results)")
    parser.add_argument("--cap", type=int, default=CAP, help="runs after which a loop stops unreached (it then "
                                                             "counts cap + batch)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    started = time.time()
    print(f"# plan efficiency, {date.today()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores; {args.loops} loops per scenario, batches of {BATCH}, cap {args.cap} runs, "
          f"noise {NOISE}, curvature {CURVATURE}, fit: ratio law, {args.bootstrap} bootstrap resamples\n")
    designs = args.designs
    ratio_column = "planner" in designs and "grid" in designs
    print(f"| scenario | {' | '.join(designs)} |{' planner / grid |' if ratio_column else ''} "
          f"reached ({'/'.join(designs)}) | held truth ({'/'.join(designs)}) |{' target |' if ratio_column else ''}")
    print("| --- " * (len(designs) + 3 + 2 * ratio_column) + "|")
    pool = None
    if args.workers > 1:
        import multiprocessing

        pool = multiprocessing.get_context("fork").Pool(args.workers)
    for name, (students, ratio, extra) in SCENARIOS.items():
        if args.scenarios and name not in args.scenarios:
            continue
        result = {}
        for design in designs:
            if design == "oracle" and len(students) > 1:
                result[design] = (math.nan, 0, 0)
                continue
            jobs = [(design, students, ratio, extra, args.bootstrap, 1000 + i, args.cap) for i in range(args.loops)]
            outcomes = pool.starmap(_loop, jobs, chunksize=1) if pool else [_loop(*job) for job in jobs]
            result[design] = (float(np.median([o[0] for o in outcomes])), sum(o[1] for o in outcomes),
                              sum(o[2] for o in outcomes))
        medians = " | ".join("–" if math.isnan(result[d][0]) else f"{result[d][0]:g}" for d in designs)
        ratio_text = verdict = ""
        if ratio_column:
            share = result["planner"][0] / result["grid"][0]
            ratio_text = f" {share:.2f} |"
            verdict = f" {target_verdict(share, result['planner'][2], result['grid'][2])} |"
        print(f"| {name} | {medians} |{ratio_text} {'/'.join(str(result[d][1]) for d in designs)} "
              f"| {'/'.join(str(result[d][2]) for d in designs)} |{verdict}", flush=True)
    print(f"\n{time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
