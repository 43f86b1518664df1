"""`capgap measure --plan PLAN.csv`: run exactly a plan's (student, teacher, tokens, seed) jobs through the sweep."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from typing import Callable

from capgap.core.errors import InputError
from capgap.measure.config import MeasureConfig
from capgap.measure.sweep import SweepResult, measure, resolve_teachers
from capgap.plan.records import read_plan_csv


def measure_plan(config: MeasureConfig, plan_path: str, *, warn: Callable[[str], None] | None = None) -> SweepResult:
    """Each row of the plan is one pair of the sweep, with the row's tokens and seed; teacher names come from
    ``config.teachers`` (the ladder). Every name is checked before the first run."""
    rows = read_plan_csv(plan_path)
    names = [t.name for t in resolve_teachers(config.teachers)]
    jobs: dict[tuple[int, int], set[tuple[str, int]]] = defaultdict(set)
    for line, row in enumerate(rows, start=2):
        if row.teacher not in names:
            raise InputError(f"teacher {row.teacher!r} is not in the ladder {config.teachers}; accepted: "
                             f"{', '.join(names)}", where=f"{plan_path}:{line}")
        jobs[(row.tokens, row.seed)].add((row.teacher, row.student_params))
    total = SweepResult(planned=0, skipped=0, added=0)
    for (tokens, seed), pairs in sorted(jobs.items()):
        students = ",".join(str(s) for s in sorted({s for _, s in pairs}))
        job = replace(config, students=students, train=replace(config.train, tokens=tokens, seed=seed))
        result = measure(job, warn=warn if total.planned == 0 else None, only=pairs)
        total.planned += result.planned
        total.skipped += result.skipped
        total.added += result.added
        total.records += result.records
        total.failed += result.failed
        total.failed_before += result.failed_before
    return total
