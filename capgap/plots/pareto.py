"""Compute-versus-performance Pareto frontiers of model tables and run stores.

A point is on the frontier when no other point has less-or-equal compute and
better-or-equal performance with at least one of the two strictly better.
Exact duplicates therefore do not dominate each other: both stay on the
frontier. Pure numpy/pandas; the figure lives in ``capgap.plots.figures``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from capgap.core.errors import InputError
from capgap.runs.records import Direction, RunRecord, metric_direction
from capgap.sizes.units import distill_flops, format_size, parse_size
from capgap.core.tables import read_csv_table
from capgap.runs.store import load_runs


# Compute columns named in these units are converted to FLOPs (e.g. MiniMA's train_tflops).
_FLOP_UNITS = {"flops": 1.0, "gflops": 1e9, "tflops": 1e12, "pflops": 1e15}
# A size at the end of a model name, "Qwen-1.8B", "LLaMA-2-7B" (not "4x3B": that is no one size).
_SIZE_IN_NAME = re.compile(r"-(\d+(?:\.\d+)?[MB])$")
_NAME_COLUMNS = ("name", "model")
RUN_COMPUTE_LABEL = "compute per run (FLOPs, 6·N_S·D + 2·N_T·D)"
MOE_COMPUTE_LABEL = "compute per run (FLOPs, 6·N_S·D + 2·N_T·D; N_S of an MoE student: its active parameters)"


class ParetoPoint(BaseModel):
    """One model or run on the compute/performance plane."""

    model_config = ConfigDict(frozen=True)
    name: str
    compute: float
    performance: float
    on_frontier: bool
    size: float | None = None  # parameters, where known (bubble area in the figure)
    group: str = ""  # one frontier per group (a run store's model family)


class ParetoResult(BaseModel):
    """Points with their frontier flags, and what the axes mean."""

    model_config = ConfigDict(frozen=True)
    points: list[ParetoPoint]
    frontier: list[str]  # names of frontier points in order of compute (all groups)
    direction: Direction
    compute_label: str
    performance_label: str
    title: str = "Pareto frontier"

    def frontiers(self) -> dict[str, list[ParetoPoint]]:
        """Frontier points of each group, in order of compute."""
        by_name = {p.name: p for p in self.points}
        groups: dict[str, list[ParetoPoint]] = {}
        for name in self.frontier:
            point = by_name[name]
            groups.setdefault(point.group, []).append(point)
        return groups

    def to_json_dict(self) -> dict:
        """The `capgap pareto --json` shape: frontier names, then every point."""
        return {"frontier": self.frontier, "direction": self.direction,
                "compute": self.compute_label, "performance": self.performance_label,
                "points": [p.model_dump() for p in self.points]}


def non_dominated(compute: Sequence[float] | np.ndarray, performance: Sequence[float] | np.ndarray,
                  *, lower_is_better: bool = False) -> np.ndarray:
    """Boolean mask of the points no other point dominates (ties kept, see module doc)."""
    cost = np.asarray(compute, dtype=float)
    gain = np.asarray(performance, dtype=float) * (-1.0 if lower_is_better else 1.0)
    if cost.shape != gain.shape or cost.ndim != 1:
        raise ValueError("compute and performance must be 1-D and of equal length")
    if cost.size == 0:
        return np.zeros(0, dtype=bool)
    levels, level_of = np.unique(cost, return_inverse=True)
    best_at_level = np.full(levels.size, -np.inf)
    np.maximum.at(best_at_level, level_of, gain)
    # Best performance among strictly cheaper points: a tie with it already dominates.
    best_cheaper = np.concatenate([[-np.inf], np.maximum.accumulate(best_at_level)[:-1]])
    return (gain == best_at_level[level_of]) & (gain > best_cheaper[level_of])


def pareto(path: str | Path, *, compute: str | None = None, perf: Sequence[str] | None = None,
           lower_is_better: bool | None = None, name: str | None = None, size: str | None = None) -> ParetoResult:
    """The frontier of a model table (CSV) or a run store (.jsonl, or a CSV of runs)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found; give a CSV model table or a run store (.jsonl)", where=str(path))
    if path.suffix.lower() == ".csv" and not _is_run_table(path):
        return pareto_from_table(path, compute=compute, perf=perf, lower_is_better=lower_is_better,
                                 name=name, size=size)
    if name or size:
        raise InputError("--name and --size apply to model tables; runs are named student<-teacher and sized by the student")
    return pareto_from_runs(load_runs([path]), compute=compute, perf=perf, lower_is_better=lower_is_better,
                            title=f"Pareto frontier: {path.stem}")


def _is_run_table(path: Path) -> bool:
    header = read_csv_table(path, expected="a CSV model table or run table", nrows=0).columns
    return {"student_params", "teacher_params"} <= set(header)


