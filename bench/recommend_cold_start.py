"""Cold-start wall time of `capgap recommend --student 1.3B --ladder pythia` (target: median < 1 s).

Each run is a fresh process, as when a person types the command. The
baseline is the interpreter's own start-up (`python -c pass`) measured in
the same session, so the figure can be read on any machine. With
--imports, also lists the modules that cost the most to import.

    python bench/recommend_cold_start.py [--runs 9] [--imports]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMAND = ["recommend", "--student", "1.3B", "--ladder", "pythia"]


def capgap_command() -> list[str]:
    script = Path(sys.executable).with_name("capgap")  # the console script users run
    return [str(script)] if script.is_file() else [sys.executable, "-m", "capgap"]


def child_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wall_times(argv: list[str], runs: int, cpu: list[float] | None = None) -> list[float]:
    """Wall seconds per fresh process; with ``cpu``, also appends each run's CPU seconds (user + sys),
    which a busy shared machine inflates far less than wall time."""
    times = []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), child_cpu_seconds()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
        if cpu is not None:
            cpu.append(child_cpu_seconds() - start_cpu)
    return times


def heaviest_imports(argv: list[str], count: int = 12) -> list[tuple[int, str]]:
    """(cumulative microseconds, module) of the costliest top-level imports, from -X importtime."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "capgap", *argv], capture_output=True, text=True, check=True)
    rows = []
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = line.split("|")
            if cumulative.strip().isdigit():
                rows.append((int(cumulative), name.rstrip()))
    return sorted(rows, reverse=True)[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--imports", action="store_true", help="also list the costliest imports")
    args = parser.parse_args()
    command = capgap_command() + COMMAND
    wall_times(command, 1)  # warm the file-system cache: we measure start-up, not the disk
    baseline = wall_times([sys.executable, "-c", "pass"], args.runs)
    package = wall_times([sys.executable, "-c", "import capgap"], args.runs)
    cpu: list[float] = []
    recommend = wall_times(command, args.runs, cpu)
    print(f"{os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.1f}), Python {sys.version.split()[0]}, "
          f"{args.runs} runs each; median (min–max) wall seconds")
    for label, times in (("python -c pass", baseline), ("python -c 'import capgap'", package),
                         (" ".join(["capgap", *COMMAND]), recommend)):
        print(f"  {label:<55} {statistics.median(times):.3f}  ({min(times):.3f}–{max(times):.3f})")
    median = statistics.median(recommend)
    print(f"recommend cold start: {median:.3f} s median, {median - statistics.median(baseline):.3f} s above the "
          f"interpreter; target < 1 s: {'met' if median < 1.0 else 'NOT met'}; "
          f"CPU time (user + sys) {statistics.median(cpu):.3f} s median")
    if args.imports:
        print("costliest imports (cumulative ms, nested ones included):")
        for micros, name in heaviest_imports(COMMAND):
            print(f"  {micros / 1000:8.1f}  {name}")


if __name__ == "__main__":
    main()
