"""Measured teacher assistants: what `capgap assistant` recorded, for recommend's teacher-assistant chain.

A student record of a measured chain carries ``extra.assistant_params`` (and
``assistant_params_nonembed``), ``extra.chain`` (teacher first) and its
metrics. ``measured_assistant`` finds the chains of a store whose student and
teacher match the query within ``SIZE_TOLERANCE`` and returns the one whose
student came out best. Imports no torch; the store (and pandas) only when called.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from capgap.runs.records import RunRecord

SIZE_TOLERANCE = 0.05  # a pruned student lands within 2% of its target; 5% leaves room for a converted size measure
METRIC = "eval_loss"  # what `capgap assistant` scores every student by (lower is better)


class MeasuredAssistant(BaseModel):
    """One measured chain teacher -> assistant -> student."""

    model_config = ConfigDict(frozen=True)
    run_id: str  # the student's run
    assistant_run: str | None
    method: str  # minidisc-student or exhaustive-student
    assistant_params: int  # in the size measure asked for
    teacher_params: int
    student_params: int
    metric: str
    student_metric: float
    lam: float | None  # MiniDisc's lambda when the assistant was chosen by the tradeoff
    candidates: int | None  # how many candidates were scored


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= SIZE_TOLERANCE * b


def _chain_sizes(record: RunRecord, measure: str) -> tuple[int, int] | None:
    """(assistant, teacher) sizes of a chain record in ``measure``; None when it is not one."""
    extra, suffix = record.extra, "" if measure == "total" else "_nonembed"
    chain = extra.get("chain")
    assistant = extra.get(f"assistant_params{suffix}")
    if not isinstance(chain, list) or not chain or not isinstance(chain[0], dict) or assistant is None:
        return None
    teacher = chain[0].get(f"params{suffix}")
    return (int(assistant), int(teacher)) if teacher is not None else None


def measured_assistant(store: str | Path, student: int, teacher: int, measure: str = "total"
                       ) -> MeasuredAssistant | None:
    """The best measured chain in ``store`` for this student and teacher size, or None."""
    from capgap.runs.store import load_runs

    best: MeasuredAssistant | None = None
    for record in load_runs(store):
        sizes = _chain_sizes(record, measure)
        size = record.size("student", measure)
        if sizes is None or size is None or METRIC not in record.metrics:
            continue
        if not (_close(size, student) and _close(sizes[1], teacher)):
            continue
        scores = record.extra.get("assistant_scores")
        found = MeasuredAssistant(
            run_id=record.run_id, assistant_run=record.extra.get("assistant_run"),
            method=str(record.extra.get("role", "chain")), assistant_params=sizes[0], teacher_params=sizes[1],
            student_params=size, metric=METRIC, student_metric=record.metrics[METRIC], lam=record.extra.get("lambda"),
            candidates=len(scores) if isinstance(scores, list) else None)
        if best is None or found.student_metric < best.student_metric:
            best = found
    return best
