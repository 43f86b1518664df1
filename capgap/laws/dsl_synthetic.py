"""Synthetic distillation runs drawn from the distillation scaling law (for tests and benchmarks).

Every student is distilled from every teacher; teacher losses come from the
supervised law at the teachers' training tokens, student losses from the
distillation law, both with multiplicative log-normal noise. Sizes are
non-embedding counts; total counts are derived with capgap.runs.synthetic's fixed
non-embedding share, so the runs look like capgap's own.

``dsl_ladder_runs`` draws the runs a study of its own would make instead:
each student distilled from a ladder of multiples of its size, several seeds
per pair; ``dsl_true_optimum`` is the teacher size the law itself puts best,
found by minimising the student's loss over ln T (not through the law's own
teacher-loss inversion), so that benchmarks score fits against the law.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from capgap.laws.dsl import PUBLISHED, student_loss, supervised_loss
from capgap.runs.records import RunRecord
from capgap.sizes.units import distill_flops
from capgap.runs.synthetic import NONEMBED_FRACTION

DEFAULT_STUDENTS = (50_000_000, 100_000_000, 198_000_000, 400_000_000, 800_000_000, 1_600_000_000)
# Geometric ladder from 10M to 200B: brackets the published optima of the students above, and its
# weakest teachers reach the regime L_T > d1 * L_sup where the student just matches its teacher.
DEFAULT_TEACHERS = tuple(int(round(x)) for x in np.geomspace(1e7, 2e11, 12))
DEFAULT_TOKENS_PER_PARAM = (20.0, 80.0)


def dsl_synthetic_runs(students: Sequence[int] = DEFAULT_STUDENTS, teachers: Sequence[int] = DEFAULT_TEACHERS,
                       tokens_per_param: Sequence[float] = DEFAULT_TOKENS_PER_PARAM,
                       teacher_tokens_per_param: float = 20.0, noise: float = 0.003, teacher_noise: float = 0.003,
                       coefficients: Mapping[str, float] = PUBLISHED, seed: int = 0, metric: str = "eval_loss",
                       family: str = "synthetic-dsl", record_teacher_tokens: bool = True) -> list[RunRecord]:
    """Runs of every (student, distillation tokens) from every teacher, from the law's ``coefficients``.

    ``noise``/``teacher_noise``: standard deviation of the log of the student's
    and the teacher's loss. Teachers train on ``teacher_tokens_per_param``
    tokens per parameter, recorded in ``extra['teacher_tokens']`` unless
    ``record_teacher_tokens`` is False.
    """
    rng = np.random.default_rng(seed)
    teacher_tokens = {t: teacher_tokens_per_param * t for t in teachers}
    # One measured loss per teacher, shared by all its runs, as a real teacher would have.
    teacher_loss = {t: float(supervised_loss(coefficients, t, teacher_tokens[t]) * np.exp(teacher_noise * rng.standard_normal()))
                    for t in teachers}
    runs = []
    for student in students:
        for ratio in tokens_per_param:
            tokens = int(round(ratio * student))
            for teacher in teachers:
                truth = float(student_loss(coefficients, student, tokens, teacher_loss[teacher]))
                extra = {"teacher_tokens": int(round(teacher_tokens[teacher]))} if record_teacher_tokens else {}
                runs.append(RunRecord(
                    family=family, student_params=int(round(student / NONEMBED_FRACTION)),
                    teacher_params=int(round(teacher / NONEMBED_FRACTION)),
                    student_params_nonembed=int(student), teacher_params_nonembed=int(teacher), tokens=tokens,
                    student_init="scratch", seed=seed, teacher_loss=teacher_loss[teacher],
                    metrics={metric: truth * float(np.exp(noise * rng.standard_normal()))},
                    flops=distill_flops(student, teacher, tokens), source="synthetic", extra=extra))
    return runs


DOUBLING_MULTIPLES = tuple(float(2**k) for k in range(9))  # 1x, 2x, 4x ... 256x the student


def dsl_teacher_curve(student: float, tokens: float, teachers: np.ndarray | Sequence[float],
                      teacher_tokens_per_param: float = 20.0,
                      coefficients: Mapping[str, float] = PUBLISHED) -> np.ndarray:
    """The law's student loss for each teacher size (non-embedding), teachers trained on tokens per parameter."""
    t = np.asarray(teachers, dtype=float)
    teacher_loss = supervised_loss(coefficients, t, teacher_tokens_per_param * t)
    return np.asarray(student_loss(coefficients, student, tokens, teacher_loss), dtype=float)


