"""How every verb reads runs: one policy for torn lines, malformed lines, duplicates and failed runs.

* Only a torn *last* line of a JSONL store (no newline at its end, begun as a
  JSON object: a writer killed mid-write) is skipped, with a warning saying so.
  A malformed line anywhere else is an error naming the file and the line.
* The same run id twice with other results (metrics or any field but
  ``created_at`` and ``extra``) is an error naming both lines; exact repeats
  (a file given twice, a store and its CSV export) are kept once, counted, and
  reported in one warning.
* A failed run (capgap.runs.records.FailedRun) is kept out of the runs; those never
  since finished are counted in one warning.

``strict`` (``capgap runs validate``) turns the torn line and the exact repeats
into errors too: a file that validates has neither.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from capgap.core.errors import InputError
from capgap.runs.records import FailedRun, RunRecord, stored_from_dict

# Fields that say where and how a run was recorded rather than what it measured.
PROVENANCE_FIELDS = {"created_at", "extra"}


class TornLineWarning(UserWarning):
    """A store's last line is not a whole record (a writer was killed mid-write); it was skipped."""


class DuplicateRunWarning(UserWarning):
    """Exact repeats of runs were read and kept once."""


class FailedRunWarning(UserWarning):
    """Failed runs (recorded by `capgap measure`) were skipped."""


@dataclass
class RunTable:
    """Runs read from one or more files, with what was skipped and why."""

    strict: bool = False
    runs: dict[str, tuple[str, RunRecord]] = field(default_factory=dict)  # run id -> (where, record)
    failed: dict[str, tuple[str, FailedRun]] = field(default_factory=dict)  # never since finished
    repeats: list[tuple[str, str]] = field(default_factory=list)  # (where, where first read)
    torn: list[str] = field(default_factory=list)

    @property
    def records(self) -> list[RunRecord]:
        return [record for _, record in self.runs.values()]

    def add(self, item: RunRecord | FailedRun, where: str) -> None:
        if isinstance(item, FailedRun):
            if item.run_id not in self.runs:  # a run that finished later (a retry) is not failed
                self.failed[item.run_id] = (where, item)
            return
        self.failed.pop(item.run_id, None)
        first = self.runs.get(item.run_id)
        if first is None:
            self.runs[item.run_id] = (where, item)
            return
        first_where, earlier = first
        difference = _difference(earlier, item)
        if difference:
            raise InputError(f"duplicate run_id {item.run_id} with other results than {first_where} ({difference}); "
                             "keep one of them, or tell them apart by a seed or run_id", where=where)
        if self.strict:
            raise InputError(f"duplicate run_id {item.run_id} (an exact repeat of {first_where}); keep one",
                             where=where)
        self.repeats.append((where, first_where))

    def add_jsonl(self, path: Path) -> None:
        """Every line of a JSONL store (see the module's policy)."""
        data = path.read_bytes()
        lines = data.split(b"\n")
        tail = len(lines) if lines[-1] else None  # the line number of an unterminated last line
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            where = f"{path}:{number}"
            parsed = _parse_line(raw, where=where, number=number, may_be_torn=number == tail)
            if parsed is None:  # torn
                if self.strict:
                    raise InputError("torn last line (a writer killed mid-write?); each line must be one whole "
                                     "JSON run record", where=where)
                self.torn.append(where)
                continue
            self.add(stored_from_dict(parsed, where=where), where)

    def warn(self) -> None:
        """One warning per kind of skipped line."""
        for where in self.torn:
            warnings.warn(f"{where}: torn last line (a writer killed mid-write?) skipped; the rest is read",
                          TornLineWarning, stacklevel=3)
        if self.repeats:
            where, first = self.repeats[0]
            warnings.warn(f"{len(self.repeats)} exact repeat(s) of runs kept once (e.g. {where} repeats {first})",
                          DuplicateRunWarning, stacklevel=3)
        if self.failed:
            where, first = next(iter(self.failed.values()))
            warnings.warn(f"{len(self.failed)} failed run(s) skipped (e.g. {where}: {first.reason}); "
                          "`capgap measure --retry-failed` runs them again", FailedRunWarning, stacklevel=3)


def _parse_line(raw: bytes, *, where: str, number: int, may_be_torn: bool) -> dict[str, Any] | None:
    """A line's JSON object; None for a torn last line; an InputError for anything else."""
    torn = may_be_torn and raw.lstrip().startswith(b"{")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        if torn:
            return None
        raise InputError(f"line {number} is not UTF-8 text; a run store holds one JSON record per line",
                         where=where) from None
    except json.JSONDecodeError as exc:
        if torn:
            return None
        raise InputError(f"line {number} is not JSON ({exc.msg} at column {exc.colno}); each line of a run store "
                         "must be one JSON run record", where=where) from None
    if not isinstance(data, dict):
        raise InputError(f"line {number} is not a JSON object; each line must be one run record", where=where)
    return data


def _difference(a: RunRecord, b: RunRecord) -> str:
    """The first field (or metric) in which two records of one run id differ; '' when none does."""
    left, right = a.model_dump(exclude=PROVENANCE_FIELDS), b.model_dump(exclude=PROVENANCE_FIELDS)
    for name in sorted(set(left["metrics"]) | set(right["metrics"])):
        x, y = left["metrics"].get(name), right["metrics"].get(name)
        if x != y:
            return f"{name} {y} here, {x} there"
    for name in left:
        if name != "metrics" and left[name] != right[name]:
            return f"{name} {right[name]} here, {left[name]} there"
    return ""
