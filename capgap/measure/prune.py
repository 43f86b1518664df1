"""Structured pruning of a GPT2 or GPT-NeoX (Pythia) teacher into a smaller student.

The paper's student initialisation (Zhang et al., arXiv 2311.07052): remove
attention heads, MLP neurons and hidden (residual) channels of the teacher,
keep its depth, and return a NEW model of the same class whose config is an
ordinary Hugging Face config, so ``from_pretrained`` loads what
``save_pretrained`` wrote.

Importance. A mask variable z = 1 is multiplied into every head's output
(the input of the attention output projection), every MLP activation (the
input of the MLP output projection) and every hidden channel of the residual
stream (the embedding output and every sublayer's output, so a channel is
removed everywhere at once). Its importance is |dL/dz| of the language-model
loss, summed over the calibration batches (first-order Taylor estimate of
the loss change when the unit is removed). Heads and neurons are ranked
within each layer, hidden channels across the whole model.

Shape. Hugging Face GPT2 and GPT-NeoX tie the attention width to the hidden
size (hidden_size == num_heads * head_dim) and use one head count, one head
size and one MLP width for every layer. A student keeps the teacher's depth
and takes heads' heads of head_dim' channels each, hidden' = heads' * head_dim'
residual channels (chosen by their own importance: attention's inner width and
the residual width only need equal sizes, not equal indices) and inner' MLP
neurons. This is the only choice that yields a normal config without adding
projection layers. Cutting a head's channels (head_dim' < head_dim) keeps the
same channels of its query, key and value, ranked by the importance of the
head's output channels; the query is scaled by sqrt(head_dim' / head_dim) so
the attention logits keep their scale. GPT-NeoX keeps every rotary channel
(head_dim' >= rotary dims) and its rotary frequencies.

Sparsity. An overall sparsity p is split per dimension as
p' = 1 - sqrt(1 - p): hidden channels and MLP neurons each keep a fraction
sqrt(1 - p), so every weight matrix keeps about 1 - p of its entries. For an
absolute target, p is found by bisection on the exact parameter count
(``capgap.sizes.units.count_params``); then the plan searches heads', head_dim' and
inner' together. Whole heads move the count in big steps, so first: of all
head counts at the teacher's head size whose MLP width lands within half a
neuron per layer of the target, the one whose width is closest to the rule's
inner * sqrt(1 - p) (GPT2-124M to 50M: 7 of 12 heads, hidden 448, MLP 1611 of
3072 neurons, 49,997,764 parameters). Where no whole-head shape lands (tiny
models, whose embeddings dominate the count), smaller heads fill the gap:
every (heads', head_dim') pair is tried, and the shape closest to the rule in
both hidden and MLP width wins. Failing that, the closest size within the
stated tolerance.

Tolerance of ``prune_to_params``: |actual - target| <= max(2% of the target,
one MLP neuron in every layer = L * (2 * hidden' + 1)), stated in the report;
the plan usually lands within half a neuron per layer. Between the smallest
prunable student (1 head of the smallest head size, 1 neuron per layer) and
the teacher every target is reachable; outside, the error names the range.

The returned model carries a ``prune_report`` attribute (:class:`PruneReport`)
with what was kept and the teacher's and student's parameter counts
(``count_params`` of the configs). To cut one teacher to several sizes, score
it once with :func:`compute_importance` and pass ``importance=`` to each call.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import torch
from pydantic import BaseModel, ConfigDict
from scipy.optimize import bisect
from transformers import AutoModelForCausalLM, PreTrainedModel

from capgap.core.errors import InputError
from capgap.sizes.units import ParamCount, count_params, format_size, parse_size

Measure = Literal["total", "nonembed"]
MEASURES = ("total", "nonembed")


@dataclass(frozen=True)
class _Family:
    """Where one model family keeps the parts that pruning touches."""

    layers: str
    attention: str
    qkv: str
    attn_out: str
    mlp_in: str
    mlp_out: str
    norms: tuple[str, ...]
    final_norm: str
    embed_dropout: str
    extra_embeddings: tuple[str, ...]  # position embeddings sliced with the hidden channels
    conv1d: bool  # GPT2's Conv1D stores weights as (in, out), nn.Linear as (out, in)
    qkv_head_major: bool  # NeoX lays QKV out per head [q k v]; GPT2 as [all q | all k | all v]
    hidden_key: str
    heads_key: str
    inner_key: str


_FAMILIES = {
    "gpt2": _Family(
        layers="h", attention="attn", qkv="c_attn", attn_out="c_proj", mlp_in="c_fc",
        mlp_out="c_proj", norms=("ln_1", "ln_2"), final_norm="ln_f", embed_dropout="drop",
        extra_embeddings=("wpe",), conv1d=True, qkv_head_major=False,
        hidden_key="n_embd", heads_key="n_head", inner_key="n_inner"),
    "gpt_neox": _Family(
        layers="layers", attention="attention", qkv="query_key_value", attn_out="dense",
        mlp_in="dense_h_to_4h", mlp_out="dense_4h_to_h",
        norms=("input_layernorm", "post_attention_layernorm"), final_norm="final_layer_norm",
        embed_dropout="emb_dropout", extra_embeddings=(), conv1d=False, qkv_head_major=True,
        hidden_key="hidden_size", heads_key="num_attention_heads", inner_key="intermediate_size"),
}


class PruneReport(BaseModel):
    """What a pruning kept, for run records."""

    model_config = ConfigDict(frozen=True)

    family: str
    sparsity: float  # p of the per-dimension rule sqrt(1 - p)
    target_params: int | None  # None when pruned by sparsity
    measure: Measure
    tolerance: int | None  # stated bound on |student - target| in `measure` units
    teacher: ParamCount
    student: ParamCount
    num_heads: int
    head_dim: int
    hidden_size: int
    intermediate_size: int
    kept_heads: list[list[int]]  # per layer, teacher head indices
    kept_head_channels: list[int]  # channels of each kept head (indices within a teacher head; all when uncut)
    kept_neurons: list[list[int]]  # per layer, teacher MLP neuron indices
    kept_hidden: list[int]  # teacher residual channel indices


class MaskImportance(BaseModel):
    """|dL/dmask| summed over calibration batches, one score per prunable unit."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    heads: torch.Tensor  # (layers, heads)
    neurons: torch.Tensor  # (layers, intermediate)
    hidden: torch.Tensor  # (hidden,)
    head_channels: torch.Tensor | None = None  # (layers, heads * head_dim): each head's output channels


