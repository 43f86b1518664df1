"""How often dsl's held-out check (capgap.laws.dsl_fit.HELD_OUT_RATIO) fires on runs that follow the law.

Run: .venv/bin/python bench/dsl_held_out_threshold.py [--draws 60]
Data sets from capgap.laws.dsl_synthetic.dsl_ladder_runs (students 150M-1B non-embedding, two seeds per pair,
noise 0.002 on student and teacher losses), on three ladders; each is fitted with `dsl` (no bootstrap) and the
ratio of its leave-one-student-size-out RMSE of log loss to its in-sample RMSE recorded, and that of its
in-sample RMSE to the spread of repeated seeds (pure error). Printed: the ratio's
quantiles per design and the share of data sets above the threshold (the false-alarm rate), and, for
contrast, the same on capgap.runs.synthetic's planted curves with teacher_loss, which do not follow the law.
"""

import argparse
import os

import numpy as np

from capgap.laws.dsl_synthetic import DOUBLING_MULTIPLES, dsl_ladder_runs
from capgap.fit import dsl_fit
from capgap.laws.base import FitOptions
from capgap.runs.synthetic import synthetic_runs

STUDENTS = (150_000_000, 300_000_000, 600_000_000, 1_000_000_000)
DESIGNS = {"20 tok/param, 1-256x": (20.0, DOUBLING_MULTIPLES), "320 tok/param, 1-256x": (320.0, DOUBLING_MULTIPLES),
           "20 tok/param, 1-8x": (20.0, DOUBLING_MULTIPLES[:4])}


def ratio(runs, size_measure: str = "nonembed") -> tuple[float, float]:
    """(held-out over in-sample RMSE, in-sample RMSE over the spread of repeated seeds) of one dsl fit."""
    law = dsl_fit.fit(runs, FitOptions(bootstrap=0, size_measure=size_measure))
    goodness = law.file.diagnostics.goodness
    return float(goodness.held_out_rmse_log / goodness.rmse_log), float(goodness.rmse_log / goodness.pure_error_log)


def report(label: str, ratios: list[tuple[float, float]]) -> None:
    for which, threshold in ((0, dsl_fit.HELD_OUT_RATIO), (1, dsl_fit.PURE_ERROR_RATIO)):
        values = np.array([r[which] for r in ratios])
        q = np.quantile(values, [0.5, 0.9, 0.99])
        name = "held-out/in-sample" if which == 0 else "in-sample/pure   "
        print(f"  {label:<34} {name} median {q[0]:.2f}  90% {q[1]:.2f}  99% {q[2]:.2f}  max {values.max():.2f}  "
              f"above {threshold:g}: {np.mean(values > threshold):.1%} of {values.size}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=60)
    args = parser.parse_args()
    print(f"dsl fits: held-out / in-sample RMSE of log loss, in-sample RMSE / pure error ({os.cpu_count()} CPUs)")
    everything = []
    for label, (tokens_per_param, multiples) in DESIGNS.items():
        ratios = [ratio(dsl_ladder_runs(STUDENTS, multiples, tokens_per_param=(tokens_per_param,), seed=300_000 + i))
                  for i in range(args.draws)]
        everything += ratios
        report(label, ratios)
    report("all designs that follow the law", everything)
    planted = [ratio(synthetic_runs(seed=i, repeats=2, with_teacher_loss=True), "total") for i in range(min(args.draws, 20))]
    report("capgap.runs.synthetic planted curves", planted)


if __name__ == "__main__":
    main()
