"""Is the user's setting inside the regime a law was fitted on? Student size, tokens per parameter, init.

A law file records its regime (``LawFile.regime``); older files only have
``student_range``, and whatever a file does not record is reported as unknown,
never assumed to fit. A published law may state its distillation tokens as a
total range instead (Busbridge et al.: a few billion to 512B tokens), and a law
fitted on transformer language models says so when asked about another kind.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict

from capgap.laws.base import LawFile
from capgap.sizes.units import format_size


class Applies(BaseModel):
    """Whether the user's setting lies inside the law's regime: True, False, or None when part of it is unknown."""

    model_config = ConfigDict(frozen=True)
    inside: bool | None
    reasons: list[str]


def _range_text(low: float, high: float, fmt) -> str:  # noqa: ANN001 (a formatter)
    return fmt(low) if fmt(low) == fmt(high) else f"{fmt(low)}–{fmt(high)}"


class TokenSpan(BaseModel):
    """Total distillation tokens a published law was fitted on, as its source states them."""

    model_config = ConfigDict(frozen=True)
    low: float
    high: float
    text: str  # as the source says it: 'a few billion to 512B'


def check_regime(file: LawFile, student: float, tokens: float | None, init: str | None,
                 token_span: TokenSpan | None = None, foreign: str | None = None) -> tuple[Applies, list[str]]:
    """(whether the setting applies and why, the warnings for what lies outside) for a student of
    ``student`` parameters (in the file's size measure) distilled on ``tokens`` tokens (None: unknown).

    ``token_span``: the law's total-token range where it records no tokens per parameter.
    ``foreign``: why the student is not a transformer language model, for a law fitted on them.
    """
    outside: list[str] = [f"law fitted on transformer language models; {foreign}"] if foreign else []
    reasons: list[str] = []
    unknown: list[str] = []
    measure = file.size_measure
    per_param = tokens / student if tokens is not None else math.nan
    checks = [  # (what, value, [min, max] or None, formatter, the warning for a value outside)
        ("student sizes", student, file.regime.student_params or file.student_range, format_size,
         lambda span: f"extrapolating: law fitted on {span} {measure} students; the student "
                      f"({format_size(student)} {measure}) lies outside"),
    ]
    by_span = tokens is not None and not file.regime.tokens_per_param and token_span is not None
    if tokens is not None and not by_span:
        checks.append(("tokens per parameter", per_param, file.regime.tokens_per_param, lambda x: f"{x:.3g}",
                       lambda span: f"law fitted at {span} tokens/param; this student gets {per_param:.3g}"))
    for what, value, bounds, fmt, warning in checks:
        if not bounds:
            unknown.append(what)
            continue
        span = _range_text(bounds[0], bounds[1], fmt)
        if bounds[0] <= value <= bounds[1]:
            reasons.append(f"{what} inside the law's {span}")
        else:
            outside.append(warning(span))
    if tokens is None:
        reasons.append("tokens unknown")
    elif by_span and token_span.low <= tokens <= token_span.high:
        reasons.append(f"tokens inside the law's {token_span.text}")
    elif by_span:
        outside.append(f"law fitted on {token_span.text} distillation tokens; this student gets {format_size(tokens)}")
    # Runs that never said how their students were made (a CSV without student_init) say nothing of it either way.
    known_inits = [kind for kind in file.regime.student_init if kind != "unknown"]
    if known_inits and init is not None:
        made = " or ".join(known_inits)
        if init in known_inits:
            reasons.append(f"students {init}, as the law's")
        else:
            outside.append(f"law fitted on {made} students; this student is {init}")
    elif init is not None:
        unknown.append("student init")
    if unknown:
        reasons.append(f"regime unknown for {', '.join(unknown)}")
    inside = False if outside else (None if unknown else True)
    return Applies(inside=inside, reasons=outside + reasons), outside


# Families whose runs are transformer language models (what the published laws were fitted on).
LANGUAGE_MODEL_FAMILIES = frozenset({"gpt2", "pythia", "gpt_neox", "gpt-neox", "neox", "llama", "llama2", "opt", "bloom",
                                     "mistral", "qwen", "gemma", "phi", "t5", "bert", "roberta", "minima", "minitron"})


def runs_without_tokens(file: LawFile) -> bool:
    """A law fitted on runs none of which recorded distillation tokens (a vision table, say)."""
    return file.fitted and not file.regime.tokens_per_param and bool(file.optima) and all(o.tokens is None for o in file.optima)


def not_a_language_model(file: LawFile, source: str) -> str | None:
    """Why the students of a fitted law are not transformer language models, or None when they may be:
    its runs carry no tokens and name no language-model family."""
    families = sorted({o.family for o in file.optima} - {"unknown"})
    if not runs_without_tokens(file) or LANGUAGE_MODEL_FAMILIES & {f.lower() for f in families}:
        return None
    kind = f"{', '.join(families)} models" if families else "models of no stated family"
    return f"the runs of {source} are {kind} without tokens, not language models"
