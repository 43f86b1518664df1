"""Evaluation: held-out loss, WikiText-2 perplexity, LAMBADA last-word accuracy.

Losses are nats per token under the model's own tokenizer, over
non-overlapping windows of ``seq_len`` tokens (each window's first token has
no context and is not scored).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from capgap.core.errors import InputError
from capgap.measure.config import EVAL_TOKENS
from capgap.measure.corpus import wikitext2_test_text
from capgap.measure.tokenizer import encode

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


@torch.no_grad()
def eval_loss(model: "PreTrainedModel", ids: torch.Tensor, *, seq_len: int, max_tokens: int | None = None,
              batch_size: int = 8, vocab_size: int | None = None) -> float:
    """Mean next-token cross-entropy (nats/token) over windows of ``ids``."""
    if max_tokens is not None:
        ids = ids[:max_tokens]
    count = len(ids) // seq_len
    if count == 0:
        raise InputError(f"evaluation text has {len(ids)} tokens, fewer than one window of {seq_len}; "
                         "give a longer text or a smaller --seq-len")
    device = next(model.parameters()).device
    windows = ids[: count * seq_len].view(count, seq_len)
    model.eval()
    total, scored = 0.0, 0
    for batch in windows.split(batch_size):
        batch = batch.to(device)
        logits = model(input_ids=batch).logits[:, :-1].float()
        if vocab_size:
            logits = logits[..., :vocab_size]
        targets = batch[:, 1:]
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum").item()
        scored += targets.numel()
    return total / scored


def wikitext2_ids(tokenizer: "PreTrainedTokenizerBase", max_tokens: int = EVAL_TOKENS) -> torch.Tensor:
    """The first ``max_tokens`` token ids of the WikiText-2 test split."""
    return encode(tokenizer, wikitext2_test_text())[:max_tokens]


def wikitext2_ppl(model: "PreTrainedModel", ids: torch.Tensor, *, seq_len: int, vocab_size: int | None = None) -> float:
    """Perplexity on WikiText-2 test ids (from :func:`wikitext2_ids`)."""
    return math.exp(eval_loss(model, ids, seq_len=seq_len, vocab_size=vocab_size))


def read_lambada(path: str | Path) -> list[str]:
    """Texts of a LAMBADA jsonl file (one ``{"text": ...}`` per line)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("LAMBADA file not found; give a jsonl file with one {\"text\": ...} per line", where=str(path))
    texts = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            text = json.loads(line)["text"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise InputError("not a {\"text\": ...} JSON line", where=f"{path}:{number}") from None
        if not isinstance(text, str) or len(text.split()) < 2:
            raise InputError("text needs a context and a last word", where=f"{path}:{number}")
        texts.append(text)
    if not texts:
        raise InputError("no examples in LAMBADA file", where=str(path))
    return texts


@torch.no_grad()
def lambada_acc(model: "PreTrainedModel", tokenizer: "PreTrainedTokenizerBase", texts: list[str], *,
                seq_len: int) -> float:
    """Share of texts whose last word the model predicts exactly (greedy, every token of the word)."""
    device = next(model.parameters()).device
    vocab = len(tokenizer)
    correct = 0
    for text in texts:
        context, word = text.rstrip().rsplit(" ", 1)
        context_ids = tokenizer(context, add_special_tokens=False)["input_ids"]
        word_ids = tokenizer(" " + word, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([(context_ids + word_ids)[-seq_len:]], device=device)
        logits = model(input_ids=ids).logits[0, :, :vocab]
        predicted = logits[-len(word_ids) - 1:-1].argmax(-1).tolist()
        correct += predicted == word_ids
    return correct / len(texts)