def pareto_from_table(path: str | Path, *, compute: str | None = None, perf: Sequence[str] | None = None,
                      lower_is_better: bool | None = None, name: str | None = None,
                      size: str | None = None) -> ParetoResult:
    """The frontier of a CSV model table: one row per model.

    ``compute`` defaults to the one column whose name holds "flops" (converted
    to FLOPs from tflops etc.). ``perf`` defaults to every other numeric column;
    several columns mean their unweighted mean. Sizes come from ``size`` or,
    failing that, from names ending in a size ("Qwen-1.8B").
    """
    path = Path(path)
    table = read_csv_table(path, expected="a header and one row per model")
    if table.empty:
        raise InputError("no rows; expected one row per model", where=str(path))
    columns = list(table.columns)
    name_column = name or next((c for c in columns if c.lower() in _NAME_COLUMNS), columns[0])
    compute_column = compute or _default_compute_column(columns, str(path))
    for column in (name_column, compute_column, size):
        if column is not None and column not in columns:
            raise InputError(f"no column {column!r}; columns: {', '.join(columns)}", where=str(path))
    perf_columns = list(perf) if perf else [c for c in columns if c not in (name_column, compute_column, size)
                                            and _mostly_numeric(table[c])]
    missing = [c for c in perf_columns if c not in columns]
    if missing or not perf_columns:
        raise InputError(f"performance column(s) {', '.join(missing) or '(none numeric)'} not found; "
                         f"give --perf with some of: {', '.join(columns)}", where=str(path))
    direction = _direction(perf_columns, lower_is_better)
    scale = _FLOP_UNITS.get(compute_column.lower().rsplit("_", 1)[-1])

    rows = []
    for line, row in enumerate(table.to_dict("records"), start=2):  # line 1 is the header
        label = row[name_column].strip() or f"row {line}"
        where = f"{path}:{line} ({label})"
        cost = _cell(row[compute_column], compute_column, where)
        if cost <= 0:
            raise InputError(f"column {compute_column}: compute must be positive, got {cost:g}", where=where)
        rows.append({"name": label, "compute": cost * (scale or 1.0),
                     "performance": float(np.mean([_cell(row[c], c, where) for c in perf_columns])),
                     "size": _size(row, size, label, where)})
    frame = pd.DataFrame(rows)
    duplicated = frame["name"].duplicated()
    if duplicated.any():
        line = int(np.flatnonzero(duplicated)[0]) + 2
        raise InputError(f"model name {frame['name'][line - 2]!r} appears twice; names must be unique "
                         f"(choose the name column with --name)", where=f"{path}:{line}")
    frame["group"] = ""
    compute_label = "training compute (FLOPs)" if scale else compute_column
    return _result(frame, direction, compute_label, _performance_label(perf_columns, direction),
                   title=f"Pareto frontier: {path.stem}")


def pareto_from_runs(records: Sequence[RunRecord], *, compute: str | None = None, perf: Sequence[str] | None = None,
                     lower_is_better: bool | None = None, title: str = "Pareto frontier of runs") -> ParetoResult:
    """The frontier of distillation runs, one per model family.

    Compute is each run's ``flops``, or 6·N_S·D + 2·N_T·D from its tokens, N_S the parameters a token
    uses (an MoE student's active ones; its label names its total size too);
    performance ``eval_loss`` (lower is better) unless ``perf`` says otherwise.
    """
    if not records:
        raise InputError("no runs to draw a frontier of")
    perf_columns = list(perf) if perf else ["eval_loss"]
    direction = _direction(perf_columns, lower_is_better)
    rows = []
    for record in records:
        where = f"run {record.run_id}"
        missing = [m for m in perf_columns if m not in record.metrics]
        if missing:
            raise InputError(f"{where}: no metric {', '.join(missing)}; it has {', '.join(sorted(record.metrics))} "
                             "(choose with --perf)")
        rows.append({"name": run_name(record),
                     "compute": _run_compute(record, compute, where),
                     "performance": float(np.mean([record.metrics[m] for m in perf_columns])),
                     "size": float(record.student_params), "group": record.family, "run_id": record.run_id})
    frame = pd.DataFrame(rows)
    by_id = {record.run_id: record for record in records}
    if frame["group"].nunique() > 1:
        frame["name"] = frame["group"] + " " + frame["name"]
    for detail in (_seed_text, _tokens_text, lambda r: f"#{r.run_id[:6]}"):  # seeds or token counts of one pair
        clash = frame["name"].duplicated(keep=False)
        if not clash.any():
            break
        frame.loc[clash, "name"] = [f"{name}, {detail(by_id[i])}" for name, i in zip(frame["name"][clash],
                                                                                      frame["run_id"][clash])]
    moe = any(r.student_kind == "moe" for r in records)
    compute_label = (MOE_COMPUTE_LABEL if moe else RUN_COMPUTE_LABEL) if compute in (None, "flops") else compute
    return _result(frame, direction, compute_label, _performance_label(perf_columns, direction), title=title)


