"""The law files capgap ships, by the names users give to ``--law``, and how a ``--law`` value becomes a Law.

Two published laws answer by default, side by side (``capgap recommend``
without ``--law``); the law fitted on capgap's own CPU runs ships as a
named pipeline demonstration. Each shipped law carries a short description
of the setting it comes from and how solid its source is, which the
recommender prints beside its answer.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from capgap.core.errors import InputError
from capgap.laws.base import Law, LawFile, UnfittedLawWarning, law_from_file, load_law
from capgap.laws.regime import TokenSpan
from capgap.core.resources import data_path

StudentInit = Literal["pruned", "scratch"]


class ShippedLaw(BaseModel):
    """A law file under data/laws/ and what a reader needs to weigh its answer."""

    model_config = ConfigDict(frozen=True)
    file: str  # under data/laws/
    label: str  # who, in a few words
    author: str  # whose law, as a sentence names it: 'Zhang et al.'
    students: str  # how its students were made
    tokens: str  # how long they were distilled
    teachers: str  # how its teachers were trained
    size_measure: str  # what its sizes count
    source: str
    solidity: str  # how far to trust the source
    init: StudentInit | None = None  # the student init it speaks for, if a published default
    token_span: TokenSpan | None = None  # total distillation tokens fitted on, where the source states only that


SHIPPED_LAWS: dict[str, ShippedLaw] = {
    "zhang2023": ShippedLaw(
        file="zhang2023.json", label="Zhang et al. (law of capacity gap)", author="Zhang et al.", init="pruned",
        students="pruned from their teacher, then distilled from it",
        tokens="distilled briefly; tokens per parameter not stated in the sources capgap holds",
        teachers="GPT2 (124M-1.5B) and Pythia (70M-2.8B) pilot ladders; students under 3B",
        size_measure="total parameters (the units of the published fit are not stated; millions likely)",
        source="Zhang et al., Towards the Law of Capacity Gap in Distilling Language Models, arXiv 2311.07052 (ACL 2025)",
        solidity="secondary-source reading (T* = 2.498·S - 11.498, R² 0.9957 as summarised; the paper's table "
                 "was not available): a prior, no interval"),
    "busbridge2025": ShippedLaw(
        file="busbridge2025.json", label="Busbridge et al. (distillation scaling law)", author="Busbridge et al.",
        init="scratch", token_span=TokenSpan(low=2e9, high=512e9, text="a few billion (taken as 2B) to 512B"),
        students="trained from scratch by distillation",
        tokens="the optimum depends on the student's tokens per parameter (passed through --tokens)",
        teachers="trained on 20 tokens per parameter (the teachers behind capgap's figures); models 143M-12.6B, "
                 "a few billion to 512B tokens, C4 English, 32k vocabulary, muP",
        size_measure="non-embedding parameters",
        source="Busbridge et al., Distillation Scaling Laws, arXiv 2502.08606 (ICML 2025), Eq. 1, 8 and Table 6",
        solidity="primary source: published constants fitted on 73 supervised and 697 distillation runs; no interval; "
                 "constants are specific to that setup"),
    "cpu-demo": ShippedLaw(
        file="cpu-demo.json", label="capgap CPU demo (pipeline demonstration)", author="the CPU demo law",
        students="pruned, 30k-150k parameters, from capgap's shipped Shakespeare study",
        tokens="1.7-8.4 tokens per parameter (252k distillation tokens)",
        teachers="five tiny GPT2 models (62k-803k) trained on 1M Shakespeare tokens, loss falling strictly with size",
        size_measure="total parameters",
        source="capgap fit data/runs/shakespeare-study.jsonl --law ratio --init pruned",
        solidity="a demonstration of measure -> fit -> recommend on a laptop, not evidence about real students"),
}
# Other names users may give: the old 'reference' law is Zhang et al.'s reading.
ALIASES = {"reference": "zhang2023", "zhang": "zhang2023", "busbridge": "busbridge2025"}
# `--law default` (or no --law) asks for the published laws side by side; one law alone is the pruned headline.
DEFAULT = "default"
PUBLISHED = ("zhang2023", "busbridge2025")


def shipped_name(name: str) -> str | None:
    """The shipped law a --law value names ('default' names the headline published law), or None."""
    key = name.lower()
    if key == DEFAULT:
        return published_for("pruned")
    key = ALIASES.get(key, key)
    return key if key in SHIPPED_LAWS else None


def published_for(init: StudentInit) -> str:
    """The published law that speaks for students made this way."""
    return next(name for name in PUBLISHED if SHIPPED_LAWS[name].init == init)


def shipped_law_path(name: str) -> Path:
    """The file of a shipped law (or alias), inside the installed package or the checkout's data/laws/."""
    key = shipped_name(name)
    if key is None:
        raise InputError(f"no shipped law is named {name!r}; accepted: {', '.join(law_names())}")
    return data_path("laws", SHIPPED_LAWS[key].file)


def law_names() -> list[str]:
    return [DEFAULT, *SHIPPED_LAWS, *ALIASES]


def resolve_law(law: str | Path | Law | LawFile | None) -> tuple[Law, str]:
    """A --law value -> (the Law, its source): a shipped name, a LAW.json path, a LawFile or a Law.

    None and 'default' give the headline published law (Zhang et al., pruned students). The source
    is the shipped name, the path, or 'python object'.
    """
    with warnings.catch_warnings():  # callers state an unfitted law in their own words
        warnings.simplefilter("ignore", UnfittedLawWarning)
        if law is None or isinstance(law, str) and shipped_name(law) is not None:
            name = shipped_name(law or DEFAULT)
            return load_law(shipped_law_path(name)), name
        if isinstance(law, (str, Path)):
            if Path(law).is_dir():
                raise InputError(f"law {str(law)!r} is a directory; give a LAW.json file (from `capgap fit --out`) "
                                 f"or a shipped name: {', '.join(law_names())}")
            return load_law(law), str(law)
        if isinstance(law, LawFile):
            return law_from_file(law), "python object"
        if all(hasattr(law, n) for n in ("file", "optimal_teacher", "predict_metric")):  # the part of Law a query needs
            return law, "python object"  # type: ignore[return-value]
    raise InputError(f"law {law!r} is not a law; accepted: {', '.join(law_names())}, a LAW.json path, or a Law object")
