"""Law families of the optimal teacher, one module each, one common face (base.Law)."""

from pathlib import Path

from capgap.laws.base import FitOptions, Law, LawFile, TeacherEstimate, load_law, register_law

__all__ = ["FitOptions", "Law", "LawFile", "TeacherEstimate", "default_law_path", "load_law", "register_law"]


def default_law_path() -> Path:
    """The shipped default law, data/laws/default.json at the repository root (editable installs)."""
    return Path(__file__).resolve().parent.parent.parent / "data" / "laws" / "default.json"
