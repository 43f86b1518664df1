"""A teacher ladder trained from scratch: same data and recipe at every size.

``DIR/tokenizer/`` holds the byte-level BPE trained on the corpus (or the
GPT-2 BPE); every rung ``DIR/<family>-L<layers>-d<width>/`` is a normal
Hugging Face checkpoint (safetensors, config, tokenizer). ``DIR/ladder.csv``
lists name, params, params_nonembed, path (relative to DIR), tokens and
teacher_loss (held-out nats/token). Rungs already listed with the same token
count are kept, so an interrupted ladder resumes where it stopped.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict

from capgap.errors import InputError
from capgap.measure.corpus import load_corpus
from capgap.measure.evaluate import eval_loss
from capgap.measure.models import FAMILIES, new_model, param_count, parse_spec, rung_config
from capgap.measure.tokenizer import encode, gpt2_tokenizer, train_bpe
from capgap.measure.train import TrainConfig, plan_steps, resolve_device, train

LADDER_CSV = "ladder.csv"
LADDER_COLUMNS = ["name", "params", "params_nonembed", "path", "tokens", "teacher_loss"]
TOKENIZERS = ("bpe", "gpt2")
EVAL_TOKENS = 65536  # held-out tokens scored per model (a cap for speed)


class Rung(BaseModel):
    """One trained teacher of a ladder (a row of ladder.csv)."""

    model_config = ConfigDict(frozen=True)
    name: str
    params: int
    params_nonembed: int
    path: str
    tokens: int
    teacher_loss: float


def _writable_dir(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create output folder ({exc.strerror})", where=str(out)) from None
    if not os.access(out, os.W_OK):
        raise InputError("output folder is not writable", where=str(out))


def read_ladder(path: str | Path) -> list[Rung]:
    """Rungs of a ladder.csv (or of the ladder.csv inside a folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / LADDER_CSV
    if not path.is_file():
        raise InputError("ladder file not found; give a ladder folder or its ladder.csv", where=str(path))
    table = pd.read_csv(path)
    missing = [c for c in LADDER_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"not a ladder table: missing column(s) {', '.join(missing)}", where=str(path))
    return [Rung(**{c: row[c] for c in LADDER_COLUMNS}) for row in table.to_dict("records")]


def _write_ladder(out: Path, rungs: list[Rung]) -> None:
    table = pd.DataFrame([r.model_dump() for r in sorted(rungs, key=lambda r: r.params)], columns=LADDER_COLUMNS)
    tmp = out / (LADDER_CSV + ".tmp")
    table.to_csv(tmp, index=False)
    os.replace(tmp, out / LADDER_CSV)


def _ladder_tokenizer(out: Path, kind: str, train_text: str, vocab_size: int):  # noqa: ANN202
    """The ladder's tokenizer: reloaded when the folder already has one, so a resumed ladder keeps its ids."""
    from transformers import AutoTokenizer

    folder = out / "tokenizer"
    if (folder / "tokenizer.json").is_file():
        return AutoTokenizer.from_pretrained(str(folder))
    tokenizer = gpt2_tokenizer() if kind == "gpt2" else train_bpe(train_text, vocab_size)
    tokenizer.save_pretrained(str(folder))
    return tokenizer


def train_ladder(family: str, sizes: list[str], tokens: int, out: str | Path, *, corpus: str = "shakespeare",
                 vocab_size: int = 8192, tokenizer: str = "bpe", seq_len: int = 256, batch_tokens: int = 16384,
                 micro_batch: int = 16, lr: float = 1e-3, device: str = "cpu", seed: int = 0,
                 eval_tokens: int = EVAL_TOKENS, progress: bool = True) -> list[Rung]:
    """Train one rung per size spec on ``corpus``; returns all rungs of ``out/ladder.csv``."""
    if family not in FAMILIES:
        raise InputError(f"--family {family!r} is not known; accepted: {', '.join(FAMILIES)}")
    if tokenizer not in TOKENIZERS:
        raise InputError(f"--tokenizer {tokenizer!r} is not known; accepted: {', '.join(TOKENIZERS)}")
    specs = [parse_spec(s) for s in sizes]
    if not specs:
        raise InputError("no sizes given; e.g. --sizes L2-d64,L4-d128")
    resolve_device(device)
    out = Path(out)
    text = load_corpus(corpus)
    config = TrainConfig(tokens=tokens, seq_len=seq_len, batch_tokens=batch_tokens, micro_batch=micro_batch,
                         lr=lr, alpha=1.0, seed=seed, device=device)
    _writable_dir(out)
    tok = _ladder_tokenizer(out, tokenizer, text.train_text, vocab_size)
    train_ids, heldout_ids = encode(tok, text.train_text), encode(tok, text.heldout_text)
    plan_steps(config, len(train_ids))  # refuse a too-small corpus before training anything

    done = {r.name: r for r in read_ladder(out)} if (out / LADDER_CSV).is_file() else {}
    for spec in specs:
        name = f"{family}-{spec.name}"
        if name in done and done[name].tokens >= tokens and (out / done[name].path / "config.json").is_file():
            continue
        model = new_model(rung_config(family, spec, vocab_size=len(tok), seq_len=seq_len), seed)
        result = train(model, train_ids, replace(config, progress=name if progress else None))
        loss = eval_loss(model, heldout_ids, seq_len=seq_len, max_tokens=eval_tokens)
        model.to("cpu").save_pretrained(str(out / name))
        tok.save_pretrained(str(out / name))
        counts = param_count(model.config)
        done[name] = Rung(name=name, params=counts.total, params_nonembed=counts.nonembed, path=name,
                          tokens=result.tokens, teacher_loss=loss)
        _write_ladder(out, list(done.values()))  # after every rung, so a killed ladder keeps what it finished
    return sorted(done.values(), key=lambda r: r.params)
