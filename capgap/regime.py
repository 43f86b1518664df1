"""Is the user's setting inside the regime a law was fitted on? Student size, tokens per parameter, init.

A law file records its regime (``LawFile.regime``); older files only have
``student_range``, and whatever a file does not record is reported as unknown,
never assumed to fit.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from capgap.laws.base import LawFile
from capgap.sizes import format_size


class Applies(BaseModel):
    """Whether the user's setting lies inside the law's regime: True, False, or None when part of it is unknown."""

    model_config = ConfigDict(frozen=True)
    inside: bool | None
    reasons: list[str]


def _range_text(low: float, high: float, fmt) -> str:  # noqa: ANN001 (a formatter)
    return fmt(low) if fmt(low) == fmt(high) else f"{fmt(low)}–{fmt(high)}"


def check_regime(file: LawFile, student: float, tokens: float, init: str | None) -> tuple[Applies, list[str]]:
    """(whether the setting applies and why, the warnings for what lies outside) for a student of
    ``student`` parameters (in the file's size measure) distilled on ``tokens`` tokens."""
    outside: list[str] = []
    reasons: list[str] = []
    unknown: list[str] = []
    per_param = tokens / student
    checks = [  # (what, value, [min, max] or None, formatter, the warning for a value outside)
        ("student sizes", student, file.regime.student_params or file.student_range, format_size,
         lambda span: f"extrapolating: law fitted on {span} students; the student ({format_size(student)}) lies outside"),
        ("tokens per parameter", per_param, file.regime.tokens_per_param, lambda x: f"{x:.3g}",
         lambda span: f"law fitted at {span} tokens/param; this student gets {per_param:.3g}"),
    ]
    for what, value, bounds, fmt, warning in checks:
        if not bounds:
            unknown.append(what)
            continue
        span = _range_text(bounds[0], bounds[1], fmt)
        if bounds[0] <= value <= bounds[1]:
            reasons.append(f"{what} inside the law's {span}")
        else:
            outside.append(warning(span))
    if file.regime.student_init and init is not None:
        made = " or ".join(file.regime.student_init)
        if init in file.regime.student_init:
            reasons.append(f"students {init}, as the law's")
        else:
            outside.append(f"law fitted on {made} students; this student is {init}")
    elif init is not None:
        unknown.append("student init")
    if unknown:
        reasons.append(f"regime unknown for {', '.join(unknown)}")
    inside = False if outside else (None if unknown else True)
    return Applies(inside=inside, reasons=outside + reasons), outside
