"""How good is `capgap plan`'s "expected after the batch" interval? Realised width over forecast, in closed loops.

Run: nice .venv/bin/python bench/plan_forecast.py [--loops 8]

Closed loops as in bench/plan_efficiency.py (same ladder, noise, synthetic runs), on its
symmetric and asymmetric scenarios: at every step the half-width of the 90% interval
the plan forecast for after its batch is compared with the half-width the fit gives once
the batch is measured. Printed: the quantiles of realised / forecast (1 = exact, above 1
= the forecast was optimistic).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import plan_efficiency as efficiency  # noqa: E402  (the closed loop's ladder, scenarios and measurement)

from capgap.plan.planner import plan_runs  # noqa: E402

SCENARIOS = ("symmetric, 2.5x", "asymmetric 3:1, 2.5x")


def ratios(name: str, loops: int, bootstrap: int) -> list[float]:
    students, ratio, extra = efficiency.SCENARIOS[name]
    out = []
    for i in range(loops):
        rng = np.random.default_rng(1000 + i)
        ladder = efficiency._ladder(students)
        runs, used, forecast = [], {}, None
        while len(runs) < efficiency.CAP:
            plan = plan_runs(runs, list(students), ladder, efficiency.BATCH, seed=1000 + i, bootstrap=bootstrap)
            now = plan.before[0].relative_half_width if plan.start == "runs" else None
            if forecast is not None and now is not None:
                out.append(now / forecast)
            forecast = plan.after[0].relative_half_width
            if now is not None and now <= efficiency.WIDTH:
                break
            for r in plan.runs:
                pair = (r.student_params, r.teacher_params)
                used[pair] = used.get(pair, -1) + 1
                runs.append(efficiency._measure(*pair, used[pair], ratio, extra, rng))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loops", type=int, default=8)
    parser.add_argument("--bootstrap", type=int, default=100)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    found = np.array([x for name in SCENARIOS for x in ratios(name, args.loops, args.bootstrap)])
    q = np.quantile(found, [0.1, 0.25, 0.5, 0.75, 0.9])
    print(f"{found.size} forecasts ({args.loops} loops x {len(SCENARIOS)} scenarios): realised / forecast "
          f"half-width median {q[2]:.2f}, quartiles {q[1]:.2f}-{q[3]:.2f}, 10-90% {q[0]:.2f}-{q[4]:.2f}")


if __name__ == "__main__":
    main()
