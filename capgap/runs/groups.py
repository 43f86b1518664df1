"""Runs grouped for the one-stage fit: one group per (family, student init, student kind, student size, tokens).

A group is one experiment: students of one size, made one way, distilled on
one token budget, from several teachers. Dense and MoE students (``student_kind``)
are never one group, as pruned and scratch students are not; an MoE student's
size is its active size (``RunRecord.size``), the same whichever teacher it was cut from. Students cut to one target size from
different teachers differ by a few parameters; sizes within 2% are one
student size, named by the median. The arrays are sorted by group so that
per-group sums are one ``np.add.reduceat`` each.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from capgap.core.errors import InputError
from capgap.runs.records import RunRecord
from capgap.sizes.units import format_size

MIN_TEACHERS = 3  # a group with fewer distinct teachers cannot locate anything on its own curve
SIZE_TOLERANCE = 0.02  # students within 2% in size are one student size


@dataclass(frozen=True)
class GroupKey:
    family: str
    student_init: str
    student_params: int  # nominal size
    tokens: int | None
    student_kind: str = "dense"  # or moe (capgap.runs.kinds)

    def label(self) -> str:
        tokens = f", {format_size(self.tokens)} tokens" if self.tokens else ""
        kind = "" if self.student_kind == "dense" else f" {self.student_kind}"
        return f"{self.family} {self.student_init}{kind} {format_size(self.student_params)}{tokens}"


@dataclass(frozen=True)
class RunGroups:
    """The runs of every usable group as arrays (one entry per run, sorted by group)."""

    keys: list[GroupKey]
    log_teacher: np.ndarray  # (n,)
    badness: np.ndarray  # (n,) the metric, sign-flipped so that lower is better
    group: np.ndarray  # (n,) index into keys
    starts: np.ndarray  # (G,) first run of each group, for np.add.reduceat
    teachers: list[list[int]]  # distinct teacher sizes of each group, ascending
    run_ids: list[str]
    skipped: list[tuple[str, int]]  # (group label, distinct teachers) of groups with too few teachers

    @property
    def n_runs(self) -> int:
        return int(self.log_teacher.size)

    @property
    def log_student(self) -> np.ndarray:
        return np.log(np.array([k.student_params for k in self.keys], dtype=float))

    @property
    def log_tokens_per_param(self) -> np.ndarray:
        """ln(D/S) of each group; NaN where the runs give no tokens."""
        tokens = np.array([k.tokens or np.nan for k in self.keys], dtype=float)
        return np.log(tokens) - self.log_student

    def subset(self, keep: np.ndarray) -> RunGroups:
        """Only the groups in the boolean mask ``keep`` (G,)."""
        return self.take_runs(np.isin(self.group, np.flatnonzero(keep)))

    def take_runs(self, runs: np.ndarray) -> RunGroups:
        """Only the runs in the boolean mask ``runs`` (n,); groups left without runs drop out."""
        index = np.unique(self.group[runs])
        renumber = np.full(len(self.keys), -1)
        renumber[index] = np.arange(index.size)
        group = renumber[self.group[runs]]
        teachers = [sorted({int(round(t)) for t in np.exp(self.log_teacher[runs][group == j])}) for j in range(index.size)]
        # Keep the exact sizes measured (not their round trip through a logarithm) where they survive.
        teachers = [[t for t in self.teachers[g] if any(abs(t - k) <= 1e-6 * t + 1 for k in kept)]
                    for g, kept in zip(index, teachers)]
        return RunGroups(keys=[self.keys[j] for j in index], log_teacher=self.log_teacher[runs],
                         badness=self.badness[runs], group=group, starts=_starts(group), teachers=teachers,
                         run_ids=[i for i, r in zip(self.run_ids, runs) if r], skipped=self.skipped)

    def per_run(self, values: np.ndarray) -> np.ndarray:
        """Per-group values spread to their runs: (B, G, ...) -> (B, n, ...) (runs are sorted by group)."""
        return np.repeat(values, np.diff(np.r_[self.starts, self.group.size]), axis=1)

    def group_sum(self, values: np.ndarray) -> np.ndarray:
        """Per-group sums over the last axis: (..., n) -> (..., G)."""
        return np.add.reduceat(values, self.starts, axis=-1)


def _starts(group: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.r_[True, group[1:] != group[:-1]])


def nominal_sizes(sizes: Sequence[int], tolerance: float = SIZE_TOLERANCE) -> dict[int, int]:
    """Map each size to its nominal size: sizes within ``tolerance`` of each other are one student size."""
    nominal: dict[int, int] = {}
    cluster: list[int] = []
    for size in sorted(set(sizes)) + [None]:
        if cluster and (size is None or size > cluster[0] * (1.0 + tolerance)):
            nominal.update({member: int(np.median(cluster)) for member in cluster})
            cluster = []
        if size is not None:
            cluster.append(size)
    return nominal


def group_runs(runs: Sequence[RunRecord], metric: str, direction: str, size_measure: str = "total") -> RunGroups:
    """The usable groups (>= 3 distinct teachers) of runs that carry ``metric``."""
    if size_measure == "nonembed":
        lacking = sum(r.student_params_nonembed is None or r.teacher_params_nonembed is None for r in runs)
        if lacking:
            raise InputError(f"{lacking} of {len(runs)} runs lack non-embedding sizes "
                             "(student_params_nonembed, teacher_params_nonembed); add them or use --size total")
    sign = 1.0 if direction == "lower" else -1.0
    usable = [r for r in runs if r.metric(metric) is not None]
    nominal = nominal_sizes([r.size("student", size_measure) for r in usable])
    buckets: dict[GroupKey, list[RunRecord]] = defaultdict(list)
    for run in usable:
        key = GroupKey(run.family, run.student_init, nominal[run.size("student", size_measure)], run.tokens or None,
                       run.student_kind)
        buckets[key].append(run)
    keys, skipped, columns = [], [], []
    for key in sorted(buckets, key=lambda k: (k.family, k.student_init, k.student_kind, k.student_params, k.tokens or 0)):
        members = buckets[key]
        teachers = sorted({r.size("teacher", size_measure) for r in members})
        if len(teachers) < MIN_TEACHERS:
            skipped.append((key.label(), len(teachers)))
            continue
        keys.append(key)
        columns.append((members, teachers))
    if not keys:
        most = max((n for _, n in skipped), default=0)
        raise InputError(f"locating an optimal teacher needs runs with at least {MIN_TEACHERS} distinct teacher sizes "
                         f"for one (family, student init, student kind, student size, tokens); the most found was {most}")
    log_teacher, badness, group, ids = [], [], [], []
    for j, (members, _) in enumerate(columns):
        for run in members:
            log_teacher.append(np.log(run.size("teacher", size_measure)))
            badness.append(sign * run.metric(metric))
            group.append(j)
            ids.append(run.run_id)
    group_array = np.array(group)
    return RunGroups(keys=keys, log_teacher=np.array(log_teacher), badness=np.array(badness), group=group_array,
                     starts=_starts(group_array), teachers=[t for _, t in columns], run_ids=ids, skipped=skipped)