@dataclass(frozen=True)
class _Shape:
    heads: int
    inner: int
    head_dim: int


class ShapePlan(NamedTuple):
    """A student shape cut from a teacher: what ``plan_shape`` returns."""

    heads: int
    head_dim: int
    intermediate_size: int
    sparsity: float  # p of the per-dimension rule
    tolerance: int  # stated bound on |student - target|


# -- model anatomy -------------------------------------------------------------

def _family(model: PreTrainedModel) -> _Family:
    model_type = getattr(model.config, "model_type", None)
    if model_type not in _FAMILIES:
        raise InputError(f"cannot prune model_type {model_type!r}; accepted: gpt2, gpt_neox (Pythia)")
    if getattr(model.config, "add_cross_attention", False):
        raise InputError("cannot prune a GPT2 with cross-attention; accepted: decoder-only GPT2")
    return _FAMILIES[model_type]


def _blocks(model: PreTrainedModel, fam: _Family) -> list[torch.nn.Module]:
    return list(getattr(model.base_model, fam.layers))


def _dims(model: PreTrainedModel, fam: _Family) -> tuple[int, int, int, int]:
    """(layers, heads, head_dim, intermediate) of a model."""
    cfg = model.config.to_dict()
    hidden, heads = int(cfg[fam.hidden_key]), int(cfg[fam.heads_key])
    inner = int(cfg.get(fam.inner_key) or 4 * hidden)
    return len(_blocks(model, fam)), heads, hidden // heads, inner


def _rotary_dims(model: PreTrainedModel, fam: _Family) -> int:
    """Rotary channels per head (GPT-NeoX); 0 for GPT2."""
    if not fam.qkv_head_major:
        return 0
    _, _, head_dim, _ = _dims(model, fam)
    rope = getattr(model.config, "rope_parameters", None) or {}
    factor = rope.get("partial_rotary_factor", getattr(model.config, "rotary_pct", 1.0))
    return int(head_dim * factor)


