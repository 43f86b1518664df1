"""A teacher ladder trained from scratch: same data and recipe at every size.

``DIR/tokenizer/`` holds the byte-level BPE trained on the corpus (or the
GPT-2 BPE); every rung ``DIR/<family>-L<layers>-d<width>/`` is a normal
Hugging Face checkpoint (safetensors, config, tokenizer). ``DIR/ladder.csv``
lists name, params, params_nonembed, path (relative to DIR), tokens,
teacher_loss (held-out nats/token) and not_better_than: the smaller rung whose
held-out loss this rung does not beat (empty when it is better than every
smaller rung; capgap.runs.ladder_quality). Rungs already listed with the same token
count are kept, so an interrupted ladder resumes where it stopped.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError

from capgap.core.errors import InputError
from capgap.runs.ladder_quality import Teacher, inversions
from capgap.measure.corpus import load_corpus
from capgap.measure.evaluate import eval_loss
from capgap.measure.models import FAMILIES, new_model, param_count, parse_spec, rung_config
from capgap.measure.tokenizer import encode, gpt2_tokenizer, train_bpe
from capgap.measure.config import LadderConfig
from capgap.measure.train import plan_steps, resolve_device, train
from capgap.core.output import check_output_folder, write_output
from capgap.core.tables import read_csv_table

LADDER_CSV = "ladder.csv"
LADDER_COLUMNS = ["name", "params", "params_nonembed", "path", "tokens", "teacher_loss"]
QUALITY_COLUMN = "not_better_than"  # written by ladder train; optional when reading (older ladders lack it)
TOKENIZERS = ("bpe", "gpt2")


class Rung(BaseModel):
    """One trained teacher of a ladder (a row of ladder.csv)."""

    model_config = ConfigDict(frozen=True)
    name: str
    params: int
    params_nonembed: int
    path: str
    tokens: int
    teacher_loss: float
    not_better_than: str = ""  # the smaller rung this one does not beat on held-out loss


def _writable_dir(out: Path) -> None:
    check_output_folder(out, what="ladder folder")
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
    table = read_csv_table(path, expected=f"a ladder table with columns {','.join(LADDER_COLUMNS)}")
    missing = [c for c in LADDER_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"not a ladder table: missing column(s) {', '.join(missing)}", where=str(path))
    if table.empty:
        raise InputError("ladder table has no rungs; train some with 'capgap ladder train'", where=str(path))
    rungs = []
    for number, row in enumerate(table.to_dict("records"), start=2):  # line 1 is the header
        blank = [c for c in LADDER_COLUMNS if not row[c].strip()]
        if blank:
            raise InputError(f"blank cell in column(s) {', '.join(blank)}; every rung needs "
                             f"{', '.join(LADDER_COLUMNS)}", where=f"{path}:{number}")
        try:
            rungs.append(Rung(**{c: row[c].strip() for c in [*LADDER_COLUMNS, QUALITY_COLUMN] if c in row}))
        except ValidationError as exc:
            first = exc.errors()[0]
            raise InputError(f"column {first['loc'][0]}: {first['msg']} ({first.get('input')!r})",
                             where=f"{path}:{number}") from None
    return rungs


def mark_inversions(rungs: list[Rung]) -> list[Rung]:
    """The rungs by size, each with ``not_better_than`` set from the held-out losses."""
    found = {inv.larger.name: inv.smaller.name
             for inv in inversions(Teacher(r.name, r.params, r.teacher_loss) for r in rungs)}
    return [r.model_copy(update={"not_better_than": found.get(r.name, "")}) for r in sorted(rungs, key=lambda r: r.params)]


def inversion_warnings(rungs: list[Rung]) -> list[str]:
    """One line per rung that is not better than a smaller one."""
    by_name = {r.name: r for r in rungs}
    return [f"warning: rung {r.name} ({r.params} params) has held-out loss {r.teacher_loss:.4f}, not better than the "
            f"smaller {r.not_better_than} ({by_name[r.not_better_than].teacher_loss:.4f}); train longer or drop it"
            for r in mark_inversions(rungs) if r.not_better_than]


def _write_ladder(out: Path, rungs: list[Rung]) -> None:
    table = pd.DataFrame([r.model_dump() for r in mark_inversions(rungs)], columns=[*LADDER_COLUMNS, QUALITY_COLUMN])
    write_output(out / LADDER_CSV, table.to_csv(index=False), what="ladder table")


def _ladder_tokenizer(out: Path, kind: str, train_text: str, vocab_size: int):  # noqa: ANN202
    """The ladder's tokenizer: reloaded when the folder already has one, so a resumed ladder keeps its ids."""
    from transformers import AutoTokenizer

    folder = out / "tokenizer"
    if (folder / "tokenizer.json").is_file():
        return AutoTokenizer.from_pretrained(str(folder))
    tokenizer = gpt2_tokenizer() if kind == "gpt2" else train_bpe(train_text, vocab_size)
    tokenizer.save_pretrained(str(folder))
    return tokenizer


def train_ladder(config: LadderConfig) -> list[Rung]:
    """Train one rung per size spec on the corpus; returns all rungs of ``out/ladder.csv``, inversions marked."""
    if config.family not in FAMILIES:
        raise InputError(f"--family {config.family!r} is not known; accepted: {', '.join(FAMILIES)}")
    if config.tokenizer not in TOKENIZERS:
        raise InputError(f"--tokenizer {config.tokenizer!r} is not known; accepted: {', '.join(TOKENIZERS)}")
    specs = [parse_spec(s) for s in config.sizes]
    if not specs:
        raise InputError("no sizes given; e.g. --sizes L2-d64,L4-d128")
    resolve_device(config.train.device)
    out = Path(config.out)
    text = load_corpus(config.corpus)
    recipe = replace(config.train, alpha=1.0)  # pretraining: CE on the data only
    _writable_dir(out)
    tok = _ladder_tokenizer(out, config.tokenizer, text.train_text, config.vocab_size)
    train_ids, heldout_ids = encode(tok, text.train_text), encode(tok, text.heldout_text)
    plan_steps(recipe, len(train_ids))  # refuse a too-small corpus before training anything

    done = {r.name: r for r in read_ladder(out)} if (out / LADDER_CSV).is_file() else {}
    for spec in specs:
        name = f"{config.family}-{spec.name}"
        if name in done and done[name].tokens >= recipe.tokens and (out / done[name].path / "config.json").is_file():
            continue
        model = new_model(rung_config(config.family, spec, vocab_size=len(tok), seq_len=recipe.seq_len), recipe.seed)
        result = train(model, train_ids, replace(recipe, progress=name if config.progress else None))
        loss = eval_loss(model, heldout_ids, seq_len=recipe.seq_len, max_tokens=config.eval_tokens)
        model.to("cpu").save_pretrained(str(out / name))
        tok.save_pretrained(str(out / name))
        counts = param_count(model.config)
        done[name] = Rung(name=name, params=counts.total, params_nonembed=counts.nonembed, path=name,
                          tokens=result.tokens, teacher_loss=loss)
        _write_ladder(out, list(done.values()))  # after every rung, so a killed ladder keeps what it finished
    _write_ladder(out, list(done.values()))  # also when nothing was trained: older ladders gain the quality column
    return mark_inversions(list(done.values()))
