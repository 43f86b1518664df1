"""The training loop shared by ladder pretraining and distillation.

Pretraining is this loop without a teacher; distillation adds a frozen teacher
and the KD term (capgap.measure.loss). AdamW, linear warmup then cosine decay,
gradient clipping, gradient accumulation up to a token batch, bf16 autocast on
CUDA, optional torch.compile. Batches are non-overlapping windows of the
training tokens in a seeded random order, each used at most once, so a run
never repeats data and is deterministic under its seed on a CPU.

``fast`` swaps in the chunked fused loss (capgap.measure.fused_loss);
``teacher_cache`` reads the teacher's top-k logits from a cache shared by a
sweep's students (capgap.measure.teacher_cache); under torchrun each process
trains on its slice of every micro-batch with DDP (capgap.measure.parallel).
An MoE student's balance loss (capgap.measure.moe) is added to every
micro-batch's loss with weight ``balance_weight``.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass

import torch

from capgap.core.errors import InputError
from capgap.measure.fused_loss import HiddenAndHead, fused_batch_loss
from capgap.measure.loss import DistillLoss, distill_loss
from capgap.measure.moe import MoEMLP, model_balance_loss, moe_layers
from capgap.measure.parallel import init_distributed, loss_normalizer, mean_over_processes, shard_batch, wrap_model
from capgap.measure.config import TrainConfig
from capgap.measure.teacher_cache import CachedTeacher, TeacherTopK, data_order_id


class RunFailed(RuntimeError):
    """Training went wrong in a way another run may not (a non-finite loss): the sweep records it and goes on."""


@dataclass(frozen=True)
class TrainResult:
    tokens: int  # tokens actually trained on
    steps: int
    wall_s: float
    tokens_per_s: float
    last_loss: float
    teacher_cache: str = "off"  # 'written' or 'read' when the teacher came from a top-k cache
    world_size: int = 1  # processes of a torchrun data-parallel run


def resolve_device(device: str) -> torch.device:
    """'cpu' or 'cuda[:i]'; refuses CUDA on a machine without it."""
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError(f"--device {device} asked, but CUDA is not available on this machine; use --device cpu")
        return torch.device(device)
    if device != "cpu":
        raise InputError(f"--device {device!r} is not known; accepted: cpu, cuda, cuda:N")
    return torch.device("cpu")


def plan_steps(config: TrainConfig, available_tokens: int) -> tuple[int, int]:
    """(optimizer steps, sequences per step); refuses a corpus with too few tokens."""
    seqs_per_step = max(1, config.batch_tokens // config.seq_len)
    steps = max(1, math.ceil(config.tokens / (seqs_per_step * config.seq_len)))
    windows = available_tokens // (config.seq_len + 1)
    if steps * seqs_per_step > windows:
        have = windows * config.seq_len
        raise InputError(f"corpus too small: it has {available_tokens} training tokens ({have} usable in windows of "
                         f"{config.seq_len}), but {steps * seqs_per_step * config.seq_len} are needed for --tokens "
                         f"{config.tokens} without repeating data; lower --tokens or give a larger corpus")
    return steps, seqs_per_step


def lr_at(step: int, steps: int, config: TrainConfig) -> float:
    """Learning-rate multiplier: linear warmup, then cosine down to min_lr_ratio."""
    warmup = max(1, int(config.warmup_ratio * steps))
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def build_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters, as every capgap training loop (teachers, students, assistants) uses."""
    # Decay matrices only; biases and LayerNorm gains stay undecayed (the usual GPT recipe).
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.95),
                             fused=config.fused and config.device.startswith("cuda"))


