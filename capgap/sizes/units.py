"""Parameter counts, size strings and FLOP accounting.

Counts come from config arithmetic (no torch), checked in the tests against
the exact published totals of the GPT2 and Pythia ladders.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from capgap.core.errors import InputError

_SUFFIX = {"": 1, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}
_SIZE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMbBgGtT]?)\s*$")
# Default tokens per parameter (Chinchilla-optimal, Hoffmann et al. 2022): the distillation tokens
# D_S = 20 * N_S where the user gives none, and the teachers' training tokens where unknown.
TOKENS_PER_PARAM = 20
SIZE_FORMS = "a positive count such as 124439808, 1.3e9, 350k, 70M or 1.3B"


def parse_size(value: str | int | float, *, what: str = "size") -> int:
    """Parse '70M', '1.3B', '350k', '1.3e9' or 124439808 into a positive int."""
    if isinstance(value, bool):
        raise InputError(f"{what} {value!r} is not a size; expected {SIZE_FORMS}")
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        text = str(value).replace("_", "").replace(",", "").strip()
        match = _SIZE_RE.match(text.removeprefix("-"))
        if not match:
            raise InputError(f"{what} {str(value)!r} is not a size; expected {SIZE_FORMS}")
        number = float(match.group(1)) * _SUFFIX[match.group(2).lower()] * (-1 if text.startswith("-") else 1)
    if number < 0:
        raise InputError(f"{what} {str(value)!r}: size must be positive; expected {SIZE_FORMS}")
    if not math.isfinite(number) or number < 1:
        raise InputError(f"{what} {value!r} must be a positive count; expected {SIZE_FORMS}")
    return int(round(number))


def format_size(params: float) -> str:
    """124439808 -> '124M', 1.3e9 -> '1.3B' (three significant digits); 1e15 and beyond as '3.61e+19'."""
    if abs(params) >= 1e15:
        return f"{params:.3g}"
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(params) >= scale:
            return f"{params / scale:.3g}{unit}"
    return f"{params:.3g}"


def format_ratio(ratio: float) -> str:
    """A multiplier as a reader writes it: 2.53 -> '2.5x', 77.5 -> '78x', 13354361323.95 -> '13,000,000,000x'."""
    if ratio < 10:
        return f"{ratio:.2g}x"
    if ratio < 1000:
        return f"{ratio:.0f}x"
    return f"{float(f'{ratio:.2g}'):,.0f}x"


class ParamCount(BaseModel):
    """Total and non-embedding parameter counts of one model."""

    model_config = ConfigDict(frozen=True)
    total: int
    nonembed: int


def _block_params(d: int, inner: int, bias: bool = True) -> int:
    """One pre-LN transformer block: 2 LayerNorms, fused QKV, out-proj, 2-layer MLP."""
    b = 1 if bias else 0
    layernorms = 2 * 2 * d
    attention = d * 3 * d + b * 3 * d + d * d + b * d
    mlp = d * inner + b * inner + inner * d + b * d
    return layernorms + attention + mlp


def count_params(config: Mapping[str, Any]) -> ParamCount:
    """Count parameters of a GPT2 or GPT-NeoX (Pythia) config dict by arithmetic.

    Non-embedding excludes token and position embeddings and an untied output
    layer (the Kaplan / Pythia convention).
    """
    model_type = config.get("model_type")
    if model_type == "gpt2":
        d, layers = int(config["n_embd"]), int(config["n_layer"])
        inner = int(config.get("n_inner") or 4 * d)
        vocab, positions = int(config["vocab_size"]), int(config["n_positions"])
        body = layers * _block_params(d, inner) + 2 * d  # + final LayerNorm
        embed = vocab * d + positions * d  # output layer is tied to wte
        if not config.get("tie_word_embeddings", True):
            embed += vocab * d
        return ParamCount(total=body + embed, nonembed=body)
    if model_type == "gpt_neox":
        d, layers = int(config["hidden_size"]), int(config["num_hidden_layers"])
        inner = int(config.get("intermediate_size") or 4 * d)
        vocab = int(config["vocab_size"])
        bias = bool(config.get("attention_bias", True))
        block = _block_params(d, inner)
        if not bias:  # attention without bias; the MLP keeps its biases
            block -= 3 * d + d
        body = layers * block + 2 * d
        tied = bool(config.get("tie_word_embeddings", False))
        embed = vocab * d * (1 if tied else 2)
        return ParamCount(total=body + embed, nonembed=body)
    raise InputError(f"model_type {model_type!r} is not counted; accepted: gpt2, gpt_neox")


def gpt2_config(n_layer: int, n_embd: int, n_head: int, vocab_size: int = 50257, n_positions: int = 1024) -> dict[str, Any]:
    return {"model_type": "gpt2", "n_layer": n_layer, "n_embd": n_embd, "n_head": n_head,
            "vocab_size": vocab_size, "n_positions": n_positions}


def neox_config(layers: int, hidden: int, heads: int, vocab_size: int = 50304) -> dict[str, Any]:
    return {"model_type": "gpt_neox", "num_hidden_layers": layers, "hidden_size": hidden,
            "num_attention_heads": heads, "intermediate_size": 4 * hidden, "vocab_size": vocab_size,
            "tie_word_embeddings": False}


def distill_flops(student_params: float, teacher_params: float, tokens: float,
                  teacher_pretrain_tokens: float | None = None) -> float:
    """FLOPs of one distillation: 6*N_S*D (student training) + 2*N_T*D (teacher forward).

    N_S counts the parameters one token uses: all of a dense student's, an MoE student's
    active ones (one expert per layer, and the routers), as ``RunRecord.student_active_params``.

    With ``teacher_pretrain_tokens`` the teacher's own pretraining (6*N_T*D_T)
    is added; by default it is a sunk cost and not counted.
    """
    flops = 6.0 * student_params * tokens + 2.0 * teacher_params * tokens
    if teacher_pretrain_tokens:
        flops += 6.0 * teacher_params * teacher_pretrain_tokens
    return flops
