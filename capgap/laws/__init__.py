"""Law families of the optimal teacher, one module each, one common face (base.Law).

The shipped law files and their names live in ``capgap.laws.files``; the names below are re-exported
from there on first use (that module imports this package, so not at import time).
"""

from typing import Any

from capgap.laws.base import FitOptions, Law, LawFile, TeacherEstimate, load_law, register_law

__all__ = ["SHIPPED_LAWS", "FitOptions", "Law", "LawFile", "TeacherEstimate", "default_law_path", "load_law",
           "register_law", "shipped_law_path"]


def default_law_path() -> Any:
    """The law fitted on capgap's shipped CPU runs (data/laws/cpu-demo.json); no longer recommend's default."""
    from capgap.laws.files import shipped_law_path

    return shipped_law_path("cpu-demo")


def __getattr__(name: str) -> Any:
    if name in ("SHIPPED_LAWS", "shipped_law_path"):
        import capgap.laws.files

        return getattr(capgap.laws.files, name)
    raise AttributeError(f"module 'capgap.laws' has no attribute {name!r}")