def mixed_precision(device: torch.device):  # noqa: ANN202
    """bf16 autocast on a GPU; on a CPU full precision (a no-op context)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def batch_loss(student: torch.nn.Module, teacher: torch.nn.Module | None, inputs: torch.Tensor,
               targets: torch.Tensor, config: TrainConfig, teacher_top: TeacherTopK | None = None,
               normalizer: torch.Tensor | None = None) -> DistillLoss:
    """The loss of one micro-batch: the single place where logits meet the loss.

    ``normalizer`` (fused path): what the summed loss is divided by; under DDP, the global
    labelled-token count over the world size, so the averaged gradient is the global batch's.
    """
    if config.fused:  # student is a HiddenAndHead: no full logits anywhere
        return fused_batch_loss(student, teacher, inputs, targets, teacher_topk=teacher_top, alpha=config.alpha,
                                temperature=config.temperature, vocab_size=config.vocab_size,
                                normalizer=normalizer, compile_chunks=config.compile)
    student_logits = student(input_ids=inputs).logits
    teacher_logits = None
    if teacher is not None:
        with torch.no_grad():
            teacher_logits = teacher(input_ids=inputs).logits
    return distill_loss(student_logits, teacher_logits, targets, alpha=config.alpha,
                        temperature=config.temperature, vocab_size=config.vocab_size)


def with_balance(loss: DistillLoss, layers: list[MoEMLP], weight: float) -> DistillLoss:
    """The loss plus ``weight`` times the MoE balance loss of the last forward (unchanged without MoE layers)."""
    balance = model_balance_loss(layers)
    return loss if balance is None else loss._replace(total=loss.total + weight * balance)


def train(student: torch.nn.Module, train_ids: torch.Tensor, config: TrainConfig,
          teacher: torch.nn.Module | None = None) -> TrainResult:
    """Train ``student`` in place on ``train_ids`` (1-D token ids); distil from ``teacher`` when given."""
    context = init_distributed(resolve_device(config.device))  # one process unless under torchrun
    device = context.device
    steps, seqs_per_step = plan_steps(config, len(train_ids))
    if context.enabled and config.micro_batch % context.world_size:
        raise InputError(f"a micro-batch of {config.micro_batch} sequences does not split over "
                         f"{context.world_size} processes; use a --nproc-per-node that divides it")
    window = config.seq_len + 1
    windows = train_ids[: (len(train_ids) // window) * window].view(-1, window)
    generator = torch.Generator().manual_seed(config.seed)
    order = torch.randperm(len(windows), generator=generator)[: steps * seqs_per_step]

    student.to(device).train()
    if teacher is not None:
        teacher.to(device).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
    forward_model = wrap_model(HiddenAndHead(student) if config.fused else student, context)
    forward_model = torch.compile(forward_model) if config.compile else forward_model
    cached = None
    if config.teacher_cache and teacher is not None and config.alpha < 1.0:
        if seqs_per_step % config.micro_batch:
            raise InputError(f"--teacher-cache needs equal micro-batches: {seqs_per_step} sequences per step do "
                             f"not split into micro-batches of {config.micro_batch}")
        local_micro = config.micro_batch // context.world_size
        vocab = config.vocab_size or min(student.config.vocab_size, teacher.config.vocab_size)
        if not 1 <= config.cache_top_k <= vocab:
            raise InputError(f"--cache-top-k {config.cache_top_k} out of range; accepted: 1 to the shared "
                             f"vocabulary size {vocab}")
        order_id = data_order_id(train_ids, order, seq_len=config.seq_len, micro_batch=config.micro_batch,
                                 rank=context.rank, world_size=context.world_size)
        cached = CachedTeacher(config.teacher_cache, config.teacher_id, order_id,
                               micro_batches=steps * (seqs_per_step // config.micro_batch),
                               batch_shape=(local_micro, config.seq_len), vocab_size=vocab,
                               temperature=config.temperature, k=config.cache_top_k)
    experts = moe_layers(student)  # an MoE student's layers: their balance loss joins every micro-batch's
    optimizer = build_optimizer(student, config)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_at(s, steps, config))
    bar = _progress_bar(steps * seqs_per_step * config.seq_len, config.progress if context.is_main else None)
    start, last_loss = time.perf_counter(), float("nan")
    for step in range(steps):
        step_windows = order[step * seqs_per_step:(step + 1) * seqs_per_step]
        micro_batches = step_windows.split(config.micro_batch)
        optimizer.zero_grad(set_to_none=True)
        step_loss = 0.0
        for index, micro in enumerate(micro_batches):
            batch = shard_batch(windows[micro], context).to(device)
            with mixed_precision(device):
                top = None if cached is None else cached.topk(step * len(micro_batches) + index, batch[:, :-1], teacher)
                normalizer = loss_normalizer(batch[:, 1:], context) if config.fused else None
                loss = batch_loss(forward_model, teacher, batch[:, :-1], batch[:, 1:], config, top, normalizer)
                loss = with_balance(loss, experts, config.balance_weight)
            # Weight by share of the step's sequences so the step's gradient is a plain mean.
            (loss.total * (len(micro) / seqs_per_step)).backward()
            step_loss += mean_over_processes(loss.total, context).item() * len(micro) / seqs_per_step
        if not math.isfinite(step_loss):  # the weights would be NaN from here on: no result to record
            raise RunFailed(f"loss is {step_loss} at step {step + 1} of {steps}")
        torch.nn.utils.clip_grad_norm_(student.parameters(), config.grad_clip)
        optimizer.step()
        schedule.step()
        last_loss = step_loss
        if bar is not None:
            bar.update(seqs_per_step * config.seq_len)
            bar.set_postfix(loss=f"{step_loss:.3f}", refresh=False)
    if bar is not None:
        bar.close()
    if cached is not None:
        cached.finish()
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - start
    tokens = steps * seqs_per_step * config.seq_len
    student.eval()
    return TrainResult(tokens=tokens, steps=steps, wall_s=wall, tokens_per_s=tokens / max(wall, 1e-9), last_loss=last_loss,
                       teacher_cache=cached.mode if cached is not None else "off", world_size=context.world_size)


def _progress_bar(total: int, label: str | None):  # noqa: ANN202
    if label is None:
        return None
    from tqdm.auto import tqdm

    # tqdm shows tokens/s and the time left from the token counter.
    return tqdm(total=total, desc=label, unit="tok", unit_scale=True, mininterval=2.0, leave=False)
