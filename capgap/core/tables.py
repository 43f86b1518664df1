"""CSV tables as text cells, or one clear line when a file is not a table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from capgap.core.errors import InputError


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
