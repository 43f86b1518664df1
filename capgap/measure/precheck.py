"""The whole sweep checked before its first run: every model can take the sequences and the vocabulary.

A sequence longer than a model's context, or a tokenizer with more ids than a
model's embedding, would otherwise end a sweep with a torch ``IndexError``
minutes (or hours) in. Each mismatch is one line naming the model, its limit
and the flag to change. (The device and the corpus size are checked where
they are resolved: ``train.resolve_device`` and ``train.plan_steps``.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from capgap.core.errors import InputError

CONTEXT_KEYS = ("n_positions", "max_position_embeddings")  # GPT2, GPT-NeoX/Pythia (and most others)


def context_length(config: Any) -> tuple[int, str] | None:
    """(positions, config key) of a model config (a transformers config or a dict), or None if it states none."""
    for key in CONTEXT_KEYS:
        value = config.get(key) if isinstance(config, Mapping) else getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value, key
    return None


def _vocab_size(config: Any) -> int | None:
    value = config.get("vocab_size") if isinstance(config, Mapping) else getattr(config, "vocab_size", None)
    return value if isinstance(value, int) and value > 0 else None


def check_context(name: str, config: Any, seq_len: int) -> None:
    """Refuse a --seq-len longer than the model's context."""
    found = context_length(config)
    if found is not None and seq_len > found[0]:
        limit, key = found
        raise InputError(f"--seq-len {seq_len} is longer than the context of {name}: {limit} positions "
                         f"({key} in its config); give --seq-len {limit} or less")


def check_vocabulary(name: str, config: Any, tokenizer_size: int) -> None:
    """Refuse a tokenizer whose ids would index past the model's embedding."""
    vocab = _vocab_size(config)
    if vocab is not None and tokenizer_size > vocab:
        raise InputError(f"the tokenizer of {name} has {tokenizer_size} tokens, but its model's vocabulary holds "
                         f"{vocab} (vocab_size in its config); give the teacher's own tokenizer, or retrain the "
                         f"ladder with --vocab-size {vocab} or less")


def check_models(models: Sequence[tuple[str, Any]], seq_len: int, tokenizer_sizes: Mapping[str, int]) -> None:
    """Every (name, config) of the sweep against --seq-len and, where given by name, its tokenizer's size."""
    for name, config in models:
        check_context(name, config, seq_len)
        if name in tokenizer_sizes:
            check_vocabulary(name, config, tokenizer_sizes[name])


def check_sweep(pairs: Sequence[Any], tokenizer_sizes: Mapping[str, int], seq_len: int) -> None:
    """Every teacher and student of the sweep's pairs (``sweep.Pair``) against --seq-len, and every teacher
    against its family's tokenizer (``tokenizer_sizes``: family -> tokens)."""
    from capgap.measure.students import student_config
    from capgap.sizes.units import format_size

    teachers = {pair.teacher.name: pair.teacher for pair in pairs}
    models = [(f"teacher {t.name}", t.config) for t in teachers.values()]
    models += [(f"the {format_size(p.target)} student of {p.teacher.name}", student_config(p.teacher.config, p.target))
               for p in {(p.teacher.name, p.target): p for p in pairs}.values()]
    check_models(models, seq_len, {f"teacher {t.name}": tokenizer_sizes[t.family] for t in teachers.values()
                                   if t.family in tokenizer_sizes})
