"""The run store: an append-only JSONL file of RunRecords, safe for many writers.

Appends lock the store file itself (flock: nothing is left beside it), skip
run ids already present, and write each record as one line in one write() call
followed by fsync, so concurrent sweeps never interleave and a killed writer
leaves at most one torn last line, which readers skip with a warning and the
next append removes. Reading follows one policy for every verb
(capgap.runs.reader). A store object remembers the run ids it has read and where
it stopped, so each append reads only the lines added since (by anyone): a long
sweep's appends stay cheap.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from capgap.core.errors import InputError
from capgap.core.output import check_output, write_output
from capgap.runs.records import FailedRun, RunRecord, record_from_dict
from capgap.core.tables import read_csv_table  # noqa: F401 (part of this module's face)
from capgap.runs.reader import RunTable, TornLineWarning  # noqa: F401 (TornLineWarning: part of this module's face)
from capgap.sizes.units import parse_size

# Columns of the CSV import/export format besides metric columns.
SIZE_COLUMNS = ("student_params", "teacher_params", "student_params_nonembed", "teacher_params_nonembed", "tokens",
                "teacher_tokens", "student_active_params")
INT_COLUMNS = ("seed", "experts")
FLOAT_COLUMNS = ("alpha", "temperature", "teacher_loss", "flops")
TEXT_COLUMNS = ("run_id", "family", "student_init", "student_kind", "source", "created_at")
KNOWN_COLUMNS = set(SIZE_COLUMNS) | set(INT_COLUMNS) | set(FLOAT_COLUMNS) | set(TEXT_COLUMNS) | {"extra"}


class RunStore:
    """Append-only JSONL store of RunRecords at ``path``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        # Run ids in the file up to byte _offset: an append reads only what others added since.
        self._ids: set[str] = set()
        self._offset = 0

    # -- writing ---------------------------------------------------------
    def append(self, record: RunRecord | FailedRun) -> bool:
        """Append one record (or failed run); False when its run id is already stored as finished."""
        return self.extend([record]) == 1

    def extend(self, records: Iterable[RunRecord | FailedRun]) -> int:
        """Append records whose run ids are not stored as finished; returns how many were written.

        A failed run (capgap.runs.records.FailedRun) is appended beside the finished ones; a later
        record of its run id supersedes it.
        """
        records = list(records)
        if not records:
            return 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._locked() as fd:
                self._drop_torn_tail(fd)
                existing = self._stored_ids()
                lines = []
                for record in records:
                    if record.run_id in existing:
                        continue
                    if isinstance(record, RunRecord):
                        existing.add(record.run_id)
                    lines.append(record.model_dump_json() + "\n")
                if lines:
                    os.write(fd, "".join(lines).encode())
                    os.fsync(fd)
                return len(lines)
        except OSError as exc:  # permission, a file where a folder should be, a full disk
            raise InputError(f"run store is not writable ({exc.strerror or exc}); choose a path you can write",
                             where=str(self.path)) from None

    @contextmanager
    def _locked(self) -> Iterator[int]:
        """The store opened for appending, under an exclusive lock on the file itself (released on close)."""
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)

    def _drop_torn_tail(self, fd: int) -> None:
        """Cut a torn last line (its writer was killed: we hold the lock) so that it never ends up mid-file."""
        size = os.fstat(fd).st_size
        if not size or os.pread(fd, 1, size - 1) == b"\n":
            return
        start = max(0, size - (1 << 20))
        chunk = os.pread(fd, size - start, start)
        cut = start + chunk.rfind(b"\n") + 1 if b"\n" in chunk else 0
        tail = os.pread(fd, size - cut, cut)
        try:
            json.loads(tail)  # a whole record that only lacks its newline (an edited file) is kept
            os.write(fd, b"\n")
            return
        except ValueError:
            pass
        os.ftruncate(fd, cut)
        warnings.warn(f"{self.path}: removed a torn last line ({len(tail)} bytes; its writer was killed "
                      "mid-write) before appending", TornLineWarning, stacklevel=4)

    def _stored_ids(self) -> set[str]:
        """Run ids in the file, reading only the bytes added since the last call (call under the lock)."""
        if not self.path.exists():
            self._ids, self._offset = set(), 0
            return self._ids
        size = self.path.stat().st_size
        if size < self._offset:  # the file was replaced or truncated: start over
            self._ids, self._offset = set(), 0
        with open(self.path, "rb") as handle:
            handle.seek(self._offset)
            new = handle.read(size - self._offset)
        whole = new[: new.rfind(b"\n") + 1]  # a last line without its newline is read again next time
        for line in whole.decode("utf-8", errors="replace").split("\n"):
            run_id = _line_run_id(line, where=f"{self.path} (a line after byte {self._offset})")
            if run_id:
                self._ids.add(run_id)
        self._offset += len(whole)
        return self._ids

    # -- reading ---------------------------------------------------------
    def table(self, *, strict: bool = False) -> RunTable:
        """The store read by capgap.runs.reader's policy, with what was skipped (nothing warned yet)."""
        if not self.path.exists():
            raise InputError("run store not found", where=str(self.path))
        table = RunTable(strict=strict)
        table.add_jsonl(self.path)
        return table

    def load(self, *, strict: bool = False) -> list[RunRecord]:
        """The finished runs; a torn last line, exact repeats and failed runs are skipped with a warning each."""
        table = self.table(strict=strict)
        table.warn()
        return table.records

    def run_ids(self) -> set[str]:
        return {r.run_id for r in self.load()} if self.path.exists() else set()

    def failed(self) -> dict[str, FailedRun]:
        """Failed runs not since finished, by run id (none when there is no store yet)."""
        if not self.path.exists():
            return {}
        return {run_id: failed for run_id, (_, failed) in self.table().failed.items()}

    def frame(self) -> pd.DataFrame:
        return records_frame(self.load())

    # -- CSV -------------------------------------------------------------
    def import_csv(self, path: str | Path) -> int:
        """Validate a whole CSV first, then append its new runs; returns how many."""
        return self.extend(read_csv_runs(path))

    def export_csv(self, path: str | Path) -> int:
        records = self.load()
        write_csv_runs(records, path)
        return len(records)


