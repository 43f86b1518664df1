"""Student kinds: dense students, and MoE students (MiniMoE's), whose every MLP is top-1 experts.

A run record says its kind (``RunRecord.student_kind``; records from before the
field are dense). A fit keeps runs of one kind apart (``capgap.runs.groups``) and can
be restricted to one (``select_kind``); the law file it writes names the kinds
it was fitted on (``LawFile.student_kinds``), so
``recommend --student-kind moe`` knows whether its law covers MoE students.
Laws place an MoE student by its active size (``RunRecord.size``): what one
token uses, the dense student it was cut as; its total size, all experts,
changes with the teacher it was pruned from.
No published law does: MiniMoE (Zhang et al., ACL 2023) measured one MoE
student against two teachers, a table row, not a law.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from capgap.core.errors import InputError
from capgap.runs.records import RunRecord

KINDS = ("dense", "moe")
LAW_FIELD = "student_kinds"  # where a law file lists the kinds of the runs it was fitted on
NO_PUBLISHED_MOE_LAW = ("no published law covers MoE students; below is the answer for a dense student of the "
                        "active size given (the same compute per token): a guess, not a law (MiniMoE: a larger "
                        "teacher helped its MoE student where it hurt a dense one of equal compute); for a law, fit "
                        "MoE runs (capgap fit RUNS --kind moe --out LAW.json) and pass --law LAW.json")


def check_kind(kind: str, what: str = "--student-kind") -> str:
    if kind not in KINDS:
        raise InputError(f"{what} {kind!r} is not known; accepted: {', '.join(KINDS)}")
    return kind


def select_kind(runs: Sequence[RunRecord], kind: str | None) -> list[RunRecord]:
    """The runs of one student kind (None: all), one line when none is left."""
    if kind is None:
        return list(runs)
    check_kind(kind, "--kind")
    kept = [r for r in runs if r.student_kind == kind]
    if not kept:
        present = ", ".join(sorted({r.student_kind for r in runs})) or "none"
        raise InputError(f"no runs of student kind {kind!r}; the runs have: {present}")
    return kept


def mark_kinds(file: Any, runs: Sequence[RunRecord]) -> None:
    """Write into a law file (capgap.laws.base.LawFile) which student kinds its runs were."""
    setattr(file, LAW_FIELD, sorted({r.student_kind for r in runs}))


def law_kinds(file: Any) -> list[str]:
    """The student kinds a law file was fitted on; dense for law files that do not say (all before MoE)."""
    kinds = getattr(file, LAW_FIELD, None)
    return list(kinds) if isinstance(kinds, list) and kinds else ["dense"]


def kind_caveat(kind: str, law_file: Any, source: str, law_given: bool) -> str | None:
    """What `recommend` says first for a student of ``kind`` answered by the law ``law_file`` (None: nothing)."""
    check_kind(kind)
    kinds = law_kinds(law_file)
    if kind == "dense":
        if "dense" not in kinds:
            return (f"law {source} was fitted on {' and '.join(kinds)} students only; this student is dense "
                    "(say --student-kind moe for an MoE student)")
        return None
    if "moe" in kinds:
        return None if kinds == ["moe"] else (f"law {source} was fitted on {' and '.join(kinds)} students together; "
                                              "fit on MoE runs alone (capgap fit --kind moe) for an MoE answer")
    if law_given:
        return (f"law {source} was fitted on dense students, not MoE ones; {NO_PUBLISHED_MOE_LAW}")
    return NO_PUBLISHED_MOE_LAW
