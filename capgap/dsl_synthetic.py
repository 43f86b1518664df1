"""Synthetic distillation runs drawn from the distillation scaling law (for tests and benchmarks).

Every student is distilled from every teacher; teacher losses come from the
supervised law at the teachers' training tokens, student losses from the
distillation law, both with multiplicative log-normal noise. Sizes are
non-embedding counts; total counts are derived with capgap.synthetic's fixed
non-embedding share, so the runs look like capgap's own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from capgap.laws.dsl import PUBLISHED, student_loss, supervised_loss
from capgap.records import RunRecord
from capgap.sizes import distill_flops
from capgap.synthetic import NONEMBED_FRACTION

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
