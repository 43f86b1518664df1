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
size (hidden_size == num_heads * head_dim) and use one head count and one
MLP width for every layer. We therefore keep head_dim fixed (so GPT-NeoX's
rotary dimensions are untouched), keep the same number heads' of heads in
every layer and hidden' = heads' * head_dim hidden channels, the channels
chosen by their own importance (attention's inner width and the residual width only need
equal sizes, not equal indices). This is the only choice that yields a
normal config without adding projection layers.

Sparsity. An overall sparsity p is split per dimension as
p' = 1 - sqrt(1 - p): heads (hence hidden) and MLP neurons each keep a
fraction sqrt(1 - p), so every weight matrix keeps about 1 - p of its
entries. For an absolute target, p is found by bisection on the exact
parameter count (``capgap.sizes.count_params``). Heads move the count in big
steps (head_dim hidden channels each), so the MLP width, which moves it by
one neuron per layer, absorbs the remainder: of all head counts whose MLP
width lands on the target, we take the one whose width is closest to the
rule's inner * sqrt(1 - p). Example, GPT2-124M to 50M: p = 0.71, 7 of 12
heads (hidden 448), MLP 1611 of 3072 neurons (the rule says 1662), 49,997,764
parameters.

Tolerance of ``prune_to_params``: |actual - target| <= ceil(L * (2 * hidden' + 1) / 2),
half a neuron in every layer (one neuron costs 2 * hidden' + 1 parameters
per layer). For GPT2-124M pruned to 50M that is 5,382 parameters (0.01%).

The returned model carries a ``prune_report`` attribute (:class:`PruneReport`)
with what was kept and the teacher's and student's parameter counts
(``count_params`` of the configs). To cut one teacher to several sizes, score
it once with :func:`compute_importance` and pass ``importance=`` to each call.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict
from scipy.optimize import bisect
from transformers import AutoModelForCausalLM, PreTrainedModel

from capgap.errors import InputError
from capgap.sizes import ParamCount, count_params, parse_size

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
    hidden_size: int
    intermediate_size: int
    kept_heads: list[list[int]]  # per layer, teacher head indices
    kept_neurons: list[list[int]]  # per layer, teacher MLP neuron indices
    kept_hidden: list[int]  # teacher residual channel indices


class MaskImportance(BaseModel):
    """|dL/dmask| summed over calibration batches, one score per prunable unit."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    heads: torch.Tensor  # (layers, heads)
    neurons: torch.Tensor  # (layers, intermediate)
    hidden: torch.Tensor  # (hidden,)


@dataclass(frozen=True)
class _Shape:
    heads: int
    inner: int


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


def _config_dict(model: PreTrainedModel, fam: _Family, shape: _Shape) -> dict[str, Any]:
    _, _, head_dim, _ = _dims(model, fam)
    cfg = model.config.to_dict()
    cfg.update({fam.hidden_key: shape.heads * head_dim, fam.heads_key: shape.heads,
                fam.inner_key: shape.inner})
    return cfg


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

    def scale_output(module, args, output):
        return output * hidden_mask

    def scale_heads(layer: int):
        def hook(module, args):
            x = args[0]
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
              for m in (head_mask, neuron_mask, hidden_mask)]
    was_training = model.training
    model.eval()  # no dropout: the scores should not depend on its draws
    try:
        with torch.enable_grad():
            for batch in calib_batches:
                batch = batch.to(param.device)
                loss = model(input_ids=batch, labels=batch, use_cache=False).loss
                grads = torch.autograd.grad(loss, [head_mask, neuron_mask, hidden_mask])
                for total, grad in zip(scores, grads):
                    total += grad.detach().float().abs()
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return MaskImportance(heads=scores[0].cpu(), neurons=scores[1].cpu(), hidden=scores[2].cpu())


def _top(scores: torch.Tensor, k: int) -> list[int]:
    """Indices of the k highest scores, in their original order (ties: lower index)."""
    order = torch.argsort(scores, descending=True, stable=True)[:k]
    return sorted(order.tolist())


# -- building the student ------------------------------------------------------

def _qkv_rows(heads: list[int], head_dim: int, hidden: int, head_major: bool) -> torch.Tensor:
    """Output indices of the fused QKV projection that belong to the kept heads."""
    dims = torch.arange(head_dim)
    if head_major:  # NeoX: per head, [q | k | v] of head_dim each
        return torch.cat([h * 3 * head_dim + part * head_dim + dims for h in heads for part in range(3)])
    return torch.cat([part * hidden + h * head_dim + dims for part in range(3) for h in heads])


def _head_cols(heads: list[int], head_dim: int) -> torch.Tensor:
    return torch.cat([h * head_dim + torch.arange(head_dim) for h in heads])


def _copy_projection(dst: torch.nn.Module, src: torch.nn.Module, inputs: torch.Tensor,
                     outputs: torch.Tensor, conv1d: bool) -> None:
    """Copy the (inputs -> outputs) block of a Linear or Conv1D into a smaller one."""
    weight = src.weight.index_select(0, inputs).index_select(1, outputs) if conv1d \
        else src.weight.index_select(0, outputs).index_select(1, inputs)
    dst.weight.copy_(weight)
    if getattr(src, "bias", None) is not None:
        dst.bias.copy_(src.bias.index_select(0, outputs))


def _copy_norm(dst: torch.nn.Module, src: torch.nn.Module, channels: torch.Tensor) -> None:
    dst.weight.copy_(src.weight.index_select(0, channels))
    if src.bias is not None:
        dst.bias.copy_(src.bias.index_select(0, channels))


def _build(model: PreTrainedModel, fam: _Family, shape: _Shape, importance: MaskImportance
           ) -> tuple[PreTrainedModel, list[list[int]], list[list[int]], list[int]]:
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

    kept_hidden = _top(importance.hidden, shape.heads * head_dim)
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
            qkv = _qkv_rows(kept_heads[i], head_dim, hidden, fam.qkv_head_major).to(dev)
            _copy_projection(getattr(dst_attn, fam.qkv), getattr(src_attn, fam.qkv), hid, qkv, fam.conv1d)
            head_cols = _head_cols(kept_heads[i], head_dim).to(dev)
            _copy_projection(getattr(dst_attn, fam.attn_out), getattr(src_attn, fam.attn_out),
                             head_cols, hid, fam.conv1d)
            neurons = torch.tensor(kept_neurons[i], device=dev)
            _copy_projection(getattr(dst.mlp, fam.mlp_in), getattr(src.mlp, fam.mlp_in), hid, neurons, fam.conv1d)
            _copy_projection(getattr(dst.mlp, fam.mlp_out), getattr(src.mlp, fam.mlp_out), neurons, hid, fam.conv1d)

    student.train(model.training)
    return student, kept_heads, kept_neurons, kept_hidden


# -- sizing --------------------------------------------------------------------

def _shape_for_sparsity(heads: int, inner: int, sparsity: float) -> _Shape:
    keep = math.sqrt(1.0 - sparsity)  # per-dimension keep fraction: p' = 1 - sqrt(1 - p)
    return _Shape(heads=max(1, round(heads * keep)), inner=max(1, round(inner * keep)))


def _neuron_cost(layers: int, hidden: int) -> int:
    """Parameters one MLP neuron adds in every layer: a row in, a bias, a column out."""
    return layers * (2 * hidden + 1)


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
    student, kept_heads, kept_neurons, kept_hidden = _build(model, fam, shape, importance)
    student.prune_report = PruneReport(
        family=model.config.model_type, sparsity=sparsity, target_params=target,
        measure=measure, tolerance=tolerance, teacher=count_params(model.config.to_dict()),
        student=count_params(student.config.to_dict()), num_heads=shape.heads,
        hidden_size=shape.heads * head_dim, intermediate_size=shape.inner, kept_heads=kept_heads,
        kept_neurons=kept_neurons, kept_hidden=kept_hidden)
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
    _, heads, _, inner = _dims(model, fam)
    shape = _shape_for_sparsity(heads, inner, float(sparsity))
    return _prune(model, fam, shape, float(sparsity), calib_batches, importance, None, "total", None)


def plan_shape(model: PreTrainedModel, target_params: int, *, measure: Measure = "total"
               ) -> tuple[int, int, float, int]:
    """(heads, intermediate, sparsity, tolerance) that prune `model` to `target_params`.

    Bisection finds the sparsity p whose sqrt(1 - p) rule meets the target;
    then each head count gets the MLP width that lands on the target, and the
    head count whose width is closest to the rule's wins.
    """
    fam = _family(model)
    _check_measure(measure)
    target = parse_size(target_params, what="target student size")
    layers, heads, head_dim, inner = _dims(model, fam)
    teacher = _count(model, fam, _Shape(heads, inner), measure)
    if target >= teacher:
        raise InputError(f"target student size {target} is not smaller than the teacher "
                         f"({teacher} {measure} parameters); accepted: a smaller size")
    smallest = _count(model, fam, _Shape(1, 1), measure)
    if target < smallest:
        raise InputError(f"target student size {target} is below the smallest prunable student "
                         f"(1 head, 1 MLP neuron per layer: {smallest} {measure} parameters)")

    def excess(p: float) -> float:
        return _count(model, fam, _shape_for_sparsity(heads, inner, p), measure) - target

    sparsity = 1.0 if excess(1.0) >= 0 else bisect(excess, 0.0, 1.0, xtol=1e-9)
    rule_inner = inner * math.sqrt(1.0 - sparsity)
    # Heads come in steps of head_dim hidden channels; of the head counts whose MLP
    # width can land on the target, take the one whose width strays least from the rule's.
    best: tuple[float, int, int, int] | None = None
    for h in range(1, heads + 1):
        cost = _neuron_cost(layers, h * head_dim)
        base = _count(model, fam, _Shape(h, 1), measure) - cost  # count_params reads width 0 as 4*hidden
        width = round((target - base) / cost)
        tolerance = math.ceil(cost / 2)
        if 1 <= width <= inner and abs(base + width * cost - target) <= tolerance:
            best = min(best or (math.inf,), (abs(width - rule_inner), h, width, tolerance))
    if best is None:  # unreachable for ordinary shapes: the smallest student was checked above
        raise InputError(f"no head count and MLP width reach {target} {measure} parameters "
                         f"within half a neuron per layer")
    _, h, width, tolerance = best
    return h, width, sparsity, tolerance


def prune_to_params(model: PreTrainedModel, target_params: int, calib_batches: Sequence[torch.LongTensor],
                    *, measure: Measure = "total", importance: MaskImportance | None = None) -> PreTrainedModel:
    """Prune `model` to `target_params` parameters (``measure``: total or nonembed).

    The result is a new model of the same class, within
    ``prune_report.tolerance`` (half an MLP neuron per layer) of the target.
    Pass ``importance`` from :func:`compute_importance` to reuse one
    teacher's scores for several student sizes.
    """
    fam = _family(model)
    heads, inner, sparsity, tolerance = plan_shape(model, target_params, measure=measure)
    target = parse_size(target_params, what="target student size")
    return _prune(model, fam, _Shape(heads, inner), sparsity, calib_batches, importance,
                  target, measure, tolerance)
