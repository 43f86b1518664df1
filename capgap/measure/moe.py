"""Mixture-of-experts students, the MiniMoE way (Zhang et al., ACL 2023, "Lifting the Curse of Capacity Gap").

The MLP of every block of a dense GPT2 or Pythia student becomes ``experts``
experts, each a copy of the dense MLP's shape (same width); attention stays
dense. Per token, a linear router (weight and bias) scores the experts; in
training its logits are multiplied by uniform noise in [1 - eps, 1 + eps];
softmax; top-1. The chosen expert's output is scaled by its gate probability,
so the router gets a gradient through it. Every expert runs on its tokens (an
expert that gets none runs on an empty batch), so all parameters are in every
step's graph and DistributedDataParallel needs no unused-parameter search.

Balance loss (Switch Transformer's): E * sum_e (mean gate probability of e) *
(fraction of tokens routed to e), one per MoE layer, averaged over layers and
added to the distillation loss with weight ``TrainConfig.balance_weight`` (0.01).

Initialisation. Scratch students: every expert and the router are drawn fresh
(normal(0, initializer_range) weights, GPT2's output projections scaled by
1/sqrt(2 * layers) as in its own init, zero biases). Pruned students (the
MoEBERT / MiniMoE split, where the issue is silent decided as follows): the
pruned MLP's m neurons are ranked by the teacher's importance scores
(|dL/dmask|, those that chose them); the top round(2m/3) are shared by every
expert; the remaining m - shared neurons of each expert are an interleaved
slice of the teacher's other neurons ranked by importance (expert e takes
ranks e, e + E, e + 2E, ... of them), so together the experts hold every
neuron of the pruned MLP (its remaining third are the first ranks of that
list) and more of the teacher's. Where the teacher has too few neurons for
disjoint slices, each expert takes the list rotated by e instead (slices
overlap). Weights come from the teacher restricted to the student's residual
channels, as the pruner copies them; then each expert is its own parameters.

The target size of an MoE student is its active size (the dense student's
shape); its total size adds (E - 1) MLPs and the routers.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from capgap.core.errors import InputError
from capgap.measure.config import DEFAULT_EXPERTS, ROUTER_NOISE, STUDENT_KINDS as KINDS
from capgap.sizes.units import ParamCount

if TYPE_CHECKING:
    from transformers import PreTrainedModel

SHARED_FRACTION = 2 / 3  # of a pruned MLP's neurons, shared by every expert
# model_type -> (block list attribute of the base model, MLP input and output projections, Conv1D layout)
_MLPS = {"gpt2": ("h", "c_fc", "c_proj", True), "gpt_neox": ("layers", "dense_h_to_4h", "dense_4h_to_h", False)}


def check_experts(kind: str, experts: int | None) -> int | None:
    """The expert count of a student kind: None for dense, >= 2 for moe; one-line errors otherwise."""
    if kind not in KINDS:
        raise InputError(f"--student-kind {kind!r} is not known; accepted: {', '.join(KINDS)}")
    if kind == "dense":
        if experts is not None:
            raise InputError(f"--experts {experts} needs --student-kind moe; a dense student has one MLP")
        return None
    experts = DEFAULT_EXPERTS if experts is None else experts
    if experts < 2:
        raise InputError(f"--experts {experts} is too few; accepted: 2 or more experts per MoE layer "
                         f"(MiniMoE's default: {DEFAULT_EXPERTS})")
    return experts


def check_family(model_type: str, where: str = "") -> None:
    """Refuse a model whose MLP capgap cannot split into experts."""
    if model_type not in _MLPS:
        place = f" ({where})" if where else ""
        raise InputError(f"--student-kind moe: no MLP to split into experts in a model of type {model_type!r}"
                         f"{place}; accepted: gpt2, gpt_neox (Pythia)")


class MoEMLP(torch.nn.Module):
    """Top-1 mixture of experts in place of a block's MLP; ``balance`` holds the last forward's balance loss."""

    def __init__(self, experts: Sequence[torch.nn.Module], hidden: int, noise: float = ROUTER_NOISE) -> None:
        super().__init__()
        if len(experts) < 2:
            raise ValueError(f"an MoE layer needs at least 2 experts, got {len(experts)}")
        self.experts = torch.nn.ModuleList(experts)
        self.router = torch.nn.Linear(hidden, len(experts))
        self.noise = noise
        self.balance: torch.Tensor | None = None

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """Gate probabilities (tokens, E) of flat inputs (tokens, hidden); noisy logits in training."""
        logits = self.router(x).float()
        if self.training and self.noise > 0:
            logits = logits * torch.empty_like(logits).uniform_(1.0 - self.noise, 1.0 + self.noise)
        return F.softmax(logits, dim=-1)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        shape = hidden_states.shape
        x = hidden_states.reshape(-1, shape[-1])
        probs = self.gate(x)
        gate, choice = probs.max(dim=-1)
        out: torch.Tensor | None = None
        for e, expert in enumerate(self.experts):  # every expert runs, on an empty batch if it has no tokens
            index = (choice == e).nonzero(as_tuple=True)[0]
            y = expert(x.index_select(0, index))
            y = y * gate.index_select(0, index).unsqueeze(-1).to(y.dtype)
            out = y.new_zeros(x.shape[0], y.shape[-1]) if out is None else out
            out = out.index_add(0, index, y)
        self.balance = balance_loss(probs, choice)
        return out.reshape(*shape[:-1], out.shape[-1])


def balance_loss(probs: torch.Tensor, choice: torch.Tensor) -> torch.Tensor:
    """E * sum_e mean_t probs[t, e] * (share of tokens t with choice[t] == e): 1 when balanced and uniform."""
    experts = probs.shape[-1]
    share = torch.bincount(choice, minlength=experts).to(probs.dtype) / max(1, choice.numel())
    return experts * (probs.mean(dim=0) * share).sum()


def moe_layers(model: torch.nn.Module) -> list[MoEMLP]:
    return [m for m in model.modules() if isinstance(m, MoEMLP)]


def model_balance_loss(layers: Sequence[MoEMLP]) -> torch.Tensor | None:
    """The balance loss of the last forward, averaged over ``layers``; None without MoE layers."""
    losses = [layer.balance for layer in layers if layer.balance is not None]
    return torch.stack(losses).mean() if losses else None


def _blocks(model: "PreTrainedModel") -> tuple[list[torch.nn.Module], str, str, bool]:
    model_type = getattr(model.config, "model_type", None)
    check_family(str(model_type))
    blocks, fc_in, fc_out, conv1d = _MLPS[model_type]
    found = list(getattr(model.base_model, blocks))
    if not found or not all(hasattr(b, "mlp") and hasattr(b.mlp, fc_in) for b in found):
        raise InputError(f"--student-kind moe: this {type(model).__name__} has no dense MLP in every block to split "
                         "into experts (already an MoE?); accepted: a dense GPT2 or Pythia student")
    return found, fc_in, fc_out, conv1d


def _fresh(expert: torch.nn.Module, fc_out: str, std: float, out_std: float, generator: torch.Generator) -> None:
    with torch.no_grad():
        for name, p in expert.named_parameters():
            if p.dim() < 2:
                p.zero_()
            else:
                scale = out_std if name.startswith(fc_out + ".") else std
                p.copy_(torch.randn(p.shape, generator=generator, dtype=torch.float32).to(p) * scale)


def expert_neurons(kept: Sequence[int], scores: torch.Tensor, experts: int) -> list[list[int]]:
    """Teacher MLP neuron indices of each expert of one layer (see the module's docstring).

    ``kept``: the pruned MLP's neurons (teacher indices); ``scores``: the teacher's importance of all its neurons.
    """
    width = len(kept)
    ranked = torch.argsort(scores, descending=True, stable=True).tolist()
    kept_set = set(kept)
    ranked_kept = [i for i in ranked if i in kept_set]
    shared = ranked_kept[: int(round(SHARED_FRACTION * width))]
    own = width - len(shared)
    shared_set = set(shared)
    rest = [i for i in ranked_kept if i not in shared_set] + [i for i in ranked if i not in kept_set]
    if len(rest) >= experts * own:
        slices = [rest[e::experts][:own] for e in range(experts)]
    else:  # too few teacher neurons for disjoint slices: overlapping rotations
        slices = [(rest[e % len(rest):] + rest[: e % len(rest)])[:own] if rest else [] for e in range(experts)]
    return [shared + s for s in slices]


def to_moe(model: "PreTrainedModel", experts: int, *, seed: int, noise: float = ROUTER_NOISE,
           teacher: "PreTrainedModel | None" = None, neuron_scores: torch.Tensor | None = None) -> "PreTrainedModel":
    """Replace every block's MLP of a dense student by an MoE layer of ``experts`` experts, in place.

    With ``teacher`` (the model ``model`` was pruned from, ``model.prune_report`` set) and its
    ``neuron_scores`` (layers, teacher MLP width): experts from the pruned MLP's neurons; else fresh.
    """
    from capgap.measure import prune

    blocks, fc_in, fc_out, conv1d = _blocks(model)
    config = model.config
    std = float(getattr(config, "initializer_range", 0.02))
    out_std = std / math.sqrt(2 * len(blocks)) if config.model_type == "gpt2" else std
    generator = torch.Generator().manual_seed(seed)
    hidden = int(getattr(config, "n_embd", None) or config.hidden_size)
    report = getattr(model, "prune_report", None)
    pruned = teacher is not None
    if pruned and (report is None or neuron_scores is None):
        raise ValueError("pruned MoE init needs the pruned student (prune_report) and the teacher's neuron scores")
    teacher_blocks = _blocks(teacher)[0] if pruned else []
    channels = torch.tensor(report.kept_hidden) if pruned else None
    for i, block in enumerate(blocks):
        dense = block.mlp
        layer_experts = [copy.deepcopy(dense) for _ in range(experts)]
        if pruned:
            for expert, neurons in zip(layer_experts, expert_neurons(report.kept_neurons[i], neuron_scores[i], experts)):
                prune.copy_mlp(expert, teacher_blocks[i].mlp, fc_in, fc_out, channels, neurons, conv1d)
        else:
            for expert in layer_experts:
                _fresh(expert, fc_out, std, out_std, generator)
        moe = MoEMLP(layer_experts, hidden, noise)
        with torch.no_grad():
            weight = torch.randn(moe.router.weight.shape, generator=generator) * std
            moe.router.weight.copy_(weight)
            moe.router.bias.zero_()
        param = next(dense.parameters())
        block.mlp = moe.to(device=param.device, dtype=param.dtype)
    model.moe_experts = experts
    return model


def moe_counts(dense: ParamCount, config: Any, experts: int) -> tuple[ParamCount, ParamCount]:
    """(all parameters, parameters used per token) of an MoE student whose dense shape counts ``dense``.

    Each layer adds E - 1 MLPs (2*d*m + m + d each) and a router (d*E + E); one token uses one
    expert and the router. Config arithmetic, as capgap.sizes.units counts dense models.
    """
    if config.model_type == "gpt2":
        d, layers = int(config.n_embd), int(config.n_layer)
        inner = int(config.n_inner or 4 * d)
    else:
        d, layers, inner = int(config.hidden_size), int(config.num_hidden_layers), int(config.intermediate_size)
    mlp, router = 2 * d * inner + inner + d, d * experts + experts
    total = ParamCount(total=dense.total + layers * ((experts - 1) * mlp + router),
                       nonembed=dense.nonembed + layers * ((experts - 1) * mlp + router))
    active = ParamCount(total=dense.total + layers * router, nonembed=dense.nonembed + layers * router)
    return total, active
