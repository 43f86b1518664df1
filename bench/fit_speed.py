"""Wall time of `capgap fit` with 1000 bootstrap resamples on 200 runs (target: under 5 s on 2 cores).

Run: .venv/bin/python bench/fit_speed.py [--repeats 3]
200 synthetic runs: 10 students (20M-2B) x 10 teachers x 2 seeds. Timed as
the user runs it, a fresh `capgap fit` process each time (start-up included);
the median of the repetitions (wall time, and the CPU time the process used,
which a busy shared machine inflates less) is printed for each case, beside a
baseline measured in the same run, `python -c pass`:
  auto                              (auto cross-validates ratio, linear, power)
  --law ratio / power / linear      (no model choice)
  --law linear, decade-wide ladder  (1.2x-20x: the far shape is fitted; its alpha is flat where s is near 0,
                                     the case whose sampler once collapsed into 1000 bootstrap refits, 19 s)
"""

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from capgap.runs.store import RunStore
from capgap.runs.synthetic import synthetic_runs

STUDENTS = [int(s) for s in np.geomspace(2e7, 2e9, 10)]
MULTIPLES = tuple(np.geomspace(1.2, 8.0, 10))
WIDE_MULTIPLES = tuple(np.geomspace(1.2, 20.0, 10))


def time_fit(path: Path, *flags: str, repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds (user + system of the child) of one `capgap fit`."""
    return time_command([sys.executable, "-m", "capgap", "fit", str(path), "--bootstrap", "1000", *flags], repeats)


def time_command(command: list[str], repeats: int) -> tuple[float, float]:
    walls, cpus = [], []
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "plain.jsonl"
        runs = synthetic_runs(students=STUDENTS, multiples=MULTIPLES, repeats=2, noise=0.005, seed=0,
                              asymmetry=2.0, with_teacher_loss=False)
        assert len(runs) == 200
        RunStore(plain).extend(runs)
        wide = Path(tmp) / "wide.jsonl"
        RunStore(wide).extend(synthetic_runs(students=STUDENTS, multiples=WIDE_MULTIPLES, repeats=2, noise=0.005,
                                             seed=0, asymmetry=2.0, with_teacher_loss=False))
        cases = [("auto", plain, ()),
                 ("--law ratio", plain, ("--law", "ratio")),
                 ("--law power", plain, ("--law", "power")),
                 ("--law linear", plain, ("--law", "linear")),
                 ("--law linear, decade-wide ladder", wide, ("--law", "linear"))]
        print(f"capgap fit, 200 runs, 1000 bootstrap resamples; median of {args.repeats} fresh processes "
              f"({os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f})")
        wall, cpu = time_command([sys.executable, "-c", "pass"], args.repeats)
        print(f"  {'baseline: python -c pass':<45} wall {wall:6.2f} s   CPU {cpu:6.2f} s", flush=True)
        for label, path, flags in cases:
            wall, cpu = time_fit(path, *flags, repeats=args.repeats)
            print(f"  {label:<45} wall {wall:6.2f} s   CPU {cpu:6.2f} s", flush=True)


if __name__ == "__main__":
    main()
