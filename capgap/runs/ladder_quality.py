"""Teacher-quality inversions: a larger teacher that is not better than a smaller one.

A ladder's teachers should improve with size. Where a larger one has a held-out
loss no lower than a smaller one (undertrained, unstable), a student's worse
result from it mixes the capacity gap with a weak teacher. `ladder train`
records the inversions in ladder.csv, `measure` repeats them, and a fit can
list them among its diagnostics. Pure Python: no torch, no pandas.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from statistics import median
from typing import NamedTuple

from capgap.runs.records import RunRecord
from capgap.sizes.units import format_size


class Teacher(NamedTuple):
    """One teacher as far as quality goes: a name, its size and its held-out loss (nats/token)."""

    name: str
    params: int
    loss: float


class Inversion(NamedTuple):
    """``larger`` is not better than ``smaller`` (the best smaller teacher) on held-out loss."""

    larger: Teacher
    smaller: Teacher

    def sentence(self) -> str:
        return (f"teacher {self.larger.name} ({format_size(self.larger.params)}) has held-out loss "
                f"{self.larger.loss:.4f}, not better than the smaller {self.smaller.name} "
                f"({format_size(self.smaller.params)}, {self.smaller.loss:.4f}): its students mix the capacity gap "
                f"with a weak teacher")


def inversions(teachers: Iterable[Teacher]) -> list[Inversion]:
    """Every teacher whose loss is not below the best loss of all strictly smaller teachers."""
    ordered = sorted(teachers, key=lambda t: (t.params, t.name))
    found, best = [], None
    for index, teacher in enumerate(ordered):
        smaller = [t for t in ordered[:index] if t.params < teacher.params]
        best = min(smaller, key=lambda t: t.loss, default=None)
        if best is not None and teacher.loss >= best.loss:
            found.append(Inversion(teacher, best))
    return found


def teacher_inversions(runs: Sequence[RunRecord]) -> list[str]:
    """One sentence per inversion among the runs' teachers, per family (runs without teacher_loss are skipped).

    A teacher is its (family, teacher_params); when its runs disagree on its loss, the median counts.
    """
    losses: dict[tuple[str, int], list[float]] = {}
    for run in runs:
        if run.teacher_loss is not None:
            losses.setdefault((run.family, run.teacher_params), []).append(run.teacher_loss)
    sentences = []
    for family in sorted({family for family, _ in losses}):
        teachers = [Teacher(family, params, median(values))
                    for (fam, params), values in losses.items() if fam == family]
        sentences += [inversion.sentence() for inversion in inversions(teachers)]
    return sentences
