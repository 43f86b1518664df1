"""Tokenizers: a byte-level BPE trained on the corpus, or the shipped GPT-2 BPE.

Both come back as ``PreTrainedTokenizerFast`` so they save next to a model and
load again with ``AutoTokenizer.from_pretrained(folder)``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from typing import TYPE_CHECKING

from capgap.core.errors import InputError
from capgap.measure.corpus import DATA_DIR

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

GPT2_TOKENIZER_DIR = DATA_DIR / "tokenizers" / "gpt2"
END_OF_TEXT = "<|endoftext|>"  # GPT-2's only special token; reused so both tokenizers agree
MIN_VOCAB = 257  # 256 byte symbols + <|endoftext|>


def _wrap(backend) -> "PreTrainedTokenizerBase":  # noqa: ANN001
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=END_OF_TEXT,
                                   eos_token=END_OF_TEXT, unk_token=END_OF_TEXT)


def _byte_level(model) -> object:  # noqa: ANN001
    from tokenizers import Tokenizer, decoders, pre_tokenizers

    backend = Tokenizer(model)
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    return backend


def train_bpe(text: str, vocab_size: int = 8192) -> "PreTrainedTokenizerBase":
    """A byte-level BPE with ``vocab_size`` tokens trained on ``text``."""
    from tokenizers import models, pre_tokenizers, trainers

    if vocab_size < MIN_VOCAB:
        raise InputError(f"--vocab-size {vocab_size} is too small; a byte-level BPE needs at least {MIN_VOCAB}")
    backend = _byte_level(models.BPE())
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[END_OF_TEXT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator(text.splitlines(keepends=True), trainer=trainer)
    return _wrap(backend)


def gpt2_tokenizer() -> "PreTrainedTokenizerBase":
    """OpenAI's GPT-2 BPE (50,257 tokens) from the shipped, gzipped files."""
    from tokenizers import models

    with gzip.open(GPT2_TOKENIZER_DIR / "vocab.json.gz", "rt", encoding="utf-8") as handle:
        vocab = json.load(handle)
    with gzip.open(GPT2_TOKENIZER_DIR / "merges.txt.gz", "rt", encoding="utf-8") as handle:
        merges = [tuple(line.split(" ")) for line in handle.read().splitlines() if line and not line.startswith("#version")]
    return _wrap(_byte_level(models.BPE(vocab=vocab, merges=merges)))


def encode(tokenizer: "PreTrainedTokenizerBase", text: str) -> "torch.Tensor":
    """Token ids of a whole text as one 1-D LongTensor (encoded line by line, in batch, for speed)."""
    import torch

    lines = text.splitlines(keepends=True)
    encodings = tokenizer.backend_tokenizer.encode_batch(lines, add_special_tokens=False)
    ids = [i for enc in encodings for i in enc.ids]
    return torch.tensor(ids, dtype=torch.long)


def vocab_fingerprint(tokenizer: "PreTrainedTokenizerBase") -> str:
    """A digest of the token -> id map: equal exactly when two tokenizers share a vocabulary."""
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    return hashlib.sha256(json.dumps(vocab, ensure_ascii=False).encode()).hexdigest()[:16]


def require_same_tokenizer(teacher: "PreTrainedTokenizerBase", student: "PreTrainedTokenizerBase", *,
                           teacher_name: str = "teacher", student_name: str = "student") -> None:
    """Refuse a distillation pair whose tokenizers differ: their logits index different tokens."""
    if vocab_fingerprint(teacher) != vocab_fingerprint(student):
        raise InputError(f"{teacher_name} and {student_name} use different tokenizers "
                         f"({len(teacher)} vs {len(student)} tokens, different token ids); "
                         "logit distillation needs one shared tokenizer")
