"""Distillation loss computed chunk by chunk from hidden states and the output layer.

The reference path materialises fp32 logits for every position of the batch
(16 × 1024 × 50257 × 4 bytes = 3.3 GB for the student alone, again for the
teacher, and again for each softmax and gradient). Here logits exist for one
chunk of positions at a time: the forward pass of each chunk also computes the
loss's gradient with respect to that chunk's logits (it has a closed form) and
turns it at once into gradients for the hidden states and the head weight, so
the backward pass only rescales what was stored. One pass, no recomputation.

Loss (same as the reference ``capgap.measure.loss.distill_loss``):
    total = alpha * CE(student, labels) + (1 - alpha) * tau^2 * KL(teacher_tau || student_tau)
averaged over positions whose label is not ``ignore_index``; both terms see
only the first ``vocab_size`` (shared, real) entries of each vocabulary.

The teacher enters either as hidden states + its head weight (logits
recomputed per chunk, never stored) or as a top-k cache (``TeacherTopK``):
then the KL is taken over k + 1 bins, the teacher's top-k tokens and one bin
holding the rest of both distributions' mass.
"""

from __future__ import annotations

import torch

from capgap.measure.loss import DistillLoss
from capgap.measure.teacher_cache import TeacherTopK

# 1024 positions × 50k vocab × 4 bytes = 200 MB per fp32 temporary: small
# next to a 16k-position batch, large enough to keep the matmuls efficient.
DEFAULT_CHUNK_POSITIONS = 1024


class HiddenAndHead(torch.nn.Module):
    """A Hugging Face causal LM that stops before its output layer.

    ``forward(input_ids)`` returns the final hidden states (after the last
    norm) and the output layer's weight, what ``fused_distill_loss`` takes.
    Returning the weight from forward keeps the whole step inside one module,
    so DistributedDataParallel and torch.compile see every parameter used.
    """

    def __init__(self, causal_lm: torch.nn.Module) -> None:
        super().__init__()
        self.causal_lm = causal_lm

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.causal_lm.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return hidden, self.causal_lm.get_output_embeddings().weight


