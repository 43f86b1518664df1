"""Validation errors in the words of the file format: what a field means, not how pydantic names the check."""

from __future__ import annotations

from typing import Any

# What each run-record field holds, as the message names it (see docs/runs.md, "Runs: the record format").
RUN_FIELDS = {
    "student_params": "the student's parameter count",
    "teacher_params": "the teacher's parameter count",
    "student_params_nonembed": "the student's non-embedding parameter count",
    "teacher_params_nonembed": "the teacher's non-embedding parameter count",
    "tokens": "the distillation tokens",
    "student_kind": "dense or moe (a mixture-of-experts student)",
    "experts": "the MoE student's experts per layer",
    "student_active_params": "the student's parameters used per token",
    "teacher_tokens": "the teacher's own pretraining tokens",
    "metrics": 'the measured metrics, e.g. {"eval_loss": 3.2}',
    "teacher_loss": "the teacher's held-out loss (nats/token)",
    "seed": "the run's seed",
    "flops": "the run's compute in FLOPs",
    "created_at": "when the run was recorded (ISO 8601)",
}


def field_message(error: dict[str, Any], meanings: dict[str, str], fields: list[str]) -> str:
    """One pydantic error (``ValidationError.errors()[i]``) as a sentence about the field."""
    loc = [str(p) for p in error.get("loc", ())]
    field = ".".join(loc) or "record"
    meaning = meanings.get(loc[0], "") if loc else ""
    named = f"{field} ({meaning})" if meaning else field
    kind = error.get("type", "")
    if kind == "missing":
        return f"{named} is missing; every record needs it"
    if kind == "extra_forbidden":
        return f"{field} is not a field of a run record; fields: {', '.join(fields)} (anything else goes in extra)"
    if kind == "value_error":
        return f"{named}: {str(error.get('msg', '')).removeprefix('Value error, ')}"
    got = error.get("input")
    if kind.startswith(("int", "float")) or kind in ("greater_than", "greater_than_equal"):
        return f"{named} must be a positive number, got {got!r}"
    return f"{named}: {error.get('msg', '')} (got {got!r})"