def dsl_true_optimum(student: float, tokens: float, teacher_tokens_per_param: float = 20.0,
                     coefficients: Mapping[str, float] = PUBLISHED) -> float:
    """The teacher size (non-embedding) minimising the law's student loss: a grid in ln T, then a bounded minimiser."""
    from scipy.optimize import minimize_scalar

    grid = np.linspace(np.log(1e5), np.log(1e16), 4001)
    values = dsl_teacher_curve(student, tokens, np.exp(grid), teacher_tokens_per_param, coefficients)
    best = int(np.argmin(values))
    if best in (0, grid.size - 1):
        raise ValueError(f"no finite best teacher for a student of {student:.3g} on {tokens:.3g} tokens")
    result = minimize_scalar(
        lambda log_t: float(dsl_teacher_curve(student, tokens, [np.exp(log_t)], teacher_tokens_per_param,
                                              coefficients)[0]),
        bounds=(grid[best - 1], grid[best + 1]), method="bounded", options={"xatol": 1e-9})
    return float(np.exp(result.x))


def dsl_ladder_runs(students: Sequence[float], multiples: Sequence[float] = DOUBLING_MULTIPLES,
                    tokens_per_param: Sequence[float] = (20.0,), teacher_tokens_per_param: float = 20.0,
                    noise: float = 0.002, teacher_noise: float = 0.002, repeats: int = 2, seed: int = 0,
                    with_teacher_loss: bool = True, coefficients: Mapping[str, float] = PUBLISHED,
                    metric: str = "eval_loss", family: str = "synthetic-dsl") -> list[RunRecord]:
    """Each student (non-embedding size) distilled from teachers at ``multiples`` of its size, ``repeats`` seeds each.

    The student's loss is the law's, from the teacher's true loss, times
    exp(``noise``·z) per run; the recorded ``teacher_loss`` is a measurement,
    the true loss times exp(``teacher_noise``·z), one per teacher size
    (omitted with ``with_teacher_loss=False``). The truth of every student is
    ``dsl_true_optimum``; a ladder that does not bracket it is left as it is.
    """
    rng = np.random.default_rng(seed)
    measured: dict[int, float] = {}
    runs = []
    for student in students:
        for ratio in tokens_per_param:
            tokens = int(round(ratio * student))
            teachers = sorted({int(round(m * student)) for m in multiples})
            truth = dsl_teacher_curve(student, tokens, teachers, teacher_tokens_per_param, coefficients)
            for teacher, loss in zip(teachers, truth):
                if teacher not in measured:
                    true_teacher = float(supervised_loss(coefficients, teacher, teacher_tokens_per_param * teacher))
                    measured[teacher] = true_teacher * float(np.exp(teacher_noise * rng.standard_normal()))
                for repeat in range(repeats):
                    runs.append(RunRecord(
                        family=family, student_params=int(round(student / NONEMBED_FRACTION)),
                        teacher_params=int(round(teacher / NONEMBED_FRACTION)),
                        student_params_nonembed=int(round(student)), teacher_params_nonembed=teacher,
                        tokens=tokens, student_init="scratch", seed=seed * 1000 + repeat,
                        teacher_loss=measured[teacher] if with_teacher_loss else None,
                        teacher_tokens=int(round(teacher_tokens_per_param * teacher)),
                        metrics={metric: float(loss) * float(np.exp(noise * rng.standard_normal()))},
                        flops=distill_flops(student, teacher, tokens), source="synthetic"))
    return runs
