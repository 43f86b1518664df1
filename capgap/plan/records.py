"""A plan's records: the proposed runs, the interval of T* at each target before and after them, and the plan
file (PLAN.csv) that `capgap measure --plan` reads."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from capgap.core.errors import InputError
from capgap.plan.scoring import DRAWS, LEVEL

PLAN_COLUMNS = ["student_params", "teacher_params", "teacher", "tokens", "seed"]
METHOD = ("linearised (Fisher) expected variance of ln T* under the fit's own curve model (its pooling of the "
          "left/right ratio and its far shape) with the parameters the fit would spend on the design, averaged "
          f"over the fit's point and {DRAWS - 1} bootstrap refits, calibrated to the current fitted interval; greedy "
          "batch, then exchange from random starts (a one-target cold start looks two batches ahead)")
# From a fitted state whose targets are all fitted (capgap.plan.ensemble):
ENSEMBLE_METHOD = (f"expected variance of ln T* after the batch from a linear-Bayes update of the fit's point and "
                   f"{DRAWS - 1} bootstrap refits (how well the batch's predicted metrics tell them apart), floored "
                   "where the fit's own rules widen its interval; greedy batch, then exchange; the expected interval "
                   "after it is the linearised (Fisher) one under the fit's own curve model, calibrated to the "
                   "current fitted interval")


class PlannedRun(BaseModel):
    """One proposed distillation run (a row of PLAN.csv)."""

    model_config = ConfigDict(frozen=True)
    student_params: int
    teacher_params: int
    teacher: str  # the ladder's model name
    tokens: int
    seed: int
    flops: float = 0.0


class TargetInterval(BaseModel):
    """The optimal teacher of a target student: estimate and 90% interval (None: no interval)."""

    model_config = ConfigDict(frozen=True)
    student_params: int
    tokens: int
    estimate: float
    low: float | None = None
    high: float | None = None
    level: float = LEVEL

    @property
    def relative_half_width(self) -> float | None:
        """Half the interval's width over the estimate (0.2 is ±20%); None without an interval."""
        if self.low is None or self.high is None:
            return None
        return (self.high - self.low) / (2.0 * self.estimate)


class Plan(BaseModel):
    """The proposed batch and the interval of T* at each target before and (expected) after it."""

    runs: list[PlannedRun]
    before: list[TargetInterval]
    after: list[TargetInterval]
    start: Literal["runs", "prior", "bound"]  # fitted runs, the published laws as a wide prior, or a one-sided fit
    law: str
    method: str = METHOD
    target_width: float | None = None
    done: bool = False  # every target already within target_width: nothing proposed
    flops: float = 0.0
    warnings: list[str] = []  # the fit's own, printed first: the plan is only as good as the fit it starts from
    notes: list[str] = []  # the planner's


def write_plan_csv(plan: Plan, path: str | Path) -> None:
    """The plan as PLAN.csv, whole or not at all (capgap.core.output)."""
    import io

    from capgap.core.output import write_output

    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(PLAN_COLUMNS)
    for run in plan.runs:
        writer.writerow([run.student_params, run.teacher_params, run.teacher, run.tokens, run.seed])
    write_output(path, text.getvalue(), what="plan")


def read_plan_csv(path: str | Path) -> list[PlannedRun]:
    """PLAN.csv rows (columns student_params,teacher_params,teacher,tokens,seed); one-line errors naming the row."""
    from capgap.sizes.units import parse_size

    path = Path(path)
    if not path.is_file():
        raise InputError("plan file not found; give the PLAN.csv written by capgap plan --out", where=str(path))
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in PLAN_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(f"plan lacks column(s) {', '.join(missing)}; expected {','.join(PLAN_COLUMNS)}",
                             where=str(path))
        planned = []
        for line, row in enumerate(reader, start=2):
            where = f"{path}:{line}"
            try:
                seed = int(row["seed"])
            except (TypeError, ValueError):
                raise InputError(f"seed {row['seed']!r} is not an integer", where=where) from None
            if not (row["teacher"] or "").strip():
                raise InputError("teacher is empty; expected the ladder's model name", where=where)
            planned.append(PlannedRun(student_params=parse_size(row["student_params"], what="student_params"),
                                      teacher_params=parse_size(row["teacher_params"], what="teacher_params"),
                                      teacher=row["teacher"].strip(), seed=seed,
                                      tokens=parse_size(row["tokens"], what="tokens")))
    if not planned:
        raise InputError(f"plan has no rows; expected one run per row with {','.join(PLAN_COLUMNS)}", where=str(path))
    return planned
