"""The sandwich run of the teacher-assistant search (capgap.measure.assistant): every candidate trained at once on
the teacher's shared weights (the supernet), then each scored by m + lambda * s."""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch.func import functional_call

from capgap.core.errors import InputError
from capgap.measure import prune
from capgap.measure.assistant_candidates import Candidate, element_sources, id_probe
from capgap.measure.config import TrainConfig
from capgap.measure.loss import distill_loss
from capgap.measure.models import param_count
from capgap.measure.train import build_optimizer, lr_at, mixed_precision, plan_steps, resolve_device

PERFORMANCE = "exp(teacher_loss - eval_loss)"  # m, stated in every record and output


class Sandwich:
    """Nested candidate assistants sharing one trainable copy of the teacher (module doc, "Sandwich run").

    Candidates are ordered from the largest (lowest sparsity) to the smallest.
    """

    def __init__(self, teacher: Any, candidates: Sequence[tuple[str, float]], importance: prune.MaskImportance):
        reference = next(teacher.parameters())
        self.supernet = copy.deepcopy(teacher)
        for param in self.supernet.parameters():
            param.requires_grad_(True)
        self.teacher_params = param_count(teacher.config).total
        probe, ranges = id_probe(teacher)
        built: list[Candidate] = []
        for spec, p in sorted(candidates, key=lambda c: c[1]):
            pruned = prune.prune_by_sparsity(probe, p, [], importance=importance)
            skeleton = copy.deepcopy(pruned).to(device=reference.device, dtype=reference.dtype)
            for param in skeleton.parameters():
                param.requires_grad_(False)
            skeleton.eval()  # train_sandwich switches it to training mode (dropout) for the run
            built.append(Candidate(spec, p, pruned.prune_report.student, skeleton,
                                   element_sources(pruned, ranges, reference.device)))
        seen: dict[tuple[int, int, int], str] = {}
        for c in built:
            report = c.model.prune_report
            shape = (report.num_heads, report.hidden_size, report.intermediate_size)
            if shape in seen:
                raise InputError(f"--candidates {seen[shape]} and {c.spec} give the same assistant ({report.num_heads} "
                                 f"heads, MLP {report.intermediate_size}); give sparsities further apart")
            seen[shape] = c.spec
        self.candidates = built

    def _weights(self, index: int) -> dict[str, torch.Tensor]:
        named = dict(self.supernet.named_parameters())
        return {name: named[source].reshape(-1)[ids].view(shape)
                for name, (source, ids, shape) in self.candidates[index].sources.items()}

    def logits(self, index: int, input_ids: torch.Tensor) -> torch.Tensor:
        """Candidate ``index``'s logits, its weights gathered from the supernet (gradients flow back to it)."""
        model = self.candidates[index].model
        return functional_call(model, self._weights(index), args=(), kwargs={"input_ids": input_ids}).logits

    def elements(self, index: int) -> dict[str, set[int]]:
        """Which supernet elements candidate ``index`` uses, per supernet parameter."""
        used: dict[str, set[int]] = {}
        for source, ids, _ in self.candidates[index].sources.values():
            used.setdefault(source, set()).update(ids.tolist())
        return used

    def extract(self, index: int) -> Any:
        """Candidate ``index`` as an ordinary model of its shape (its ``prune_report`` kept), weights copied out."""
        model = copy.deepcopy(self.candidates[index].model)
        with torch.no_grad():
            weights = self._weights(index)
            for name, param in model.named_parameters():
                param.copy_(weights[name])
                param.requires_grad_(True)
        return model.eval()


def sandwich_sample(count: int, k: int, generator: torch.Generator) -> list[int]:
    """The candidates of one step: the largest (0), k middle ones drawn without replacement, the smallest."""
    middle = list(range(1, count - 1))
    if k < len(middle):
        middle = sorted(1 + i for i in torch.randperm(len(middle), generator=generator)[:k].tolist())
    return sorted({0, *middle, count - 1})


@dataclass
class SandwichRun:
    tokens: int  # per candidate sampled
    steps: int
    flops: float
    wall_s: float
    sampled: list[list[int]]  # candidates of each step
    last_loss: float  # the step's summed loss over its sampled candidates