def _line_run_id(line: str, *, where: str) -> str | None:
    """The run id of one stored line (None for a blank or torn line), without validating the whole record."""
    if not line.strip():
        return None
    try:
        data = json.loads(line)
    except json.JSONDecodeError:
        return None  # torn: load() reports it
    if not isinstance(data, dict) or data.get("status") == "failed":  # a failed run is not a finished one
        return None
    return data.get("run_id") or record_from_dict(data, where=where).run_id


def records_frame(records: Sequence[RunRecord]) -> pd.DataFrame:
    """One row per run; metrics as columns (NaN where a run lacks one)."""
    rows = []
    for record in records:
        row = record.model_dump(exclude={"metrics", "extra"})
        row.update(record.metrics)
        rows.append(row)
    return pd.DataFrame(rows)


def write_csv_runs(records: Sequence[RunRecord], path: str | Path) -> None:
    """Write records in the CSV import format (extra as a JSON column), whole or not at all (capgap.core.output)."""
    check_output(path, what="CSV")
    frame = records_frame(records)
    if not frame.empty:
        frame["created_at"] = [r.created_at.isoformat() for r in records]
        frame["extra"] = [json.dumps(r.extra, sort_keys=True) if r.extra else "" for r in records]
    write_output(path, frame.to_csv(index=False), what="CSV")


def _cell_number(text: str, *, column: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"column {column}: {text!r} is not a number", where=where) from None
    if not math.isfinite(value):
        raise InputError(f"column {column}: {text!r} is not finite; values must be finite numbers", where=where)
    return value