def _chunk_kd_full(log_q: torch.Tensor, t_tau: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row KL(p || q) and its gradient w.r.t. the student's logits/tau, from full teacher logits."""
    log_p = torch.log_softmax(t_tau, dim=-1)
    p = log_p.exp()
    kl = (p * (log_p - log_q)).sum(-1)
    return kl, log_q.exp() - p


def _chunk_kd_topk(log_q: torch.Tensor, top: TeacherTopK, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row KL over k+1 bins (teacher's top-k, rest) and its gradient w.r.t. the student's logits/tau.

    The gradient is q - p~, where p~ is the teacher's top-k probabilities on
    its top-k tokens and its rest mass spread over the other tokens in the
    student's proportions.
    """
    index = top.indices.long()
    log_p_top = top.values.float() / temperature - top.logsumexp.float().unsqueeze(-1)
    p_top = log_p_top.exp()
    # Rest mass 1 - sum(p_top), kept >= 0 against rounding of the cached values.
    p_rest = (-torch.expm1(torch.logsumexp(log_p_top, dim=-1))).clamp_min(0.0)
    log_q_top = log_q.gather(-1, index)
    # log of the student's rest mass straight from the logits: 1 - sum(q_top) cancels badly.
    log_q_rest = torch.logsumexp(log_q.scatter(-1, index, float("-inf")), dim=-1)
    # With k = the whole vocabulary the rest bin is empty (log_q_rest = -inf): drop it.
    rest_exists = torch.isfinite(log_q_rest) & (p_rest > 0)
    log_ratio = torch.where(rest_exists, torch.log(p_rest) - log_q_rest, float("-inf"))
    kl = (torch.xlogy(p_top, p_top) - p_top * log_q_top).sum(-1) \
        + torch.where(rest_exists, p_rest * log_ratio, 0.0)
    # outside the top-k: q_j - p_rest * q_j / q_rest, in log space to avoid overflow
    grad = log_q.exp() - (log_q + log_ratio.unsqueeze(-1)).exp()
    grad.scatter_(-1, index, log_q_top.exp() - p_top)
    return kl, grad


def _chunk_logit_grad(s: torch.Tensor, t: torch.Tensor | None, top_values: torch.Tensor | None,
                      top_indices: torch.Tensor | None, top_lse: torch.Tensor | None, label: torch.Tensor,
                      alpha: float, temperature: float, ignore_index: int
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Summed CE, summed KL and d(loss sum)/d(logits) for one chunk of fp32 student logits ``s``.

    The teacher is ``t`` (its logits) or the top-k triple. Elementwise work
    only, so torch.compile can fuse it into a few kernels.
    """
    valid = (label != ignore_index).unsqueeze(-1)
    target = label.clamp(0, s.shape[-1] - 1).long().unsqueeze(-1)
    log_prob = torch.log_softmax(s, dim=-1)
    ce_sum = (-log_prob.gather(-1, target) * valid).sum()
    # d CE / ds = softmax(s) - onehot(label)
    grad = alpha * log_prob.exp().scatter_add(-1, target, -torch.ones_like(target, dtype=s.dtype))
    kd_sum = torch.zeros_like(ce_sum)
    if alpha < 1.0:
        # log q at the temperature (the CE's log-softmax when tau = 1)
        log_q = log_prob if temperature == 1.0 else torch.log_softmax(s / temperature, dim=-1)
        if t is not None:
            kl, grad_kd = _chunk_kd_full(log_q, t if temperature == 1.0 else t / temperature)
        else:
            kl, grad_kd = _chunk_kd_topk(log_q, TeacherTopK(top_values, top_indices, top_lse, temperature),
                                         temperature)
        kd_sum = (kl * valid.squeeze(-1)).sum()
        # d(tau^2 KL(s / tau))/ds = tau * (q - p)
        grad = grad + ((1.0 - alpha) * temperature) * grad_kd
    return ce_sum, kd_sum, grad * valid


_compiled_chunk_logit_grad = None


def _chunk_function(compile_chunks: bool):  # noqa: ANN202
    """The per-chunk elementwise function, compiled once per process when asked."""
    global _compiled_chunk_logit_grad
    if not compile_chunks:
        return _chunk_logit_grad
    if _compiled_chunk_logit_grad is None:
        _compiled_chunk_logit_grad = torch.compile(_chunk_logit_grad, dynamic=False)
    return _compiled_chunk_logit_grad


class _FusedDistillLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, student_hidden, student_head, teacher_hidden, teacher_head, top_values, top_indices,
                top_lse, labels, normalizer, alpha, temperature, vocab_size, ignore_index, chunk_positions,
                compile_chunks):
        grad_hidden = torch.empty_like(student_hidden, dtype=torch.float32)
        grad_head = torch.zeros(vocab_size, student_head.shape[1], dtype=torch.float32, device=student_head.device)
        head = student_head[:vocab_size]
        teacher_head = teacher_head[:vocab_size] if teacher_head is not None else None
        ce_sum = torch.zeros((), dtype=torch.float32, device=student_hidden.device)
        kd_sum = torch.zeros_like(ce_sum)
        scale = 1.0 / normalizer
        chunk_fn = _chunk_function(compile_chunks)
        for start in range(0, student_hidden.shape[0], chunk_positions):
            rows = slice(start, start + chunk_positions)
            hidden = student_hidden[rows]
            s = (hidden @ head.T).float()
            t = (teacher_hidden[rows] @ teacher_head.T).float() if teacher_hidden is not None and alpha < 1.0 else None
            top = (top_values[rows], top_indices[rows], top_lse[rows]) if top_values is not None else (None,) * 3
            ce_chunk, kd_chunk, grad_s = chunk_fn(s, t, *top, labels[rows], alpha, temperature, ignore_index)
            ce_sum += ce_chunk
            kd_sum += kd_chunk
            grad_s = (grad_s * scale).to(hidden.dtype)
            grad_hidden[rows] = grad_s @ head
            grad_head += grad_s.T @ hidden
        ce = ce_sum * scale
        kd = kd_sum * scale
        total = alpha * ce + (1.0 - alpha) * temperature ** 2 * kd
        if student_head.shape[0] > vocab_size:  # padded rows beyond the shared vocab get no gradient
            grad_head = torch.cat([grad_head, grad_head.new_zeros(student_head.shape[0] - vocab_size, grad_head.shape[1])])
        ctx.save_for_backward(grad_hidden, grad_head)
        ctx.dtypes = (student_hidden.dtype, student_head.dtype)
        ctx.mark_non_differentiable(ce, kd)
        return total, ce, kd

    @staticmethod
    def backward(ctx, grad_total, _grad_ce, _grad_kd):
        grad_hidden, grad_head = ctx.saved_tensors
        hidden_dtype, head_dtype = ctx.dtypes
        return ((grad_hidden * grad_total).to(hidden_dtype), (grad_head * grad_total).to(head_dtype),
                None, None, None, None, None, None, None, None, None, None, None, None, None)


def fused_distill_loss(student_hidden: torch.Tensor, student_head: torch.Tensor, labels: torch.Tensor, *,
                       teacher_hidden: torch.Tensor | None = None, teacher_head: torch.Tensor | None = None,
                       teacher_topk: TeacherTopK | None = None, alpha: float = 0.5, temperature: float = 1.0,
                       vocab_size: int | None = None, ignore_index: int = -100,
                       normalizer: torch.Tensor | float | None = None,
                       chunk_positions: int = DEFAULT_CHUNK_POSITIONS, compile_chunks: bool = False) -> DistillLoss:
    """CE + KD from final hidden states and output-layer weights, chunk by chunk.

    ``student_hidden`` is ``[..., d_s]`` (the output of the final norm) and
    ``labels`` the token each position must predict (already shifted), same
    leading shape. ``student_head`` is the output layer's weight ``[V_s, d_s]``.
    The teacher is ``teacher_hidden`` ``[..., d_t]`` with ``teacher_head``
    ``[V_t, d_t]``, or ``teacher_topk`` (from a ``TeacherCache``); with
    ``alpha == 1`` neither is needed. ``vocab_size`` (default: the smaller
    head) is the shared real vocabulary. ``normalizer`` is what sums are
    divided by (default: the number of labelled positions; data-parallel
    training passes the global count).

    Under autocast the matmuls run in the autocast dtype; softmaxes are fp32.
    ``compile_chunks`` fuses each chunk's softmax arithmetic with torch.compile
    (worth it on a GPU, where that arithmetic is memory-bound).
    """
    hidden = student_hidden.reshape(-1, student_hidden.shape[-1])
    flat_labels = labels.reshape(-1)
    if flat_labels.shape[0] != hidden.shape[0]:
        raise ValueError(f"labels cover {flat_labels.shape[0]} positions, hidden states {hidden.shape[0]}")
    head_vocab = [student_head.shape[0]]
    teacher_flat = None
    if alpha < 1.0:
        if teacher_topk is not None:
            k = teacher_topk.values.shape[-1]
            if teacher_topk.temperature != temperature:
                raise ValueError(f"the teacher's top-k was taken at temperature {teacher_topk.temperature}, "
                                 f"the loss uses {temperature}")
            teacher_topk = TeacherTopK(teacher_topk.values.reshape(-1, k), teacher_topk.indices.reshape(-1, k),
                                       teacher_topk.logsumexp.reshape(-1), temperature)
        elif teacher_hidden is not None and teacher_head is not None:
            teacher_flat = teacher_hidden.reshape(-1, teacher_hidden.shape[-1]).detach()
            head_vocab.append(teacher_head.shape[0])
        else:
            raise ValueError("alpha < 1 needs the teacher: teacher_hidden and teacher_head, or teacher_topk")
    vocab = vocab_size or min(head_vocab)
    if vocab > min(head_vocab):
        raise ValueError(f"vocab_size {vocab} exceeds an output layer of {min(head_vocab)} rows")
    if normalizer is None:
        normalizer = (flat_labels != ignore_index).sum().clamp_min(1)
    # Run the matmuls in the autocast dtype: casting here keeps autograd's cast
    # backward, so fp32 master weights receive fp32 gradients.
    device_type = hidden.device.type
    compute_dtype = torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else hidden.dtype
    with torch.autocast(device_type, enabled=False):
        t_hidden = teacher_flat.to(compute_dtype) if teacher_flat is not None else None
        t_head = teacher_head.detach().to(compute_dtype) if teacher_flat is not None else None
        top = teacher_topk if teacher_topk is not None and alpha < 1.0 else TeacherTopK(None, None, None, temperature)
        total, ce, kd = _FusedDistillLoss.apply(
            hidden.to(compute_dtype), student_head.to(compute_dtype), t_hidden, t_head,
            top.values, top.indices, top.logsumexp, flat_labels, normalizer,
            float(alpha), float(temperature), int(vocab), int(ignore_index), int(chunk_positions), compile_chunks)
    return DistillLoss(total, ce, kd)


def fused_batch_loss(student_forward: torch.nn.Module, teacher: torch.nn.Module | None, inputs: torch.Tensor,
                     targets: torch.Tensor, *, teacher_topk: TeacherTopK | None = None, alpha: float = 0.5,
                     temperature: float = 1.0, vocab_size: int | None = None,
                     normalizer: torch.Tensor | float | None = None, compile_chunks: bool = False) -> DistillLoss:
    """One micro-batch's loss on the fast path: ``student_forward`` is a ``HiddenAndHead`` (maybe compiled or
    under DDP); the teacher is a causal LM run here, or its ``teacher_topk``; without either, plain CE."""
    hidden, head = student_forward(inputs)
    teacher_inputs: dict = {"teacher_topk": teacher_topk}
    if teacher_topk is None and teacher is not None and alpha < 1.0:
        with torch.no_grad():
            teacher_inputs = {"teacher_hidden": teacher.base_model(input_ids=inputs).last_hidden_state,
                              "teacher_head": teacher.get_output_embeddings().weight}
    elif teacher_topk is None:
        alpha = 1.0
    return fused_distill_loss(hidden, head, targets, alpha=alpha, temperature=temperature, vocab_size=vocab_size,
                              normalizer=normalizer, compile_chunks=compile_chunks, **teacher_inputs)
