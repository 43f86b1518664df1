"""The run store: an append-only JSONL file of RunRecords, safe for many writers.

Appends take a file lock, skip run ids already present, and write each record
as one line in one write() call followed by fsync, so concurrent sweeps never
interleave and a killed writer leaves at most one torn last line, which load()
reports and skips. A store object remembers the run ids it has read and where
it stopped, so each append reads only the lines added since (by anyone): a long
sweep's appends stay cheap.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from filelock import FileLock

from capgap.errors import InputError
from capgap.records import RunRecord, record_from_dict
from capgap.sizes import parse_size

# Columns of the CSV import/export format besides metric columns.
SIZE_COLUMNS = ("student_params", "teacher_params", "student_params_nonembed", "teacher_params_nonembed", "tokens",
                "teacher_tokens")
INT_COLUMNS = ("seed",)
FLOAT_COLUMNS = ("alpha", "temperature", "teacher_loss", "flops")
TEXT_COLUMNS = ("run_id", "family", "student_init", "source", "created_at")
KNOWN_COLUMNS = set(SIZE_COLUMNS) | set(INT_COLUMNS) | set(FLOAT_COLUMNS) | set(TEXT_COLUMNS) | {"extra"}


class TornLineWarning(UserWarning):
    """A JSONL line that is not a whole record (a writer was killed mid-write)."""


class RunStore:
    """Append-only JSONL store of RunRecords at ``path``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = FileLock(str(self.path) + ".lock")
        # Run ids in the file up to byte _offset: an append reads only what others added since.
        self._ids: set[str] = set()
        self._offset = 0

    # -- writing ---------------------------------------------------------
    def append(self, record: RunRecord) -> bool:
        """Append one record; False when its run id is already stored."""
        return self.extend([record]) == 1

    def extend(self, records: Iterable[RunRecord]) -> int:
        """Append records whose run ids are new; returns how many were written."""
        records = list(records)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._lock:
                existing = self._stored_ids()
                lines = []
                for record in records:
                    if record.run_id in existing:
                        continue
                    existing.add(record.run_id)
                    lines.append(record.model_dump_json() + "\n")
                if not lines:
                    return 0
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    # A torn tail from a killed writer must not swallow our first record.
                    if os.fstat(fd).st_size and not self._ends_with_newline():
                        lines[0] = "\n" + lines[0]
                    os.write(fd, "".join(lines).encode())
                    os.fsync(fd)
                finally:
                    os.close(fd)
                return len(lines)
        except OSError as exc:  # permission, a file where a folder should be, a full disk
            raise InputError(f"run store is not writable ({exc.strerror or exc}); choose a path you can write",
                             where=str(self.path)) from None

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

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as handle:
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) == b"\n"

    # -- reading ---------------------------------------------------------
    def load(self, *, strict: bool = False) -> list[RunRecord]:
        """All records. A torn line is warned about and skipped (strict: an error)."""
        if not self.path.exists():
            raise InputError("run store not found", where=str(self.path))
        return self._read(strict=strict)

    def _read(self, *, strict: bool) -> list[RunRecord]:
        records: list[RunRecord] = []
        seen: dict[str, int] = {}
        with open(self.path, encoding="utf-8") as handle:
            lines = handle.read().split("\n")
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{self.path}:{number}"
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                message = "torn or invalid JSON line (a writer killed mid-write?); it is skipped"
                if strict:
                    raise InputError("torn or invalid JSON line; each line must be one JSON run record", where=where) from None
                warnings.warn(f"{where}: {message}", TornLineWarning, stacklevel=3)
                continue
            if not isinstance(data, dict):
                raise InputError("line is not a JSON object; each line must be one run record", where=where)
            record = record_from_dict(data, where=where)
            if record.run_id in seen:
                if strict:
                    raise InputError(f"duplicate run_id {record.run_id} (first at line {seen[record.run_id]})", where=where)
                continue
            seen[record.run_id] = number
            records.append(record)
        return records

    def run_ids(self) -> set[str]:
        return {r.run_id for r in self.load()} if self.path.exists() else set()

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
    if not isinstance(data, dict):
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
    """Write records in the CSV import format (extra as a JSON column)."""
    folder = Path(path).parent
    if not folder.is_dir():
        raise InputError(f"output folder {folder} does not exist; create it or give a path in an existing folder",
                         where=str(path))
    if not os.access(folder, os.W_OK):
        raise InputError(f"output folder {folder} is not writable; give a path you can write", where=str(path))
    frame = records_frame(records)
    if not frame.empty:
        frame["created_at"] = [r.created_at.isoformat() for r in records]
        frame["extra"] = [json.dumps(r.extra, sort_keys=True) if r.extra else "" for r in records]
    tmp = Path(str(path) + ".tmp")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)  # never leave a half-written CSV


def _cell_number(text: str, *, column: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"column {column}: {text!r} is not a number", where=where) from None
    if not math.isfinite(value):
        raise InputError(f"column {column}: {text!r} is not finite; values must be finite numbers", where=where)
    return value


def read_csv_table(path: str | Path, *, expected: str, nrows: int | None = None) -> pd.DataFrame:
    """A CSV as text cells (no NaN guessing), or one InputError line saying what was ``expected``.

    ``nrows=0`` reads the header alone.
    """
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, nrows=nrows)
    except pd.errors.EmptyDataError:
        raise InputError(f"empty file; expected {expected}", where=str(path)) from None
    except Exception as exc:  # pandas raises several types for unreadable CSV
        raise InputError(f"cannot read as CSV ({exc.__class__.__name__}: {exc})", where=str(path)) from None


def read_csv_runs(path: str | Path) -> list[RunRecord]:
    """Parse a CSV in the import format into records (all rows or an error).

    Required: student_params, teacher_params and at least one metric column.
    Unknown numeric columns are metrics; unknown text columns go to ``extra``.
    """
    path = Path(path)
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
    records, seen = [], {}
    for number, row in enumerate(table.to_dict("records"), start=2):  # line 1 is the header
        where = f"{path}:{number}"
        record = record_from_dict(_row_to_record(row, metric_columns, candidates, where), where=where)
        if record.run_id in seen:
            raise InputError(f"duplicate run_id {record.run_id} (same configuration as line {seen[record.run_id]}); "
                             "add a run_id or seed column to tell them apart", where=where)
        seen[record.run_id] = number
        records.append(record)
    return records


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


def load_runs(paths: str | Path | Sequence[str | Path], *, strict: bool = False) -> list[RunRecord]:
    """Read runs from .jsonl stores and/or .csv files (duplicates across files kept once)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    records: dict[str, RunRecord] = {}
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise InputError("file not found; give a .jsonl run store or a .csv run table", where=str(path))
        if path.suffix.lower() == ".csv":
            batch = read_csv_runs(path)
        elif path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
            if path.stat().st_size == 0:
                raise InputError("empty file; a run store holds one JSON record per line", where=str(path))
            batch = RunStore(path).load(strict=strict)
        else:
            raise InputError("unknown run file type; accepted: .jsonl (run store) or .csv (run table)", where=str(path))
        for record in batch:
            records.setdefault(record.run_id, record)
    return list(records.values())