def sandwich_gradients(sandwich: Sandwich, teacher: Any, batch: torch.Tensor, chosen: Sequence[int],
                       config: TrainConfig, weight: float = 1.0) -> float:
    """Add ``weight`` times the gradient of each chosen candidate's distillation loss on ``batch`` to the supernet.

    One teacher forward for all of them; returns the summed loss.
    """
    device = batch.device
    inputs, targets = batch[:, :-1], batch[:, 1:]
    total = 0.0
    with torch.no_grad(), mixed_precision(device):
        teacher_logits = teacher(input_ids=inputs).logits
    for index in chosen:
        with mixed_precision(device):
            loss = distill_loss(sandwich.logits(index, inputs), teacher_logits, targets, alpha=config.alpha,
                                temperature=config.temperature, vocab_size=config.vocab_size).total
        (loss * weight).backward()
        total += loss.item() * weight
    return total


def train_sandwich(sandwich: Sandwich, teacher: Any, train_ids: torch.Tensor, config: TrainConfig, k: int,
                   progress: Callable[[int, int, float], None] | None = None) -> SandwichRun:
    """The scoring run: ``config.tokens`` tokens; each step the largest, the smallest and k sampled middle candidates."""
    device = resolve_device(config.device)
    steps, seqs_per_step = plan_steps(config, len(train_ids))
    window = config.seq_len + 1
    windows = train_ids[: (len(train_ids) // window) * window].view(-1, window)
    order = torch.randperm(len(windows), generator=torch.Generator().manual_seed(config.seed))[: steps * seqs_per_step]
    sampler = torch.Generator().manual_seed(config.seed)
    teacher.eval()
    sandwich.supernet.train()
    for c in sandwich.candidates:
        c.model.train()
    optimizer = build_optimizer(sandwich.supernet, config)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_at(s, steps, config))
    step_tokens = seqs_per_step * config.seq_len
    teacher_params = sandwich.teacher_params
    flops, history, last = 0.0, [], float("nan")
    start = time.perf_counter()
    for step in range(steps):
        chosen = sandwich_sample(len(sandwich.candidates), k, sampler)
        history.append(chosen)
        optimizer.zero_grad(set_to_none=True)
        last = 0.0
        for micro in order[step * seqs_per_step:(step + 1) * seqs_per_step].split(config.micro_batch):
            last += sandwich_gradients(sandwich, teacher, windows[micro].to(device), chosen, config,
                                       weight=len(micro) / seqs_per_step)
        torch.nn.utils.clip_grad_norm_(sandwich.supernet.parameters(), config.grad_clip)
        optimizer.step()
        schedule.step()
        flops += step_tokens * (2.0 * teacher_params + 6.0 * sum(sandwich.candidates[i].params.total for i in chosen))
        if progress is not None:
            progress(step + 1, steps, last)
    for c in sandwich.candidates:
        c.model.eval()
    return SandwichRun(tokens=steps * step_tokens, steps=steps, flops=flops, wall_s=time.perf_counter() - start,
                       sampled=history, last_loss=last)


# -- scoring -------------------------------------------------------------------

@dataclass(frozen=True)
class CandidateScore:
    spec: str
    nominal_sparsity: float  # p of the sqrt(1 - p) rule
    sparsity: float  # 1 - params / teacher params: what the tradeoff uses
    params: int
    params_nonembed: int
    eval_loss: float  # held-out, after the sandwich run
    performance: float  # m = exp(teacher_loss - eval_loss)
    tradeoff: float  # t = m + lambda * sparsity


def performance(loss: float, teacher_loss: float) -> float:
    """m, higher is better: the candidate's per-token probability relative to the teacher's (module doc)."""
    return math.exp(teacher_loss - loss)


def tradeoff(m: float, sparsity: float, lam: float) -> float:
    """MiniDisc's lambda-tradeoff t = m + lambda * sparsity."""
    return m + lam * sparsity


def choose(scores: Sequence[CandidateScore]) -> int:
    """Index of the largest tradeoff; on a tie, the larger (less sparse) candidate."""
    return max(range(len(scores)), key=lambda i: (scores[i].tradeoff, -scores[i].sparsity))


def score_candidates(sandwich: Sandwich, evaluate: Callable[[Any], float], teacher_loss: float,
                     lam: float) -> list[CandidateScore]:
    """Every candidate's held-out loss (``evaluate`` of its extracted model), m and t."""
    scores = []
    for index, c in enumerate(sandwich.candidates):
        loss = evaluate(sandwich.extract(index))
        s = c.sparsity(sandwich.teacher_params)
        m = performance(loss, teacher_loss)
        scores.append(CandidateScore(c.spec, c.nominal_sparsity, s, c.params.total, c.params.nonembed, loss, m,
                                     tradeoff(m, s, lam)))
    return scores
