"""What one distillation costs in FLOPs under Busbridge et al.'s four teacher-cost scenarios.

Busbridge et al. (arXiv 2502.08606, Eq. 9) count 3F(N_S)D_S + F(N_T)(δ_Lgt·D_S + δ_Pre·3D_T) with
F(N) ≈ 2N: the student's training, plus the teacher's forward passes over the distillation tokens
(δ_Lgt) and the teacher's own pretraining (δ_Pre) when they are counted.
"""

from __future__ import annotations

from typing import Literal

from capgap.sizes.units import TOKENS_PER_PARAM

TeacherCost = Literal["none", "inference", "pretraining", "both"]
TEACHER_COSTS: tuple[TeacherCost, ...] = ("none", "inference", "pretraining", "both")
DEFAULT_TEACHER_COST: TeacherCost = "inference"  # the teacher exists; its forward passes are paid


def counts_inference(cost: TeacherCost) -> bool:
    return cost in ("inference", "both")


def counts_pretraining(cost: TeacherCost) -> bool:
    return cost in ("pretraining", "both")


def without_pretraining(cost: TeacherCost) -> TeacherCost:
    """The same scenario for a teacher whose training is already paid for (an assistant distilled in the chain)."""
    return "inference" if counts_inference(cost) else "none"


def teacher_pretraining_tokens(teacher_params: float) -> float:
    """Tokens a teacher is taken to be pretrained on where it must be paid for: 20 per parameter."""
    return TOKENS_PER_PARAM * float(teacher_params)


def run_flops(student_params: float, teacher_params: float, tokens: float, cost: TeacherCost,
              teacher_tokens: float | None = None) -> float:
    """One distillation: 6·N_S·D, + 2·N_T·D (inference), + 6·N_T·D_T (pretraining; D_T default 20·N_T)."""
    flops = 6.0 * student_params * tokens
    if counts_inference(cost):
        flops += 2.0 * teacher_params * tokens
    if counts_pretraining(cost):
        d_t = teacher_tokens if teacher_tokens is not None else teacher_pretraining_tokens(teacher_params)
        flops += 6.0 * teacher_params * d_t
    return flops


def cost_rule(cost: TeacherCost) -> str:
    """What a strategy's FLOPs count, in words."""
    parts = ["6*N_S*D (student training)"]
    if counts_inference(cost):
        parts.append("2*N_T*D (teacher forward)")
    if counts_pretraining(cost):
        parts.append(f"6*N_T*D_T (teacher pretraining, D_T = {TOKENS_PER_PARAM}*N_T)")
    return f"FLOPs per run = {' + '.join(parts)}; teacher cost: {cost}"
