"""What a question may ask: student sizes within the laws' reach, distillation tokens within sense.

A student more than ``REACH``x beyond the largest student any shipped or given law
was fitted on, or under ``MIN_STUDENT`` parameters, is refused: no law speaks for it.
Within that, a student more than ``FAR``x outside its law's range is answered with the
warning first. Tokens are total distillation tokens or, written ``20x``, tokens per
student parameter; fewer than one or more than ``MAX_TOKENS_PER_PARAM`` per parameter
is refused as a likely slip of unit.
"""

from __future__ import annotations

import math
import re

from capgap.core.errors import InputError
from capgap.laws.base import Law, LawFile, SizeMeasure
from capgap.recommender.size_convert import convert_size
from capgap.sizes.units import TOKENS_PER_PARAM, format_ratio, format_size, parse_size

REACH = 100.0  # refuse students this many times beyond the largest any law was fitted on
FAR = 10.0  # warn first beyond this factor outside the law's own range
MIN_STUDENT = 1000
MIN_TOKENS_PER_PARAM, MAX_TOKENS_PER_PARAM = 1.0, 1e5
_PER_PARAM_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*[xX]\s*$")


def fitted_span(file: LawFile) -> tuple[float, float] | None:
    """[min, max] student size the law was fitted on, in its own measure, or None when unrecorded."""
    span = file.regime.student_params or file.student_range
    return (float(span[0]), float(span[1])) if span else None


def check_reach(student: int, measure: SizeMeasure, laws: list[tuple[Law, str]]) -> None:
    """Refuse a student under MIN_STUDENT or more than REACH x beyond every law's largest fitted student."""
    if student < MIN_STUDENT:
        raise InputError(f"student size {format_size(student)} is under {format_size(MIN_STUDENT)} parameters: "
                         "no law capgap holds speaks for so small a model")
    beyond: list[tuple[float, str]] = []  # (how far beyond, which law and its largest student)
    for law, source in laws:
        span = fitted_span(law.file)
        if span is None:
            continue
        own = convert_size(student, measure, law.file.size_measure).params
        beyond.append((own / span[1], f"{format_size(span[1])} {law.file.size_measure}, {source}"))
    if beyond and min(x for x, _ in beyond) > REACH:
        factor, largest = min(beyond)
        raise InputError(f"student size {format_size(student)} ({measure}) is {format_ratio(factor)} the largest "
                         f"student any law here was fitted on ({largest}); capgap answers up to "
                         f"{REACH:.0f}x beyond it")


def far_outside(file: LawFile, student: float) -> str | None:
    """The warning for a student (in the law's measure) more than FAR x outside the law's fitted range."""
    span = fitted_span(file)
    if span is None:
        return None
    low, high = span
    measure = file.size_measure
    if student > FAR * high:
        return (f"far outside the law: the student ({format_size(student)} {measure}) is {format_ratio(student / high)} "
                f"the largest the law was fitted on ({format_size(high)}); the answer is an extrapolation")
    if student * FAR < low:
        return (f"far outside the law: the student ({format_size(student)} {measure}) is {format_ratio(low / student)} "
                f"smaller than the smallest the law was fitted on ({format_size(low)}); the answer is an extrapolation")
    return None


def distill_tokens(value: str | int | float | None, student: int) -> tuple[int, str]:
    """(tokens, how they were set) for ``--tokens``: a count ('20B'), per student parameter ('20x'), or the default."""
    if value is None:
        return TOKENS_PER_PARAM * student, f"default: {TOKENS_PER_PARAM} tokens per student parameter"
    match = _PER_PARAM_RE.match(str(value))
    if match:
        per = float(match.group(1))
        tokens, rule = int(round(per * student)), f"given: {per:g} per student parameter"
    else:
        tokens, rule = parse_size(value, what="tokens"), "given"
    per = tokens / student
    if not MIN_TOKENS_PER_PARAM <= per <= MAX_TOKENS_PER_PARAM or not math.isfinite(per):
        raise InputError(f"tokens {value}: {per:.3g} per student parameter ({format_size(student)}); capgap answers "
                         f"{MIN_TOKENS_PER_PARAM:g} to {MAX_TOKENS_PER_PARAM:,.0f} per parameter; give the total "
                         f"distillation tokens (e.g. --tokens {format_size(TOKENS_PER_PARAM * student)}) or tokens "
                         f"per parameter (e.g. --tokens {TOKENS_PER_PARAM}x)")
    return tokens, rule
