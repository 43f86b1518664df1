"""Calibration of `capgap fit` intervals: how often the 90% interval holds the planted optimal teacher.

Run: .venv/bin/python bench/fit_coverage.py [--draws 200] [--bootstrap 300]
Each draw is a fresh synthetic data set with T* = 2.5·S (5 students, 20M to
500M); the ratio and power laws are fitted and we count how often the
interval of T*(S) holds the truth inside the student range (100M) and
extrapolated 4x above it (2B), and how often the power law's p interval holds
p = 1. Two designs:
  per-student ladders: 8 teachers per student (1.25x-6.4x), one run each, noise 0.01 nats
  shared ladder:       one 9-teacher ladder (30M-1B) for all, two seeds, noise 0.005;
                       the 500M student's optimum (1.25B) lies beyond it: censored
Nominal: 0.90; the binomial standard error is printed beside.
"""

import argparse
import time

import numpy as np

from capgap.lawfit import fit_law
from capgap.synthetic import synthetic_runs

RATIO = 2.5
QUERIES = (1e8, 2e9)
SHARED_LADDER = [30_000_000, 50_000_000, 80_000_000, 130_000_000, 200_000_000, 330_000_000, 550_000_000,
                 750_000_000, 1_000_000_000]
DESIGNS = {
    "per-student ladders": dict(noise=0.01),
    "shared ladder": dict(noise=0.005, repeats=2, teachers=SHARED_LADDER),
}


def coverage(design: dict, draws: int, bootstrap: int) -> dict[str, float]:
    hits: dict[str, int] = {}
    for draw in range(draws):
        runs = synthetic_runs(ratio=RATIO, seed=10_000 + draw, with_teacher_loss=False, **design)
        for law_name in ("ratio", "power"):
            law = fit_law(runs, law=law_name, bootstrap=bootstrap, seed=draw)
            for s in QUERIES:
                estimate = law.optimal_teacher(s)
                key = f"{law_name:<6} T*({s:.0e})"
                hits[key] = hits.get(key, 0) + (estimate.low <= RATIO * s <= estimate.high)
            if law_name == "power":
                low, high = law.file.intervals["p"]
                hits["power  p = 1"] = hits.get("power  p = 1", 0) + (low <= 1.0 <= high)
    return {key: count / draws for key, count in hits.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--bootstrap", type=int, default=300)
    args = parser.parse_args()
    se = np.sqrt(0.9 * 0.1 / args.draws)
    print(f"coverage of 90% intervals over {args.draws} synthetic draws, {args.bootstrap} bootstrap resamples each "
          f"(binomial standard error at 0.90: {se:.3f})")
    for name, design in DESIGNS.items():
        start = time.perf_counter()
        rates = coverage(design, args.draws, args.bootstrap)
        print(f"{name} ({time.perf_counter() - start:.0f} s)")
        for key, rate in rates.items():
            print(f"  {key}  {rate:.3f}")


if __name__ == "__main__":
    main()
