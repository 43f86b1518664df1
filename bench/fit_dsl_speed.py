"""The dsl law's fitting time and the coverage of its optimal-teacher intervals.

Run: .venv/bin/python bench/fit_dsl_speed.py [--coverage DRAWS]
Speed: 200 synthetic runs, 200 bootstrap resamples. Coverage: over DRAWS
synthetic data sets (published constants plus noise), how often the 90%
interval of the optimal teacher holds the true one, for three students.
On a small shared machine set OPENBLAS_NUM_THREADS=1: scipy's L-BFGS-B calls
BLAS on tiny matrices, and BLAS threads fighting for two cores make each step
far slower.
"""

import argparse
import os
import time

import numpy as np

from capgap.laws.dsl_synthetic import DEFAULT_STUDENTS, dsl_synthetic_runs
from capgap.fit import dsl_fit
from capgap.laws import dsl
from capgap.laws.base import FitOptions

SPEED_TEACHERS = tuple(int(round(x)) for x in np.geomspace(1e8, 2e11, 20))
COVERAGE_STUDENTS = (100e6, 198e6, 800e6)


def speed() -> None:
    runs = dsl_synthetic_runs(students=DEFAULT_STUDENTS[:5], teachers=SPEED_TEACHERS, seed=0)
    start, cpu = time.perf_counter(), time.process_time()
    dsl_fit.fit(runs, FitOptions(bootstrap=0))
    point, point_cpu = time.perf_counter() - start, time.process_time() - cpu
    start, cpu = time.perf_counter(), time.process_time()
    law = dsl_fit.fit(runs, FitOptions(bootstrap=200))
    total, total_cpu = time.perf_counter() - start, time.process_time() - cpu
    estimate = law.optimal_teacher(198e6)
    print(f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{len(runs)} runs, {len(law.file.diagnostics.free)} free constants")
    print(f"fit (multi-start, no bootstrap): {point:.2f} s wall, {point_cpu:.2f} s CPU")
    print(f"fit + 200 bootstrap resamples:   {total:.2f} s wall, {total_cpu:.2f} s CPU "
          f"({(total_cpu - point_cpu) / 200 * 1000:.0f} ms CPU per resample)")
    print(f"198M student: best teacher {estimate.estimate:.3g} (90% {estimate.low:.3g}-{estimate.high:.3g}); "
          f"published law: {dsl.published_law().optimal_teacher(198e6).estimate:.3g}")


def coverage(draws: int, bootstrap: int = 100) -> None:
    truth = dsl.published_law()
    true = {s: truth.optimal_teacher(s).estimate for s in COVERAGE_STUDENTS}
    hits = dict.fromkeys(COVERAGE_STUDENTS, 0)
    for seed in range(draws):
        law = dsl_fit.fit(dsl_synthetic_runs(seed=100 + seed), FitOptions(bootstrap=bootstrap, seed=seed))
        for student in COVERAGE_STUDENTS:
            estimate = law.optimal_teacher(student)
            hits[student] += estimate.low <= true[student] <= estimate.high
    print(f"coverage of the 90% interval over {draws} draws ({bootstrap} resamples each):")
    for student in COVERAGE_STUDENTS:
        print(f"  student {student:.3g}: {hits[student] / draws:.0%}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coverage", type=int, default=0, metavar="DRAWS", help="also measure interval coverage")
    args = parser.parse_args()
    speed()
    if args.coverage:
        coverage(args.coverage)
