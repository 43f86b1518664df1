"""Synthetic distillation runs with a planted optimal teacher (for tests, demos, benchmarks).

The student's loss follows the curse of capacity gap: it falls as the teacher
grows towards the optimum T*(S) and rises beyond it, quadratically in
log(T / T*):

    loss(S, T) = E + A / S**ALPHA + c(u) * g(u) + noise,    u = ln(T / T*(S, D))

with T*(S) = ratio * S unless another optimum curve is given, g(u) = u² (or,
with a ``plateau`` W, g(u) = W²·(1 − exp(−u²/W²)): a curve that flattens far
from the optimum) and c = ``curvature`` right of the optimum,
``asymmetry``·``curvature`` left of it (a too-small teacher hurts faster). Teachers'
own losses follow a Chinchilla-shaped supervised law (Hoffmann et al. 2022,
constants E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28), so runs also
carry a plausible ``teacher_loss``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from capgap.runs.records import RunRecord, metric_direction
from capgap.sizes.units import distill_flops

# Student loss floor and size term of the planted curve (nats/token).
STUDENT_E, STUDENT_A, STUDENT_ALPHA = 1.8, 60.0, 0.3
# Teachers' supervised law, Chinchilla constants (Hoffmann et al. 2022, approach 3).
CHINCHILLA = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
DEFAULT_STUDENTS = (20_000_000, 45_000_000, 100_000_000, 220_000_000, 500_000_000)
# Teacher sizes as multiples of the student: brackets 2.5x with room on both sides.
DEFAULT_MULTIPLES = (1.25, 1.6, 2.0, 2.5, 3.2, 4.0, 5.0, 6.4)
ACCURACY_CEILING = 0.9  # a higher-is-better metric is this minus the loss above its floor
NONEMBED_FRACTION = 0.8  # synthetic models: a fixed share of parameters outside embeddings


def teacher_supervised_loss(params: float, tokens: float) -> float:
    """A teacher's own held-out loss from the Chinchilla-shaped law."""
    c = CHINCHILLA
    return c["E"] + c["A"] / params ** c["alpha"] + c["B"] / tokens ** c["beta"]


def _flattening(u: float, width: float, form: str) -> float:
    """Curves that stop rising far from the optimum, all ~u² near it: exp and rational plateaus, or linear growth."""
    if form == "exp":
        return width**2 * (1.0 - np.exp(-(u**2) / width**2))
    if form == "rational":
        return u**2 / (1.0 + u**2 / width**2)
    if form == "linear":
        return 2.0 * width**2 * (np.sqrt(1.0 + u**2 / width**2) - 1.0)
    raise ValueError(f"plateau form {form!r} is unknown; accepted: exp, rational, linear")


def synthetic_runs(ratio: float = 2.5, students: Sequence[int] = DEFAULT_STUDENTS,
                   teachers: Sequence[int] | None = None, multiples: Sequence[float] = DEFAULT_MULTIPLES,
                   noise: float = 0.005, curvature: float = 0.05, repeats: int = 1, seed: int = 0,
                   optimum: Callable[[float], float] | None = None, metric: str = "eval_loss",
                   family: str = "synthetic", tokens_per_param: float | Sequence[float] = 20.0,
                   with_teacher_loss: bool = True, asymmetry: float = 1.0, plateau: float | None = None,
                   optimum_with_tokens: Callable[[float, float], float] | None = None,
                   student_init: str = "pruned", plateau_form: str = "exp") -> list[RunRecord]:
    """Runs of every student distilled from every larger teacher, with a planted optimum.

    ``teachers``: one absolute ladder shared by all students (only teachers
    larger than the student are used); default: ``multiples`` of each student.
    ``optimum``: S -> T*(S), overriding ``ratio * S`` (e.g. a power law).
    ``noise``: standard deviation of the metric's Gaussian noise. ``repeats``:
    runs per (student, teacher) with different seeds. A higher-is-better
    ``metric`` (e.g. ``lambada_acc``) gets the mirrored curve.
    ``with_teacher_loss=False`` leaves ``teacher_loss`` out (runs the dsl law cannot use).
    """
    rng = np.random.default_rng(seed)
    optimum = optimum or (lambda s: ratio * s)
    higher = metric_direction(metric) == "higher"
    runs: list[RunRecord] = []
    regimes = [tokens_per_param] if np.isscalar(tokens_per_param) else list(tokens_per_param)
    for student, per_param in ((s, d) for s in students for d in regimes):
        ladder = teachers if teachers is not None else [int(round(m * student)) for m in multiples]
        tokens = int(per_param * student)
        best = optimum_with_tokens(student, tokens) if optimum_with_tokens else optimum(student)
        base = STUDENT_E + STUDENT_A / student**STUDENT_ALPHA
        for teacher in sorted(set(int(t) for t in ladder)):
            if teacher <= student:
                continue
            u = np.log(teacher / best)
            shape = u**2 if plateau is None else _flattening(u, plateau, plateau_form)
            gap = curvature * (asymmetry if u < 0 else 1.0) * shape
            for repeat in range(repeats):
                value = base + gap + noise * rng.standard_normal()
                runs.append(RunRecord(
                    family=family, student_params=student, teacher_params=teacher,
                    student_params_nonembed=max(1, int(NONEMBED_FRACTION * student)),
                    teacher_params_nonembed=max(1, int(NONEMBED_FRACTION * teacher)),
                    tokens=tokens, student_init=student_init, seed=seed * 1000 + repeat,
                    metrics={metric: float(ACCURACY_CEILING - (value - STUDENT_E) if higher else value)},
                    teacher_loss=teacher_supervised_loss(teacher, 20.0 * teacher) if with_teacher_loss else None,
                    flops=distill_flops(student, teacher, tokens), source="synthetic",
                ))
    return runs