def read_csv_runs(path: str | Path, *, strict: bool = False) -> list[RunRecord]:
    """Parse a CSV in the import format into records (all rows or an error; exact repeats kept once, warned).

    Required: student_params, teacher_params and at least one metric column.
    Unknown numeric columns are metrics; unknown text columns go to ``extra``.
    """
    table = RunTable(strict=strict)
    _add_csv(table, Path(path))
    table.warn()
    return table.records


def _add_csv(runs: RunTable, path: Path) -> None:
    """Every row of a CSV run table into ``runs`` (capgap.runs.reader's duplicate policy)."""
    if not path.is_file():
        raise InputError("file not found", where=str(path))
    table = read_csv_table(path, expected="a header with student_params,teacher_params and a metric column")
    missing = [c for c in ("student_params", "teacher_params") if c not in table.columns]
    if missing:
        raise InputError(f"missing required column(s) {', '.join(missing)}; found: {', '.join(table.columns)}", where=str(path))
    candidates = [c for c in table.columns if c not in KNOWN_COLUMNS]
    metric_columns = [c for c in candidates if _numeric_column(table[c])]
    if not metric_columns:
        raise InputError("no metric column (e.g. eval_loss); unknown numeric columns are taken as metrics", where=str(path))
    if table.empty:
        raise InputError("no rows; expected one row per run", where=str(path))
    for number, row in enumerate(table.to_dict("records"), start=2):  # line 1 is the header
        where = f"{path}:{number}"
        runs.add(record_from_dict(_row_to_record(row, metric_columns, candidates, where), where=where), where)


def _numeric_column(column: pd.Series) -> bool:
    filled = [v for v in column if v.strip()]
    if not filled:
        return False
    try:
        [float(v) for v in filled]
    except ValueError:
        return False
    return True


def _row_to_record(row: dict[str, str], metric_columns: list[str], candidates: list[str], where: str) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for column in SIZE_COLUMNS:
        if row.get(column, "").strip():
            data[column] = parse_size(row[column], what=f"{where}: column {column}")
    for column in INT_COLUMNS:
        if row.get(column, "").strip():
            data[column] = int(_cell_number(row[column], column=column, where=where))
    for column in FLOAT_COLUMNS:
        if row.get(column, "").strip():
            data[column] = _cell_number(row[column], column=column, where=where)
    for column in TEXT_COLUMNS:
        if row.get(column, "").strip():
            data[column] = row[column].strip()
    extra: dict[str, Any] = {}
    if row.get("extra", "").strip():
        try:
            extra.update(json.loads(row["extra"]))
        except json.JSONDecodeError:
            raise InputError("column extra: not valid JSON", where=where) from None
    for column in candidates:
        if column not in metric_columns and row[column].strip():
            extra[column] = row[column]
    data["extra"] = extra
    data["metrics"] = {c: _cell_number(row[c], column=c, where=where) for c in metric_columns if row[c].strip()}
    if not data["metrics"]:
        raise InputError(f"no metric value in this row; metric columns: {', '.join(metric_columns)}", where=where)
    return data


def read_runs(paths: str | Path | Sequence[str | Path], *, strict: bool = False) -> RunTable:
    """Runs from .jsonl stores and/or .csv files by one policy (capgap.runs.reader), nothing warned yet."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    table = RunTable(strict=strict)
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise InputError("file not found; give a .jsonl run store or a .csv run table", where=str(path))
        if path.suffix.lower() == ".csv":
            _add_csv(table, path)
        elif path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
            if path.stat().st_size == 0:
                raise InputError("empty file; a run store holds one JSON record per line", where=str(path))
            table.add_jsonl(path)
        else:
            raise InputError("unknown run file type; accepted: .jsonl (run store) or .csv (run table)", where=str(path))
    return table


def load_runs(paths: str | Path | Sequence[str | Path], *, strict: bool = False) -> list[RunRecord]:
    """The finished runs of .jsonl stores and/or .csv files; what was skipped is warned once per kind.

    Exact repeats (within or across files) are kept once; a conflicting repeat is an error naming both lines.
    """
    table = read_runs(paths, strict=strict)
    table.warn()
    return table.records

