"""Teacher-assistant candidates (capgap.measure.assistant): sizes turned into the sparsity of the sqrt(1 - p) rule,
and the map from a pruned model's every weight to the teacher element it came from."""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from capgap.core.errors import InputError
from capgap.measure import prune
from capgap.sizes.units import ParamCount, parse_size



def parse_candidates(specs: Sequence[str]) -> list[tuple[str, float | int]]:
    """('0.5', '30k') -> [('0.5', 0.5), ('30k', 30000)]: a sparsity (float in (0, 1)) or a size (int)."""
    parsed: list[tuple[str, float | int]] = []
    for spec in (s.strip() for s in specs):
        if not spec:
            continue
        try:
            value = float(spec)
        except ValueError:
            value = None
        if value is not None and value < 1:
            if not 0 < value < 1:
                raise InputError(f"--candidates: sparsity {spec} is out of range; accepted: 0 < p < 1 or a size "
                                 "such as 30k")
            parsed.append((spec, value))
        else:
            parsed.append((spec, parse_size(spec, what="--candidates size")))
    if not parsed:
        raise InputError("--candidates is empty; give sparsities such as 0.3,0.5,0.7 or sizes such as 60k,40k")
    return parsed


def nominal_sparsity(teacher: Any, spec: str, value: float | int) -> float:
    """The p of the sqrt(1 - p) rule for a candidate given as a sparsity or a size."""
    if isinstance(value, float):
        return value
    try:
        p = prune.plan_shape(teacher, value).sparsity
    except InputError as exc:
        raise InputError(f"--candidates {spec}: {exc}") from None
    if p >= 1:
        raise InputError(f"--candidates {spec} is the smallest prunable model; give a larger assistant")
    return p


@dataclass
class Candidate:
    """One candidate assistant of a sandwich: its shape, size and where its weights live in the supernet."""

    spec: str  # as given
    nominal_sparsity: float  # p of the sqrt(1 - p) rule
    params: ParamCount
    model: Any  # a model of the candidate's shape; its own weights are never used (see Sandwich.logits)
    sources: dict[str, tuple[str, torch.Tensor, torch.Size]]  # parameter -> (supernet parameter, flat indices, shape)

    def sparsity(self, teacher_params: int) -> float:
        return 1.0 - self.params.total / teacher_params


def id_probe(model: Any) -> tuple[Any, list[tuple[int, str, int]]]:
    """A float64 CPU copy of ``model``'s architecture whose parameters hold their own global indices."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        probe = AutoModelForCausalLM.from_config(model.config)
    probe = probe.to_empty(device="cpu").to(torch.float64)
    probe.tie_weights()
    names = [n for n, _ in model.named_parameters()]
    if [n for n, _ in probe.named_parameters()] != names:
        raise RuntimeError("the index probe does not have the teacher's parameters")
    ranges, offset = [], 0
    with torch.no_grad():
        for name, param in probe.named_parameters():
            param.copy_(torch.arange(offset, offset + param.numel(), dtype=torch.float64).view_as(param))
            ranges.append((offset, name, param.numel()))
            offset += param.numel()
    return probe, ranges


def element_sources(pruned: Any, ranges: list[tuple[int, str, int]], device: torch.device
             ) -> dict[str, tuple[str, torch.Tensor, torch.Size]]:
    """For each parameter of a pruned index probe, the teacher parameter and flat indices it was copied from."""
    starts = [start for start, _, _ in ranges]
    found = {}
    for name, param in pruned.named_parameters():
        ids = param.detach().reshape(-1)
        # Copied values are distinct whole numbers; a weight left at its init (random, or LayerNorm's ones) is not.
        if not torch.equal(ids, ids.round()) or ids.min() < 0 or ids.unique().numel() != ids.numel():
            raise RuntimeError(f"pruning did not copy {name} from the teacher")
        ids = ids.long()
        start, source, numel = ranges[bisect.bisect_right(starts, int(ids.min())) - 1]
        if int(ids.max()) >= start + numel:
            raise RuntimeError(f"{name} gathers from more than one teacher parameter")
        found[name] = (source, (ids - start).to(device), param.shape)
    return found
