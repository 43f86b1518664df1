"""Synthetic distillation runs with a planted optimal teacher (for tests, demos, benchmarks).

The student's loss follows the curse of capacity gap: it falls as the teacher
grows towards the optimum T*(S) and rises beyond it, quadratically in
log(T / T*):

    loss(S, T) = E + A / S**ALPHA + curvature * ln(T / T*(S))**2 + noise

with T*(S) = ratio * S unless another optimum curve is given. Teachers'
own losses follow a Chinchilla-shaped supervised law (Hoffmann et al. 2022,
constants E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28), so runs also
carry a plausible ``teacher_loss``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from capgap.records import RunRecord, metric_direction
from capgap.sizes import distill_flops

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


def synthetic_runs(ratio: float = 2.5, students: Sequence[int] = DEFAULT_STUDENTS,
                   teachers: Sequence[int] | None = None, multiples: Sequence[float] = DEFAULT_MULTIPLES,
                   noise: float = 0.005, curvature: float = 0.05, repeats: int = 1, seed: int = 0,
                   optimum: Callable[[float], float] | None = None, metric: str = "eval_loss",
                   family: str = "synthetic", tokens_per_param: float = 20.0,
                   with_teacher_loss: bool = True) -> list[RunRecord]:
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
    for student in students:
        ladder = teachers if teachers is not None else [int(round(m * student)) for m in multiples]
        tokens = int(tokens_per_param * student)
        base = STUDENT_E + STUDENT_A / student**STUDENT_ALPHA
        for teacher in sorted(set(int(t) for t in ladder)):
            if teacher <= student:
                continue
            gap = curvature * np.log(teacher / optimum(student)) ** 2
            for repeat in range(repeats):
                value = base + gap + noise * rng.standard_normal()
                runs.append(RunRecord(
                    family=family, student_params=student, teacher_params=teacher,
                    student_params_nonembed=max(1, int(NONEMBED_FRACTION * student)),
                    teacher_params_nonembed=max(1, int(NONEMBED_FRACTION * teacher)),
                    tokens=tokens, student_init="pruned", seed=seed * 1000 + repeat,
                    metrics={metric: float(ACCURACY_CEILING - (value - STUDENT_E) if higher else value)},
                    teacher_loss=teacher_supervised_loss(teacher, 20.0 * teacher) if with_teacher_loss else None,
                    flops=distill_flops(student, teacher, tokens), source="synthetic",
                ))
    return runs
