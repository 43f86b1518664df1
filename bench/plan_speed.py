"""Wall time of `capgap plan` proposing a batch of 4 from 50 runs over a 16-model ladder (target: under 10 s).

Run: .venv/bin/python bench/plan_speed.py [--repeats 3]
50 synthetic runs (students of 50M, 100M and 200M, teachers from a 16-model ladder
of 62.5M-40B, two seeds, noise 0.01, asymmetry 2; 50 of them drawn), planned for the three students at once with
the default ratio law. Timed as the user runs it, a fresh `capgap plan` process each
time (start-up included); the median wall and CPU time of the repetitions, beside a
baseline measured in the same run, `python -c pass`. Also timed: one student only,
and `--law auto` (cross-validated, one fit per family and fold).
"""

import argparse
import csv
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from fit_speed import time_command  # noqa: E402  (one timing helper for the benches)

from capgap.runs.store import RunStore  # noqa: E402
from capgap.runs.synthetic import synthetic_runs  # noqa: E402

STUDENTS = (50_000_000, 100_000_000, 200_000_000)
LADDER = [int(t) for t in np.geomspace(6.25e7, 4e10, 16)]


def write_inputs(folder: Path) -> tuple[Path, Path]:
    ladder = folder / "ladder.csv"
    with open(ladder, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name", "params"])
        writer.writerows([f"T{i:02d}", t] for i, t in enumerate(LADDER))
    rng = np.random.default_rng(0)
    runs = []
    for student in STUDENTS:
        teachers = [t for t in LADDER if t > student]
        runs += synthetic_runs(ratio=2.5, students=[student], teachers=teachers, noise=0.01, asymmetry=2.0, repeats=2,
                               seed=int(rng.integers(1 << 30)))
    runs = [runs[i] for i in sorted(rng.choice(len(runs), size=50, replace=False))]
    store = folder / "runs.jsonl"
    RunStore(store).extend(runs)
    return store, ladder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store, ladder = write_inputs(Path(tmp))
        plan = [sys.executable, "-m", "capgap", "plan", str(store), "--teachers", str(ladder), "--runs-budget", "4"]
        cases = [("3 students (50M,100M,200M), ratio", [*plan, "--student", "50M,100M,200M"]),
                 ("1 student (100M), ratio", [*plan, "--student", "100M"]),
                 ("3 students, --law auto", [*plan, "--student", "50M,100M,200M", "--law", "auto"])]
        print(f"capgap plan, a batch of 4 from 50 runs over a 16-model ladder; median of {args.repeats} fresh "
              f"processes ({os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f})")
        wall, cpu = time_command([sys.executable, "-c", "pass"], args.repeats)
        print(f"  {'baseline: python -c pass':<40} wall {wall:6.2f} s   CPU {cpu:6.2f} s", flush=True)
        for label, command in cases:
            wall, cpu = time_command(command, args.repeats)
            print(f"  {label:<40} wall {wall:6.2f} s   CPU {cpu:6.2f} s", flush=True)


if __name__ == "__main__":
    main()
