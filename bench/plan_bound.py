"""How few runs any design could need: the locally c-optimal design at the planted truth vs the grid's.

Run: .venv/bin/python bench/plan_bound.py

For the single-student scenarios of bench/plan_efficiency.py (same ladder, noise and
curves), the Fisher information of one run at rung T under the one-stage model
(metric = b + a^side·h(u), u = ln T − ln T*) gives the asymptotic variance of ln T*
per run for a design w (its share of runs on each rung): c^T I(w)^-1 c. Printed per
scenario and model (the far shape held fixed, or free as the fit frees it on a decade-wide
ladder of 5 teachers or more):

* uniform: every rung equally often, what the coarse-to-fine grid tends to;
* c-optimal: the best shares, found by the multiplicative algorithm (Silvey, Titterington
  and Torsney 1978) knowing the truth, which no planner does;
* bound: c-optimal / uniform variance, the fewest runs any design needs relative to the grid
  for the same interval, asymptotically. A planner target of "half the grid's runs" is out
  of reach wherever the bound is above 0.5.
"""

from __future__ import annotations

import numpy as np

from capgap.fit.onestage import shape_curve

NOISE, CURVATURE = 0.02, 0.05
LADDER = np.geomspace(1.25, 200.0, 16)  # multiples of the student
STEP = 1e-4

# name -> (planted ratio, asymmetry (left / right curvature), far shape (s, alpha) of the planted curve)
SCENARIOS = {
    "symmetric, 2.5x": (2.5, 1.0, (0.0, 0.0)),
    "asymmetric 3:1, 2.5x": (2.5, 3.0, (0.0, 0.0)),
    "flattening far away, 4x": (4.0, 1.0, (2.0, -30.0)),  # exp plateau of width 1: s = 2 / W², alpha -> -inf
    "far from the prior, 1.6x": (1.6, 2.0, (0.0, 0.0)),
    "far from the prior, 120x": (120.0, 1.0, (0.0, 0.0)),
}


def run_rows(ratio: float, asymmetry: float, shape: tuple[float, float], free_shape: bool) -> np.ndarray:
    """Rows d(metric)/d(ln T*, [s, alpha], b, a_left, a_right) / noise, one per rung."""
    u = np.log(LADDER / ratio)
    s, alpha = shape
    w, a = np.array([np.sqrt(s)]), np.array([alpha])

    def h(u_, w_=w, a_=a):
        return shape_curve(u_[None, :], w_, a_)[0]

    curvature = np.where(u < 0, asymmetry * CURVATURE, CURVATURE)
    left = u < 0
    columns = [-curvature * (h(u + STEP) - h(u - STEP)) / (2 * STEP)]
    if free_shape:
        columns.append(curvature * (h(u, np.sqrt(np.array([s + STEP]))) - h(u)) / STEP)
        if s > 0:  # at s = 0 the curve is the parabola whatever alpha: alpha then carries no information
            columns.append(curvature * (h(u, w, a + STEP) - h(u, w, a - STEP)) / (2 * STEP))
    columns += [np.ones_like(u), h(u) * left, h(u) * ~left]
    return np.column_stack(columns) / NOISE


def variance_per_run(rows: np.ndarray, weights: np.ndarray) -> float:
    info = (rows.T * weights) @ rows
    return float(np.linalg.pinv(info)[0, 0])


def c_optimal(rows: np.ndarray, iterations: int = 20_000) -> np.ndarray:
    """Multiplicative algorithm for the c-optimal design of the first parameter (ln T*)."""
    weights = np.full(rows.shape[0], 1.0 / rows.shape[0])
    c = np.zeros(rows.shape[1])
    c[0] = 1.0
    for _ in range(iterations):
        inverse = np.linalg.pinv((rows.T * weights) @ rows)
        gain = (rows @ inverse @ c) ** 2
        weights = weights * gain / float(c @ inverse @ c)
        weights /= weights.sum()
    return weights


def main() -> None:
    print("| scenario | model | var/run, uniform | var/run, c-optimal | bound (c-optimal / uniform) | c-optimal rungs (x student: share) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, (ratio, asymmetry, shape) in SCENARIOS.items():
        for free in (False, True):
            if shape[0] > 0 and not free:
                continue  # a flattening truth is not a parabola: only the model with a free far shape fits it
            rows = run_rows(ratio, asymmetry, shape, free)
            uniform = variance_per_run(rows, np.full(LADDER.size, 1.0 / LADDER.size))
            weights = c_optimal(rows)
            best = variance_per_run(rows, weights)
            support = ", ".join(f"{m:.3g}: {w:.2f}" for m, w in zip(LADDER, weights) if w > 0.02)
            model = "far shape free" if free else "parabola"
            print(f"| {name} | {model} | {uniform:.3f} | {best:.3f} | {best / uniform:.2f} | {support} |")


if __name__ == "__main__":
    main()
