"""Wall time of the quickstart notebook, top to bottom (target: under a minute on a CPU).

    python bench/notebook_time.py

Runs notebooks/quickstart.ipynb in a fresh kernel (nbclient) and prints the
whole run's wall time, including the kernel's start. It also prints each code
cell's time, taken from the cells' execution timestamps.
"""

from __future__ import annotations

import datetime
import importlib.util
import os
import platform
import time
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def main() -> None:
    os.environ.setdefault("MPLBACKEND", "Agg")
    spec = importlib.util.spec_from_file_location("build_quickstart", NOTEBOOKS / "build_quickstart.py")
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    notebook = builder.build()
    start = time.perf_counter()
    builder.execute(notebook)
    total = time.perf_counter() - start
    print(f"{datetime.date.today()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}")
    for index, cell in enumerate(c for c in notebook.cells if c.cell_type == "code"):
        timing = cell.metadata.get("execution", {})
        began, ended = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
        if began and ended:
            seconds = (datetime.datetime.fromisoformat(ended.replace("Z", "+00:00"))
                       - datetime.datetime.fromisoformat(began.replace("Z", "+00:00"))).total_seconds()
            print(f"  cell {index + 1}: {seconds:6.2f} s  {cell.source.splitlines()[0][:60]}")
    print(f"quickstart notebook: {total:.1f} s wall, kernel start included")


if __name__ == "__main__":
    main()