def run_name(record: RunRecord) -> str:
    """A run as a reader knows it: '30k pruned <- gpt2-L2-d64 (62.3k)', the teacher by name where recorded;
    an MoE student by its active size, then its total: '30k active (45k total, MoE×4) pruned <- ...'."""
    teacher = record.extra.get("teacher")
    teacher_text = f"{teacher} ({format_size(record.teacher_params)})" if teacher else format_size(record.teacher_params)
    init = f" {record.student_init}" if record.student_init != "unknown" else ""
    student = format_size(record.student_params)
    if record.student_kind == "moe":
        student = (f"{format_size(record.student_active_params)} active ({student} total, "
                   f"MoE×{record.experts})")
    return f"{student}{init} <- {teacher_text}"


def _seed_text(record: RunRecord) -> str:
    return f"seed {record.seed}" if record.seed is not None else "seed ?"


def _tokens_text(record: RunRecord) -> str:
    return f"{format_size(record.tokens)} tokens" if record.tokens else "tokens ?"


def _run_compute(record: RunRecord, column: str | None, where: str) -> float:
    if column not in (None, "flops"):
        if column not in RunRecord.model_fields and column not in record.metrics:
            numeric = [name for name, field in RunRecord.model_fields.items()
                       if isinstance(getattr(record, name, None), (int, float)) and not isinstance(getattr(record, name), bool)]
            raise InputError(f"no compute column {column!r} in the runs; columns: flops, "
                             f"{', '.join(n for n in numeric if n != 'flops')}; metrics: {', '.join(sorted(record.metrics))}")
        value = getattr(record, column, None) if column in RunRecord.model_fields else record.metrics.get(column)
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise InputError(f"{where}: compute column {column!r} is {value!r}; it must be a positive number")
        return float(value)
    if record.flops is not None:
        return record.flops
    if record.tokens is None:
        raise InputError(f"{where}: neither flops nor tokens recorded, so its compute is unknown; "
                         "add a flops or tokens field")
    return distill_flops(record.student_active_params or record.student_params, record.teacher_params, record.tokens)


def _result(frame: pd.DataFrame, direction: Direction, compute_label: str, performance_label: str,
            title: str) -> ParetoResult:
    frame = frame.copy()
    frame["on_frontier"] = False
    for _, members in frame.groupby("group", sort=False):
        frame.loc[members.index, "on_frontier"] = non_dominated(
            members["compute"], members["performance"], lower_is_better=direction == "lower")
    # Stable sort: equal compute keeps the table's order.
    frontier = frame[frame["on_frontier"]].sort_values("compute", kind="stable")["name"].tolist()
    points = [ParetoPoint(name=r.name, compute=r.compute, performance=r.performance, on_frontier=bool(r.on_frontier),
                          size=None if pd.isna(r.size) else float(r.size), group=r.group)
              for r in frame.itertuples()]
    return ParetoResult(points=points, frontier=frontier, direction=direction, compute_label=compute_label,
                        performance_label=performance_label, title=title)


def _default_compute_column(columns: list[str], where: str) -> str:
    found = [c for c in columns if "flops" in c.lower()]
    if len(found) != 1:
        raise InputError(f"which column is compute? give --compute (columns: {', '.join(columns)})", where=where)
    return found[0]


def _direction(perf_columns: list[str], lower_is_better: bool | None) -> Direction:
    """The flag wins; else the metrics' names (eval_loss: lower); else higher is better."""
    if lower_is_better is not None:
        return "lower" if lower_is_better else "higher"
    known = {metric_direction(c) for c in perf_columns} - {None}
    if len(known) > 1:
        raise InputError(f"performance columns {', '.join(perf_columns)} mix lower- and higher-is-better metrics; "
                         "their mean means nothing: choose columns of one direction with --perf")
    return known.pop() if known else "higher"


def _performance_label(perf_columns: list[str], direction: Direction) -> str:
    better = f"{direction} is better"
    if len(perf_columns) == 1:
        unit = "nats/token, " if perf_columns[0].endswith("_loss") else ""
        return f"{perf_columns[0]} ({unit}{better})"
    names = ", ".join(perf_columns)
    return f"unweighted mean of {len(perf_columns)} metrics ({better}): {names}"


def _cell(text: str, column: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value):
        shown = repr(text) if text.strip() else "empty"
        raise InputError(f"column {column} is {shown}, not a finite number; every point needs compute and "
                         "performance: fill the cell or drop the row", where=where)
    return value


def _mostly_numeric(column: pd.Series) -> bool:
    """A performance column: most filled cells are numbers (a stray 'n/a' is then a bad row, not a text column)."""
    filled = [v for v in column if v.strip()]
    numbers = pd.to_numeric(pd.Series(filled, dtype=object), errors="coerce").notna().sum()
    return bool(filled) and numbers >= len(filled) / 2


def _size(row: dict[str, str], column: str | None, label: str, where: str) -> float | None:
    if column:
        return float(parse_size(row[column], what=f"{where}: column {column}")) if row[column].strip() else None
    match = _SIZE_IN_NAME.search(label)
    return float(parse_size(match.group(1))) if match else None