def _config_dict(model: PreTrainedModel, fam: _Family, shape: _Shape) -> dict[str, Any]:
    _, _, head_dim, _ = _dims(model, fam)
    cfg = model.config.to_dict()
    cfg.update({fam.hidden_key: shape.heads * shape.head_dim, fam.heads_key: shape.heads,
                fam.inner_key: shape.inner})
    if shape.head_dim != head_dim and fam.qkv_head_major:
        # Keep the same rotary channels: int(head_dim' * factor) must be the teacher's count (the 0.5 absorbs rounding).
        factor = (_rotary_dims(model, fam) + 0.5) / shape.head_dim
        if isinstance(cfg.get("rope_parameters"), dict):
            cfg["rope_parameters"] = {**cfg["rope_parameters"], "partial_rotary_factor": factor}
        if "rotary_pct" in cfg:
            cfg["rotary_pct"] = factor
    return cfg


def student_config_dict(model: PreTrainedModel, plan: ShapePlan) -> dict[str, Any]:
    """The teacher's config resized to a planned shape (``model`` may live on the meta device)."""
    return _config_dict(model, _family(model), _Shape(plan.heads, plan.intermediate_size, plan.head_dim))


def _count(model: PreTrainedModel, fam: _Family, shape: _Shape, measure: Measure) -> int:
    return getattr(count_params(_config_dict(model, fam, shape)), measure)


# -- importance ----------------------------------------------------------------

def _check_batches(model: PreTrainedModel, batches: Sequence[torch.Tensor]) -> None:
    if len(batches) == 0:
        raise InputError("no calibration batches; pass at least one (batch, seq) tensor of token ids")
    vocab = int(model.config.vocab_size)
    for i, batch in enumerate(batches):
        if not isinstance(batch, torch.Tensor) or batch.dim() != 2 or batch.dtype != torch.long:
            raise InputError(f"calibration batch {i} is not a 2-D LongTensor of token ids (batch, seq)")
        if batch.shape[1] < 2:
            raise InputError(f"calibration batch {i} has {batch.shape[1]} tokens per row; need at least 2")
        if batch.min() < 0 or batch.max() >= vocab:
            raise InputError(f"calibration batch {i} has token ids outside [0, {vocab})")


def compute_importance(model: PreTrainedModel, calib_batches: Sequence[torch.LongTensor]) -> MaskImportance:
    """First-order importance |dL/dz| of every head, MLP neuron and hidden channel.

    Computed once per teacher, it can be passed to :func:`prune_to_params`
    for every student size. The model's weights and training mode are left
    as they were; hooks are removed on return.
    """
    fam = _family(model)
    _check_batches(model, calib_batches)
    layers, heads, head_dim, inner = _dims(model, fam)
    hidden = heads * head_dim
    param = next(model.parameters())
    # Masks in the weights' dtype: an fp32 mask would upcast bf16 activations.
    head_mask = torch.ones(layers, heads, device=param.device, dtype=param.dtype, requires_grad=True)
    neuron_mask = torch.ones(layers, inner, device=param.device, dtype=param.dtype, requires_grad=True)
    hidden_mask = torch.ones(hidden, device=param.device, dtype=param.dtype, requires_grad=True)
    channel_mask = torch.ones(layers, hidden, device=param.device, dtype=param.dtype, requires_grad=True)

    def scale_output(module, args, output):
        return output * hidden_mask

    def scale_heads(layer: int):
        def hook(module, args):
            x = args[0] * channel_mask[layer]
            x = (x.unflatten(-1, (heads, head_dim)) * head_mask[layer][:, None]).flatten(-2)
            return (x, *args[1:])
        return hook

    def scale_neurons(layer: int):
        def hook(module, args):
            return (args[0] * neuron_mask[layer], *args[1:])
        return hook

    handles = [getattr(model.base_model, fam.embed_dropout).register_forward_hook(scale_output)]
    for i, block in enumerate(_blocks(model, fam)):
        attn_out = getattr(getattr(block, fam.attention), fam.attn_out)
        mlp_out = getattr(block.mlp, fam.mlp_out)
        handles += [attn_out.register_forward_pre_hook(scale_heads(i)),
                    attn_out.register_forward_hook(scale_output),
                    mlp_out.register_forward_pre_hook(scale_neurons(i)),
                    mlp_out.register_forward_hook(scale_output)]

    scores = [torch.zeros(m.shape, dtype=torch.float32, device=param.device)
              for m in (head_mask, neuron_mask, hidden_mask, channel_mask)]
    was_training = model.training
    model.eval()  # no dropout: the scores should not depend on its draws
    try:
        with torch.enable_grad():
            for batch in calib_batches:
                batch = batch.to(param.device)
                loss = model(input_ids=batch, labels=batch, use_cache=False).loss
                grads = torch.autograd.grad(loss, [head_mask, neuron_mask, hidden_mask, channel_mask])
                for total, grad in zip(scores, grads):
                    total += grad.detach().float().abs()
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return MaskImportance(heads=scores[0].cpu(), neurons=scores[1].cpu(), hidden=scores[2].cpu(),
                          head_channels=scores[3].cpu())


