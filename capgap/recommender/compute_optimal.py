"""Compute-optimal distillation when the teacher must be trained too (Busbridge et al., §5.3).

Given a student of N_S non-embedding parameters and a budget C that pays for
the teacher's pretraining (6·N_T·D_T), its forward passes over the
distillation tokens when counted (2·N_T·D_S) and the student's training
(6·N_S·D_S), choose the teacher size N_T, its pretraining tokens D_T and the
student's distillation tokens D_S that minimise the predicted student loss
L_S(N_S, D_S, L(N_T, D_T)); compare with spending all of C on supervised
training of the student, L(N_S, C / 6N_S).

The search is a log-spaced grid over N_T and the share of C spent on the
teacher, zoomed in three times around the best cell: numpy only, so the
recommender stays free of scipy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from pydantic import BaseModel, ConfigDict

from capgap.laws.dsl import student_loss, supervised_loss

TEACHER_RATIO_RANGE = (0.01, 1e4)  # teacher / student sizes searched
GRID = 97  # points per axis per zoom
ZOOMS = 4


class ComputeOptimal(BaseModel):
    """The best split of one budget between the teacher's pretraining and the student's distillation."""

    model_config = ConfigDict(frozen=True)
    budget: float
    student_params: float
    teacher_params: float
    teacher_tokens: float  # the teacher's pretraining tokens
    distill_tokens: float  # the student's distillation tokens
    counts_inference: bool
    distilled_loss: float  # predicted student loss at the optimum
    supervised_tokens: float  # all of the budget on the student alone
    supervised_loss: float
    distillation_pays: bool


def _split(student: float, budget: float, log_teacher: np.ndarray, logit_share: np.ndarray,
           inference: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N_T, D_T, D_S) for a teacher size and the share of the budget spent pretraining it."""
    teacher = np.exp(log_teacher)
    share = 1.0 / (1.0 + np.exp(-logit_share))
    teacher_tokens = share * budget / (6.0 * teacher)
    distill_tokens = (1.0 - share) * budget / (6.0 * student + (2.0 * teacher if inference else 0.0))
    return teacher, teacher_tokens, distill_tokens


def compute_optimal(coef: Mapping[str, float], student_params: float, budget: float,
                    counts_inference: bool = True) -> ComputeOptimal:
    """Minimise the student's predicted loss over (N_T, D_T, D_S) with the teacher's pretraining inside ``budget``."""
    student = float(student_params)
    x_low, x_high = (math.log(student * r) for r in TEACHER_RATIO_RANGE)
    s_low, s_high = -9.0, 9.0  # logit of the teacher's share: 0.01% to 99.99%
    for _ in range(ZOOMS):
        xs, ss = np.linspace(x_low, x_high, GRID), np.linspace(s_low, s_high, GRID)
        grid_x, grid_s = np.meshgrid(xs, ss, indexing="ij")
        teacher, d_t, d_s = _split(student, budget, grid_x, grid_s, counts_inference)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            loss = student_loss(coef, student, d_s, supervised_loss(coef, teacher, d_t))
        loss = np.where(np.isfinite(loss), loss, np.inf)
        i, j = np.unravel_index(np.argmin(loss), loss.shape)
        dx, ds = 2.0 * (xs[1] - xs[0]), 2.0 * (ss[1] - ss[0])
        x_low, x_high, s_low, s_high = xs[i] - dx, xs[i] + dx, ss[j] - ds, ss[j] + ds
    teacher, d_t, d_s = (float(v) for v in _split(student, budget, np.array(xs[i]), np.array(ss[j]), counts_inference))
    distilled = float(loss[i, j])
    supervised_tokens = budget / (6.0 * student)
    supervised = float(supervised_loss(coef, student, supervised_tokens))
    return ComputeOptimal(budget=budget, student_params=student, teacher_params=teacher, teacher_tokens=d_t,
                          distill_tokens=d_s, counts_inference=counts_inference, distilled_loss=distilled,
                          supervised_tokens=supervised_tokens, supervised_loss=supervised,
                          distillation_pays=distilled < supervised)
