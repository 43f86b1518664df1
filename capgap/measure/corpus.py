"""Text corpora: the shipped ones (Shakespeare, WikiText-2) or the user's files.

A corpus is split deterministically into training and held-out text: the text
is cut into fixed blocks and every ``HELDOUT_EVERY``-th block is held out, so
the held-out part samples every work rather than only the last one.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

from capgap.core.errors import InputError
from capgap.core.resources import data_root

DATA_DIR = data_root()  # inside the installed package, or the checkout's data/
CORPORA_DIR = DATA_DIR / "corpora"
NAMED_CORPORA = {
    "shakespeare": CORPORA_DIR / "shakespeare",
    "wikitext2": CORPORA_DIR / "wikitext-2" / "valid.txt.gz",
}
WIKITEXT2_TEST = CORPORA_DIR / "wikitext-2" / "test.txt.gz"
TEXT_SUFFIXES = (".txt", ".txt.gz", ".gz", ".text", ".md")
BLOCK_CHARS = 4096  # split unit: a few paragraphs
HELDOUT_EVERY = 20  # 5% of the text is held out


@dataclass(frozen=True)
class Corpus:
    """A named corpus with its deterministic train / held-out split."""

    name: str
    train_text: str
    heldout_text: str


def read_text(path: Path) -> str:
    """A plain or gzip-compressed UTF-8 text file."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except (OSError, EOFError) as exc:
        raise InputError(f"cannot read corpus file ({exc.__class__.__name__}: {exc})", where=str(path)) from None


def corpus_files(spec: str | Path) -> tuple[str, list[Path]]:
    """The name and files of a corpus given by name, file or folder."""
    key = str(spec)
    path = NAMED_CORPORA.get(key.lower(), Path(key))
    name = key.lower() if key.lower() in NAMED_CORPORA else path.name
    if path.is_file():
        return name, [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.name.lower().endswith(TEXT_SUFFIXES))
        if not files:
            raise InputError(f"no text files (*.txt, *.gz) in folder; accepted: {', '.join(TEXT_SUFFIXES)}", where=str(path))
        return name, files
    raise InputError(f"corpus {key!r} not found; accepted: {', '.join(NAMED_CORPORA)}, a text file (plain or .gz) or a folder of them")


def load_corpus(spec: str | Path = "shakespeare") -> Corpus:
    """Read a corpus and split it into training and held-out text."""
    name, files = corpus_files(spec)
    text = "\n".join(read_text(f) for f in files)
    if not text.strip():
        raise InputError("corpus is empty", where=str(spec))
    blocks = [text[i:i + BLOCK_CHARS] for i in range(0, len(text), BLOCK_CHARS)]
    heldout = blocks[HELDOUT_EVERY - 1::HELDOUT_EVERY] or blocks[-1:]
    train = [b for i, b in enumerate(blocks) if (i + 1) % HELDOUT_EVERY] if len(blocks) > 1 else blocks
    return Corpus(name=name, train_text="".join(train), heldout_text="".join(heldout))


def wikitext2_test_text() -> str:
    """The WikiText-2 test split (the standard perplexity set)."""
    return read_text(WIKITEXT2_TEST)