def _top(scores: torch.Tensor, k: int) -> list[int]:
    """Indices of the k highest scores, in their original order (ties: lower index)."""
    order = torch.argsort(scores, descending=True, stable=True)[:k]
    return sorted(order.tolist())


# -- building the student ------------------------------------------------------

def _qkv_rows(heads: list[int], head_dim: int, hidden: int, head_major: bool, channels: list[int]) -> torch.Tensor:
    """Output indices of the fused QKV projection that belong to the kept heads' kept channels."""
    dims = torch.tensor(channels)
    if head_major:  # NeoX: per head, [q | k | v] of head_dim each
        return torch.cat([h * 3 * head_dim + part * head_dim + dims for h in heads for part in range(3)])
    return torch.cat([part * hidden + h * head_dim + dims for part in range(3) for h in heads])


def _head_cols(heads: list[int], head_dim: int, channels: list[int]) -> torch.Tensor:
    return torch.cat([h * head_dim + torch.tensor(channels) for h in heads])


def _kept_channels(model: PreTrainedModel, fam: _Family, importance: MaskImportance, keep: int) -> list[int]:
    """Which channels of every head to keep (one choice for all heads): rotary ones always, the rest by importance.

    A channel's score sums its output's |dL/dz| over all layers and heads (zeros without scores: the first ones).
    """
    layers, heads, head_dim, _ = _dims(model, fam)
    if keep == head_dim:
        return list(range(head_dim))
    rotary = _rotary_dims(model, fam)
    scores = (importance.head_channels if importance.head_channels is not None
              else torch.zeros(layers, heads * head_dim)).reshape(layers, heads, head_dim).sum(dim=(0, 1))
    return list(range(rotary)) + [rotary + i for i in _top(scores[rotary:], keep - rotary)]


def _scale_queries(qkv: torch.nn.Module, fam: _Family, heads: int, head_dim: int, factor: float) -> None:
    """Multiply the query part of a fused QKV projection by ``factor`` (student layout)."""
    if fam.qkv_head_major:  # NeoX rows: per head [q | k | v]
        rows = torch.cat([h * 3 * head_dim + torch.arange(head_dim) for h in range(heads)])
        qkv.weight[rows] *= factor
    else:  # GPT2 Conv1D columns: [all q | all k | all v]
        rows = torch.arange(heads * head_dim)
        qkv.weight[:, rows] *= factor
    if getattr(qkv, "bias", None) is not None:
        qkv.bias[rows.to(qkv.bias.device)] *= factor


def _copy_projection(dst: torch.nn.Module, src: torch.nn.Module, inputs: torch.Tensor,
                     outputs: torch.Tensor, conv1d: bool) -> None:
    """Copy the (inputs -> outputs) block of a Linear or Conv1D into a smaller one."""
    weight = src.weight.index_select(0, inputs).index_select(1, outputs) if conv1d \
        else src.weight.index_select(0, outputs).index_select(1, inputs)
    dst.weight.copy_(weight)
    if getattr(src, "bias", None) is not None:
        dst.bias.copy_(src.bias.index_select(0, outputs))


