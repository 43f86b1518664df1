"""The reference distillation loss (MiniMA / the capacity-gap paper's protocol).

    total = alpha * CE(student, data) + (1 - alpha) * tau^2 * KL(teacher_tau || student_tau)

KL(teacher || student) = sum_v p_T(v) (log p_T(v) - log p_S(v)) at temperature
tau, averaged over the tokens that have a label. Both models' logits are sliced
to the shared real vocabulary (``vocab_size``) first, so padding rows (Pythia's
50304 vs GPT2's 50257) never take probability mass. Computed in float32.
This is the plain, readable version; faster variants are tested against it.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F


class DistillLoss(NamedTuple):
    total: torch.Tensor  # what is minimised
    ce: torch.Tensor  # cross-entropy on the data, nats/token
    kd: torch.Tensor  # KL(teacher || student) at tau, nats/token, before the tau^2 factor


def distill_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor | None, labels: torch.Tensor, *,
                 alpha: float = 0.5, temperature: float = 1.0, vocab_size: int | None = None,
                 ignore_index: int = -100) -> DistillLoss:
    """Distillation loss over logits ``[..., V]`` and labels ``[...]`` aligned with them.

    ``labels[i]`` is the target of ``student_logits[i]`` (already shifted).
    Without a teacher (pretraining) the loss is plain CE and ``kd`` is zero.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    vocab = vocab_size or student_logits.shape[-1]
    student = student_logits[..., :vocab].float().reshape(-1, vocab)
    targets = labels.reshape(-1)
    ce = F.cross_entropy(student, targets, ignore_index=ignore_index)
    if teacher_logits is None or alpha == 1.0:
        zero = ce.new_zeros(())
        return DistillLoss(ce, ce, zero)
    teacher = teacher_logits[..., :vocab].float().reshape(-1, vocab)
    keep = targets != ignore_index
    log_p_student = F.log_softmax(student[keep] / temperature, dim=-1)
    log_p_teacher = F.log_softmax(teacher[keep] / temperature, dim=-1)
    # kl_div(input=log q, target=log p, log_target=True) = sum p (log p - log q) = KL(p || q).
    kd = F.kl_div(log_p_student, log_p_teacher, log_target=True, reduction="sum") / keep.sum().clamp(min=1)
    total = alpha * ce + (1.0 - alpha) * temperature ** 2 * kd
    return DistillLoss(total, ce, kd)