def copy_mlp(dst: torch.nn.Module, src: torch.nn.Module, mlp_in: str, mlp_out: str, channels: torch.Tensor,
             neurons: Sequence[int], conv1d: bool) -> None:
    """Copy MLP ``neurons`` (indices of ``src``'s) restricted to residual ``channels`` into a smaller MLP ``dst``."""
    dev = getattr(src, mlp_in).weight.device
    hid, kept = channels.to(dev), torch.tensor(list(neurons), device=dev, dtype=torch.long)
    with torch.no_grad():
        _copy_projection(getattr(dst, mlp_in), getattr(src, mlp_in), hid, kept, conv1d)
        _copy_projection(getattr(dst, mlp_out), getattr(src, mlp_out), kept, hid, conv1d)


def _copy_norm(dst: torch.nn.Module, src: torch.nn.Module, channels: torch.Tensor) -> None:
    dst.weight.copy_(src.weight.index_select(0, channels))
    if src.bias is not None:
        dst.bias.copy_(src.bias.index_select(0, channels))


def _build(model: PreTrainedModel, fam: _Family, shape: _Shape, importance: MaskImportance
           ) -> tuple[PreTrainedModel, list[list[int]], list[list[int]], list[int], list[int]]:
    layers, heads, head_dim, _ = _dims(model, fam)
    hidden = heads * head_dim
    config = type(model.config).from_dict(_config_dict(model, fam, shape))
    attn_impl = getattr(model.config, "_attn_implementation", None)
    kwargs = {"attn_implementation": attn_impl} if attn_impl else {}
    param = next(model.parameters())
    with param.device:  # initialise on the teacher's device: random init of a large student on a CPU is slow
        student = AutoModelForCausalLM.from_config(config, **kwargs).to(dtype=param.dtype)
    if type(student) is not type(model):
        raise InputError(f"cannot prune a {type(model).__name__}; accepted: GPT2LMHeadModel, GPTNeoXForCausalLM")

    kept_hidden = _top(importance.hidden, shape.heads * shape.head_dim)
    channels = _kept_channels(model, fam, importance, shape.head_dim)
    kept_heads = [_top(importance.heads[i], shape.heads) for i in range(layers)]
    kept_neurons = [_top(importance.neurons[i], shape.inner) for i in range(layers)]
    dev = param.device
    hid = torch.tensor(kept_hidden, device=dev)
    every_vocab = torch.arange(int(model.config.vocab_size), device=dev)

    with torch.no_grad():
        src_in, dst_in = model.get_input_embeddings(), student.get_input_embeddings()
        dst_in.weight.copy_(src_in.weight.index_select(1, hid))
        src_out, dst_out = model.get_output_embeddings(), student.get_output_embeddings()
        if dst_out.weight is not dst_in.weight:  # untied (Pythia): its own matrix
            _copy_projection(dst_out, src_out, hid, every_vocab, conv1d=False)
        for name in fam.extra_embeddings:
            src_pos, dst_pos = getattr(model.base_model, name), getattr(student.base_model, name)
            dst_pos.weight.copy_(src_pos.weight.index_select(1, hid))
        _copy_norm(getattr(student.base_model, fam.final_norm), getattr(model.base_model, fam.final_norm), hid)

        for i, (src, dst) in enumerate(zip(_blocks(model, fam), _blocks(student, fam))):
            for norm in fam.norms:
                _copy_norm(getattr(dst, norm), getattr(src, norm), hid)
            src_attn, dst_attn = getattr(src, fam.attention), getattr(dst, fam.attention)
            qkv = _qkv_rows(kept_heads[i], head_dim, hidden, fam.qkv_head_major, channels).to(dev)
            _copy_projection(getattr(dst_attn, fam.qkv), getattr(src_attn, fam.qkv), hid, qkv, fam.conv1d)
            if shape.head_dim != head_dim:  # logits are divided by sqrt(head_dim'): keep the teacher's scale
                _scale_queries(getattr(dst_attn, fam.qkv), fam, shape.heads, shape.head_dim,
                               math.sqrt(shape.head_dim / head_dim))
            head_cols = _head_cols(kept_heads[i], head_dim, channels).to(dev)
            _copy_projection(getattr(dst_attn, fam.attn_out), getattr(src_attn, fam.attn_out),
                             head_cols, hid, fam.conv1d)
            copy_mlp(dst.mlp, src.mlp, fam.mlp_in, fam.mlp_out, hid, kept_neurons[i], fam.conv1d)

    student.train(model.training)
    return student, kept_heads, kept_neurons, kept_hidden, channels


# -- sizing --------------------------------------------------------------------

def _shape_for_sparsity(heads: int, inner: int, head_dim: int, sparsity: float) -> _Shape:
    keep = math.sqrt(1.0 - sparsity)  # per-dimension keep fraction: p' = 1 - sqrt(1 - p)
    return _Shape(heads=max(1, round(heads * keep)), inner=max(1, round(inner * keep)), head_dim=head_dim)


def _neuron_cost(layers: int, hidden: int) -> int:
    """Parameters one MLP neuron adds in every layer: a row in, a bias, a column out."""
    return layers * (2 * hidden + 1)


RELATIVE_TOLERANCE = 0.02  # a student within 2% of its target size is that size for any law fit


def stated_tolerance(target: int, layers: int, hidden: int) -> int:
    """The bound a plan promises: 2% of the target, or one MLP neuron per layer where that is coarser."""
    return max(math.ceil(RELATIVE_TOLERANCE * target), _neuron_cost(layers, hidden))


def _check_measure(measure: str) -> None:
    if measure not in MEASURES:
        raise InputError(f"measure {measure!r} is not known; accepted: {', '.join(MEASURES)}")


def _prune(model: PreTrainedModel, fam: _Family, shape: _Shape, sparsity: float,
           calib_batches: Sequence[torch.LongTensor], importance: MaskImportance | None,
           target: int | None, measure: Measure, tolerance: int | None) -> PreTrainedModel:
    if importance is None:
        importance = compute_importance(model, calib_batches)
    layers, heads, head_dim, inner = _dims(model, fam)
    expected = ((layers, heads), (layers, inner), (heads * head_dim,))
    if (tuple(importance.heads.shape), tuple(importance.neurons.shape), tuple(importance.hidden.shape)) != expected:
        raise InputError("importance scores were computed for another model; "
                         "accepted: compute_importance(model, ...) of this teacher")
    student, kept_heads, kept_neurons, kept_hidden, channels = _build(model, fam, shape, importance)
    student.prune_report = PruneReport(
        family=model.config.model_type, sparsity=sparsity, target_params=target,
        measure=measure, tolerance=tolerance, teacher=count_params(model.config.to_dict()),
        student=count_params(student.config.to_dict()), num_heads=shape.heads, head_dim=shape.head_dim,
        hidden_size=shape.heads * shape.head_dim, intermediate_size=shape.inner, kept_heads=kept_heads,
        kept_head_channels=channels, kept_neurons=kept_neurons, kept_hidden=kept_hidden)
    return student


def prune_by_sparsity(model: PreTrainedModel, sparsity: float, calib_batches: Sequence[torch.LongTensor],
                      *, importance: MaskImportance | None = None) -> PreTrainedModel:
    """Prune a sparsity p: heads, hidden channels and MLP neurons each keep sqrt(1 - p).

    Counts are rounded to whole heads and neurons (at least one of each);
    sparsity 0 returns an exact copy of the teacher. The actual counts are in
    ``result.prune_report.student``.
    """
    fam = _family(model)
    if not (isinstance(sparsity, (int, float)) and 0.0 <= sparsity < 1.0):
        raise InputError(f"sparsity {sparsity!r} is out of range; accepted: a number in [0, 1)")
    _, heads, head_dim, inner = _dims(model, fam)
    shape = _shape_for_sparsity(heads, inner, head_dim, float(sparsity))
    return _prune(model, fam, shape, float(sparsity), calib_batches, importance, None, "total", None)


class _Candidate(NamedTuple):
    error: int  # |count - target|
    heads: int
    head_dim: int
    inner: int


def _candidates(model: PreTrainedModel, fam: _Family, target: int, measure: Measure) -> list[_Candidate]:
    """For every (heads', head_dim'), the MLP width whose count lands nearest the target."""
    layers, heads, head_dim, inner = _dims(model, fam)
    found = []
    for d in range(head_dim, max(1, _rotary_dims(model, fam)) - 1, -1):
        for h in range(1, heads + 1):
            cost = _neuron_cost(layers, h * d)
            base = _count(model, fam, _Shape(h, 1, d), measure) - cost  # count_params reads width 0 as 4*hidden
            width = min(max(round((target - base) / cost), 1), inner)
            found.append(_Candidate(abs(base + width * cost - target), h, d, width))
    return found


def plan_shape(model: PreTrainedModel, target_params: int, *, measure: Measure = "total") -> ShapePlan:
    """The student shape that prunes `model` to `target_params` (module doc, "Sparsity").

    Bisection finds the sparsity p whose sqrt(1 - p) rule meets the target; then heads', head_dim'
    and the MLP width are searched together: whole heads first, smaller heads where no whole-head
    shape lands within half a neuron per layer, else the closest shape within the stated tolerance.
    """
    fam = _family(model)
    _check_measure(measure)
    target = parse_size(target_params, what="target student size")
    layers, heads, head_dim, inner = _dims(model, fam)
    teacher = _count(model, fam, _Shape(heads, inner, head_dim), measure)
    smallest_dim = max(1, _rotary_dims(model, fam))
    smallest = _count(model, fam, _Shape(1, 1, smallest_dim), measure)
    reachable = (f"reachable from this teacher: {smallest} to {teacher - 1} {measure} parameters "
                 f"({format_size(smallest)} to {format_size(teacher)})")
    if target >= teacher:
        raise InputError(f"target student size {target} is not smaller than the teacher "
                         f"({teacher} {measure} parameters); {reachable}")
    if target < smallest:
        raise InputError(f"target student size {target} is below the smallest prunable student "
                         f"(1 head of {smallest_dim} channel(s), 1 MLP neuron per layer); {reachable}")

    def excess(p: float) -> float:
        return _count(model, fam, _shape_for_sparsity(heads, inner, head_dim, p), measure) - target

    sparsity = 1.0 if excess(1.0) >= 0 else bisect(excess, 0.0, 1.0, xtol=1e-9)
    keep = max(math.sqrt(1.0 - sparsity), 1e-9)  # p = 1 only when the target is at the smallest size
    candidates = _candidates(model, fam, target, measure)

    def lands(c: _Candidate) -> bool:  # within half a neuron per layer
        return c.error <= math.ceil(_neuron_cost(layers, c.heads * c.head_dim) / 2)

    def off_rule(c: _Candidate) -> tuple[float, int]:  # distance from the sqrt(1 - p) rule in both widths
        return (abs(math.log(c.heads * c.head_dim / (heads * head_dim * keep)))
                + abs(math.log(c.inner / (inner * keep))), -c.head_dim)

    whole = [c for c in candidates if c.head_dim == head_dim and lands(c)]
    landing = [c for c in candidates if lands(c)]
    if whole:  # whole heads: the width closest to the rule's
        best = min(whole, key=lambda c: (abs(c.inner - inner * keep), c.heads))
    elif landing:
        best = min(landing, key=off_rule)
    else:
        best = min(candidates, key=lambda c: (c.error, off_rule(c)))
    tolerance = stated_tolerance(target, layers, best.heads * best.head_dim)
    if best.error > tolerance:  # not seen for GPT2 or Pythia shapes: the search is dense between the bounds
        raise InputError(f"no shape reaches {target} {measure} parameters within {tolerance} (closest: "
                         f"{best.error} away); {reachable}")
    return ShapePlan(best.heads, best.head_dim, best.inner, sparsity, tolerance)


def prune_to_params(model: PreTrainedModel, target_params: int, calib_batches: Sequence[torch.LongTensor],
                    *, measure: Measure = "total", importance: MaskImportance | None = None) -> PreTrainedModel:
    """Prune `model` to `target_params` parameters (``measure``: total or nonembed).

    The result is a new model of the same class, within ``prune_report.tolerance``
    (2% of the target, or one MLP neuron per layer where that is coarser) of the target;
    ``prune_report.student`` holds the size achieved. Pass ``importance`` from
    :func:`compute_importance` to reuse one teacher's scores for several student sizes.
    """
    fam = _family(model)
    plan = plan_shape(model, target_params, measure=measure)
    target = parse_size(target_params, what="target student size")
    return _prune(model, fam, _Shape(plan.heads, plan.intermediate_size, plan.head_dim), plan.sparsity,
                  calib_batches, importance, target, measure, plan.tolerance)
